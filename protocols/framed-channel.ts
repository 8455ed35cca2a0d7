/**
 * Length-prefixed frames between authenticated peers over one libp2p protocol: a long-lived
 * outbound stream per peer, a bounded queue in front of it, and inbound streams read frame by
 * frame. The sender's identity is the Noise-authenticated remote peer of the connection, never
 * a field of a frame. Used by SWIM and Raft, each with its own codec.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { PieceReader } from './piece-reader.ts'
import type { Libp2p, Stream, Connection } from '@libp2p/interface'

/**
 * Frames travel in pieces of at most this size, each led by one byte: 1 = more pieces follow,
 * 0 = last piece. libp2p streams refuse to buffer more than 4 MiB unread, so a large frame
 * (a Raft snapshot) must never be one length-prefixed message.
 */
export const PIECE_MAX_BYTES = 1024 * 1024
/**
 * Unread bytes an outbound stream's length-prefixed wrapper may hold (nothing is read from
 * those; inbound streams are read by a PieceReader, which holds at most one piece).
 */
const READ_BUFFER_MAX_BYTES = 16 * 1024 * 1024 + 2 * PIECE_MAX_BYTES
const MORE = new Uint8Array([1])
const LAST = new Uint8Array([0])

/** Splits a frame into flagged pieces, without copying its bytes. */
function pieces(frame: Uint8Array): Uint8ArrayList[] {
  const out: Uint8ArrayList[] = []
  for (let at = 0; at < frame.byteLength || out.length === 0; at += PIECE_MAX_BYTES) {
    const end = Math.min(frame.byteLength, at + PIECE_MAX_BYTES)
    out.push(new Uint8ArrayList(end < frame.byteLength ? MORE : LAST, frame.subarray(at, end)))
  }
  return out
}

/** Counters visible in `shoal status`. */
export interface ChannelStats {
  framesSent: number
  framesReceived: number
  invalidFrames: number
  sendQueueDrops: number
  sendFailures: number
}

export interface FramedChannelInit {
  libp2p: Libp2p
  protocol: string
  maxFrameBytes: number
  /** Frames waiting for one peer; past this the oldest are dropped (both protocols tolerate loss). */
  queueMax: number
  /** Most frames written in one batch (one write call). */
  batchMax?: number
  dialTimeoutMs?: number
  /** Delivers a received frame; return an error message to count the frame invalid. */
  onFrame(from: string, frame: Uint8Array): string | null
  /** Delivery to a peer failed at once (dial refused, stream reset) or its queue overflowed. */
  onUnreachable(peerId: string): void
  debug(message: string): void
}

interface Outbox {
  queue: Uint8Array[]
  busy: boolean
  scheduled: boolean
  stream: LengthPrefixedStream<Stream> | null
}

/** Sends and receives frames; `send` never throws or blocks the caller. */
export class FramedChannel {
  readonly stats: ChannelStats = { framesSent: 0, framesReceived: 0, invalidFrames: 0, sendQueueDrops: 0, sendFailures: 0 }
  private readonly outboxes = new Map<string, Outbox>()
  private stopped = false
  private readonly init: FramedChannelInit

  constructor(init: FramedChannelInit) {
    this.init = init
  }

  async start(): Promise<void> {
    await this.init.libp2p.handle(this.init.protocol, (stream, connection) => this.onInboundStream(stream, connection), {
      maxInboundStreams: 8,
      maxOutboundStreams: 8,
    })
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.init.libp2p.unhandle(this.init.protocol)
    for (const box of this.outboxes.values()) box.stream?.unwrap().abort(new Error('shutting down'))
    this.outboxes.clear()
  }

  /** Queues a frame for `to`. Returns false when the queue was full and a frame was dropped. */
  send(to: string, frame: Uint8Array): boolean {
    if (this.stopped) return false
    let box = this.outboxes.get(to)
    if (box === undefined) {
      box = { queue: [], busy: false, scheduled: false, stream: null }
      this.outboxes.set(to, box)
    }
    let accepted = true
    if (box.queue.length >= this.init.queueMax) {
      box.queue.shift()
      this.stats.sendQueueDrops++
      accepted = false
    }
    box.queue.push(frame)
    // The first write waits for the end of this turn of the event loop, so every frame queued
    // meanwhile (a Ready's messages, the answers to a burst of reads) shares one write: one
    // yamux frame, one Noise and one pnet encryption, one syscall. Under load this is what
    // bounds a peer's CPU per message (+16-25% replicated writes/s at 16-64 clients).
    if (!box.busy && !box.scheduled) {
      box.scheduled = true
      const b = box
      setImmediate(() => {
        b.scheduled = false
        if (!b.busy) void this.drain(to, b)
      })
    }
    return accepted
  }

  /** Waits (bounded) until every queued frame has been handed to its stream. */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline && [...this.outboxes.values()].some((b) => b.busy || b.queue.length > 0)) {
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  /** Forgets the cached stream to a peer whose connection closed. */
  connectionClosed(peerId: string): void {
    const box = this.outboxes.get(peerId)
    if (box !== undefined) box.stream = null
  }

  private async drain(to: string, box: Outbox): Promise<void> {
    box.busy = true
    const batchMax = this.init.batchMax ?? 64
    try {
      while (box.queue.length > 0 && !this.stopped) {
        const batch = box.queue.slice(0, batchMax)
        const wire = batch.flatMap(pieces)
        let delivered = false
        // One retry on a fresh stream: a cached stream may belong to a connection that just closed.
        for (let attempt = 0; attempt < 2 && !delivered; attempt++) {
          try {
            if (box.stream === null) box.stream = await this.openStream(to)
            await box.stream.writeV(wire, { signal: AbortSignal.timeout(this.init.dialTimeoutMs ?? 2000) })
            delivered = true
          } catch (err) {
            box.stream?.unwrap().abort(err instanceof Error ? err : new Error(String(err)))
            box.stream = null
            if (attempt === 1) this.init.debug(`${this.init.protocol}: cannot deliver to ${to}: ${err instanceof Error ? err.message : String(err)}`)
          }
        }
        box.queue.splice(0, batch.length)
        if (delivered) {
          this.stats.framesSent += batch.length
        } else {
          this.stats.sendFailures += batch.length
          // The rest of this peer's queue would fail the same way; the protocols recover from loss.
          this.stats.sendQueueDrops += box.queue.length
          box.queue.length = 0
          this.init.onUnreachable(to)
        }
      }
    } finally {
      box.busy = false
    }
  }

  private async openStream(to: string): Promise<LengthPrefixedStream<Stream>> {
    const stream = await this.init.libp2p.dialProtocol(peerIdFromString(to), this.init.protocol, {
      signal: AbortSignal.timeout(this.init.dialTimeoutMs ?? 2000),
    })
    return lpStream(stream, { maxDataLength: PIECE_MAX_BYTES + 1, maxBufferSize: READ_BUFFER_MAX_BYTES })
  }

  private async onInboundStream(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    const reader = new PieceReader(PIECE_MAX_BYTES + 1)
    let partial: Uint8Array[] = []
    let partialBytes = 0
    try {
      for await (const chunk of stream) {
        for (const bytes of chunk instanceof Uint8Array ? [chunk] : chunk) {
          for (const piece of reader.push(bytes)) {
            if (piece.byteLength === 0) throw new Error('empty piece')
            const more = piece[0]
            if (more !== 0 && more !== 1) throw new Error(`bad piece flag ${more}`)
            partial.push(piece.subarray(1))
            partialBytes += piece.byteLength - 1
            if (partialBytes > this.init.maxFrameBytes) throw new Error(`frame over ${this.init.maxFrameBytes} bytes`)
            if (more === 1) continue
            const frame = partial.length === 1 ? (partial[0] as Uint8Array) : Buffer.concat(partial, partialBytes)
            partial = []
            partialBytes = 0
            this.stats.framesReceived++
            const problem = this.init.onFrame(from, frame)
            if (problem !== null) {
              this.stats.invalidFrames++
              this.init.debug(`${this.init.protocol}: dropped an invalid frame from ${from}: ${problem}`)
            }
          }
        }
        if (this.stopped) break
      }
      if (reader.pendingBytes > 0 || partialBytes > 0) throw new Error('stream ended inside a frame')
      // The peer closed its side: nothing more will come on this stream.
      stream.abort(new Error('stream ended'))
    } catch (err) {
      // End of stream is the normal way a peer stops talking; an oversized frame lands here too.
      const message = err instanceof Error ? err.message : String(err)
      if (!/closed|aborted|reset/i.test(message)) {
        this.stats.invalidFrames++
        this.init.debug(`${this.init.protocol}: closed the stream from ${from}: ${message}`)
      }
      stream.abort(err instanceof Error ? err : new Error(message))
    }
  }
}
