/**
 * The host agent's daemon adapter (issue 12): runs the tasks the leader's scheduler assigned
 * to this host, by driving the pure core (runtime/agent/agent.ts) through the loop the simulator
 * runs too (runtime/agent/loop.ts) with this peer's replica, its container runtime, its Raft
 * leader, real timers and the wall clock, and executing what it decides.
 *
 * When it steps: after each runtime change, after each applied change under `tasks/`,
 * `services/` and this host's `task-states/<self>/` (WatchHub watches, as HostSync watches its
 * own records), at the core's next deadline (a restart back-off, a drain) and every second,
 * debounced so a burst of changes is one step. Each step reads the whole view afresh, so a missed event costs at most
 * a tick.
 *
 * What it does with the actions: engine operations (run, start, stop, remove) at most
 * `TASK_AGENT_ENGINE_CONCURRENCY` at a time, reports as `put`/`delete` of this host's
 * task-state keys, proposed as this peer. An action's key stays busy while it runs and until
 * the runtime next reports a change (or a second passes), so the core does not repeat an
 * operation whose effect the runtime has not shown yet. Failures are logged at debug and
 * redone by a later step (a refused run or start goes to the core, which weighs it against the
 * restart policy); nothing here rejects unhandled.
 *
 * Without an engine (`--docker none`), before the runtime has listed its containers, while
 * the engine is unreachable (its view is stale), or while `ready()` says the replica has not
 * caught up, it only deletes the task-state keys of slots no longer assigned here.
 */
import type { ContainerRuntime, TaskEngine } from '../runtime/runtime.ts'
import { readAgentState } from '../runtime/agent/state.ts'
import { TASK_AGENT_TICK_MS } from '../runtime/agent/in-flight.ts'
import { AgentLoop } from '../runtime/agent/loop.ts'
import type { AgentAction } from '../runtime/agent/agent.ts'
import { TASKS_PREFIX, TASK_STATES_PREFIX, encodeObserved } from '../runtime/scheduler/task.ts'
import { SERVICES_PREFIX } from '../storage/statestore/index.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'

export {
  TASK_AGENT_TICK_MS, TASK_AGENT_DEBOUNCE_MS, TASK_AGENT_ENGINE_CONCURRENCY, TASK_AGENT_KV_CONCURRENCY, TASK_AGENT_SETTLE_MS, TASK_AGENT_QUEUE_MAX,
} from '../runtime/agent/in-flight.ts'

export interface TaskAgentInit {
  selfId: string
  /** Null on a peer without a container engine (`--docker none`). */
  engine: TaskEngine | null
  runtime: ContainerRuntime | null
  machine: Pick<StoreMachine, 'store'>
  watches: WatchHub
  kv: Pick<KvService, 'write'>
  /** The Raft leader as this peer knows it, or null. */
  raftLeader: () => string | null
  /** Resolvers for task containers: this peer's DNS on the bridge gateway, or []. */
  dns: () => string[]
  /** How long an instance that left DNS keeps running before it is stopped. */
  drainMs: number
  log: Pick<Logger, 'debug' | 'info'>
  /** Wall-clock milliseconds (default Date.now): observations carry it as `sinceMs`. */
  now?: () => number
  /**
   * Whether the replica is fresh enough to act on (default always). A restarted peer's replica
   * starts where its disk left off: until it has caught up, a task that moved away meanwhile
   * still looks assigned here, and its exited container would be restarted for a moment. The
   * peer can say "applied index reached the commit index the leader first told me" here.
   */
  ready?: () => boolean
}

/** Counters for `shoal status`. */
export interface TaskAgentStats {
  steps: number
  actions: number
  failures: number
  lastError: string | null
}

export class TaskAgentDriver {
  private readonly init: TaskAgentInit
  private readonly loop: AgentLoop
  private readonly failures = { count: 0, lastError: null as string | null }
  private stopped = false
  private started = false
  private tick: ReturnType<typeof setInterval> | null = null
  private unsubscribe: (() => void) | null = null
  private unwatch: Array<() => void> = []

  constructor(init: TaskAgentInit) {
    this.init = init
    this.loop = new AgentLoop({
      selfId: init.selfId,
      // Deadlines on the monotonic clock; reports and Docker's times on the wall clock (agent.ts).
      nowMs: () => performance.now(),
      wallMs: init.now ?? Date.now,
      after: (ms, fn) => {
        setTimeout(fn, ms).unref()
      },
      view: () => {
        const { tasks, services, reported } = readAgentState(init.machine.store, init.selfId)
        return { tasks, services, reported, containers: init.runtime?.containers() ?? [], dns: init.dns(), drainMs: init.drainMs }
      },
      containers: () => init.runtime?.containers() ?? [],
      hasLeader: () => init.raftLeader() !== null,
      engineReady: () => this.engineReady(),
      execute: (a, done) => {
        this.execute(a).then(
          // A runtime that reported the effect while the operation ran (MemoryRuntime does so inside the call) has shown it already.
          done,
          (err: unknown) => {
            this.fail(`${describe(a)} failed: ${err instanceof Error ? err.message : String(err)}`)
            done(false)
          },
        )
      },
      // The core never throws on odd input; if it does anyway, say so and try again on the next tick.
      stepFailed: (err) => this.fail(`task agent step failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`),
    })
  }

  /** Counters for `shoal status`. */
  get stats(): TaskAgentStats {
    return { steps: this.loop.stats.steps, actions: this.loop.stats.actions, failures: this.failures.count, lastError: this.failures.lastError }
  }

  start(): void {
    if (this.started) return
    this.started = true
    const { runtime } = this.init
    this.unsubscribe = runtime?.subscribe((change) => this.loop.onRuntime(change)) ?? null
    for (const prefix of [TASKS_PREFIX, SERVICES_PREFIX, `${TASK_STATES_PREFIX}${this.init.selfId}/`]) this.watch(prefix)
    this.tick = setInterval(() => this.loop.tick(), TASK_AGENT_TICK_MS)
    this.tick.unref()
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    this.loop.stop()
    if (this.tick !== null) clearInterval(this.tick)
    this.unsubscribe?.()
    for (const u of this.unwatch) u()
    this.unwatch = []
  }

  /** Something changed: step soon (one step per burst). */
  schedule(): void {
    this.loop.schedule()
  }

  private watch(prefix: string): void {
    const stop = this.init.watches.add(prefix, this.init.machine.store.revision, {
      deliver: () => {
        this.schedule()
        return !this.stopped
      },
      compacted: () => {
        // The history no longer reaches the cursor: watch again from now; the step reads everything anyway.
        stop()
        this.unwatch = this.unwatch.filter((u) => u !== stop)
        if (!this.stopped) queueMicrotask(() => this.watch(prefix))
        this.schedule()
      },
    })
    this.unwatch.push(stop)
  }

  /**
   * Whether the engine can be driven: there is one, and the runtime's view of it is current
   * (runtime.ts: `degraded: null` only after the first full listing of a connection, so before
   * it an empty view would look like "nothing runs here" and every task would be run again).
   */
  private engineReady(): boolean {
    const { engine, runtime, ready } = this.init
    return engine !== null && runtime !== null && runtime.status().degraded === null && (ready?.() ?? true)
  }

  /** Runs one action; resolves whether its key should wait for the runtime to show the effect. */
  private async execute(a: AgentAction): Promise<boolean> {
    const { engine, kv, log } = this.init
    switch (a.kind) {
      case 'report':
        await kv.write({ type: 'put', key: a.key, value: encodeObserved(a.observed) })
        return false
      case 'unreport':
        await kv.write({ type: 'delete', key: a.key })
        return false
      case 'run':
      case 'start':
        if (engine === null) return false
        try {
          if (a.kind === 'run') {
            log.info(`running task ${a.task} (${a.spec.image})`)
            await engine.runTask(a.spec)
          } else {
            log.info(`starting task ${a.task} (container ${a.containerId.slice(0, 12)})`)
            await engine.startTask(a.containerId)
          }
        } catch (err) {
          // The core weighs a refusal against the restart policy (a name conflict is adopted, not counted).
          const error = err instanceof Error ? err : new Error(String(err))
          this.loop.runFailed(a.task, error)
          this.fail(`${describe(a)} refused: ${error.message}`)
          return false
        }
        return true
      case 'stop':
        if (engine === null) return false
        log.info(`stopping container ${a.containerId.slice(0, 12)}: ${a.reason}`)
        await engine.stopTask(a.containerId, a.graceMs)
        return true
      case 'remove':
        if (engine === null) return false
        await engine.removeTask(a.containerId)
        return true
      default: {
        const never: never = a
        return never
      }
    }
  }

  private fail(message: string): void {
    this.failures.count++
    this.failures.lastError = message
    this.init.log.debug(`${message}; retrying on a later step`)
  }
}

function describe(a: AgentAction): string {
  switch (a.kind) {
    case 'run':
      return `run of task ${a.task}`
    case 'start':
      return `start of task ${a.task}`
    case 'stop':
      return `stop of container ${a.containerId.slice(0, 12)}`
    case 'remove':
      return `removal of container ${a.containerId.slice(0, 12)}`
    case 'report':
      return `report ${a.observed.state} to ${a.key}`
    case 'unreport':
      return `delete of ${a.key}`
    default: {
      const never: never = a
      return never
    }
  }
}
