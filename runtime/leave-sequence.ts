/**
 * A graceful leave, step by step (Peer.stop in the daemon; the simulator's nodes run the same
 * object). Pure: instants come in as monotonic milliseconds, what the peer must do goes out as
 * actions.
 *
 *  1. This host's records go (`containers/<self>/`, `hosts/<self>`), if a leader answers within
 *     LEAVE_REMOVE_TIMEOUT_MS; otherwise the leader marks them lost after its grace period.
 *  2. A voter that leads hands leadership to another voter first (up to `handOffTimeoutMs`,
 *     two election timeouts), so the cluster does not wait out an election.
 *  3. The leave is announced to the membership; the leader's autopilot removes a leaving voter
 *     at once.
 *  4. A voter waits (up to LEAVE_VOTERS_TIMEOUT_MS) to be removed from the voters before it
 *     stops: the removal commits under the old configuration, so with two voters it needs both,
 *     and a voter that simply went away would leave the other without a quorum for good (the
 *     simulator found it; Consul's leave waits the same way).
 */
import { LEAVE_REMOVE_TIMEOUT_MS, LEAVE_VOTERS_TIMEOUT_MS } from './leader-duties.ts'

/** How often the peer looks at its Raft state while it leaves. */
export const LEAVE_POLL_MS = 50

/** What the peer's Raft state is now. */
export interface LeaveView {
  /** This peer leads. */
  readonly isLeader: boolean
  /** This peer is a voter, and not the only one (its removal can commit). */
  readonly removable: boolean
}

/** What the peer must do. */
export type LeaveAction =
  | { readonly kind: 'remove-records' }
  | { readonly kind: 'transfer-leadership' }
  | { readonly kind: 'announce-leave' }
  /** Stop now; `wasVoter` when it had to be removed from the voters, `stillVoter` when no leader did in time. */
  | { readonly kind: 'stop'; readonly wasVoter: boolean; readonly stillVoter: boolean; readonly recordsRemoved: boolean }

type Phase =
  | { readonly name: 'start' }
  | { readonly name: 'records'; readonly untilMs: number }
  | { readonly name: 'hand-off'; readonly voter: boolean; readonly untilMs: number }
  | { readonly name: 'removal'; readonly untilMs: number }
  | { readonly name: 'done' }

/** One leave. */
export class LeaveSequence {
  private phase: Phase = { name: 'start' }
  private recordsRemoved = false
  private readonly hasRecords: boolean
  private readonly handOffTimeoutMs: number

  /** `hasRecords`: the peer stores records of its host (it runs HostSync). */
  constructor(options: { hasRecords: boolean; handOffTimeoutMs: number }) {
    this.hasRecords = options.hasRecords
    this.handOffTimeoutMs = options.handOffTimeoutMs
  }

  /** Whether the leave is over (the peer has been told to stop). */
  get done(): boolean {
    return this.phase.name === 'done'
  }

  /** The records' removal finished: `ok` when it was applied. */
  recordsDone(ok: boolean): void {
    this.recordsRemoved = ok
    if (this.phase.name === 'records') this.phase = { name: 'records', untilMs: Number.NEGATIVE_INFINITY }
  }

  /** What to do at `nowMs`: call at start, every LEAVE_POLL_MS, and after recordsDone. */
  step(nowMs: number, view: LeaveView): LeaveAction[] {
    const out: LeaveAction[] = []
    for (;;) {
      const p = this.phase
      switch (p.name) {
        case 'start':
          if (this.hasRecords) {
            out.push({ kind: 'remove-records' })
            this.phase = { name: 'records', untilMs: nowMs + LEAVE_REMOVE_TIMEOUT_MS }
            continue
          }
          this.phase = { name: 'records', untilMs: Number.NEGATIVE_INFINITY }
          continue
        case 'records': {
          if (nowMs < p.untilMs) return out
          // Whether this peer must wait to be removed is decided once, as it starts to go.
          const voter = view.removable
          if (voter && view.isLeader) out.push({ kind: 'transfer-leadership' })
          this.phase = { name: 'hand-off', voter, untilMs: nowMs + this.handOffTimeoutMs }
          continue
        }
        case 'hand-off':
          if (p.voter && view.isLeader && nowMs < p.untilMs) return out
          out.push({ kind: 'announce-leave' })
          if (!p.voter) return this.stop(out, false, false)
          this.phase = { name: 'removal', untilMs: nowMs + LEAVE_VOTERS_TIMEOUT_MS }
          continue
        case 'removal':
          if (view.removable && nowMs < p.untilMs) return out
          return this.stop(out, true, view.removable)
        case 'done':
          return out
      }
    }
  }

  private stop(out: LeaveAction[], wasVoter: boolean, stillVoter: boolean): LeaveAction[] {
    this.phase = { name: 'done' }
    out.push({ kind: 'stop', wasVoter, stillVoter, recordsRemoved: this.recordsRemoved })
    return out
  }
}
