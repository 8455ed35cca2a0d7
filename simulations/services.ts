// One peer's side of services in the simulator, for one life of the node:
//
// - the leader's scheduler loop: the daemon's own (runtime/scheduler/loop.ts,
//   which node/scheduler-loop.ts runs too), kicked after applied changes that
//   matter and every SCHEDULER_TICK_MS, its proposals this leader's writes;
// - the host agent: the daemon's own loop (runtime/agent/loop.ts, which
//   node/task-agent.ts runs too) stepped after runtime changes and applied
//   changes under tasks/, services/ and this host's task-states/, and every
//   second; here its timers are simulated events, its engine the host's
//   SimEngine and its reports this peer's writes;
// - the host record hosts/<self> (HostSync writes it in the daemon).
//
// Broken variants (test-only) wrap the cores' inputs and outputs here, so the
// cores stay as shipped.

import { readAgentState } from '../runtime/agent/state.ts'
import { TASK_AGENT_TICK_MS } from '../runtime/agent/in-flight.ts'
import { AgentLoop } from '../runtime/agent/loop.ts'
import type { AgentAction } from '../runtime/agent/agent.ts'
import type { Member } from '../protocols/gossip/failure-detector.ts'
import type { Change, ReconcileInput } from '../runtime/scheduler/reconcile.ts'
import type { SchedHost } from '../runtime/scheduler/feasible.ts'
import { SCHEDULER_TICK_MS, SCHEDULER_WATCHED, SchedulerRounds } from '../runtime/scheduler/loop.ts'
import type { ServiceRecord } from '../runtime/scheduler/spec.ts'
import { SERVICE_STATUS_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX, encodeObserved, type Task } from '../runtime/scheduler/task.ts'
import type { RuntimeChange } from '../runtime/runtime.ts'
import { CONTAINERS_PREFIX, SERVICES_PREFIX, type ApplyResult, type Request, type StateStore, type TxnRequest } from '../storage/statestore/index.ts'
import type { SimEngine } from './engine.ts'

export { SCHEDULER_TICK_MS } from '../runtime/scheduler/loop.ts'
export {
  TASK_AGENT_TICK_MS, TASK_AGENT_DEBOUNCE_MS, TASK_AGENT_ENGINE_CONCURRENCY, TASK_AGENT_KV_CONCURRENCY, TASK_AGENT_SETTLE_MS, TASK_AGENT_QUEUE_MAX,
} from '../runtime/agent/in-flight.ts'

/** How services run on every node of a scenario that has them. */
export interface ServiceSettings {
  /** `--reschedule-grace`: how long a host must stay dead before its tasks go elsewhere. */
  readonly rescheduleGraceMs: number
  /** How long an instance that left DNS keeps running before it is stopped. */
  readonly drainMs: number
  /** Host labels by node id (constraints match them); nodes not listed get none. */
  readonly labels: (nodeId: string) => Readonly<Record<string, string>>
}

/** Broken variants of the services side (test-only). */
export interface ServiceFaults {
  /** The scheduler's hosts all look alive: feasibility places on dead hosts, and nothing is rescheduled. */
  readonly schedulerIgnoresLiveness: boolean
  /** The agent never stops a container that is no longer its task's (obsolete or duplicate). */
  readonly agentNoStopObsolete: boolean
  /** The rollout does not wait for health: every task of a batch counts as running and stable. */
  readonly rolloutIgnoresHealth: boolean
  /** Monitor windows are timed on the hosts' report times (their wall clocks), not by the leader. */
  readonly monitorOnHostClock: boolean
  /** The agent times its deadlines on the wall clock, as it did before it had a monotonic one. */
  readonly agentWallDeadlines: boolean
}

export const NO_SERVICE_FAULTS: ServiceFaults = { schedulerIgnoresLiveness: false, agentNoStopObsolete: false, rolloutIgnoresHealth: false, monitorOnHostClock: false, agentWallDeadlines: false }

/** A committed scheduling decision: a task (re)assigned to `host`, as decided at `decidedUs`. */
export interface Assignment {
  readonly leader: string
  readonly decidedUs: number
  readonly kind: Change['kind']
  readonly task: Task
  readonly spec: ServiceRecord | undefined
  /** The hosts as the leader's failure detector and store saw them when it decided (before any broken variant). */
  readonly hosts: readonly SchedHost[]
  readonly nowMs: number
  readonly graceMs: number
}

/** What the checkers hear from the services side. */
export interface ServiceObserver {
  /** A scheduler txn with task assignments committed. */
  assigned(a: Assignment): void
}

/** What the services side needs from its node (one life of it). */
export interface ServiceDriver {
  readonly selfId: string
  store(): StateStore
  /** The monotonic clock (ms): tick spacing and leadership time. */
  nowMs(): number
  /** The wall clock (ms, whole): what the daemon reads from Date.now; it may step. */
  wallMs(): number
  isLeader(): boolean
  /** Whether this peer knows a Raft leader (the agent's leaderlessSinceMs). */
  hasLeader(): boolean
  /** Members with stateSinceMs on the wall clock (Membership.members()). */
  members(): Member[]
  /** Proposes `request` as this peer's command (`asLeader`: the leader's own); `onDone` hears the applied result, or null. */
  write(request: Request, asLeader: boolean, onDone: (result: ApplyResult | null) => void): void
  /** Runs `fn` as an input of this life after `ms`. */
  after(ms: number, fn: () => void): void
  readonly engine: SimEngine
  readonly settings: ServiceSettings
  readonly faults: ServiceFaults
  observer(): ServiceObserver | null
  /** Simulated µs now (for the checkers' timeline). */
  nowUs(): number
  note(text: string): void
}

/** Which watches an applied request fires: bit 1 the agent's, bit 2 the scheduler's. */
export const AGENT_WATCH = 1
export const SCHEDULER_WATCH = 2


/** The services side of one life of a node. */
export class ServiceSide {
  private readonly d: ServiceDriver
  private readonly agentPrefixes: readonly string[]
  private stopped = false
  // Scheduler loop: the daemon's.
  private readonly scheduler: SchedulerRounds
  /** When the round now proposing decided (simulated µs), for the checkers. */
  private decidedUs = 0
  private lastSchedTickMs: number
  // Host agent: the daemon's loop.
  private readonly agent: AgentLoop
  private lastAgentTickMs: number

  constructor(driver: ServiceDriver) {
    this.d = driver
    this.agentPrefixes = [TASKS_PREFIX, SERVICES_PREFIX, `${TASK_STATES_PREFIX}${driver.selfId}/`]
    const now = driver.nowMs()
    this.lastSchedTickMs = now
    this.lastAgentTickMs = now
    const d = driver
    const faults = d.faults
    this.scheduler = new SchedulerRounds({
      wallMs: () => d.wallMs(),
      monotonicMs: () => d.nowMs(),
      isLeader: () => d.isLeader(),
      store: () => d.store(),
      members: () => d.members(),
      rescheduleGraceMs: d.settings.rescheduleGraceMs,
      write: (txn, done) => d.write(txn, true, (result) => {
        if (result === null || !result.ok) done('failed')
        else done(result.response.type === 'txn' && !result.response.succeeded ? 'conflict' : 'applied')
      }),
      after: (ms, fn) => d.after(ms, fn),
      // Broken variants wrap the reconciler's input; the hosts the checkers hear of stay as the leader saw them.
      adjust: (input) => {
        this.decidedUs = d.nowUs()
        return {
          ...input,
          hosts: faults.schedulerIgnoresLiveness ? input.hosts.map((h) => ({ ...h, liveness: 'alive' as const })) : input.hosts,
          tasks: faults.rolloutIgnoresHealth ? input.tasks.map(assumeHealthy) : input.tasks,
          ...(faults.monitorOnHostClock ? { runningSinceMs: undefined } : {}),
        }
      },
      applied: (txn, changes, input) => this.committed(txn, changes, input),
    })
    this.agent = new AgentLoop({
      selfId: d.selfId,
      nowMs: () => (faults.agentWallDeadlines ? d.wallMs() : d.nowMs()),
      wallMs: () => d.wallMs(),
      after: (ms, fn) => d.after(ms, fn),
      view: () => {
        const { tasks, services, reported } = readAgentState(d.store(), d.selfId)
        return { tasks, services, reported, containers: d.engine.runtime.containers(), dns: [], drainMs: d.settings.drainMs }
      },
      containers: () => d.engine.runtime.containers(),
      hasLeader: () => d.hasLeader(),
      engineReady: () => d.engine.runtime.status().degraded === null,
      execute: (a, done) => this.execute(a, done),
      // No stepFailed: a core that throws is a bug, and surfaces as a core-assertion violation.
      ...(d.faults.agentNoStopObsolete ? { filter: (actions: AgentAction[]) => actions.filter((a) => !(a.kind === 'stop' && /no longer assigned|duplicate container/.test(a.reason))) } : {}),
    })
    this.agent.schedule()
  }

  /** Which watches a write under `key` fires (see AGENT_WATCH, SCHEDULER_WATCH). */
  watchesOf(keys: readonly string[]): number {
    let bits = 0
    for (const key of keys) {
      if (this.agentPrefixes.some((p) => key.startsWith(p) || p.startsWith(key))) bits |= AGENT_WATCH
      if (SCHEDULER_WATCHED.some((p) => key.startsWith(p) || p.startsWith(key))) bits |= SCHEDULER_WATCH
    }
    return bits
  }

  /** Applied changes fired these watches (delivered after the apply, as WatchHub does). */
  storeChanged(bits: number): void {
    if ((bits & AGENT_WATCH) !== 0) this.agent.schedule()
    if ((bits & SCHEDULER_WATCH) !== 0) this.kick()
  }

  /** Every node tick: the scheduler's and the agent's timers. */
  tick(nowMs: number): void {
    if (this.stopped) return
    if (nowMs - this.lastSchedTickMs >= SCHEDULER_TICK_MS) {
      this.lastSchedTickMs = nowMs
      this.kick()
    }
    if (nowMs - this.lastAgentTickMs >= TASK_AGENT_TICK_MS) {
      this.lastAgentTickMs = nowMs
      this.onAgentTick()
    }
  }

  /** This life ends. */
  stop(): void {
    this.stopped = true
    this.scheduler.stop()
    this.agent.stop()
  }

  // ------------------------------------------------------------ scheduler loop

  /** SchedulerLoop.kick. */
  kick(): void {
    if (this.stopped) return
    this.scheduler.kick()
  }

  /** Tells the checker about every assignment in a committed scheduler txn. */
  private committed(txn: TxnRequest, changes: readonly Change[], input: ReconcileInput): void {
    const specs = new Map(input.services.map((sp) => [sp.name, sp]))
    const at = { decidedUs: this.decidedUs, nowMs: input.nowMs, hosts: input.hosts, specs, graceMs: input.deadGraceMs }
    const observer = this.d.observer()
    const keys = new Set(txn.success.map((op) => (op.type === 'deletePrefix' ? op.prefix : op.key)))
    for (const c of changes) {
      if (!keys.has(changeKey(c))) continue
      this.d.note(`${this.d.selfId} (scheduler) ${describeChange(c)}`)
      if (c.kind !== 'place' && c.kind !== 'migrate' && c.kind !== 'update') continue
      observer?.assigned({ leader: this.d.selfId, decidedUs: at.decidedUs, kind: c.kind, task: c.task, spec: at.specs.get(c.task.service), hosts: at.hosts, nowMs: at.nowMs, graceMs: at.graceMs })
    }
  }

  // ------------------------------------------------------------ host agent

  /** A runtime change (TaskAgentDriver hands them to the loop the same way). */
  onRuntime(change: RuntimeChange): void {
    if (this.stopped) return
    this.agent.onRuntime(change)
  }

  private onAgentTick(): void {
    this.agent.tick()
  }

  /** Runs one action; `done(settle)` as an input of this life (the engine finishes it even if the peer is gone). */
  private execute(a: AgentAction, done: (settle: boolean) => void): void {
    const d = this.d
    const back = (settle: boolean): void => d.after(0, () => done(settle))
    switch (a.kind) {
      case 'report':
        d.write({ type: 'put', key: a.key, value: encodeObserved(a.observed) }, false, () => done(false))
        return
      case 'unreport':
        d.write({ type: 'delete', key: a.key }, false, () => done(false))
        return
      case 'run':
      case 'start': {
        const refused = (err: Error | null): void => {
          d.after(0, () => {
            if (err !== null) {
              this.agent.runFailed(a.task, err)
              done(false)
            } else done(true)
          })
        }
        if (a.kind === 'run') {
          d.note(`${d.selfId}: run task ${a.task} (${a.spec.image})`)
          d.engine.runTask(a.spec, refused)
        } else {
          d.note(`${d.selfId}: start task ${a.task}`)
          d.engine.startTask(a.containerId, refused)
        }
        return
      }
      case 'stop':
        d.note(`${d.selfId}: stop container ${a.containerId.slice(0, 12)}: ${a.reason}`)
        d.engine.stopTask(a.containerId, a.graceMs, (err) => back(err === null))
        return
      case 'remove':
        d.engine.removeTask(a.containerId, (err) => back(err === null))
        return
      default: {
        const never: never = a
        return never
      }
    }
  }

}

/** The key a change writes. */
function changeKey(c: Change): string {
  switch (c.kind) {
    case 'mark-lost':
      return `${CONTAINERS_PREFIX}${c.container.host}/${c.container.id}`
    case 'set-status':
      return `${SERVICE_STATUS_PREFIX}${c.status.service}`
    case 'rollback':
      return `${SERVICES_PREFIX}${c.service}`
    default:
      return c.key
  }
}

/** One line of the timeline for a committed change. */
function describeChange(c: Change): string {
  switch (c.kind) {
    case 'place':
    case 'migrate':
    case 'update':
    case 'retire':
      return `${c.kind} ${c.task.service}/${c.task.slot} gen ${c.task.generation} on ${c.task.host} v${c.task.specVersion}${c.task.previous === null ? '' : ` (previous on ${c.task.previous.host})`}: ${c.task.reason}`
    case 'stop':
      return `stop ${c.service}/${c.slot}: ${c.reason}`
    case 'mark-lost':
      return `mark lost ${c.container.name}`
    case 'set-status':
      return `status ${c.status.service} v${c.status.version} ${c.status.state}${c.status.message === '' ? '' : `: ${c.status.message}`}`
    case 'rollback':
      return `rollback ${c.service} to v${c.record.version}`
  }
}

/** The rollout-ignores-health variant: every task counts as running and healthy for long. */
function assumeHealthy(t: Task): Task {
  const o = t.observed
  if (o !== null && o.generation === t.generation && (o.state === 'failed' || o.state === 'unhealthy' || o.state === 'running')) return t
  return { ...t, observed: { generation: t.generation, state: 'running', sinceMs: 0, ...(o?.containerId === undefined ? {} : { containerId: o.containerId }) } }
}
