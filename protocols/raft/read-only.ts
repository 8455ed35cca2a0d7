// ReadIndex bookkeeping on the leader (thesis §6.4, etcd readOnly).
//
// Each read is registered with the commit index at arrival and a sequence
// number. Heartbeats carry the highest sequence registered so far; a
// follower's answer to a heartbeat tagged s proves it still followed this
// leader after every read <= s was registered. Once a majority of voters
// (the leader included) has answered some s, every read <= s is confirmed:
// no other leader could have committed anything newer at that point.

import { committedIndex } from './quorum.ts'
import type { NodeId } from './types.ts'

/** A read waiting for leadership confirmation. */
export interface PendingRead {
  /** Commit index when the read arrived: the read is served at or after it. */
  readonly index: number
  /** Who asked: the leader itself or a follower that forwarded the request. */
  readonly from: NodeId
  /** The requester's tag, returned with the result. */
  readonly context: Uint8Array
  /** Sequence number carried by heartbeats. */
  readonly seq: number
}

/** Reads awaiting a heartbeat quorum. */
export class ReadOnly {
  private pending: PendingRead[] = []
  private readonly acks = new Map<NodeId, number>()
  private lastSeq = 0

  /** Registers a read at commit index `index`; returns its sequence number. */
  add(index: number, from: NodeId, context: Uint8Array): number {
    this.lastSeq++
    this.pending.push({ index, from, context, seq: this.lastSeq })
    return this.lastSeq
  }

  /** Number of unconfirmed reads. */
  size(): number {
    return this.pending.length
  }

  /** Sequence number to tag the next heartbeat with (0 when nothing is pending). */
  heartbeatSeq(): number {
    return this.pending.length === 0 ? 0 : this.lastSeq
  }

  /** `from` answered a heartbeat tagged `seq`. */
  recvAck(from: NodeId, seq: number): void {
    if (seq <= 0) return
    this.acks.set(from, Math.max(this.acks.get(from) ?? 0, seq))
  }

  /** Removes and returns the reads now confirmed by a majority of `voters` (`self` acks everything). */
  confirmed(voters: Iterable<NodeId>, self: NodeId): PendingRead[] {
    if (this.pending.length === 0) return []
    const seq = committedIndex(voters, (id) => (id === self ? this.lastSeq : this.acks.get(id)))
    let n = 0
    while (n < this.pending.length && (this.pending[n] as PendingRead).seq <= seq) n++
    if (n === 0) return []
    const done = this.pending.slice(0, n)
    this.pending = this.pending.slice(n)
    return done
  }
}
