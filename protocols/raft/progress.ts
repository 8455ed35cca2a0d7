// What a leader knows about one follower's log (thesis §3.5 nextIndex /
// matchIndex), with etcd's flow-control states:
//   probe:     we do not know where the follower's log ends; send one append
//              at a time and wait for the answer (backtracking on reject).
//   replicate: the follower is known to match up to `match`; stream appends
//              optimistically, up to the inflight window (thesis §10.2.2).
//   snapshot:  the follower needs a compacted prefix; a snapshot is on its way
//              and nothing else is sent until it is reported done.

import { Inflights } from './inflights.ts'

/** Flow-control state of a follower's progress. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot'

/** The leader's view of one peer's log. */
export class Progress {
  /** Highest index known to be replicated on the peer (thesis matchIndex). */
  match: number
  /** Next index to send (thesis nextIndex); invariant match < next. */
  next: number
  /** Flow-control state. */
  state: ProgressState = 'probe'
  /** Index of the snapshot in flight while state === 'snapshot'; 0 otherwise. */
  pendingSnapshot = 0
  /** Whether the peer answered since the last check-quorum round (thesis §6.2). */
  recentActive: boolean
  /** In probe: an append is outstanding; in replicate: the window is full. */
  msgAppFlowPaused = false
  /** Appends sent and not yet acknowledged. */
  readonly inflights: Inflights
  /** Whether the peer is a learner (receives the log, has no vote). */
  isLearner: boolean
  /** Highest commit index sent to the peer, to avoid redundant commit-only appends. */
  sentCommit = 0

  /** Progress for a peer probed from `next`. */
  constructor(init: { match: number; next: number; isLearner: boolean; recentActive: boolean; inflights: Inflights }) {
    this.match = init.match
    this.next = init.next
    this.isLearner = init.isLearner
    this.recentActive = init.recentActive
    this.inflights = init.inflights
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false
    this.pendingSnapshot = 0
    this.state = state
    this.inflights.reset()
  }

  /** Back to probing right after what is known to match (or the snapshot that was sent). */
  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot
      this.resetState('probe')
      this.next = Math.max(this.match + 1, pending + 1)
    } else {
      this.resetState('probe')
      this.next = this.match + 1
    }
    this.sentCommit = Math.min(this.sentCommit, this.next - 1)
  }

  /** Start streaming appends right after `match`. */
  becomeReplicate(): void {
    this.resetState('replicate')
    this.next = this.match + 1
  }

  /** A snapshot at `index` is being sent; pause appends until it is reported. */
  becomeSnapshot(index: number): void {
    this.resetState('snapshot')
    this.pendingSnapshot = index
    this.next = index + 1
    this.sentCommit = index
  }

  /** Updates flow control after sending an append of `entries` entries and `bytes` payload. */
  sentEntries(entries: number, bytes: number): void {
    switch (this.state) {
      case 'replicate':
        if (entries > 0) {
          this.next += entries
          this.inflights.add(this.next - 1, bytes)
        }
        this.msgAppFlowPaused = this.inflights.full()
        return
      case 'probe':
        if (entries > 0) this.msgAppFlowPaused = true
        return
      case 'snapshot':
        throw new Error('sentEntries in snapshot state')
    }
  }

  /** Whether an append carrying only commit index `commit` would tell the peer something new. */
  canBumpCommit(commit: number): boolean {
    return commit > this.sentCommit && this.sentCommit < this.next - 1
  }

  /** Records that commit index `commit` was sent. */
  sentCommitTo(commit: number): void {
    this.sentCommit = commit
  }

  /** The peer acknowledged entries through `index`; false if that is old news. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false
    this.match = index
    this.next = Math.max(this.next, index + 1)
    this.msgAppFlowPaused = false
    return true
  }

  /**
   * The peer rejected an append after `rejected`, hinting its log matches at
   * most through `matchHint`. Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // Only a rejection above match is news: everything <= match is known good.
      if (rejected <= this.match) return false
      this.next = this.match + 1
      this.sentCommit = Math.min(this.sentCommit, this.next - 1)
      return true
    }
    // In probe, only the answer to the outstanding probe counts.
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1)
    this.sentCommit = Math.min(this.sentCommit, this.next - 1)
    this.msgAppFlowPaused = false
    return true
  }

  /**
   * The peer's log went backwards: it lost entries it had acknowledged (its
   * disk lost writes) and now holds them only through `holds`. Match may go
   * down here and nowhere else; the leader then probes from there. Returns
   * false when match is already at or below `holds` (nothing to repair, e.g.
   * a duplicate of a report already acted on).
   */
  resetAfterLogLoss(holds: number): boolean {
    if (holds >= this.match) return false
    this.match = holds
    this.resetState('probe')
    this.next = holds + 1
    this.sentCommit = Math.min(this.sentCommit, holds)
    return true
  }

  /** Whether appends to this peer are throttled right now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
      case 'replicate':
        return this.msgAppFlowPaused
      case 'snapshot':
        return true
    }
  }
}
