// The services checkers (issue 12):
//
// - service-convergence (after healing): every replicated service has exactly
//   `replicas` running, healthy instances, one global instance per eligible
//   host, each on a live, undrained host that meets the constraints, each the
//   current instance of its task (container label shoal.task = the task's id,
//   on the task's host) at the service's current content
//   (task.instance === instanceHash(spec)); nothing of a removed service runs;
// - slot-uniqueness (after healing): no slot has two running containers;
// - task-placement (online, as the leader's txns commit): no task is assigned
//   to a host that, when the leader decided, was dead past the reschedule
//   grace (in the leader's own failure detector, or in truth: down for longer
//   than the grace plus the detector's bound), drained, or outside the
//   service's constraints;
// - rolling-update-bounds (online, at every engine change): during a content
//   update that started from a steady service (exactly `replicas` healthy
//   instances), never fewer than `replicas − parallelism` healthy instances
//   (stop-first) and never more than `replicas + parallelism` (start-first);
//   each bound is checked for both orders (each order is stricter still).
//   A window closes when the service converges, its spec changes again, or a
//   host that runs one of its instances comes under a fault (down, paused,
//   cut off from the leader, or not yet seen alive again by it): such a host
//   legitimately drops or doubles instances, since its tasks are rescheduled
//   while its engine still runs them. The checker samples after every engine
//   change and every 100 ms.

import { taskOfContainer } from '../../runtime/agent/agent.ts'
import { matchAll } from '../../runtime/scheduler/constraint.ts'
import { decodeServiceRecord, instanceHash, type ServiceRecord } from '../../runtime/scheduler/spec.ts'
import { HOST_AVAILABILITY_PREFIX, TASKS_PREFIX, decodeDrained, decodeTask, taskId, type Task } from '../../runtime/scheduler/task.ts'
import { HOSTS_PREFIX, SERVICES_PREFIX, parseHost, type Container, type Host, type StateStore } from '../../storage/statestore/index.ts'
import type { Assignment } from '../services.ts'
import { ViolationError, type Violation } from './violation.ts'

/** Most problems one violation lists. */
const SHOWN_MAX = 6
/** In truth, a host down this long past the grace must look dead to any leader (SWIM's suspicion bound, generously). */
export const DETECTION_BOUND_MS = 10_000

/** One host as the end-of-run check sees it. */
export interface ServiceHostTruth {
  readonly id: string
  /** Its peer runs and is a member. */
  readonly live: boolean
  /** Its engine's containers. */
  readonly engine: readonly Container[]
}

function running(c: Container): boolean {
  return c.state === 'running'
}

function healthy(c: Container): boolean {
  return c.state === 'running' && (c.health === null || c.health === undefined || c.health === 'healthy')
}

/** Services, tasks, host records and drain flags of a replica. */
function readStore(store: StateStore): { services: ServiceRecord[]; tasks: Task[]; hosts: Host[]; drained: Set<string> } {
  const services: ServiceRecord[] = []
  for (const kv of store.range(SERVICES_PREFIX).kvs) {
    const r = decodeServiceRecord(kv.value)
    if (r.ok) services.push(r.value)
  }
  const tasks: Task[] = []
  for (const kv of store.range(TASKS_PREFIX).kvs) {
    const r = decodeTask(kv.value, kv.key)
    if (r.ok) tasks.push(r.value)
  }
  const hosts: Host[] = []
  for (const kv of store.range(HOSTS_PREFIX).kvs) {
    const r = parseHost(kv.value)
    if (r.ok) hosts.push(r.record)
  }
  const drained = new Set<string>()
  for (const kv of store.range(HOST_AVAILABILITY_PREFIX).kvs) if (decodeDrained(kv.value)) drained.add(kv.key.slice(HOST_AVAILABILITY_PREFIX.length))
  return { services, tasks, hosts, drained }
}

function listed(problems: readonly string[]): string {
  return `${problems.slice(0, SHOWN_MAX).join('; ')}${problems.length > SHOWN_MAX ? ` (and ${problems.length - SHOWN_MAX} more)` : ''}`
}

/**
 * service-convergence and slot-uniqueness on a settled cluster: `store` is the leader's
 * replica, `hosts` every host with its engine's truth.
 */
export function checkServicesConverged(store: StateStore, hosts: readonly ServiceHostTruth[], atUs: number): Violation[] {
  const { services, tasks, hosts: records, drained } = readStore(store)
  const out: Violation[] = []
  const taskById = new Map(tasks.map((t) => [taskId(t), t]))
  const recordOf = new Map(records.map((h) => [h.peerId, h]))
  const byService = new Map<string, Array<{ host: string; c: Container }>>()
  const bySlot = new Map<string, string[]>()
  for (const h of hosts) {
    for (const c of h.engine) {
      if (!running(c)) continue
      const label = taskOfContainer(c)
      if (label === null) continue
      const list = byService.get(label.service) ?? []
      list.push({ host: h.id, c })
      byService.set(label.service, list)
      const slot = `${label.service}/${label.slot}`
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), `${c.name} on ${h.id}`])
    }
  }
  const doubles = [...bySlot].filter(([, list]) => list.length > 1).map(([slot, list]) => `slot ${slot} runs ${list.join(' and ')}`)
  if (doubles.length > 0) out.push({ checker: 'slot-uniqueness', atUs, message: listed(doubles) })

  const problems: string[] = []
  const live = new Set(hosts.filter((h) => h.live).map((h) => h.id))
  const eligible = (spec: ServiceRecord, host: string): boolean => {
    const rec = recordOf.get(host)
    return live.has(host) && !drained.has(host) && rec !== undefined && matchAll(spec.constraints, { name: rec.name, labels: rec.labels ?? {} })
  }
  const names = new Set(services.map((s) => s.name))
  for (const [name, list] of byService) {
    if (!names.has(name)) problems.push(`service ${name} is removed but ${list.map((x) => `${x.c.name} on ${x.host}`).join(', ')} still run${list.length === 1 ? 's' : ''}`)
  }
  for (const spec of services) {
    const instance = instanceHash(spec)
    const list = byService.get(spec.name) ?? []
    const wrong: string[] = []
    for (const { host, c } of list) {
      const label = taskOfContainer(c)
      const t = label === null ? undefined : taskById.get(taskId(label))
      if (t === undefined || t.host !== host) wrong.push(`${c.name} on ${host} is no task's current instance`)
      else if (t.instance !== instance) wrong.push(`${c.name} on ${host} runs outdated content (task instance ${t.instance ?? 'none'}, spec ${instance})`)
      else if (!healthy(c)) wrong.push(`${c.name} on ${host} is ${c.health ?? 'running'}, not healthy`)
      else if (!eligible(spec, host)) wrong.push(`${c.name} runs on ${host}, which is dead, drained or outside the constraints`)
    }
    if (spec.mode === 'replicated') {
      if (list.length !== spec.replicas) wrong.push(`${list.length} instances run, ${spec.replicas} wanted`)
    } else {
      const want = [...live].filter((h) => eligible(spec, h)).sort()
      const have = list.map((x) => x.host).sort()
      if (want.join(',') !== have.join(',')) wrong.push(`global instances run on [${have.join(' ')}], eligible hosts are [${want.join(' ')}]`)
    }
    if (wrong.length > 0) problems.push(`service ${spec.name} v${spec.version} (${spec.image}): ${listed(wrong)}`)
  }
  if (problems.length > 0) out.push({ checker: 'service-convergence', atUs, message: listed(problems) })
  return out
}

/** task-placement: judges each assignment as the leader's txn commits; throws at the first bad one. */
export class PlacementChecker {
  /** Assignments judged so far. */
  checked = 0
  private readonly downSinceUs: (host: string) => number | null

  /** `downSinceUs(host)`: since when the host's peer has been down (crashed or stopped), in truth, or null. */
  constructor(downSinceUs: (host: string) => number | null) {
    this.downSinceUs = downSinceUs
  }

  assigned(a: Assignment): void {
    this.checked++
    const t = a.task
    const h = a.hosts.find((x) => x.id === t.host)
    const what = `${a.leader} (leader) ${a.kind === 'place' ? 'placed' : a.kind === 'migrate' ? 'moved' : 'updated'} ${taskId(t)} to ${t.host}`
    const fail = (why: string): never => {
      throw new ViolationError({ checker: 'task-placement', atUs: a.decidedUs, message: `${what}, ${why}` })
    }
    if (h === undefined) return fail('a host it has no record of')
    if (h.drained) return fail('which is drained')
    if (a.spec !== undefined && !matchAll(a.spec.constraints, h)) return fail(`which does not meet the constraints ${a.spec.constraints.join(', ')}`)
    if (h.liveness === 'left') return fail('which has left the cluster')
    if (h.liveness === 'dead' && a.nowMs - h.livenessSinceMs >= a.graceMs) return fail(`which its failure detector had seen dead for ${((a.nowMs - h.livenessSinceMs) / 1000).toFixed(1)} s (grace ${a.graceMs / 1000} s)`)
    const down = this.downSinceUs(t.host)
    if (down !== null && a.decidedUs - down >= (a.graceMs + DETECTION_BOUND_MS) * 1000) {
      return fail(`which had been down for ${((a.decidedUs - down) / 1e6).toFixed(1)} s`)
    }
  }
}

/** A rolling update being watched. */
interface Window {
  readonly replicas: number
  readonly parallelism: number
  readonly order: 'stop-first' | 'start-first'
  readonly version: number
  readonly openedUs: number
  lowest: number
  highest: number
}

/** rolling-update-bounds: see the file comment. */
export class RolloutChecker {
  /** Windows opened, and windows closed by a fault (for the run's counts). */
  opened = 0
  closedByFault = 0
  completed = 0
  private readonly windows = new Map<string, Window>()
  private readonly engines: () => ReadonlyArray<readonly [string, readonly Container[]]>
  /** Hosts under a fault now: down, cut off from the leader, or not seen alive by it. */
  private readonly faultyHosts: () => ReadonlySet<string>

  constructor(init: { engines: () => ReadonlyArray<readonly [string, readonly Container[]]>; faultyHosts: () => ReadonlySet<string> }) {
    this.engines = init.engines
    this.faultyHosts = init.faultyHosts
  }

  /** Whether a host that runs an instance of `service` is under a fault (its instances may legitimately go or double). */
  private touchedByFault(service: string): boolean {
    const faulty = this.faultyHosts()
    if (faulty.size === 0) return false
    for (const [host, engine] of this.engines()) {
      if (faulty.has(host) && engine.some((c) => running(c) && taskOfContainer(c)?.service === service)) return true
    }
    return false
  }

  /** A spec write of `service` committed: a content change from a steady service opens a window; any other change closes it. */
  specCommitted(service: string, before: ServiceRecord | null, after: ServiceRecord | null): void {
    this.windows.delete(service)
    if (before === null || after === null || after.mode !== 'replicated' || before.mode !== 'replicated') return
    if (after.replicas !== before.replicas || instanceHash(after) === instanceHash(before) || this.touchedByFault(service)) return
    const counts = this.count(service)
    // Steady: exactly the replicas, all healthy, nothing starting or extra, and the last rollout done
    // (every instance made from the content the update starts from).
    if (counts.healthy !== before.replicas || counts.running !== before.replicas || !this.allCurrent(service, before.instanceVersion)) return
    this.opened++
    this.windows.set(service, { replicas: after.replicas, parallelism: after.update.parallelism === 0 ? after.replicas : after.update.parallelism, order: after.update.order, version: after.version, openedUs: 0, lowest: counts.healthy, highest: counts.healthy })
  }

  /** After every engine change: the healthy count of every watched service must stay in bounds. */
  sample(nowUs: number): void {
    for (const [service, w] of [...this.windows]) {
      if (this.touchedByFault(service)) {
        this.closedByFault++
        this.windows.delete(service)
        continue
      }
      const { healthy: n, running: all } = this.count(service)
      w.lowest = Math.min(w.lowest, n)
      w.highest = Math.max(w.highest, n)
      // The issue's bounds are stop-first's floor and start-first's ceiling; each order keeps the other's
      // bound too (stop-first never runs more than the replicas, start-first never fewer, bar a rollback
      // that drops a retiring instance), so both are checked whatever the order.
      if (n < w.replicas - w.parallelism) {
        throw new ViolationError({ checker: 'rolling-update-bounds', atUs: nowUs, message: `service ${service}: rolling update to v${w.version} (${w.order}, parallelism ${w.parallelism}, ${w.replicas} replicas) has only ${n} healthy instances, fewer than ${w.replicas - w.parallelism}` })
      }
      if (n > w.replicas + w.parallelism) {
        throw new ViolationError({ checker: 'rolling-update-bounds', atUs: nowUs, message: `service ${service}: rolling update to v${w.version} (${w.order}, parallelism ${w.parallelism}, ${w.replicas} replicas) has ${n} healthy instances, more than ${w.replicas + w.parallelism}` })
      }
      if (n === w.replicas && all === w.replicas && this.allCurrent(service, w.version)) {
        this.completed++
        this.windows.delete(service)
      }
    }
  }

  /** Whether every running instance of `service` was made from spec `version` or later (its shoal.spec-version label). */
  private allCurrent(service: string, version: number): boolean {
    for (const [, engine] of this.engines()) {
      for (const c of engine) {
        if (!running(c) || taskOfContainer(c)?.service !== service) continue
        if (Number(c.labels['shoal.spec-version'] ?? '0') < version) return false
      }
    }
    return true
  }

  private count(service: string): { healthy: number; running: number } {
    let n = 0
    let all = 0
    for (const [, engine] of this.engines()) {
      for (const c of engine) {
        if (!running(c) || taskOfContainer(c)?.service !== service) continue
        all++
        if (healthy(c)) n++
      }
    }
    return { healthy: n, running: all }
  }
}
