/**
 * The host agent's daemon adapter (issue 12): runs the tasks the leader's scheduler assigned
 * to this host, by driving the pure core (runtime/agent/agent.ts) with this peer's replica,
 * its container runtime, its Raft leader and the wall clock, and executing what it decides.
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
import type { ContainerRuntime, RuntimeChange, TaskEngine } from '../runtime/runtime.ts'
import { readAgentState } from '../runtime/agent/state.ts'
import {
  InFlight, TASK_AGENT_TICK_MS, TASK_AGENT_DEBOUNCE_MS, TASK_AGENT_ENGINE_CONCURRENCY, TASK_AGENT_KV_CONCURRENCY, TASK_AGENT_QUEUE_MAX,
} from '../runtime/agent/in-flight.ts'
import { TaskAgent, type AgentAction, type AgentInput } from '../runtime/agent/agent.ts'
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

type Lane = 'engine' | 'kv'

export class TaskAgentDriver {
  readonly stats: TaskAgentStats = { steps: 0, actions: 0, failures: 0, lastError: null }
  private readonly init: TaskAgentInit
  private readonly agent = new TaskAgent()
  private readonly now: () => number
  private readonly inFlight = new InFlight()
  private readonly queues: Record<Lane, AgentAction[]> = { engine: [], kv: [] }
  private readonly running: Record<Lane, number> = { engine: 0, kv: 0 }
  private leaderlessSinceMs: number | null = null
  private stopped = false
  private started = false
  private debounce: ReturnType<typeof setTimeout> | null = null
  /** Steps at the core's next deadline (a restart back-off, a drain) rather than at the next tick. */
  private wakeTimer: ReturnType<typeof setTimeout> | null = null
  private tick: ReturnType<typeof setInterval> | null = null
  private unsubscribe: (() => void) | null = null
  private unwatch: Array<() => void> = []

  constructor(init: TaskAgentInit) {
    this.init = init
    this.now = init.now ?? Date.now
  }

  start(): void {
    if (this.started) return
    this.started = true
    const { runtime } = this.init
    this.unsubscribe = runtime?.subscribe((change) => this.onRuntime(change)) ?? null
    for (const prefix of [TASKS_PREFIX, SERVICES_PREFIX, `${TASK_STATES_PREFIX}${this.init.selfId}/`]) this.watch(prefix)
    this.tick = setInterval(() => this.onTick(), TASK_AGENT_TICK_MS)
    this.tick.unref()
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    if (this.debounce !== null) clearTimeout(this.debounce)
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer)
    if (this.tick !== null) clearInterval(this.tick)
    this.unsubscribe?.()
    for (const u of this.unwatch) u()
    this.unwatch = []
    this.queues.engine = []
    this.queues.kv = []
  }

  /** Something changed: step soon (one step per burst). */
  schedule(): void {
    if (this.stopped || this.debounce !== null) return
    this.debounce = setTimeout(() => {
      this.debounce = null
      this.runStep()
    }, TASK_AGENT_DEBOUNCE_MS)
    this.debounce.unref()
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

  private onRuntime(change: RuntimeChange): void {
    if (change.type === 'status') {
      this.schedule()
      return
    }
    // Operations whose effect the runtime now shows are free again. Only those: in a burst,
    // another container's event must not free a run whose container is not listed yet, or the
    // core would run the same task again (a name conflict, an engine slot wasted).
    this.inFlight.runtimeChanged(this.init.runtime?.containers() ?? [])
    this.schedule()
  }

  private onTick(): void {
    const nowMs = this.now()
    this.inFlight.expire(nowMs)
    this.schedule()
  }

  /** Reads this host's whole view from the replica and the runtime. */
  private view(nowMs: number): AgentInput {
    const { selfId, machine, runtime } = this.init
    const store = machine.store
    const { tasks, services, reported } = readAgentState(store, selfId)
    const leader = this.init.raftLeader()
    if (leader !== null) this.leaderlessSinceMs = null
    else this.leaderlessSinceMs ??= nowMs
    return {
      selfId, nowMs, tasks, services,
      containers: runtime?.containers() ?? [],
      reported, dns: this.init.dns(),
      leaderlessSinceMs: this.leaderlessSinceMs,
      drainMs: this.init.drainMs,
      busy: this.inFlight.busy,
    }
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

  private runStep(): void {
    if (this.stopped) return
    let actions: AgentAction[]
    try {
      const nowMs = this.now()
      actions = this.agent.step(this.view(nowMs))
    } catch (err) {
      // The core never throws on odd input; if it does anyway, say so and try again on the next tick.
      this.fail(`task agent step failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
      return
    }
    this.stats.steps++
    this.armWake()
    const ready = this.engineReady()
    for (const a of actions) {
      if (!ready && a.kind !== 'unreport') continue
      this.enqueue(a)
    }
  }

  private armWake(): void {
    if (this.wakeTimer !== null) clearTimeout(this.wakeTimer)
    this.wakeTimer = null
    const wakeMs = this.agent.nextWakeMs()
    if (wakeMs === null || this.stopped) return
    // Past the deadline by a millisecond, so the step sees it reached; the tick covers a clock step.
    const inMs = Math.min(TASK_AGENT_TICK_MS, Math.max(0, wakeMs - this.now()) + 1)
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null
      this.schedule()
    }, inMs)
    this.wakeTimer.unref()
  }

  private enqueue(a: AgentAction): void {
    const lane: Lane = a.kind === 'report' || a.kind === 'unreport' ? 'kv' : 'engine'
    if (this.queues[lane].length >= TASK_AGENT_QUEUE_MAX) return
    this.inFlight.begin(a)
    this.queues[lane].push(a)
    this.pump(lane)
  }

  private pump(lane: Lane): void {
    const limit = lane === 'engine' ? TASK_AGENT_ENGINE_CONCURRENCY : TASK_AGENT_KV_CONCURRENCY
    while (!this.stopped && this.running[lane] < limit) {
      const a = this.queues[lane].shift()
      if (a === undefined) return
      this.running[lane]++
      this.stats.actions++
      this.execute(a).then(
        // A runtime that reported the effect while the operation ran (MemoryRuntime does so inside the call) has shown it already.
        (settle) => this.finish(lane, a, settle),
        (err: unknown) => {
          this.fail(`${describe(a)} failed: ${err instanceof Error ? err.message : String(err)}`)
          this.finish(lane, a, false)
        },
      )
    }
  }

  private finish(lane: Lane, a: AgentAction, settle: boolean): void {
    this.running[lane]--
    this.inFlight.finished(a, settle && !this.stopped, this.init.runtime?.containers() ?? [], this.now())
    this.pump(lane)
    this.schedule()
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
          this.agent.runFailed(a.task, error, this.now())
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
    this.stats.failures++
    this.stats.lastError = message
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
