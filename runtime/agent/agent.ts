/**
 * The host agent's deciding core (issue 12): every peer runs one, for the tasks the leader's
 * scheduler assigned to its own host. Pure: no clock, I/O or randomness; time comes in as two
 * readings. `nowMs` is the monotonic clock: every deadline (back-off, drain, onDisconnect) is
 * timed on it, so a wall-clock step (NTP, an operator, a VM resumed) neither fires them at once
 * nor holds them for the size of the step. `wallMs` is this host's wall clock: the reports carry
 * it, and the engine's own container times (wall clock too) are turned into monotonic ones by
 * their age when first seen. It runs in the daemon (node/task-agent.ts) and, unchanged, in the
 * simulator.
 *
 * One call, `step(input) → actions`, with the whole view of this host: its tasks, the
 * service records, the runtime's containers, what it has reported, and which actions are
 * still in flight. The driver executes the actions (engine operations, then the reports),
 * calls `runFailed` when a run or start was refused, and steps again after every change.
 * Executing an action and stepping again converges: every rule below looks at the current
 * view, so a lost action or a crash between two is redone by the next step, never doubled
 * (actions in flight are skipped by key, and containers are matched to tasks by their labels).
 *
 * Rules (runtime/scheduler/README.md, "What the host agent must do"):
 * - The current instance of task T is the container labelled `shoal.task` = taskId(T). A
 *   container with a well-formed `shoal.task` (`<service>.<slot>.<generation>` whose service
 *   is its `shoal.service`) that is neither a current instance nor the `previous` instance of
 *   a task kept here is obsolete: it already left DNS (the DNS layer answers only current
 *   tasks), so it is stopped `drainMs` after it was first seen obsolete, with the service's
 *   stop grace period, and then removed. Containers without such labels are the user's own
 *   and are never touched (a container labelled only `shoal.service` is a user's manual
 *   member of a service's DNS name: container-labels.ts).
 * - Desired running and no instance: run it. Stop-first (`previous: null`): only once no
 *   other container of the slot runs here (they drain and stop first). Start-first: at once.
 * - Created: start it. Running: report `starting` / `unhealthy` / `running` from its health.
 * - Exited or dead: the restart policy, with counted attempts and exponential back-off from
 *   the exit; `failed` once it gives up (the scheduler then places a new generation).
 * - onDisconnect `stop`: without a leader for `afterMs`, the service's containers here stop
 *   (not removed); once the leader is back they start again, without counting an attempt.
 * - Reports are written only when state, generation, container or error change.
 */
import { EngineError, type Container, type EngineErrorKind, type TaskContainerSpec } from '../runtime.ts'
import { SERVICE_LABEL, serviceOf } from '../../storage/statestore/container-labels.ts'
import { DEFAULT_RESTART, type RestartPolicy, type ServiceRecord } from '../scheduler/spec.ts'
import { compareTasks, parseTaskStateKey, taskId, taskStateKey, type Observed, type ObservedState, type Task } from '../scheduler/task.ts'
import { TASK_LABEL, specForTask, taskContainerSpec } from './container-spec.ts'

/** Stop grace for an obsolete container whose service is gone (Swarm's default grace). */
export const AGENT_FALLBACK_STOP_GRACE_MS = 10_000
/** Shortest wait before a restart or a retried run, whatever the policy says (no hot loop). */
export const RESTART_DELAY_MIN_MS = 100
/** The back-off doubles up to max(restart.delayMs, this). */
export const RESTART_DELAY_CAP_FLOOR_MS = 60_000
/** An instance that ran longer than max(restart.windowMs, this) starts counting attempts afresh. */
export const RESTART_RESET_FLOOR_MS = 10_000
/** Run failures remembered per task between two steps (more in one step say nothing new). */
export const RUN_FAILURES_MAX = 16
/** Longest error text a report carries (decodeObserved's limit). */
export const REPORT_ERROR_MAX_CHARS = 1024

export interface AgentInput {
  readonly selfId: string
  /** The monotonic clock (ms): deadlines. */
  readonly nowMs: number
  /** This host's wall clock (ms): report times, and the engine's container times are read against it. */
  readonly wallMs: number
  /** Every task whose host is this peer, or whose previous.host is this peer (observed: null; what this host reported is in `reported`). */
  readonly tasks: readonly Task[]
  readonly services: ReadonlyMap<string, ServiceRecord>
  /** This host's containers as the runtime reports them. */
  readonly containers: readonly Container[]
  /** What this host has reported, by task-state key (taskStateKey(self, service, slot)). */
  readonly reported: ReadonlyMap<string, Observed>
  /** Resolvers for task containers: [bridge gateway of this peer's DNS] or []. */
  readonly dns: readonly string[]
  /** Since when this peer has had no Raft leader (null: it has one): for onDisconnect 'stop'. */
  readonly leaderlessSinceMs: number | null
  /** How long a container that is no longer current stays up after leaving DNS before it is stopped. */
  readonly drainMs: number
  /** Keys of actions still in flight (actionKey(a)); the core does not repeat them. */
  readonly busy: ReadonlySet<string>
}

export type AgentAction =
  /** Create and start the task's container (TaskEngine.runTask). */
  | { readonly kind: 'run'; readonly task: string; readonly spec: TaskContainerSpec }
  /** Start the task's existing container again (a restart-policy restart, or a created one). */
  | { readonly kind: 'start'; readonly task: string; readonly containerId: string }
  | { readonly kind: 'stop'; readonly containerId: string; readonly graceMs: number; readonly reason: string }
  | { readonly kind: 'remove'; readonly containerId: string }
  /** Put `task-states/<self>/<service>/<slot>`. */
  | { readonly kind: 'report'; readonly key: string; readonly observed: Observed }
  /** Delete it. */
  | { readonly kind: 'unreport'; readonly key: string }

/**
 * The identity of an action for `busy`: one engine operation per container and one run per
 * task at a time, and one write per task-state key (a put and a delete of one key in flight
 * together could land in either order).
 */
export function actionKey(a: AgentAction): string {
  switch (a.kind) {
    case 'run':
      return `task/${a.task}`
    case 'start':
    case 'stop':
    case 'remove':
      return `container/${a.containerId}`
    case 'report':
    case 'unreport':
      return `state/${a.key}`
    default: {
      const never: never = a
      return never
    }
  }
}

/** The parts of a `shoal.task` label. */
export interface TaskLabel {
  readonly service: string
  readonly slot: string
  readonly generation: number
}

// A service name has no dots, a generation is digits: the slot (a number or a peer id) is what lies between.
const TASK_LABEL_PATTERN = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.([A-Za-z0-9._-]{1,128})\.([1-9][0-9]{0,15})$/

/** The task a container is an instance of, from its labels; null for a container that is not a Shoal task's. */
export function taskOfContainer(c: Pick<Container, 'labels'>): TaskLabel | null {
  if (!Object.hasOwn(c.labels, TASK_LABEL)) return null
  const raw = c.labels[TASK_LABEL]
  const match = raw === undefined ? null : TASK_LABEL_PATTERN.exec(raw)
  if (match === null) return null
  const [, service, slot, gen] = match
  if (service === undefined || slot === undefined || gen === undefined) return null
  const generation = Number(gen)
  if (!Number.isSafeInteger(generation)) return null
  // The service label must agree: a task label copied onto another service's container is not ours.
  return serviceOf(c) === service && c.labels[SERVICE_LABEL] !== undefined ? { service, slot, generation } : null
}

/**
 * An engine time (RFC 3339, this host's wall clock) on the monotonic clock: now less its age on
 * the wall clock (never in the future); now when the engine gave none.
 */
function monotonicOf(input: Pick<AgentInput, 'nowMs' | 'wallMs'>, engineTime: string | undefined): number {
  const wall = parseEngineTimeMs(engineTime)
  return wall === null ? input.nowMs : input.nowMs - Math.max(0, input.wallMs - wall)
}

/** Wait before restart attempt `attempt` (1 = the first): delayMs·2^(attempt−1), capped, at least the minimum. */
export function restartDelayMs(policy: Pick<RestartPolicy, 'delayMs'>, attempt: number): number {
  const cap = Math.max(policy.delayMs, RESTART_DELAY_CAP_FLOOR_MS)
  // 2^30 times any delay is past the cap; a bounded exponent keeps the product finite (0·∞ is NaN).
  const grown = policy.delayMs * 2 ** Math.min(30, Math.max(0, attempt - 1))
  return Math.max(RESTART_DELAY_MIN_MS, Math.min(grown, cap))
}

const ISO_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?(Z|[+-]\d{2}:\d{2})$/

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/**
 * Milliseconds since the epoch of an engine time (`2024-05-01T12:00:00.123456789Z`), or null.
 * Parsed here rather than by `Date` so the core stays free of clocks (tests/unit/purity.test.ts).
 */
export function parseEngineTimeMs(text: string | undefined): number | null {
  if (text === undefined) return null
  const m = ISO_PATTERN.exec(text)
  if (m === null) return null
  const [, y, mo, d, h, mi, s, frac, zone] = m
  const month = Number(mo)
  const day = Number(d)
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) return null
  const days = daysFromCivil(Number(y), month, day)
  let ms = (((days * 24 + Number(h)) * 60 + Number(mi)) * 60 + Number(s)) * 1000 + Number((frac ?? '').padEnd(3, '0').slice(0, 3))
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1
    ms -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000
  }
  // Docker's zero time (year 1) and anything before the epoch mean "never".
  return ms > 0 ? ms : null
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`
}

function exitText(c: Container): string {
  return c.exitCode === undefined ? `${c.state === 'dead' ? 'died' : 'exited'} (exit code unknown)` : `exited with code ${c.exitCode}`
}

function clip(text: string): string {
  return text.length <= REPORT_ERROR_MAX_CHARS ? text : `${text.slice(0, REPORT_ERROR_MAX_CHARS - 3)}...`
}

const isUp = (c: Container): boolean => c.state === 'running' || c.state === 'paused'
const isDown = (c: Container): boolean => c.state === 'exited' || c.state === 'dead'

/** Which container of one task is its instance when there are several (a rename, a crash mid-run): up first, then by id. */
function preference(c: Container): number {
  return c.state === 'running' ? 0 : c.state === 'paused' ? 1 : c.state === 'created' ? 2 : c.state === 'exited' ? 3 : 4
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** A run or start the engine refused, waiting for the next step to weigh it against the policy. */
interface RunFailure {
  readonly error: string
  readonly kind: EngineErrorKind | null
  readonly atMs: number
}

/** What the agent remembers of one task instance (by task id) between steps. */
interface TaskMemo {
  /** Restart attempts (runs and restarts after a failure) since the last reset. */
  attempts: number
  /** No run or restart before this. */
  notBeforeMs: number
  /** The exit already weighed (`<container id>@<exit ms>`): a step that sees it again counts nothing. */
  countedExit: string | null
  /** Why the instance is not up yet (the `pending` report's error), or null. */
  waiting: string | null
  /** The terminal outcome of the weighed exit or run failures, or null. */
  outcome: { readonly state: 'failed' | 'complete'; readonly error?: string } | null
  failures: RunFailure[]
}

function newMemo(): TaskMemo {
  return { attempts: 0, notBeforeMs: 0, countedExit: null, waiting: null, outcome: null, failures: [] }
}

interface Ours {
  readonly container: Container
  readonly label: TaskLabel
  readonly id: string
}

/**
 * The host agent of one peer. See the file comment for the rules.
 *
 * Driver contract: call `step` after every change of the input (and on a timer, for back-off
 * and drain deadlines); execute the actions it returns, engine operations before the reports
 * that follow from them being free to run concurrently; pass each action's key in `busy`
 * until it has finished; call `runFailed` when a `run` or `start` was refused.
 */
export class TaskAgent {
  private readonly memos = new Map<string, TaskMemo>()
  /** Containers leaving (obsolete, or their task shut down): since when, for the drain. */
  private readonly leavingSince = new Map<string, number>()
  /** Exited containers: when they exited, on the monotonic clock (the engine's time by its age when first seen). */
  private readonly exitSeen = new Map<string, { readonly engine: string | undefined; readonly ms: number }>()
  /** Running containers: the engine's start time as read, and when that was on the monotonic clock (likewise). */
  private readonly upSeen = new Map<string, { readonly engine: string | undefined; readonly ms: number }>()
  /** Containers this agent stopped because the leader was gone too long (onDisconnect stop). */
  private readonly disconnectStopped = new Set<string>()
  /** The earliest time after the last step's `nowMs` at which time alone gives a step something to do. */
  private wakeMs: number | null = null

  /** A `run` or `start` of task `task` (a taskId) failed; the next step weighs it against the restart policy. */
  runFailed(task: string, error: EngineError | Error, nowMs: number): void {
    const memo = this.memo(task)
    if (memo.failures.length >= RUN_FAILURES_MAX) memo.failures.shift()
    memo.failures.push({ error: error.message, kind: error instanceof EngineError ? error.kind : null, atMs: nowMs })
  }

  /**
   * When the next step has something to do by time alone (a back-off, drain or onDisconnect
   * deadline), as of the last step; null when nothing waits. A driver may step then instead of
   * waiting for its next tick.
   */
  nextWakeMs(): number | null {
    return this.wakeMs
  }

  /** Restart attempts counted for a task instance (for status and tests). */
  attempts(task: string): number {
    return this.memos.get(task)?.attempts ?? 0
  }

  /** The actions that move this host toward its tasks, in key order (see the file comment). */
  step(input: AgentInput): AgentAction[] {
    const out = new Map<string, AgentAction>()
    this.wakeMs = null
    const emit = (a: AgentAction): void => {
      const key = actionKey(a)
      if (!input.busy.has(key) && !out.has(key)) out.set(key, a)
    }
    const { selfId } = input
    const current = new Map<string, Task>()
    const previous = new Map<string, Task>()
    for (const t of [...input.tasks].sort(compareTasks)) {
      if (t.host === selfId) current.set(taskId(t), t)
      if (t.previous !== null && t.previous.host === selfId) previous.set(taskId({ service: t.service, slot: t.slot, generation: t.previous.generation }), t)
    }
    const ours: Ours[] = []
    const byTask = new Map<string, Ours[]>()
    const namesTaken = new Set<string>()
    for (const c of input.containers) {
      if (c.state === 'lost') continue
      namesTaken.add(c.name)
      const label = taskOfContainer(c)
      if (label === null) continue
      const o: Ours = { container: c, label, id: taskId(label) }
      ours.push(o)
      const list = byTask.get(o.id)
      if (list === undefined) byTask.set(o.id, [o])
      else list.push(o)
    }
    for (const list of byTask.values()) list.sort((a, b) => preference(a.container) - preference(b.container) || compareIds(a.container.id, b.container.id))

    const leaving = new Set<string>()
    const seenUp = new Set<string>()
    const seenDown = new Set<string>()
    const ctx: StepContext = { input, emit, leaving, seenUp, seenDown }

    for (const [id, t] of current) this.onTask(ctx, t, id, byTask.get(id) ?? [], ours, namesTaken)
    for (const [id, t] of previous) {
      if (!current.has(id)) this.onRetiring(ctx, t, byTask.get(id) ?? [])
    }
    for (const o of ours) {
      const list = byTask.get(o.id) ?? []
      const isCurrentInstance = current.has(o.id) && list[0] === o
      const isRetiring = previous.has(o.id) && !current.has(o.id)
      if (isCurrentInstance || isRetiring) continue
      const reason = current.has(o.id) ? `duplicate container of task ${o.id}` : `task ${o.id} is no longer assigned to this host`
      this.leave(ctx, o.container, this.graceOf(input.services.get(o.label.service)), reason, true)
    }
    // A key of this host whose slot has no task here any more says nothing true: delete it.
    const reportedHere = new Set([...current.values()].map((t) => taskStateKey(selfId, t.service, t.slot)))
    for (const key of input.reported.keys()) {
      const parsed = parseTaskStateKey(key)
      if (parsed !== null && parsed.host !== selfId) continue
      if (!reportedHere.has(key)) emit({ kind: 'unreport', key })
    }

    this.prune(current, input.containers, leaving, seenUp, seenDown)
    return [...out.entries()].sort(([a], [b]) => compareIds(a, b)).map(([, a]) => a)
  }

  private memo(task: string): TaskMemo {
    let memo = this.memos.get(task)
    if (memo === undefined) {
      memo = newMemo()
      this.memos.set(task, memo)
    }
    return memo
  }

  private graceOf(record: ServiceRecord | undefined): number {
    return record?.stopGracePeriodMs ?? AGENT_FALLBACK_STOP_GRACE_MS
  }

  private wake(input: AgentInput, atMs: number): void {
    if (atMs > input.nowMs && (this.wakeMs === null || atMs < this.wakeMs)) this.wakeMs = atMs
  }

  private disconnected(input: AgentInput, record: ServiceRecord | undefined): boolean {
    if (record === undefined || record.onDisconnect.action !== 'stop' || input.leaderlessSinceMs === null) return false
    const atMs = input.leaderlessSinceMs + record.onDisconnect.afterMs
    this.wake(input, atMs)
    return input.nowMs >= atMs
  }

  /** Reports `state` for task `t` unless `reported` already says it (the state's `sinceMs` is kept while it holds). */
  private report(ctx: StepContext, t: Task, state: ObservedState, containerId: string | undefined, error: string | null): void {
    const key = taskStateKey(ctx.input.selfId, t.service, t.slot)
    const err = error === null ? undefined : clip(error)
    const prev = ctx.input.reported.get(key)
    if (prev !== undefined && prev.generation === t.generation && prev.state === state && prev.containerId === containerId && prev.error === err) return
    const sinceMs = prev !== undefined && prev.generation === t.generation && prev.state === state ? prev.sinceMs : ctx.input.wallMs
    const observed: Observed = {
      generation: t.generation, state, sinceMs: Math.max(0, sinceMs),
      ...(containerId === undefined ? {} : { containerId }),
      ...(err === undefined ? {} : { error: err }),
    }
    ctx.emit({ kind: 'report', key, observed })
  }

  /** Stops `c` `drainMs` after it started leaving; removes it once stopped when `remove`. */
  private leave(ctx: StepContext, c: Container, graceMs: number, reason: string, remove: boolean): void {
    const { nowMs, drainMs } = ctx.input
    if (isUp(c)) {
      ctx.leaving.add(c.id)
      const since = this.leavingSince.get(c.id) ?? nowMs
      this.leavingSince.set(c.id, since)
      if (nowMs - since >= drainMs) ctx.emit({ kind: 'stop', containerId: c.id, graceMs, reason })
      else this.wake(ctx.input, since + drainMs)
      return
    }
    // Created, exited or dead: not in DNS, nothing to drain.
    if (remove) ctx.emit({ kind: 'remove', containerId: c.id })
  }

  /** Folds run failures into the task's memo under its restart policy. */
  private foldFailures(memo: TaskMemo, id: string, policy: RestartPolicy): void {
    for (const f of memo.failures) {
      switch (f.kind) {
        case 'name-conflict':
          // A container of that name exists: the next view shows it and it is adopted (ours) or
          // removed (obsolete); nothing failed, so nothing is counted.
          memo.notBeforeMs = Math.max(memo.notBeforeMs, f.atMs + RESTART_DELAY_MIN_MS)
          memo.waiting = `a container named ${id} already exists; adopting or removing it before running again`
          break
        case 'not-found':
          // The container to start is gone: the next step runs a new one.
          memo.waiting = null
          break
        case 'unavailable': {
          // The engine is down, which says nothing about the task: wait, but count nothing.
          const delay = restartDelayMs(policy, Math.max(1, memo.attempts))
          memo.notBeforeMs = Math.max(memo.notBeforeMs, f.atMs + delay)
          memo.waiting = `${f.error}; retrying in ${seconds(delay)}`
          break
        }
        default: {
          memo.attempts++
          if (policy.maxAttempts > 0 && memo.attempts >= policy.maxAttempts) {
            memo.outcome = { state: 'failed', error: `${f.error} (gave up after ${memo.attempts} attempts; restart.maxAttempts is ${policy.maxAttempts})` }
            break
          }
          const delay = restartDelayMs(policy, memo.attempts)
          memo.notBeforeMs = Math.max(memo.notBeforeMs, f.atMs + delay)
          memo.waiting = `${f.error}; attempt ${memo.attempts} failed, retrying in ${seconds(delay)}`
        }
      }
    }
    memo.failures = []
  }

  private onTask(ctx: StepContext, t: Task, id: string, instances: readonly Ours[], ours: readonly Ours[], namesTaken: ReadonlySet<string>): void {
    const { input } = ctx
    const record = input.services.get(t.service)
    const spec = record === undefined ? null : specForTask(record, t.specVersion)
    const policy = spec?.restart ?? DEFAULT_RESTART
    const graceMs = spec?.stopGracePeriodMs ?? AGENT_FALLBACK_STOP_GRACE_MS
    const memo = this.memo(id)
    this.foldFailures(memo, id, policy)
    const c = instances[0]?.container ?? null
    if (c !== null) {
      if (c.state === 'running' || c.state === 'paused') ctx.seenUp.add(c.id)
      if (isDown(c)) ctx.seenDown.add(c.id)
    }

    if (this.disconnected(input, record)) {
      // No leader to report to; the containers stop and wait for it (Nomad's max_client_disconnect).
      if (c !== null && isUp(c)) {
        this.disconnectStopped.add(c.id)
        ctx.emit({ kind: 'stop', containerId: c.id, graceMs, reason: `no Raft leader for ${seconds(input.nowMs - (input.leaderlessSinceMs ?? input.nowMs))} (onDisconnect stop)` })
      }
      return
    }

    if (t.desired === 'shutdown') {
      if (c !== null && isUp(c)) {
        this.leave(ctx, c, graceMs, `task ${id} is shut down`, false)
        return
      }
      this.report(ctx, t, 'shutdown', c?.id, null)
      return
    }

    if (c === null) {
      this.onMissing(ctx, t, id, memo, record, ours, namesTaken)
      return
    }
    switch (c.state) {
      case 'created':
        if (!input.busy.has(`task/${id}`)) ctx.emit({ kind: 'start', task: id, containerId: c.id })
        this.report(ctx, t, 'pending', c.id, memo.waiting)
        return
      case 'running': {
        this.disconnectStopped.delete(c.id)
        memo.waiting = null
        memo.outcome = null
        // A restart between two steps gives a new engine start time: timed afresh.
        const seen = this.upSeen.get(c.id)
        const startedMs = seen !== undefined && seen.engine === c.startedAt ? seen.ms : monotonicOf(input, c.startedAt)
        this.upSeen.set(c.id, { engine: c.startedAt, ms: startedMs })
        if (input.nowMs - startedMs > Math.max(policy.windowMs, RESTART_RESET_FLOOR_MS)) memo.attempts = 0
        const state: ObservedState = c.health === 'starting' ? 'starting' : c.health === 'unhealthy' ? 'unhealthy' : 'running'
        this.report(ctx, t, state, c.id, null)
        return
      }
      case 'paused':
        this.report(ctx, t, 'unhealthy', c.id, `container ${c.name} is paused; docker unpause it, or the scheduler's policy treats it as unhealthy`)
        return
      case 'exited':
      case 'dead':
        this.onExited(ctx, t, id, c, memo, record, policy)
        return
      case 'lost':
        return
      default: {
        const never: never = c.state
        return never
      }
    }
  }

  /** Desired running, no container: run it (after the back-off, and for stop-first once the slot's others are down). */
  private onMissing(ctx: StepContext, t: Task, id: string, memo: TaskMemo, record: ServiceRecord | undefined, ours: readonly Ours[], namesTaken: ReadonlySet<string>): void {
    const { input } = ctx
    if (memo.outcome !== null) {
      this.report(ctx, t, memo.outcome.state, undefined, memo.outcome.error ?? null)
      return
    }
    if (record === undefined) {
      this.report(ctx, t, 'pending', undefined, `service ${t.service} has no readable record at services/${t.service}; not starting its task`)
      return
    }
    if (input.nowMs < memo.notBeforeMs) {
      this.wake(input, memo.notBeforeMs)
      this.report(ctx, t, 'pending', undefined, memo.waiting)
      return
    }
    if (namesTaken.has(id)) {
      // The name is held by a container that is not this task's (ours would be its instance):
      // a Shoal container is removed as obsolete, the user's own is never touched.
      const shoals = ours.some((o) => o.container.name === id)
      this.report(ctx, t, 'pending', undefined, shoals ? memo.waiting : `a container named ${id} exists and is not this task's; remove or rename it so the task can run`)
      return
    }
    if (t.previous === null) {
      // Stop-first: the slot's other instances here stop (after the drain) before this one runs.
      const others = ours.filter((o) => o.label.service === t.service && o.label.slot === t.slot && o.id !== id && isUp(o.container))
      if (others.length > 0) {
        this.report(ctx, t, 'pending', undefined, memo.waiting)
        return
      }
    }
    ctx.emit({ kind: 'run', task: id, spec: taskContainerSpec(specForTask(record, t.specVersion), t, input.dns) })
    this.report(ctx, t, 'pending', undefined, memo.waiting)
  }

  /** The instance exited or died: the restart policy decides. */
  private onExited(ctx: StepContext, t: Task, id: string, c: Container, memo: TaskMemo, record: ServiceRecord | undefined, policy: RestartPolicy): void {
    const { input } = ctx
    if (this.disconnectStopped.has(c.id)) {
      // Stopped by this agent while the leader was gone: the leader is back, so it runs again, uncounted.
      if (c.state === 'dead') {
        this.disconnectStopped.delete(c.id)
        ctx.emit({ kind: 'remove', containerId: c.id })
      } else {
        ctx.emit({ kind: 'start', task: id, containerId: c.id })
      }
      this.report(ctx, t, 'pending', c.id, null)
      return
    }
    // The engine's exit time names the exit (a wall time: stable across steps); the back-off runs
    // on the monotonic clock from the exit as first seen (now less its age on the wall clock then).
    const engineExitMs = parseEngineTimeMs(c.finishedAt)
    const seen = this.exitSeen.get(c.id)
    const exitMs = seen !== undefined && seen.engine === c.finishedAt ? seen.ms : monotonicOf(input, c.finishedAt)
    this.exitSeen.set(c.id, { engine: c.finishedAt, ms: exitMs })
    if (record === undefined) {
      this.report(ctx, t, 'pending', c.id, `${exitText(c)}; service ${t.service} has no readable record at services/${t.service}, so it is not restarted`)
      return
    }
    const exitKey = `${c.id}@${engineExitMs ?? `seen ${exitMs}`}`
    if (memo.countedExit !== exitKey) {
      memo.countedExit = exitKey
      memo.outcome = null
      // How long it ran, on the engine's own clock: both times are its.
      const startedMs = parseEngineTimeMs(c.startedAt)
      if (startedMs !== null && engineExitMs !== null && engineExitMs - startedMs > Math.max(policy.windowMs, RESTART_RESET_FLOOR_MS)) memo.attempts = 0
      const success = c.exitCode === 0
      if (policy.condition === 'none') {
        memo.outcome = success ? { state: 'complete' } : { state: 'failed', error: `${exitText(c)} (restart condition none)` }
      } else if (policy.condition === 'on-failure' && success) {
        memo.outcome = { state: 'complete' }
      } else if (policy.maxAttempts > 0 && memo.attempts >= policy.maxAttempts) {
        memo.outcome = { state: 'failed', error: `${exitText(c)}; gave up after ${memo.attempts} restarts (restart.maxAttempts is ${policy.maxAttempts})` }
      } else {
        memo.attempts++
        const delay = restartDelayMs(policy, memo.attempts)
        memo.notBeforeMs = exitMs + delay
        memo.waiting = `${exitText(c)}; restart ${memo.attempts} in ${seconds(delay)}`
      }
    }
    if (memo.outcome !== null) {
      this.report(ctx, t, memo.outcome.state, c.id, memo.outcome.error ?? null)
      return
    }
    if (input.nowMs >= memo.notBeforeMs) {
      // A dead container cannot be started again: it goes, and the next step runs a new one.
      ctx.emit(c.state === 'dead' ? { kind: 'remove', containerId: c.id } : { kind: 'start', task: id, containerId: c.id })
    } else {
      this.wake(input, memo.notBeforeMs)
    }
    this.report(ctx, t, 'pending', c.id, memo.waiting)
  }

  /** A `previous` instance kept here until its replacement is healthy: left alone, but onDisconnect applies to it too. */
  private onRetiring(ctx: StepContext, t: Task, instances: readonly Ours[]): void {
    const { input } = ctx
    const record = input.services.get(t.service)
    const disconnected = this.disconnected(input, record)
    for (const { container: c } of instances) {
      if (disconnected && isUp(c)) {
        this.disconnectStopped.add(c.id)
        ctx.emit({ kind: 'stop', containerId: c.id, graceMs: this.graceOf(record), reason: 'no Raft leader (onDisconnect stop)' })
      } else if (!disconnected && c.state === 'exited' && this.disconnectStopped.has(c.id)) {
        ctx.emit({ kind: 'start', task: taskId({ service: t.service, slot: t.slot, generation: t.previous?.generation ?? t.generation }), containerId: c.id })
      } else if (c.state === 'running') {
        this.disconnectStopped.delete(c.id)
      }
    }
  }

  /** Forgets what no longer exists, so memory stays bounded by the tasks and containers of this host. */
  private prune(current: ReadonlyMap<string, Task>, containers: readonly Container[], leaving: ReadonlySet<string>, seenUp: ReadonlySet<string>, seenDown: ReadonlySet<string>): void {
    for (const id of this.memos.keys()) if (!current.has(id)) this.memos.delete(id)
    const exists = new Set(containers.map((c) => c.id))
    for (const id of this.leavingSince.keys()) if (!leaving.has(id)) this.leavingSince.delete(id)
    for (const id of this.exitSeen.keys()) if (!seenDown.has(id)) this.exitSeen.delete(id)
    for (const id of this.upSeen.keys()) if (!seenUp.has(id)) this.upSeen.delete(id)
    for (const id of this.disconnectStopped) if (!exists.has(id)) this.disconnectStopped.delete(id)
  }
}

interface StepContext {
  readonly input: AgentInput
  readonly emit: (a: AgentAction) => void
  /** Containers draining this step (the rest are forgotten). */
  readonly leaving: Set<string>
  readonly seenUp: Set<string>
  readonly seenDown: Set<string>
}
