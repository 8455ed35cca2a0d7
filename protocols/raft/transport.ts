/**
 * Raft messages between authenticated peers over libp2p: `/shoal/raft/1` carries every message
 * in order on one stream per peer; `/shoal/raft-snap/1` carries snapshots on their own stream,
 * so a large InstallSnapshot never holds heartbeats and votes behind it.
 *
 * A frame that does not decode, claims another sender than the authenticated connection, or is
 * addressed to another peer is dropped and counted; it never reaches the core.
 */
import type { Libp2p } from '@libp2p/interface'
import { FramedChannel, type ChannelStats } from '../framed-channel.ts'
import { decodeMessage, encodeMessage, RAFT_MAX_FRAME_BYTES } from './wire.ts'
import type { Message } from './messages.ts'

export const RAFT_PROTOCOL = '/shoal/raft/1'
export const RAFT_SNAPSHOT_PROTOCOL = '/shoal/raft-snap/1'
/**
 * Messages queued for one peer before the oldest are dropped and the peer reported
 * unreachable (etcd's raft transport does the same): the leader then probes it again
 * instead of buffering without bound for a peer that cannot keep up.
 */
const RAFT_SEND_QUEUE_MAX = 4096
/** At most this many snapshots queued per peer; Raft re-sends one when needed. */
const SNAPSHOT_QUEUE_MAX = 1

/** Counters for `shoal status`. */
export interface RaftTransportStats {
  messages: ChannelStats
  snapshots: ChannelStats
}

export interface RaftTransportInit {
  libp2p: Libp2p
  onMessage(message: Message): void
  /** Delivery to a peer failed; tell the core (reportUnreachable). */
  onUnreachable(peerId: string): void
  /** A snapshot could not be delivered; tell the core (reportSnapshot failure). */
  onSnapshotFailed(peerId: string): void
  debug(message: string): void
}

/** Sends and receives Raft messages; `send` never throws or blocks. */
export class RaftTransport {
  private readonly messages: FramedChannel
  private readonly snapshots: FramedChannel
  private readonly selfId: string
  private readonly onUnreachable: (peerId: string) => void

  constructor(init: RaftTransportInit) {
    this.onUnreachable = init.onUnreachable
    this.selfId = init.libp2p.peerId.toString()
    const onFrame = (from: string, frame: Uint8Array): string | null => {
      const decoded = decodeMessage(frame)
      if (!decoded.ok) return decoded.error
      const m = decoded.message
      if (m.from !== from) return `message claims to be from ${m.from} on a connection authenticated as ${from}`
      if (m.to !== this.selfId) return `message addressed to ${m.to}`
      init.onMessage(m)
      return null
    }
    const common = { libp2p: init.libp2p, maxFrameBytes: RAFT_MAX_FRAME_BYTES, onFrame, debug: init.debug }
    this.messages = new FramedChannel({ ...common, protocol: RAFT_PROTOCOL, queueMax: RAFT_SEND_QUEUE_MAX, batchMax: 256, onUnreachable: init.onUnreachable })
    this.snapshots = new FramedChannel({
      ...common,
      protocol: RAFT_SNAPSHOT_PROTOCOL,
      queueMax: SNAPSHOT_QUEUE_MAX,
      batchMax: 1,
      dialTimeoutMs: 60_000,
      onUnreachable: (peerId) => {
        init.onSnapshotFailed(peerId)
        init.onUnreachable(peerId)
      },
    })
  }

  get stats(): RaftTransportStats {
    return { messages: this.messages.stats, snapshots: this.snapshots.stats }
  }

  async start(): Promise<void> {
    await this.messages.start()
    await this.snapshots.start()
  }

  async stop(): Promise<void> {
    await this.messages.stop()
    await this.snapshots.stop()
  }

  /** Sends one message; a full queue drops the oldest and reports the peer unreachable. */
  send(message: Message): void {
    const channel = message.type === 'snap' ? this.snapshots : this.messages
    if (!channel.send(message.to, encodeMessage(message))) this.onUnreachable(message.to)
  }

  /** Waits (bounded) until queued messages are handed to their streams (graceful stop). */
  async flush(timeoutMs: number): Promise<void> {
    await this.messages.flush(timeoutMs)
  }

  connectionClosed(peerId: string): void {
    this.messages.connectionClosed(peerId)
    this.snapshots.connectionClosed(peerId)
  }
}
