/**
 * The host agent's driver loop, one for the daemon (node/task-agent.ts) and the simulator
 * (simulations/services.ts): when the core (agent.ts) steps, and how its actions are queued,
 * limited, and kept busy until their effect shows (in-flight.ts). It holds no clock, timer,
 * socket or engine: the caller hands in `nowMs`, `after` and `execute`, so the simulator runs
 * the loop users run, with only time and the engine simulated.
 *
 * A step is debounced (`TASK_AGENT_DEBOUNCE_MS`: a burst of changes is one step) and reads the
 * whole view afresh, so a missed event costs at most a tick. Engine operations run at most
 * `TASK_AGENT_ENGINE_CONCURRENCY` at a time, reports `TASK_AGENT_KV_CONCURRENCY`; while the
 * engine cannot be driven (`engineReady()` false) only reports of slots no longer assigned here
 * are deleted.
 */
import type { Container } from '../../storage/statestore/index.ts'
import type { RuntimeChange } from '../runtime.ts'
import { TaskAgent, type AgentAction, type AgentInput } from './agent.ts'
import { InFlight, TASK_AGENT_DEBOUNCE_MS, TASK_AGENT_ENGINE_CONCURRENCY, TASK_AGENT_KV_CONCURRENCY, TASK_AGENT_QUEUE_MAX, TASK_AGENT_TICK_MS } from './in-flight.ts'

/** What the loop reads and does through its caller. */
export interface AgentLoopEnv {
  readonly selfId: string
  /** The monotonic clock (performance.now() in the daemon): deadlines, in-flight expiry, the wake timer. */
  nowMs(): number
  /** This host's wall clock (Date.now()): what reports carry and engine times are read against (agent.ts). */
  wallMs(): number
  /** Runs `fn` once after `ms` (a timer in the daemon, an event in the simulator). */
  after(ms: number, fn: () => void): void
  /** This host's view: its replica's tasks, services and reports, the runtime's containers, DNS for tasks, the drain. */
  view(): Pick<AgentInput, 'tasks' | 'services' | 'reported' | 'containers' | 'dns' | 'drainMs'>
  /** The runtime's containers now (an operation stays busy until they show its effect). */
  containers(): readonly Container[]
  /** Whether a Raft leader is known (the on-disconnect clock runs while not). */
  hasLeader(): boolean
  /** Whether engine operations may run: an engine, its view current, the replica caught up. */
  engineReady(): boolean
  /** Runs one action; calls `done(settle)` once, later, with whether its key should wait for the runtime to show the effect. */
  execute(action: AgentAction, done: (settle: boolean) => void): void
  /** A step the core refused to take (a bug): the daemon logs it and steps again later; absent, it is thrown. */
  stepFailed?(err: unknown): void
  /** The simulator's broken variants drop actions here; the daemon passes none. */
  filter?(actions: AgentAction[]): AgentAction[]
}

/** Counters for `shoal status`. */
export interface AgentLoopStats {
  steps: number
  actions: number
}

type Lane = 'engine' | 'kv'

/** The host agent's loop around the core; see the file comment. */
export class AgentLoop {
  readonly stats: AgentLoopStats = { steps: 0, actions: 0 }
  private readonly env: AgentLoopEnv
  private readonly agent = new TaskAgent()
  private readonly inFlight = new InFlight()
  private readonly queues: Record<Lane, AgentAction[]> = { engine: [], kv: [] }
  private readonly running: Record<Lane, number> = { engine: 0, kv: 0 }
  private leaderlessSinceMs: number | null = null
  private debounced = false
  private wakeSeq = 0
  private stopped = false

  constructor(env: AgentLoopEnv) {
    this.env = env
  }

  /** Something changed: step soon, one step per burst. */
  schedule(): void {
    if (this.stopped || this.debounced) return
    this.debounced = true
    this.env.after(TASK_AGENT_DEBOUNCE_MS, () => {
      this.debounced = false
      this.runStep()
    })
  }

  /** A runtime change: operations whose own effect now shows are free again. */
  onRuntime(change: RuntimeChange): void {
    if (this.stopped) return
    // Only those: in a burst, another container's event must not free a run whose container is
    // not listed yet, or the core would run the same task again (a name conflict, an engine slot wasted).
    if (change.type !== 'status') this.inFlight.runtimeChanged(this.env.containers())
    this.schedule()
  }

  /** The periodic tick (`TASK_AGENT_TICK_MS`): busy keys past their settle time free up; a step follows. */
  tick(): void {
    if (this.stopped) return
    this.inFlight.expire(this.env.nowMs())
    this.schedule()
  }

  /** A run or start the engine refused: the core weighs it against the restart policy. */
  runFailed(task: string, error: Error): void {
    this.agent.runFailed(task, error, this.env.nowMs())
  }

  /** This life ends: nothing more runs or settles. */
  stop(): void {
    this.stopped = true
    this.queues.engine = []
    this.queues.kv = []
  }

  private runStep(): void {
    if (this.stopped) return
    const env = this.env
    const nowMs = env.nowMs()
    if (env.hasLeader()) this.leaderlessSinceMs = null
    else this.leaderlessSinceMs ??= nowMs
    let actions: AgentAction[]
    try {
      actions = this.agent.step({ ...env.view(), selfId: env.selfId, nowMs, wallMs: env.wallMs(), leaderlessSinceMs: this.leaderlessSinceMs, busy: this.inFlight.busy })
    } catch (err) {
      if (env.stepFailed === undefined) throw err
      env.stepFailed(err)
      return
    }
    this.stats.steps++
    if (env.filter !== undefined) actions = env.filter(actions)
    this.armWake(nowMs)
    const ready = env.engineReady()
    for (const a of actions) {
      if (!ready && a.kind !== 'unreport') continue
      this.enqueue(a)
    }
  }

  /** Steps at the core's next deadline (a restart back-off, a drain) rather than at the next tick. */
  private armWake(nowMs: number): void {
    const seq = ++this.wakeSeq
    const wakeMs = this.agent.nextWakeMs()
    if (wakeMs === null || this.stopped) return
    // Past the deadline by a millisecond, so the step sees it reached; the tick covers a clock step.
    const inMs = Math.min(TASK_AGENT_TICK_MS, Math.max(0, wakeMs - nowMs) + 1)
    this.env.after(inMs, () => {
      if (seq === this.wakeSeq) this.schedule()
    })
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
      this.env.execute(a, (settle) => this.finish(lane, a, settle))
    }
  }

  private finish(lane: Lane, a: AgentAction, settle: boolean): void {
    if (this.stopped) return
    this.running[lane]--
    this.inFlight.finished(a, settle, this.env.containers(), this.env.nowMs())
    this.pump(lane)
    this.schedule()
  }
}
