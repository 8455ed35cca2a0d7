/**
 * Carries SWIM frames between authenticated peers over the libp2p protocol `/shoal/swim/1`,
 * on a FramedChannel with the SWIM codec.
 */
import type { Libp2p } from '@libp2p/interface'
import { FramedChannel, type ChannelStats } from '../framed-channel.ts'
import { encodeSwimMessage, decodeSwimMessage, SWIM_MAX_FRAME_BYTES } from './swim-codec.ts'
import type { SwimMessage } from './failure-detector.ts'

export const SWIM_PROTOCOL = '/shoal/swim/1'
/** Frames waiting for one peer's stream; beyond this the oldest are dropped (SWIM tolerates loss). */
const SEND_QUEUE_MAX = 256
const DIAL_TIMEOUT_MS = 1000

export type SwimTransportStats = ChannelStats

export interface SwimTransportHandlers {
  onMessage(from: string, message: SwimMessage): void
  onUnreachable(peerId: string): void
}

/** Sends and receives SWIM messages; `send` never throws or blocks the caller. */
export class SwimTransport {
  private readonly channel: FramedChannel
  private readonly debug: (message: string) => void

  constructor(libp2p: Libp2p, handlers: SwimTransportHandlers, debug: (message: string) => void) {
    this.debug = debug
    this.channel = new FramedChannel({
      libp2p,
      protocol: SWIM_PROTOCOL,
      maxFrameBytes: SWIM_MAX_FRAME_BYTES,
      queueMax: SEND_QUEUE_MAX,
      dialTimeoutMs: DIAL_TIMEOUT_MS,
      onFrame: (from, frame) => {
        const decoded = decodeSwimMessage(frame)
        if (!decoded.ok) return decoded.error
        handlers.onMessage(from, decoded.message)
        return null
      },
      onUnreachable: (peerId) => handlers.onUnreachable(peerId),
      debug,
    })
  }

  get stats(): SwimTransportStats {
    return this.channel.stats
  }

  start(): Promise<void> {
    return this.channel.start()
  }

  stop(): Promise<void> {
    return this.channel.stop()
  }

  /** Queues a message for `to`; delivery failures come back through `onUnreachable`. */
  send(to: string, message: SwimMessage): void {
    let frame: Uint8Array
    try {
      frame = encodeSwimMessage(message)
    } catch (err) {
      // The core never emits an unencodable message; if it ever does, drop it visibly.
      this.channel.stats.sendFailures++
      this.debug(`dropped an unencodable SWIM message to ${to}: ${err instanceof Error ? err.message : String(err)}`)
      return
    }
    this.channel.send(to, frame)
  }

  flush(timeoutMs: number): Promise<void> {
    return this.channel.flush(timeoutMs)
  }

  connectionClosed(peerId: string): void {
    this.channel.connectionClosed(peerId)
  }
}
