/**
 * The leader's scheduler loop, daemon side: runs the loop the simulator runs too
 * (runtime/scheduler/loop.ts) with this peer's replica, its failure detector, real timers and
 * clocks, and its KV service for proposals. A round follows every applied change that can
 * matter (services, tasks, task states, statuses, hosts, drains, containers) and a timer, so
 * time-driven decisions (grace periods, monitor windows, delays) are taken without a store
 * change.
 */
import type { Membership } from '../protocols/gossip/membership.ts'
import { SCHEDULER_TICK_MS, SCHEDULER_WATCHED, SchedulerRounds } from '../runtime/scheduler/loop.ts'
import type { KvService } from './kv-service.ts'
import type { Logger } from './logger.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import { errorMessage } from './errors.ts'

export { SCHEDULER_TICK_MS } from '../runtime/scheduler/loop.ts'

/** Counters for `shoal status`. */
export interface SchedulerStats {
  rounds: number
  proposed: number
  /** Txns refused because the state moved on meanwhile (decided again next round). */
  conflicts: number
  /** Changes left out because their record would not read back (a bug), and the last such. */
  invalid: number
  lastInvalid: string | null
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

export class SchedulerLoop {
  private readonly init: SchedulerLoopInit
  private readonly rounds: SchedulerRounds
  private lastError: string | null = null
  private timer: ReturnType<typeof setInterval> | null = null
  private unwatch: Array<() => void> = []

  constructor(init: SchedulerLoopInit) {
    this.init = init
    this.rounds = new SchedulerRounds({
      wallMs: () => Date.now(),
      monotonicMs: () => performance.now(),
      isLeader: init.isLeader,
      store: () => init.machine.store,
      // Membership's stateSince is wall time less the monotonic time elapsed: durations survive a clock step.
      members: () => init.membership.members().map((m) => ({ peerId: m.peerId, state: m.state, stateSinceMs: Date.parse(m.stateSince) })),
      rescheduleGraceMs: init.rescheduleGraceMs,
      write: (txn, done) => {
        init.kv.write(txn, true).then(
          (r) => done(r.response.type === 'txn' && !r.response.succeeded ? 'conflict' : 'applied'),
          (err: unknown) => {
            this.lastError = errorMessage(err)
            init.log.debug(`scheduler: proposal failed: ${this.lastError}`)
            done('failed')
          },
        )
      },
      after: (ms, fn) => {
        setTimeout(fn, ms).unref()
      },
    })
  }

  /** Counters for `shoal status`. */
  get stats(): SchedulerStats {
    return { ...this.rounds.stats, lastError: this.lastError }
  }

  start(): void {
    const { watches, machine } = this.init
    for (const prefix of SCHEDULER_WATCHED) {
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
    this.rounds.stop()
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    for (const u of this.unwatch) u()
    this.unwatch = []
  }

  /** Asks for a round; rounds never overlap, and a request during one runs another after it. */
  kick(): void {
    this.rounds.kick()
  }
}
