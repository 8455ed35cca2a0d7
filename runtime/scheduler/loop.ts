/**
 * The leader's scheduler loop, one for the daemon (node/scheduler-loop.ts) and the simulator
 * (simulations/services.ts): on the Raft leader only, a round reads the replica, runs the pure
 * reconciler and proposes its changes as guarded txns, one at a time. Rounds never overlap; a
 * request during one runs another right after it. Followers run nothing: the next leader starts
 * from the replicated state, so a leader change loses no decision, and a late proposal of an old
 * leader fails its revision guard instead of undoing a newer one. It holds no clock, timer or
 * socket: the caller hands in the clocks, `after` and `write`, so the simulator runs the loop
 * users run.
 */
import { CONTAINERS_PREFIX, HOSTS_PREFIX, SERVICES_PREFIX, type StateStore, type TxnRequest } from '../../storage/statestore/index.ts'
import { reconcile, type Change, type ReconcileInput } from './reconcile.ts'
import { changeTxns } from './proposals.ts'
import { readSchedulerState, schedulerHosts, type MemberLiveness } from './state.ts'
import { HOST_AVAILABILITY_PREFIX, SERVICE_STATUS_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX, taskId, type Task } from './task.ts'

/** How often the leader reconsiders without a store change (grace periods, monitor windows, delays). */
export const SCHEDULER_TICK_MS = 250

/** The prefixes whose applied changes can matter to a round (the loop is kicked after each). */
export const SCHEDULER_WATCHED: readonly string[] = [SERVICES_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX, SERVICE_STATUS_PREFIX, HOST_AVAILABILITY_PREFIX, HOSTS_PREFIX, CONTAINERS_PREFIX]

/** How a proposed txn ended: applied, refused by its guards (the state moved on), or not applied at all. */
export type ProposalOutcome = 'applied' | 'conflict' | 'failed'

/** What the loop reads and does through its caller. */
export interface SchedulerLoopEnv {
  /** Wall-clock ms: the reconciler compares it with the times hosts put in their task observations. */
  wallMs(): number
  /** Monotonic ms: how long this peer has led is timed on it, so a wall-clock step does not age it. */
  monotonicMs(): number
  isLeader(): boolean
  store(): StateStore
  /** Members as this peer's failure detector sees them, `stateSinceMs` on the wall clock (see Membership.members). */
  members(): readonly MemberLiveness[]
  /** How long a host must stay dead before its tasks go elsewhere. */
  readonly rescheduleGraceMs: number
  /** Proposes `txn` as the leader's own command; `done` hears how it ended. */
  write(txn: TxnRequest, done: (outcome: ProposalOutcome) => void): void
  /** Runs `fn` once after `ms`. */
  after(ms: number, fn: () => void): void
  /** The simulator's broken variants rewrite the reconciler's input here; the daemon passes none. */
  adjust?(input: ReconcileInput): ReconcileInput
  /** A txn of `changes` was applied (the simulator's checkers and timeline). */
  applied?(txn: TxnRequest, changes: readonly Change[], input: ReconcileInput): void
}

/** Counters for `shoal status`. */
export interface SchedulerLoopStats {
  rounds: number
  proposed: number
  /** Txns refused because the state moved on meanwhile (decided again next round). */
  conflicts: number
  /** Changes left out because their record would not read back (a bug: see lastInvalid). */
  invalid: number
  lastInvalid: string | null
}

/** The leader's loop around the reconciler; see the file comment. */
export class SchedulerRounds {
  readonly stats: SchedulerLoopStats = { rounds: 0, proposed: 0, conflicts: 0, invalid: 0, lastInvalid: null }
  private readonly env: SchedulerLoopEnv
  private running = false
  private dirty = false
  private stopped = false
  /** When this peer last became leader (monotonic): hosts it has not heard of count as dead from then. */
  private leaderSinceMono: number | null = null
  /** When this leader first saw each instance (taskId) reported running, on its monotonic clock. */
  private runningSeen = new Map<string, number>()

  constructor(env: SchedulerLoopEnv) {
    this.env = env
  }

  /** Asks for a round (after a store change that matters, and every `SCHEDULER_TICK_MS`). */
  kick(): void {
    if (this.stopped) return
    if (!this.env.isLeader()) {
      this.leaderSinceMono = null
      this.runningSeen.clear()
      return
    }
    if (this.running) {
      this.dirty = true
      return
    }
    this.running = true
    this.round(() => {
      this.running = false
      if (this.dirty && !this.stopped) {
        this.dirty = false
        this.env.after(0, () => this.kick())
      }
    })
  }

  /**
   * Since when each running instance has run, timed by this leader: wall time now less the
   * monotonic time since it first saw the report. A monitor window then holds whatever the
   * hosts' wall clocks say or do (they differ, and step); a new leader times every instance
   * afresh, so it waits a whole window at most once more.
   */
  private timeRunning(tasks: readonly Task[], wallNow: number, monoNow: number): Map<string, number> {
    const seen = new Map<string, number>()
    const out = new Map<string, number>()
    for (const t of tasks) {
      if (t.observed === null || t.observed.generation !== t.generation || t.observed.state !== 'running') continue
      const id = taskId(t)
      const since = this.runningSeen.get(id) ?? monoNow
      seen.set(id, since)
      out.set(id, Math.round(wallNow - (monoNow - since)))
    }
    this.runningSeen = seen
    return out
  }

  /** This life ends: no more rounds or proposals. */
  stop(): void {
    this.stopped = true
  }

  private round(done: () => void): void {
    const env = this.env
    const nowMs = env.wallMs()
    this.leaderSinceMono ??= env.monotonicMs()
    // What this peer timed itself is monotonic, handed to the reconciler as wall-clock time less the
    // monotonic time elapsed, so its durations survive a clock step.
    const leaderSinceMs = Math.round(nowMs - (env.monotonicMs() - this.leaderSinceMono))
    const state = readSchedulerState(env.store())
    const plain: ReconcileInput = {
      services: state.services, statuses: state.statuses, tasks: state.tasks,
      hosts: schedulerHosts(state, env.members(), leaderSinceMs),
      containers: state.containers, nowMs, deadGraceMs: env.rescheduleGraceMs,
      runningSinceMs: this.timeRunning(state.tasks, nowMs, env.monotonicMs()),
    }
    const input = env.adjust?.(plain) ?? plain
    // Containers of dead hosts are marked lost by the autopilot's lost-marking, on its own grace.
    const changes = reconcile(input).filter((c) => c.kind !== 'mark-lost')
    this.stats.rounds++
    if (changes.length === 0) return done()
    const txns = changeTxns(changes, state.revisions, (_change, error) => {
      this.stats.invalid++
      this.stats.lastInvalid = error
    })
    const next = (i: number): void => {
      const txn = txns[i]
      if (txn === undefined || this.stopped || !env.isLeader()) return done()
      env.write(txn, (outcome) => {
        if (this.stopped || outcome === 'failed') return done()
        if (outcome === 'conflict') {
          this.stats.conflicts++
          this.dirty = true
          return next(i + 1)
        }
        this.stats.proposed++
        env.applied?.(txn, changes, plain)
        next(i + 1)
      })
    }
    next(0)
  }
}
