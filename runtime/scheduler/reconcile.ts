/**
 * The reconciler (nomad's `scheduler/reconciler`, swarmkit's orchestrators): desired state
 * (services) against existing state (tasks, hosts, containers) at `nowMs` gives the changes
 * the leader should propose. A plain function: no clock, I/O or randomness; the same inputs
 * give the same changes, in the same order. Decisions, per service in name order:
 *
 * 1. A task whose host is gone (dead for at least `deadGraceMs`, left, or unknown) is placed
 *    elsewhere; a suspect host, or one dead for less than the grace, keeps its tasks (a blip
 *    SWIM refutes moves nothing: moby#36311). Containers of gone hosts are marked lost.
 * 2. A task the host reports `failed` (its restart policy gave up) gets a new instance.
 * 3. A task on a drained host, or on one that no longer satisfies the constraints, moves
 *    (with start-first order the old instance keeps running until the new one is healthy).
 * 4. Scale: the lowest `replicas` slots are kept, the others (highest first) stopped; missing
 *    slots are placed at the lowest free numbers. Global: one task per eligible host.
 * 5. A start-first replacement that is running and healthy retires its old instance.
 * 6. Rolling update (or rollback) batch by batch: a batch starts only when every instance
 *    of the previous batch has been running and healthy for the monitor window and the
 *    delay has passed; failures beyond the ratio trigger the failure action.
 * 7. Rebalance, only on request, once no update is in flight: moves tasks from the fullest
 *    to the emptiest eligible host, one batch at a time, until counts differ by at most one.
 */
import type { Container } from '../../storage/statestore/index.ts'
import { TASK_LABEL } from '../../storage/statestore/container-labels.ts'
import { capacityReason, feasibleHosts, infeasibleReason, staticReason, Usage, type SchedHost } from './feasible.ts'
import { bestHost, rankHosts } from './rank.ts'
import { instanceHash, rollbackRecord, type ServiceRecord, type UpdateConfig } from './spec.ts'
import { compareTasks, taskId, taskKey, type ServiceStatus, type Task, type UpdateState } from './task.ts'

export interface ReconcileInput {
  readonly services: readonly ServiceRecord[]
  /** The leader's rollout records (`service-status/<name>`); missing = none yet. */
  readonly statuses: readonly ServiceStatus[]
  readonly tasks: readonly Task[]
  readonly hosts: readonly SchedHost[]
  readonly containers: readonly Container[]
  readonly nowMs: number
  /** How long a host must stay dead before its tasks are placed elsewhere. */
  readonly deadGraceMs: number
  /**
   * Since when each running instance (by taskId) has run as this leader timed it (wall ms: now
   * less the monotonic time since it first saw the report; SchedulerRounds). Monitor windows are
   * measured on it, not on the host's report time: hosts' wall clocks differ and step. An
   * instance missing here counts from its report.
   */
  readonly runningSinceMs?: ReadonlyMap<string, number>
}

/** Task writes carry the whole new record and its key. */
export type Change =
  | { readonly kind: 'place'; readonly key: string; readonly task: Task }
  /** A new instance elsewhere (host gone, drained, constraint, rebalance) or anew (failed). */
  | { readonly kind: 'migrate'; readonly key: string; readonly task: Task; readonly from: string }
  /** A rolling-update (or rollback) step: the slot's new instance at the service's version. */
  | { readonly kind: 'update'; readonly key: string; readonly task: Task }
  /** The new instance is healthy: the old one (start-first) may stop. */
  | { readonly kind: 'retire'; readonly key: string; readonly task: Task }
  /** Delete the slot record; its host stops the instance. */
  | { readonly kind: 'stop'; readonly key: string; readonly service: string; readonly slot: string; readonly reason: string }
  | { readonly kind: 'mark-lost'; readonly container: Container }
  | { readonly kind: 'set-status'; readonly status: ServiceStatus }
  /** Write `record` (the previous spec at the next version) to `services/<name>`. */
  | { readonly kind: 'rollback'; readonly service: string; readonly record: ServiceRecord }

/** Reasons recorded on tasks that belong to a batch (the next batch waits for them). */
const BATCH_REASONS = new Set(['update', 'rollback', 'rebalance'])
/** Reasons whose failures count toward the failure action (a failed rebalance move must not roll the spec back). */
const ROLLOUT_REASONS = new Set(['update', 'rollback'])

export function reconcile(input: ReconcileInput): Change[] {
  const changes: Change[] = []
  const hosts = [...input.hosts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const hostById = new Map(hosts.map((h) => [h.id, h]))
  const gone = (id: string): boolean => {
    const h = hostById.get(id)
    if (h === undefined || h.liveness === 'left') return true
    return h.liveness === 'dead' && input.nowMs - h.livenessSinceMs >= input.deadGraceMs
  }
  const services = [...input.services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const specByName = new Map(services.map((s) => [s.name, s]))
  const statusByName = new Map(input.statuses.map((s) => [s.service, s]))
  const tasks = [...input.tasks].sort(compareTasks)

  // Planning state: what every live instance already reserves.
  const usage = new Usage()
  for (const t of tasks) {
    const spec = specByName.get(t.service)
    if (spec === undefined) continue
    if (!gone(t.host)) usage.add(t.host, spec)
    if (t.previous !== null && !gone(t.previous.host)) usage.add(t.previous.host, spec, false)
  }

  for (const c of [...input.containers].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (gone(c.host) && (c.state === 'running' || c.state === 'created' || c.state === 'paused')) changes.push({ kind: 'mark-lost', container: { ...c, state: 'lost' } })
  }

  for (const t of tasks) {
    if (!specByName.has(t.service)) changes.push({ kind: 'stop', key: taskKey(t.service, t.slot), service: t.service, slot: t.slot, reason: 'service removed' })
  }

  for (const spec of services) {
    const own = tasks.filter((t) => t.service === spec.name)
    const ctx: Ctx = { spec, hosts, hostById, gone, usage, nowMs: input.nowMs, runningSinceMs: input.runningSinceMs, changes, status: statusByName.get(spec.name) ?? null, instance: instanceHash(spec), containers: input.containers }
    if (spec.mode === 'global') reconcileGlobal(ctx, own)
    else reconcileReplicated(ctx, own)
  }
  return changes
}

interface Ctx {
  readonly spec: ServiceRecord
  readonly hosts: readonly SchedHost[]
  readonly hostById: ReadonlyMap<string, SchedHost>
  readonly gone: (id: string) => boolean
  readonly usage: Usage
  readonly nowMs: number
  readonly runningSinceMs: ReadonlyMap<string, number> | undefined
  readonly changes: Change[]
  readonly status: ServiceStatus | null
  /** instanceHash of the spec: what current instances run. */
  readonly instance: string
  /** Every host's container records (to see a retired instance still draining). */
  readonly containers: readonly Container[]
}

/**
 * Whether `t` runs what the service's spec says: by its instance digest, or (a task written
 * before digests) by version: at or after the last change of the instance content.
 */
function current(ctx: Ctx, t: Task): boolean {
  return t.instance !== undefined ? t.instance === ctx.instance : t.specVersion >= ctx.spec.instanceVersion
}

/** The host's observation of the task's current instance, if it is about that instance. */
function observedState(t: Task): string {
  return t.observed !== null && t.observed.generation === t.generation ? t.observed.state : 'pending'
}

function runningHealthy(t: Task): boolean {
  return observedState(t) === 'running'
}

/** Since when `t` runs healthy (the leader's timing when it has one), or null. */
function runningSince(ctx: Pick<Ctx, 'runningSinceMs'>, t: Task): number | null {
  if (!runningHealthy(t) || t.observed === null) return null
  return ctx.runningSinceMs?.get(taskId(t)) ?? t.observed.sinceMs
}

/** Running and healthy for at least `monitorMs`. */
function stable(ctx: Pick<Ctx, 'runningSinceMs' | 'nowMs'>, t: Task, monitorMs: number): boolean {
  const since = runningSince(ctx, t)
  return since !== null && ctx.nowMs - since >= monitorMs
}

/** Whether an older instance of `t`'s slot still runs on a host that is not gone (by its `shoal.task` label). */
function olderInstanceRunning(ctx: Ctx, t: Task): boolean {
  const prefix = `${t.service}.${t.slot}.`
  return ctx.containers.some((c) => {
    const label = c.labels[TASK_LABEL]
    if (c.state !== 'running' || label === undefined || !label.startsWith(prefix) || ctx.gone(c.host)) return false
    const generation = Number(label.slice(prefix.length))
    return Number.isSafeInteger(generation) && generation < t.generation
  })
}

function failedState(t: Task): boolean {
  const s = observedState(t)
  return s === 'failed' || s === 'unhealthy'
}

function newInstance(ctx: Ctx, t: Task, host: string, reason: string, keepPrevious: boolean): Task {
  return {
    ...t,
    generation: t.generation + 1,
    host,
    specVersion: ctx.spec.version,
    instance: ctx.instance,
    desired: 'running',
    previous: keepPrevious ? { host: t.host, generation: t.generation, specVersion: t.specVersion } : null,
    observed: null,
    reason,
    updatedAtMs: ctx.nowMs,
  }
}

/**
 * A slot without a task starts past every generation its containers still carry anywhere: a
 * service removed and created again under the same name would otherwise name its first
 * instances as the old ones (`web.1.1`), and a host still stopping an old container would
 * adopt it as the new task's (found by the simulator: service-scale-lossy, 3 nodes, seed 7).
 */
function freshGeneration(ctx: Ctx, slot: string): number {
  const prefix = `${ctx.spec.name}.${slot}.`
  let max = 0
  for (const c of ctx.containers) {
    const label = c.labels[TASK_LABEL]
    if (label === undefined || !label.startsWith(prefix)) continue
    const generation = Number(label.slice(prefix.length))
    if (Number.isSafeInteger(generation) && generation > max) max = generation
  }
  return max + 1
}

function freshTask(ctx: Ctx, slot: string, host: string, reason: string): Task {
  return {
    service: ctx.spec.name, slot, generation: freshGeneration(ctx, slot), host, specVersion: ctx.spec.version, desired: 'running',
    previous: null, observed: null, reason, createdAtMs: ctx.nowMs, updatedAtMs: ctx.nowMs, instance: ctx.instance,
  }
}

/** Where a replacement for `t` goes: its own host when it still fits (less churn), else the best feasible one. */
function chooseHost(ctx: Ctx, preferred: string | null, avoid: string | null = null): SchedHost | undefined {
  const { spec, usage } = ctx
  if (spec.mode === 'global') {
    // A global task belongs to its host: it is replaced there or not at all.
    const h = preferred === null ? undefined : ctx.hostById.get(preferred)
    return h !== undefined && infeasibleReason(spec, h, usage) === null ? h : undefined
  }
  if (preferred !== null) {
    const h = ctx.hostById.get(preferred)
    if (h !== undefined && infeasibleReason(spec, h, usage) === null) return h
  }
  const feasible = feasibleHosts(spec, ctx.hosts, usage)
  // A failed instance goes to another host when there is one: its host may be the problem.
  const elsewhere = avoid === null ? feasible : feasible.filter((h) => h.id !== avoid)
  return bestHost(spec.name, elsewhere.length > 0 ? elsewhere : feasible, usage)
}

/**
 * Replaces `t` by a new instance. With `order` start-first the old one keeps its reservation
 * and stays as `previous` until the new one is healthy; when nothing fits beside it, the
 * replacement falls back to stop-first. Returns the new task, or null when nothing fits.
 */
function replace(ctx: Ctx, t: Task, opts: { reason: string; order: UpdateConfig['order']; oldAlive: boolean; preferSameHost: boolean; avoidSameHost?: boolean }): Task | null {
  const { spec, usage } = ctx
  const oldCounted = !ctx.gone(t.host)
  // The slot's own earlier retiring instance, if any, is dropped: only one previous is tracked.
  if (t.previous !== null && !ctx.gone(t.previous.host)) usage.remove(t.previous.host, spec, false)
  if (opts.order === 'start-first' && opts.oldAlive && oldCounted) {
    // Keep the old one's resources and ports; it stops counting toward spread.
    usage.remove(t.host, spec)
    usage.add(t.host, spec, false)
    const host = chooseHost(ctx, opts.preferSameHost ? t.host : null)
    if (host !== undefined) {
      usage.add(host.id, spec)
      return newInstance(ctx, t, host.id, opts.reason, true)
    }
    usage.remove(t.host, spec, false)
    usage.add(t.host, spec)
  }
  if (oldCounted) usage.remove(t.host, spec)
  const host = chooseHost(ctx, opts.preferSameHost ? t.host : null, opts.avoidSameHost === true ? t.host : null)
  if (host === undefined) {
    if (oldCounted) usage.add(t.host, spec)
    return null
  }
  usage.add(host.id, spec)
  return newInstance(ctx, t, host.id, opts.reason, false)
}

/** A rollback is a rollout whose status (written with the rollback) says so; it uses the rollback config. */
function rolloutConfig(ctx: Ctx): { cfg: UpdateConfig; rollingBack: boolean } {
  const s = ctx.status
  const rollingBack = s !== null && s.version === ctx.spec.version && (s.state === 'rolling-back' || s.state === 'rollback-paused' || s.state === 'rollback-completed')
  return { cfg: rollingBack ? ctx.spec.rollback : ctx.spec.update, rollingBack }
}

function setStatus(ctx: Ctx, state: UpdateState, message: string, rebalance: boolean): void {
  const s = ctx.status
  if (s !== null && s.version === ctx.spec.version && s.state === state && s.message === message && s.rebalance === rebalance) return
  ctx.changes.push({ kind: 'set-status', status: { service: ctx.spec.name, version: ctx.spec.version, state, message, rebalance } })
}

/** Steps 1-3 for one task; returns the task as it stands afterwards (or null if it was stopped). */
function heal(ctx: Ctx, t: Task, order: UpdateConfig['order']): Task {
  const key = taskKey(t.service, t.slot)
  const host = ctx.hostById.get(t.host)
  if (ctx.gone(t.host)) {
    const next = replace(ctx, t, { reason: `reschedule: host ${host?.name ?? t.host} is ${host?.liveness ?? 'unknown'}`, order: 'stop-first', oldAlive: false, preferSameHost: false })
    if (next !== null) {
      ctx.changes.push({ kind: 'migrate', key, task: next, from: t.host })
      return next
    }
    return t
  }
  if (t.desired === 'running' && observedState(t) === 'failed' && ctx.spec.restart.condition !== 'none') {
    // A failed instance of a rollout batch is replaced within the batch, so the batch stays in flight.
    const reason = BATCH_REASONS.has(t.reason) && current(ctx, t) ? t.reason : `replace failed instance${t.observed?.error === undefined ? '' : `: ${t.observed.error}`}`
    const next = replace(ctx, t, { reason, order: 'stop-first', oldAlive: false, preferSameHost: false, avoidSameHost: true })
    if (next !== null) {
      ctx.changes.push({ kind: 'migrate', key, task: next, from: t.host })
      return next
    }
    return t
  }
  if (host !== undefined && (host.drained || staticReason(ctx.spec, host) !== null)) {
    const why = host.drained ? `host ${host.name} is drained` : `host ${host.name} no longer satisfies the constraints`
    const next = replace(ctx, t, { reason: `migrate: ${why}`, order, oldAlive: true, preferSameHost: false })
    if (next !== null) {
      ctx.changes.push({ kind: 'migrate', key, task: next, from: t.host })
      return next
    }
  }
  return t
}

/** Step 5: clears a retiring instance once its replacement is healthy (or its host is gone). */
function retire(ctx: Ctx, t: Task): Task {
  if (t.previous === null) return t
  if (!runningHealthy(t) && !ctx.gone(t.previous.host)) return t
  if (!ctx.gone(t.previous.host)) ctx.usage.remove(t.previous.host, ctx.spec, false)
  const next: Task = { ...t, previous: null, updatedAtMs: ctx.nowMs }
  ctx.changes.push({ kind: 'retire', key: taskKey(t.service, t.slot), task: next })
  return next
}

function slotNumber(t: Task): number {
  return Number(t.slot)
}

function reconcileReplicated(ctx: Ctx, own: readonly Task[]): void {
  const { spec } = ctx
  const { cfg, rollingBack } = rolloutConfig(ctx)
  // Judged before healing, which would replace the failed instances it counts.
  const verdict = judgeFailures(ctx, own, cfg, rollingBack)
  if (verdict === 'rollback') return
  const halted = verdict === 'halt'
  // Steps 1-3.
  let current = own.map((t) => heal(ctx, t, cfg.order))
  // Step 4: scale. Keep the lowest slots; stop the rest, highest first.
  current = [...current].sort((a, b) => slotNumber(a) - slotNumber(b))
  const keep = current.slice(0, spec.replicas)
  for (const t of current.slice(spec.replicas).reverse()) {
    if (!ctx.gone(t.host)) ctx.usage.remove(t.host, spec)
    if (t.previous !== null && !ctx.gone(t.previous.host)) ctx.usage.remove(t.previous.host, spec, false)
    ctx.changes.push({ kind: 'stop', key: taskKey(t.service, t.slot), service: t.service, slot: t.slot, reason: `scale down to ${spec.replicas}` })
  }
  const used = new Set(keep.map(slotNumber))
  let next = 1
  let unplaced = ''
  while (keep.length < spec.replicas) {
    while (used.has(next)) next++
    const host = chooseHost(ctx, null)
    if (host === undefined) {
      unplaced = noHostMessage(ctx)
      break
    }
    ctx.usage.add(host.id, spec)
    const t = freshTask(ctx, String(next), host.id, 'place')
    ctx.changes.push({ kind: 'place', key: taskKey(t.service, t.slot), task: t })
    keep.push(t)
    used.add(next)
  }
  // Step 5.
  const live = keep.map((t) => retire(ctx, t))
  rollout(ctx, live, cfg, rollingBack, unplaced, halted)
}

function noHostMessage(ctx: Ctx): string {
  const reasons = ctx.hosts.map((h) => infeasibleReason(ctx.spec, h, ctx.usage)).filter((r): r is string => r !== null)
  return `no host can take another instance${reasons.length === 0 ? ' (no hosts)' : `: ${reasons.join('; ')}`}`
}

/**
 * The failure action, judged on this rollout's new instances (failed or unhealthy). Returns
 * `halt` when the rollout must not go on (paused: healing goes on), `rollback` when a rollback
 * was proposed (nothing else is decided for the service until it is written).
 */
function judgeFailures(ctx: Ctx, own: readonly Task[], cfg: UpdateConfig, rollingBack: boolean): 'go' | 'halt' | 'rollback' {
  const { spec } = ctx
  const status = ctx.status !== null && ctx.status.version === spec.version ? ctx.status : null
  if (status !== null && (status.state === 'paused' || status.state === 'rollback-paused')) return 'halt'
  const rebalance = ctx.status?.rebalance ?? false
  const batch = own.filter((t) => current(ctx, t) && ROLLOUT_REASONS.has(t.reason))
  const failures = batch.filter(failedState).length
  if (failures === 0 || failures / Math.max(1, batch.length) <= cfg.maxFailureRatio || cfg.failureAction === 'continue') return 'go'
  const record = cfg.failureAction === 'rollback' && !rollingBack ? rollbackRecord(spec) : null
  if (record !== null) {
    ctx.changes.push({ kind: 'rollback', service: spec.name, record })
    ctx.changes.push({ kind: 'set-status', status: { service: spec.name, version: spec.version + 1, state: 'rolling-back', message: `rolling back: ${failures} of ${batch.length} updated instances failed`, rebalance } })
    return 'rollback'
  }
  const paused = rollingBack ? 'rollback-paused' : 'paused'
  setStatus(ctx, paused, `${failures} of ${batch.length} updated instances failed; fix the spec and update again${spec.previous !== null && !rollingBack ? ', or roll back' : ''}`, rebalance)
  return 'halt'
}

/** Steps 6-7 (shared by both modes). */
function rollout(ctx: Ctx, liveIn: readonly Task[], cfg: UpdateConfig, rollingBack: boolean, message: string, halted: boolean): void {
  if (halted) return
  const { spec, nowMs } = ctx
  const live = [...liveIn]
  const status = ctx.status !== null && ctx.status.version === spec.version ? ctx.status : null
  const rebalance = ctx.status?.rebalance ?? false
  // Only a change of what instances run makes them outdated (instanceVersion): a scale does not.
  const outdated = live.filter((t) => !current(ctx, t))
  const batch = live.filter((t) => current(ctx, t) && BATCH_REASONS.has(t.reason))
  const done = rollingBack ? 'rollback-completed' : 'completed'
  const active = rollingBack ? 'rolling-back' : 'updating'

  // Failures that got past judgeFailures are tolerated (ratio, or `continue`): they do not hold the rollout.
  // A batch is done once its old instances are down too: a retired start-first instance drains and
  // stops after its replacement is healthy, and the next batch waits for that, so no more than
  // `parallelism` extra instances ever run (found by the simulator, service-rolling-update-leader-change seed 14).
  const inFlight = batch.filter((t) => !failedState(t) && (!stable(ctx, t, cfg.monitorMs) || olderInstanceRunning(ctx, t)))
  const lastDone = batch.reduce((m, t) => Math.max(m, t.observed === null ? 0 : (runningSince(ctx, t) ?? t.observed.sinceMs) + cfg.monitorMs), 0)
  const ready = inFlight.length === 0 && (batch.length === 0 || nowMs >= lastDone + cfg.delayMs)
  if (outdated.length > 0) {
    setStatus(ctx, active, message, rebalance)
    if (!ready) return
    // Failing old instances first, then by slot.
    const order = [...outdated].sort((a, b) => Number(failedState(b)) - Number(failedState(a)) || compareTasks(a, b))
    const size = cfg.parallelism === 0 ? order.length : cfg.parallelism
    for (const t of order.slice(0, size)) {
      const next = replace(ctx, t, { reason: rollingBack ? 'rollback' : 'update', order: cfg.order, oldAlive: true, preferSameHost: true })
      if (next !== null) ctx.changes.push({ kind: 'update', key: taskKey(t.service, t.slot), task: next })
    }
    return
  }
  if (inFlight.length > 0) return
  if (rebalance && spec.mode === 'replicated' && ready) {
    if (rebalanceStep(ctx, live, cfg)) return
    setStatus(ctx, done, message, false)
    return
  }
  // A fresh service (no status yet) with nothing to roll out gets its 'completed' record too.
  setStatus(ctx, done, message, spec.mode === 'global' ? false : rebalance)
}

/** One rebalance batch; false when the spread is already even (or nothing can move). */
function rebalanceStep(ctx: Ctx, live: Task[], cfg: UpdateConfig): boolean {
  const { spec, usage } = ctx
  const targets = ctx.hosts.filter((h) => h.liveness === 'alive' && !h.drained && staticReason(spec, h) === null)
  if (targets.length < 2) return false
  const size = cfg.parallelism === 0 ? live.length : cfg.parallelism
  let moved = 0
  while (moved < size) {
    const byCount = rankHosts(spec.name, targets, usage)
    const least = byCount[0]
    const most = byCount[byCount.length - 1]
    if (least === undefined || most === undefined) break
    if (usage.countOf(spec.name, most.id) - usage.countOf(spec.name, least.id) <= 1) break
    const candidates = live.filter((t) => t.host === most.id && t.previous === null).sort(compareTasks)
    const t = candidates[candidates.length - 1]
    if (t === undefined || capacityReason(spec, least, usage) !== null) break
    // Move to the least-loaded host specifically, keeping the old instance per the order.
    if (cfg.order === 'start-first') {
      usage.remove(t.host, spec)
      usage.add(t.host, spec, false)
    } else usage.remove(t.host, spec)
    usage.add(least.id, spec)
    const next = newInstance(ctx, t, least.id, 'rebalance', cfg.order === 'start-first')
    ctx.changes.push({ kind: 'migrate', key: taskKey(t.service, t.slot), task: next, from: t.host })
    moved++
    live.splice(live.indexOf(t), 1, next)
  }
  return moved > 0
}

function reconcileGlobal(ctx: Ctx, own: readonly Task[]): void {
  const { spec } = ctx
  const { cfg, rollingBack } = rolloutConfig(ctx)
  const verdict = judgeFailures(ctx, own, cfg, rollingBack)
  if (verdict === 'rollback') return
  const halted = verdict === 'halt'
  const live: Task[] = []
  const covered = new Set<string>()
  for (const t of own) {
    const host = ctx.hostById.get(t.host)
    const eligible = host !== undefined && !ctx.gone(t.host) && !host.drained && staticReason(spec, host) === null && t.slot === t.host
    if (!eligible) {
      if (!ctx.gone(t.host)) ctx.usage.remove(t.host, spec)
      if (t.previous !== null && !ctx.gone(t.previous.host)) ctx.usage.remove(t.previous.host, spec, false)
      const why = host === undefined ? 'host is unknown' : ctx.gone(t.host) ? `host ${host.name} is ${host.liveness}` : host.drained ? `host ${host.name} is drained` : `host ${host.name} does not satisfy the constraints`
      ctx.changes.push({ kind: 'stop', key: taskKey(t.service, t.slot), service: t.service, slot: t.slot, reason: why })
      continue
    }
    covered.add(t.host)
    if (t.desired === 'running' && observedState(t) === 'failed' && spec.restart.condition !== 'none') {
      const next = newInstance(ctx, t, t.host, 'replace failed instance', false)
      ctx.changes.push({ kind: 'migrate', key: taskKey(t.service, t.slot), task: next, from: t.host })
      live.push(next)
      continue
    }
    live.push(retire(ctx, t))
  }
  let message = ''
  for (const host of ctx.hosts) {
    if (covered.has(host.id) || host.liveness !== 'alive' || host.drained || staticReason(spec, host) !== null) continue
    const why = capacityReason(spec, host, ctx.usage)
    if (why !== null) {
      message = message === '' ? why : `${message}; ${why}`
      continue
    }
    ctx.usage.add(host.id, spec)
    const t = freshTask(ctx, host.id, host.id, 'place')
    ctx.changes.push({ kind: 'place', key: taskKey(t.service, t.slot), task: t })
    live.push(t)
  }
  rollout(ctx, live.sort(compareTasks), cfg, rollingBack, message, halted)
}
