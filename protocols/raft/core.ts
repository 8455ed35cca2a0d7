// RaftCore: the public face of the Raft core (etcd's RawNode). Inputs are
// tick(), step(message) and the client calls; outputs are collected into one
// Ready at a time, which the driver handles and hands back via advance().

import { encodeConfChange, type ConfChange } from './conf-change.ts'
import type { Message } from './messages.ts'
import type { ProgressState } from './progress.ts'
import type { RaftConfig } from './config.ts'
import { Raft } from './raft.ts'
import type { ProposeResult, ReadIndexResult, StepResult, TransferResult } from './results.ts'
import {
  hardStateEqual,
  invariant,
  payloadBytes,
  type ConfState,
  type Entry,
  type HardState,
  type LogLossEvent,
  type NodeId,
  type ReadState,
  type Role,
  type Snapshot,
  type SoftState,
} from './types.ts'

/** Configuration of a RaftCore (see RaftConfig for each field). */
export type RaftCoreConfig = RaftConfig

/**
 * One batch of work for the driver. Handle it in this order, then call
 * advance(ready) before asking for the next one:
 *
 *  1. Persist: write `snapshot` (if any), then append `entries` (an entry at
 *     index i replaces stored entries >= i), then `hardState` (if any). If
 *     `mustSync`, fsync before going on: a vote or an acknowledged entry that
 *     is lost in a crash breaks safety (thesis §3.8).
 *  2. Send `messages`. Some acknowledge what step 1 wrote, so never before it.
 *  3. Apply: restore the state machine from `snapshot` (if any), then apply
 *     `committedEntries` in order. For a 'conf-change' entry, decode it and
 *     call applyConfChange(). Serve each `readStates` item once the applied
 *     index reaches its index.
 *  4. advance(ready).
 *
 * (etcd lets a leader send appends while its own write is in flight, thesis
 * §10.2.1; this core keeps the simple order above, which is always safe.)
 * step() and tick() may be called between ready() and advance(); their output
 * goes into the next Ready.
 */
export interface Ready {
  /** Leader or role changed; not persisted. */
  readonly softState: SoftState | undefined
  /** Term, vote or commit changed: persist. */
  readonly hardState: HardState | undefined
  /** Entries to append to stable storage before sending messages. */
  readonly entries: readonly Entry[]
  /** A snapshot from the leader to persist and load into the state machine. */
  readonly snapshot: Snapshot | undefined
  /** Committed entries to apply, in order (at most maxCommittedBytesPerReady, at least one). */
  readonly committedEntries: readonly Entry[]
  /** Messages to send after persisting. */
  readonly messages: readonly Message[]
  /** Confirmed linearizable reads (thesis §6.4). */
  readonly readStates: readonly ReadState[]
  /** Whether the write in step 1 must be fsynced before step 2. */
  readonly mustSync: boolean
  /**
   * Logs found shorter than what was acknowledged from them: report each
   * loudly. On 'own-log-lost', also record `RaftCore.repairIndex` durably, so
   * a restart does not forget that this peer may not vote yet.
   */
  readonly logLoss: readonly LogLossEvent[]
}

/** A member's replication state as the leader sees it. */
export interface ProgressStatus {
  readonly match: number
  readonly next: number
  readonly state: ProgressState
  readonly recentActive: boolean
  readonly isLearner: boolean
  readonly pendingSnapshot: number
  readonly inflight: number
}

/** A snapshot of the peer's state for status displays and tests. */
export interface RaftStatus {
  readonly id: NodeId
  readonly term: number
  readonly vote: NodeId | null
  readonly commit: number
  readonly applied: number
  readonly firstIndex: number
  readonly lastIndex: number
  readonly lead: NodeId | null
  readonly role: Role
  readonly voters: readonly NodeId[]
  readonly learners: readonly NodeId[]
  readonly leadTransferee: NodeId | null
  /**
   * Removed or demoted, but possibly still needed to finish that change
   * (thesis §4.2.2). While true the driver must keep the peer running and must
   * not compact its log: after a restart, replaying the conf change that
   * removed it is what tells the core it may still have to campaign.
   */
  readonly leaving: boolean
  /** Per-member progress; leader only. */
  readonly progress: Readonly<Record<NodeId, ProgressStatus>> | undefined
  /**
   * Non-zero while this peer's log lacks entries it lost after acknowledging
   * them: it neither votes nor campaigns until its log reaches this index.
   */
  readonly repairIndex: number
}

/** What advance() must do for the Ready handed out. */
interface Outstanding {
  readonly ready: Ready
  readonly lastEntry: { readonly index: number; readonly term: number } | undefined
  readonly snapshotIndex: number | undefined
  readonly appliedIndex: number | undefined
  readonly appliedBytes: number
}

/** The Raft core of one peer: a pure, synchronous state machine. */
export class RaftCore {
  private readonly raft: Raft
  private prevSoftState: SoftState
  private prevHardState: HardState
  private outstanding: Outstanding | undefined = undefined

  /** Restores a peer from config.storage; it starts as a follower. */
  constructor(config: RaftCoreConfig) {
    this.raft = new Raft(config)
    this.prevSoftState = this.softState()
    this.prevHardState = this.raft.hardState()
  }

  /** This peer's id. */
  get id(): NodeId {
    return this.raft.id
  }

  /** Advances logical time by one tick (elections, heartbeats, check-quorum). */
  tick(): void {
    this.raft.tick()
  }

  /** Starts an election now (pre-vote first if enabled), e.g. to bootstrap a one-voter cluster quickly. */
  campaign(): void {
    this.raft.hup(this.raft.preVote ? 'pre-election' : 'election')
  }

  /** Handles a message from a peer; refuses messages not addressed to this peer. */
  step(m: Message): StepResult {
    if (m.to !== this.raft.id || m.from === this.raft.id) return { ok: false, reason: 'misaddressed' }
    this.raft.step(m)
    return { ok: true }
  }

  /** Proposes application data for the log. */
  propose(data: Uint8Array): ProposeResult {
    return this.raft.propose([{ type: 'normal', data }])
  }

  /** Proposes a single-server membership change (thesis §4.1). */
  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.raft.propose([{ type: 'conf-change', data: encodeConfChange(cc) }])
  }

  /** Asks for a linearizable read point; the answer arrives in Ready.readStates tagged `context`. */
  readIndex(context: Uint8Array): ReadIndexResult {
    return this.raft.readIndex(context)
  }

  /**
   * Hands leadership to `to` (thesis §3.10); on the leader with no `to`, to the
   * most up-to-date voter (graceful stop). Proposals are refused meanwhile.
   */
  transferLeadership(to?: NodeId): TransferResult {
    return this.raft.transferLeadership(to)
  }

  /** Applies a committed conf-change entry (call from Ready step 3); returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc)
  }

  /** The transport failed to reach `id` (the leader then probes it instead of streaming). */
  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id)
  }

  /** The transport delivered (ok) or failed to deliver a snapshot to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(id, ok)
  }

  /** Whether ready() has work; false while a Ready is outstanding (before advance()). */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false
    const r = this.raft
    const u = r.log.unstable
    return (
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.logLossEvents.length > 0 ||
      u.offsetInProgress < u.offset + u.entries.length ||
      u.nextSnapshot() !== undefined ||
      r.log.hasNextCommittedEntries() ||
      !hardStateEqual(r.hardState(), this.prevHardState) ||
      !softStateEqual(this.softState(), this.prevSoftState)
    )
  }

  /** Hands out the pending work (see Ready for what the driver must do with it). */
  ready(): Ready {
    invariant(this.outstanding === undefined, 'ready() called again before advance()')
    const r = this.raft
    const entries = r.log.nextUnstableEntries()
    const snapshot = r.log.unstable.nextSnapshot()
    const committedEntries = r.log.nextCommittedEntries()
    const soft = this.softState()
    const hard = r.hardState()
    const softChanged = !softStateEqual(soft, this.prevSoftState)
    const hardChanged = !hardStateEqual(hard, this.prevHardState)
    const ready: Ready = {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged ? hard : undefined,
      entries,
      snapshot,
      committedEntries,
      messages: r.msgs,
      readStates: r.readStates,
      logLoss: r.logLossEvents,
      // Thesis §3.8: term, vote and log entries must be durable before we answer.
      mustSync:
        entries.length > 0 || snapshot !== undefined || hard.term !== this.prevHardState.term || hard.vote !== this.prevHardState.vote,
    }
    this.prevSoftState = soft
    this.prevHardState = hard
    r.msgs = []
    r.readStates = []
    r.logLossEvents = []
    r.log.acceptUnstable()
    const lastCommitted = committedEntries[committedEntries.length - 1]
    if (lastCommitted !== undefined) r.log.acceptApplying(lastCommitted.index)
    const lastEntry = entries[entries.length - 1]
    this.outstanding = {
      ready,
      lastEntry: lastEntry === undefined ? undefined : { index: lastEntry.index, term: lastEntry.term },
      snapshotIndex: snapshot?.metadata.index,
      appliedIndex: lastCommitted?.index,
      appliedBytes: payloadBytes(committedEntries),
    }
    return ready
  }

  /** The driver finished `ready` (persisted, sent, applied). */
  advance(ready: Ready): void {
    const o = this.outstanding
    invariant(o !== undefined && o.ready === ready, 'advance() without the matching ready()')
    this.outstanding = undefined
    const r = this.raft
    if (o.snapshotIndex !== undefined) {
      r.log.stableSnapTo(o.snapshotIndex)
      r.log.appliedTo(Math.max(o.snapshotIndex, r.log.applied))
    }
    if (o.lastEntry !== undefined) {
      r.log.stableTo(o.lastEntry.index, o.lastEntry.term)
      r.onPersisted(o.lastEntry.index, o.lastEntry.term)
    }
    if (o.appliedIndex !== undefined) {
      r.log.appliedTo(Math.max(o.appliedIndex, r.log.applied))
      r.reduceUncommittedSize(o.appliedBytes)
    }
  }

  /** Current state, for status displays and tests. */
  status(): RaftStatus {
    const r = this.raft
    let progress: Record<NodeId, ProgressStatus> | undefined
    if (r.role === 'leader') {
      progress = {}
      for (const id of r.trk.memberIds()) {
        const pr = r.trk.progress.get(id)
        if (pr === undefined) continue
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          pendingSnapshot: pr.pendingSnapshot,
          inflight: pr.inflights.count(),
        }
      }
    }
    const cs = r.trk.confState()
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      lead: r.lead,
      role: r.role,
      voters: cs.voters,
      learners: cs.learners,
      leadTransferee: r.leadTransferee,
      leaving: r.leaving(),
      progress,
      repairIndex: this.repairIndex,
    }
  }

  /** See RaftStatus.repairIndex (cheap: for a driver checking after every Ready). */
  get repairIndex(): number {
    return this.raft.needsRepair() ? this.raft.repairIndex : 0
  }

  /** Term of the log entry at `index` (stable or not); undefined if compacted or absent. For checkers. */
  logTerm(index: number): number | undefined {
    return this.raft.log.term(index)
  }

  /** Log entries in [lo, hi) (stable or not); undefined if lo is compacted. For checkers and debugging. */
  logEntries(lo: number, hi: number): readonly Entry[] | undefined {
    const log = this.raft.log
    if (lo < log.firstIndex()) return undefined
    const end = Math.min(hi, log.lastIndex() + 1)
    return lo >= end ? [] : log.slice(lo, end, Infinity)
  }

  /** Throws RaftInvariantError if the core's state is inconsistent; the simulator calls it after every step. */
  assertInvariants(): void {
    this.raft.checkInvariants()
    const hard = this.raft.hardState()
    invariant(hard.term >= this.prevHardState.term, 'term went backwards')
    if (hard.term === this.prevHardState.term && this.prevHardState.vote !== null) {
      invariant(hard.vote === this.prevHardState.vote, 'vote changed within a term')
    }
    invariant(hard.commit >= this.prevHardState.commit, 'commit went backwards')
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, role: this.raft.role }
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.role === b.role
}
