/**
 * The leader's scheduler loop: on the Raft leader only, reads the replica, runs the pure
 * reconciler (runtime/scheduler/reconcile.ts) and proposes its changes as guarded txns
 * (runtime/scheduler/proposals.ts). It runs after every applied change that can matter
 * (services, tasks, task states, statuses, hosts, drains, containers), at most one round at a
 * time, and on a timer so time-driven decisions (grace periods, monitor windows, delays) are
 * taken without a store change. Followers run nothing: the next leader starts from the
 * replicated state, so a leader change loses no decision, and a late proposal of an old
 * leader fails its revision guard instead of undoing a newer one.
 */
import type { Membership } from '../protocols/gossip/membership.ts'
import { reconcile } from '../runtime/scheduler/reconcile.ts'
import { changeTxns } from '../runtime/scheduler/proposals.ts'
import { readSchedulerState, schedulerHosts } from '../runtime/scheduler/state.ts'
import { CONTAINERS_PREFIX, HOSTS_PREFIX, SERVICES_PREFIX } from '../storage/statestore/index.ts'
import { HOST_AVAILABILITY_PREFIX, SERVICE_STATUS_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX } from '../runtime/scheduler/task.ts'
import type { KvService } from './kv-service.ts'
import type { Logger } from './logger.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import { errorMessage } from './errors.ts'

/** How often the leader reconsiders without a store change (grace periods, monitor windows, delays). */
export const SCHEDULER_TICK_MS = 250

/** Counters for `shoal status`. */
export interface SchedulerStats {
  rounds: number
  proposed: number
  /** Txns refused because the state moved on meanwhile (decided again next round). */
  conflicts: number
  lastError: string | null
}

export interface SchedulerLoopInit {
  selfId: string
  isLeader: () => boolean
  machine: StoreMachine
  watches: WatchHub
  kv: KvService
  membership: Membership
  /** How long a host must stay dead before its tasks go elsewhere. */
  rescheduleGraceMs: number
  log: Logger
}

const WATCHED = [SERVICES_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX, SERVICE_STATUS_PREFIX, HOST_AVAILABILITY_PREFIX, HOSTS_PREFIX, CONTAINERS_PREFIX]

export class SchedulerLoop {
  readonly stats: SchedulerStats = { rounds: 0, proposed: 0, conflicts: 0, lastError: null }
  private readonly init: SchedulerLoopInit
  private timer: ReturnType<typeof setInterval> | null = null
  private unwatch: Array<() => void> = []
  private running = false
  private dirty = false
  private stopped = false
  /** When this peer last became leader: hosts it has not heard of count as dead from then. */
  /** When this peer last became leader, on the monotonic clock (a wall-clock step must not age it). */
  private leaderSinceMono: number | null = null

  constructor(init: SchedulerLoopInit) {
    this.init = init
  }

  start(): void {
    const { watches, machine } = this.init
    for (const prefix of WATCHED) {
      this.unwatch.push(watches.add(prefix, machine.store.revision, {
        deliver: () => {
          this.kick()
          return true
        },
        // The watch fell behind compaction: nothing is lost for a loop that rereads everything.
        compacted: () => this.kick(),
      }))
    }
    this.timer = setInterval(() => this.kick(), SCHEDULER_TICK_MS)
    this.timer.unref()
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    for (const u of this.unwatch) u()
    this.unwatch = []
  }

  /** Asks for a round; rounds never overlap, and a request during one runs another after it. */
  kick(): void {
    if (this.stopped) return
    if (!this.init.isLeader()) {
      this.leaderSinceMono = null
      return
    }
    if (this.running) {
      this.dirty = true
      return
    }
    this.running = true
    void this.round().finally(() => {
      this.running = false
      if (this.dirty && !this.stopped) {
        this.dirty = false
        setImmediate(() => this.kick())
      }
    })
  }

  private async round(): Promise<void> {
    const { machine, kv, membership, log } = this.init
    // The reconciler compares with hosts' task observations, which carry their wall-clock times;
    // what this peer timed itself (its leadership, members' states) is monotonic, handed over as
    // wall-clock times less the monotonic time elapsed, so its durations survive a clock step.
    const nowMs = Date.now()
    this.leaderSinceMono ??= performance.now()
    const leaderSinceMs = nowMs - (performance.now() - this.leaderSinceMono)
    const state = readSchedulerState(machine.store)
    const members = membership.members().map((m) => ({ peerId: m.peerId, state: m.state, stateSinceMs: Date.parse(m.stateSince) }))
    const hosts = schedulerHosts(state, members, leaderSinceMs)
    const changes = reconcile({
      services: state.services, statuses: state.statuses, tasks: state.tasks, hosts,
      containers: state.containers, nowMs, deadGraceMs: this.init.rescheduleGraceMs,
      // Containers of dead hosts are marked lost by the autopilot (peer.ts) on its own grace.
    }).filter((c) => c.kind !== 'mark-lost')
    this.stats.rounds++
    if (changes.length === 0) return
    const txns = changeTxns(changes, state.revisions)
    for (const txn of txns) {
      if (this.stopped || !this.init.isLeader()) return
      try {
        const r = await kv.write(txn, true)
        if (r.response.type === 'txn' && !r.response.succeeded) {
          this.stats.conflicts++
          this.dirty = true
          continue
        }
        this.stats.proposed++
      } catch (err) {
        this.stats.lastError = errorMessage(err)
        log.debug(`scheduler: proposal failed: ${this.stats.lastError}`)
        return
      }
    }
  }
}
