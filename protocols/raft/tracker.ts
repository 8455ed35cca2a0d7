// The leader-side bookkeeping for the whole membership: the configuration
// (voters and learners), one Progress per member, and the votes of an election.

import { Inflights } from './inflights.ts'
import { Progress } from './progress.ts'
import { committedIndex, voteResult, majority, type VoteResult } from './quorum.ts'
import type { ConfState, NodeId } from './types.ts'

/** Bounds applied to every member's inflight window. */
export interface TrackerBounds {
  readonly maxInflightMsgs: number
  readonly maxInflightBytes: number
}

/** Configuration, per-member progress and election votes. */
export class ProgressTracker {
  /** Members whose votes and acknowledgements count toward quorums. */
  readonly voters = new Set<NodeId>()
  /** Members that receive the log but neither vote nor count (thesis §4.2.1). */
  readonly learners = new Set<NodeId>()
  /** Progress of every member, voters and learners alike. */
  readonly progress = new Map<NodeId, Progress>()
  /** Votes received in the current (pre-)election. */
  readonly votes = new Map<NodeId, boolean>()
  /** Window bounds for new progress entries. */
  readonly bounds: TrackerBounds

  /** An empty tracker. */
  constructor(bounds: TrackerBounds) {
    this.bounds = bounds
  }

  /** Adds (or re-flags) a member, probed from `next`. A new member counts as recently active. */
  addMember(id: NodeId, isLearner: boolean, next: number): void {
    const existing = this.progress.get(id)
    if (existing !== undefined) {
      existing.isLearner = isLearner
    } else {
      this.progress.set(id, this.newProgress(isLearner, next))
    }
    if (isLearner) {
      this.voters.delete(id)
      this.learners.add(id)
    } else {
      this.learners.delete(id)
      this.voters.add(id)
    }
  }

  /** Removes a member entirely. */
  removeMember(id: NodeId): void {
    this.voters.delete(id)
    this.learners.delete(id)
    this.progress.delete(id)
    this.votes.delete(id)
  }

  /** Fresh progress with an empty inflight window. */
  newProgress(isLearner: boolean, next: number): Progress {
    return new Progress({
      match: 0,
      next: Math.max(next, 1),
      isLearner,
      // A member just added has not had a chance to answer; do not count it
      // against check-quorum before it had one (etcd initProgress).
      recentActive: true,
      inflights: new Inflights(this.bounds.maxInflightMsgs, this.bounds.maxInflightBytes),
    })
  }

  /** Member ids in a stable (sorted) order, so every run sends in the same order. */
  memberIds(): NodeId[] {
    return [...this.progress.keys()].sort()
  }

  /** Whether `id` is a voter. */
  isVoter(id: NodeId): boolean {
    return this.voters.has(id)
  }

  /** The membership as a ConfState (sorted). */
  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() }
  }

  /** Highest index replicated on a majority of voters. */
  committed(): number {
    return committedIndex(this.voters, (id) => this.progress.get(id)?.match)
  }

  /** Forgets the votes of the previous election. */
  resetVotes(): void {
    this.votes.clear()
  }

  /** Records `id`'s vote unless it already voted in this election. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted)
  }

  /** Whether the votes so far decide the election. */
  tallyVotes(): VoteResult {
    return voteResult(this.voters, this.votes)
  }

  /**
   * Whether a majority of voters was heard from since the last check
   * (check-quorum, thesis §6.2). `self` always counts as active.
   */
  quorumActive(self: NodeId): boolean {
    let active = 0
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)?.recentActive === true) active++
    }
    return active >= majority(this.voters.size)
  }

  /** Whether `self` is the only voter. */
  isSingleton(self: NodeId): boolean {
    return this.voters.size === 1 && this.voters.has(self)
  }
}
