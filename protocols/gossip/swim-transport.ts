/**
 * Carries SWIM frames between authenticated peers over the libp2p protocol `/shoal/swim/1`.
 * One long-lived outbound stream per peer carries length-prefixed frames; the sender's
 * identity is the Noise-authenticated remote peer of the connection, never a field of the frame.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { Libp2p, Stream, Connection } from '@libp2p/interface'
import { encodeSwimMessage, decodeSwimMessage, SWIM_MAX_FRAME_BYTES } from './swim-codec.ts'
import type { SwimMessage } from './failure-detector.ts'

export const SWIM_PROTOCOL = '/shoal/swim/1'
/** Frames waiting for one peer's stream; beyond this the oldest are dropped (SWIM tolerates loss). */
const SEND_QUEUE_MAX = 256
const DIAL_TIMEOUT_MS = 1000

/** Counters visible in `shoal status`. */
export interface SwimTransportStats {
  framesSent: number
  framesReceived: number
  invalidFrames: number
  sendQueueDrops: number
  sendFailures: number
}

export interface SwimTransportHandlers {
  onMessage(from: string, message: SwimMessage): void
  onUnreachable(peerId: string): void
}

interface Outbox {
  queue: SwimMessage[]
  busy: boolean
  stream: LengthPrefixedStream<Stream> | null
}

/** Sends and receives SWIM frames; `send` never throws or blocks the caller. */
export class SwimTransport {
  readonly stats: SwimTransportStats = { framesSent: 0, framesReceived: 0, invalidFrames: 0, sendQueueDrops: 0, sendFailures: 0 }
  private readonly outboxes = new Map<string, Outbox>()
  private stopped = false
  private readonly libp2p: Libp2p
  private readonly handlers: SwimTransportHandlers
  private readonly debug: (message: string) => void

  constructor(libp2p: Libp2p, handlers: SwimTransportHandlers, debug: (message: string) => void) {
    this.libp2p = libp2p
    this.handlers = handlers
    this.debug = debug
  }

  async start(): Promise<void> {
    await this.libp2p.handle(SWIM_PROTOCOL, (stream, connection) => this.onInboundStream(stream, connection), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    })
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.libp2p.unhandle(SWIM_PROTOCOL)
    for (const box of this.outboxes.values()) box.stream?.unwrap().abort(new Error('shutting down'))
    this.outboxes.clear()
  }

  /** Queues a frame for `to`; delivery failures come back through `onUnreachable`. */
  send(to: string, message: SwimMessage): void {
    if (this.stopped) return
    let box = this.outboxes.get(to)
    if (box === undefined) {
      box = { queue: [], busy: false, stream: null }
      this.outboxes.set(to, box)
    }
    if (box.queue.length >= SEND_QUEUE_MAX) {
      box.queue.shift()
      this.stats.sendQueueDrops++
    }
    box.queue.push(message)
    if (!box.busy) void this.drain(to, box)
  }

  /** Waits (bounded) until every queued frame has been handed to its stream. */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline && [...this.outboxes.values()].some((b) => b.busy || b.queue.length > 0)) {
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
    try {
      while (box.queue.length > 0 && !this.stopped) {
        const message = box.queue[0] as SwimMessage
        let frame: Uint8Array
        try {
          frame = encodeSwimMessage(message)
        } catch (err) {
          // The core never emits an unencodable message; if it ever does, drop that one frame
          // rather than jamming this peer's queue, and make it visible.
          box.queue.shift()
          this.stats.sendFailures++
          this.debug(`dropped an unencodable SWIM message to ${to}: ${err instanceof Error ? err.message : String(err)}`)
          continue
        }
        let delivered = false
        // One retry on a fresh stream: a cached stream may belong to a connection that just closed.
        for (let attempt = 0; attempt < 2 && !delivered; attempt++) {
          try {
            if (box.stream === null) box.stream = await this.openStream(to)
            await box.stream.write(frame, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
            delivered = true
          } catch (err) {
            box.stream?.unwrap().abort(err instanceof Error ? err : new Error(String(err)))
            box.stream = null
            if (attempt === 1) this.debug(`cannot deliver to ${to}: ${err instanceof Error ? err.message : String(err)}`)
          }
        }
        box.queue.shift()
        if (delivered) {
          this.stats.framesSent++
        } else {
          this.stats.sendFailures++
          // The rest of this peer's queue would fail the same way; SWIM recovers from loss.
          box.queue.length = 0
          this.handlers.onUnreachable(to)
        }
      }
    } finally {
      box.busy = false
    }
  }

  private async openStream(to: string): Promise<LengthPrefixedStream<Stream>> {
    const stream = await this.libp2p.dialProtocol(peerIdFromString(to), SWIM_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
    return lpStream(stream, { maxDataLength: SWIM_MAX_FRAME_BYTES })
  }

  private async onInboundStream(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: SWIM_MAX_FRAME_BYTES })
    try {
      while (!this.stopped) {
        const frame = await lp.read()
        this.stats.framesReceived++
        const decoded = decodeSwimMessage(frame.subarray())
        if (!decoded.ok) {
          this.stats.invalidFrames++
          this.debug(`dropped an invalid SWIM frame from ${from}: ${decoded.error}`)
          continue
        }
        this.handlers.onMessage(from, decoded.message)
      }
    } catch (err) {
      // End of stream is the normal way a peer stops talking; an oversized frame lands here too.
      const message = err instanceof Error ? err.message : String(err)
      if (!/end of (the )?stream|unexpected end|closed/i.test(message)) {
        this.stats.invalidFrames++
        this.debug(`closed SWIM stream from ${from}: ${message}`)
      }
      stream.abort(err instanceof Error ? err : new Error(message))
    }
  }
}
