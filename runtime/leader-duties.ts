/**
 * The Raft leader's periodic housekeeping, one for the daemon (node/peer.ts) and the simulator
 * (simulations/node.ts): autopilot's next membership change (protocols/raft/autopilot.ts) and
 * the lost-marking of containers whose hosts are gone (container-reconcile.ts
 * lostContainerTxns), one batch of marks at a time. It holds no clock, timer or socket: the
 * caller hands in the clocks, the Raft status, the members and the writes, so the simulator runs
 * what users run.
 */
import type { KeyValue, Request } from '../storage/statestore/index.ts'
import type { RaftStatus } from '../protocols/raft/core.ts'
import type { ConfChange } from '../protocols/raft/conf-change.ts'
import { autopilotDecide, type AutopilotConfig, type Liveness } from '../protocols/raft/autopilot.ts'
import { lostContainerTxns, type HostLiveness } from './container-reconcile.ts'

/** How often the leader reconsiders the Raft membership and the containers of dead hosts. */
export const AUTOPILOT_INTERVAL_MS = 1000
/** How long a graceful stop waits for its host's records to be removed (the leader marks them lost later otherwise). */
export const LEAVE_REMOVE_TIMEOUT_MS = 3000
/** How long a voter's graceful stop waits for the leader to take it out of the voters. */
export const LEAVE_VOTERS_TIMEOUT_MS = 5000

/** A member as this peer's failure detector sees it; `stateSinceMs` on the clock of `nowMs()`. */
export interface DutyMember {
  readonly peerId: string
  readonly state: Liveness
  readonly stateSinceMs: number
}

/** What the duties read and do through their caller. */
export interface LeaderDutiesEnv {
  readonly selfId: string
  /** The clock members' `stateSinceMs` are on. */
  nowMs(): number
  /** How long this process (this life of the node) has run, on a monotonic clock. */
  upForMs(): number
  /** This peer's Raft status, or null while Raft does not run. */
  raftStatus(): RaftStatus | null
  members(): readonly DutyMember[]
  /** Every host's container records (`containers/`), from this peer's replica. */
  containers(): readonly KeyValue[]
  readonly autopilot: AutopilotConfig
  /** Proposes a membership change (its outcome is the caller's to log). */
  propose(change: ConfChange): void
  /** Proposes `txn` as the leader's own command; `done(ok)` once it is settled (false: not applied, e.g. leadership lost). */
  write(txn: Request, done: (ok: boolean) => void): void
  /** How many containers a batch is about to mark lost (the log, the simulator's trace). */
  marking?(count: number): void
}

/** The leader's housekeeping; call `run()` on a timer and when a member leaves. */
export class LeaderDuties {
  private readonly env: LeaderDutiesEnv
  private marking = false
  private stopped = false

  constructor(env: LeaderDutiesEnv) {
    this.env = env
  }

  /** On the leader: marks what is due lost, then proposes autopilot's next change, if any. */
  run(): void {
    if (this.stopped) return
    const st = this.env.raftStatus()
    if (st === null || st.role !== 'leader' || st.progress === undefined) return
    this.markLost()
    const match: Record<string, number> = {}
    for (const [id, p] of Object.entries(st.progress)) match[id] = p.match
    const change = autopilotDecide({
      selfId: this.env.selfId, nowMs: this.env.nowMs(), voters: st.voters, learners: st.learners, lastIndex: st.lastIndex, match,
      members: this.env.members(),
    }, this.env.autopilot)
    if (change !== null) this.env.propose(change)
  }

  /** This life ends: nothing more is proposed. */
  stop(): void {
    this.stopped = true
  }

  /**
   * Containers of hosts dead (or gone) past the grace become `lost`. Only once this peer has
   * itself run for a grace period: a freshly started leader has not yet heard from every host,
   * and must not take the quiet ones for gone.
   */
  private markLost(): void {
    const env = this.env
    const graceMs = env.autopilot.deadGraceMs
    if (this.marking || env.upForMs() < graceMs) return
    const hosts = new Map<string, HostLiveness>(env.members().map((m) => [m.peerId, { state: m.state, sinceMs: m.stateSinceMs }]))
    const txns = lostContainerTxns(env.nowMs(), graceMs, hosts, env.containers())
    if (txns.length === 0) return
    this.marking = true
    env.marking?.(txns.length)
    const next = (i: number): void => {
      const txn = txns[i]
      if (txn === undefined || this.stopped) {
        this.marking = false
        return
      }
      // A batch whose write failed (leadership lost, say) stops here; the next run decides afresh.
      env.write(txn, (ok) => (ok ? next(i + 1) : next(txns.length)))
    }
    next(0)
  }
}
