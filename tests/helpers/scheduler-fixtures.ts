/**
 * Builders and a tiny deterministic cluster for the scheduler's unit tests: applies the
 * reconciler's changes as the daemon would write them, and plays an ideal host agent that
 * starts each assigned instance (healthy at once, or after `healthyAfterMs`).
 */
import type { Container } from '../../storage/statestore/index.ts'
import type { SchedHost } from '../../runtime/scheduler/feasible.ts'
import { reconcile, type Change } from '../../runtime/scheduler/reconcile.ts'
import { nextRecord, validateSpec, type ServiceRecord } from '../../runtime/scheduler/spec.ts'
import { taskKey, type ObservedState, type ServiceStatus, type Task } from '../../runtime/scheduler/task.ts'

export function host(id: string, over: Partial<SchedHost> = {}): SchedHost {
  return { id, name: id, labels: {}, cpus: 4, memoryBytes: 8 * 2 ** 30, liveness: 'alive', livenessSinceMs: 0, drained: false, ...over }
}

/** A validated spec record at version 1 (throws on a bad fixture: a test bug). */
export function service(input: Record<string, unknown>): ServiceRecord {
  const v = validateSpec({ image: 'nginx:1.27', ...input })
  if (!v.ok) throw new Error(`bad fixture: ${JSON.stringify(v.errors)}`)
  const next = nextRecord(null, v.value)
  if (!next.changed) throw new Error('unreachable')
  return next.record
}

/** `record` changed by `over`, at the next version (as `shoal service update` writes it). */
export function updated(record: ServiceRecord, over: Record<string, unknown>): ServiceRecord {
  const { version: _v, instanceVersion: _i, previous: _p, ...spec } = record
  const v = validateSpec({ ...spec, ...over })
  if (!v.ok) throw new Error(`bad fixture: ${JSON.stringify(v.errors)}`)
  const next = nextRecord(record, v.value)
  if (!next.changed) throw new Error('fixture update changes nothing')
  return next.record
}

export function task(svc: string, slot: string | number, hostId: string, over: Partial<Task> = {}, observed: ObservedState | null = 'running', sinceMs = 0): Task {
  const generation = over.generation ?? 1
  return {
    service: svc, slot: String(slot), generation, host: hostId, specVersion: 1, desired: 'running', previous: null,
    observed: observed === null ? null : { generation, state: observed, sinceMs }, reason: 'place', createdAtMs: 0, updatedAtMs: 0, ...over,
  }
}

export function container(id: string, hostId: string, state: Container['state'] = 'running'): Container {
  return { id, name: `c-${id}`, image: 'nginx:1.27', host: hostId, hostName: hostId, ips: [], ports: [], labels: {}, state }
}

/** The cluster as the store would hold it. */
export class Cluster {
  services = new Map<string, ServiceRecord>()
  statuses = new Map<string, ServiceStatus>()
  tasks = new Map<string, Task>()
  hosts: SchedHost[]
  containers: Container[] = []
  nowMs = 0
  deadGraceMs = 3000
  /** How long a new instance takes to turn healthy (the agent's simulated start). */
  healthyAfterMs = 0
  /** Instances (service/slot/generation) the agent will report failed. */
  failing: (t: Task) => boolean = () => false

  constructor(hosts: SchedHost[], services: ServiceRecord[] = [], tasks: Task[] = []) {
    this.hosts = hosts
    for (const s of services) this.services.set(s.name, s)
    for (const t of tasks) this.tasks.set(taskKey(t.service, t.slot), t)
  }

  decide(): Change[] {
    return reconcile({
      services: [...this.services.values()], statuses: [...this.statuses.values()], tasks: [...this.tasks.values()],
      hosts: this.hosts, containers: this.containers, nowMs: this.nowMs, deadGraceMs: this.deadGraceMs,
    })
  }

  apply(changes: readonly Change[]): void {
    for (const c of changes) {
      switch (c.kind) {
        case 'place': case 'migrate': case 'update': case 'retire':
          this.tasks.set(c.key, c.task)
          break
        case 'stop':
          this.tasks.delete(c.key)
          break
        case 'mark-lost':
          this.containers = this.containers.map((x) => (x.id === c.container.id && x.host === c.container.host ? c.container : x))
          break
        case 'set-status':
          this.statuses.set(c.status.service, c.status)
          break
        case 'rollback':
          this.services.set(c.service, c.record)
          break
      }
    }
  }

  /** The ideal agent: every live host starts its assigned instances; the healthy ones report running. */
  agent(): void {
    for (const [key, t] of this.tasks) {
      const h = this.hosts.find((x) => x.id === t.host)
      if (h === undefined || h.liveness !== 'alive') continue
      const obs = t.observed !== null && t.observed.generation === t.generation ? t.observed : null
      if (obs === null) {
        const state: ObservedState = this.failing(t) ? 'failed' : this.healthyAfterMs === 0 ? 'running' : 'starting'
        this.tasks.set(key, { ...t, observed: { generation: t.generation, state, sinceMs: this.nowMs } })
      } else if (obs.state === 'starting' && this.nowMs - obs.sinceMs >= this.healthyAfterMs) {
        this.tasks.set(key, { ...t, observed: { generation: t.generation, state: 'running', sinceMs: this.nowMs } })
      }
    }
  }

  /** Instances running now for `svc` (current ones that started, plus retiring ones still kept). */
  instances(svc: string): { running: number; healthy: number } {
    let running = 0
    let healthy = 0
    for (const t of this.tasks.values()) {
      if (t.service !== svc) continue
      const obs = t.observed !== null && t.observed.generation === t.generation ? t.observed.state : 'pending'
      if (obs === 'running' || obs === 'starting' || obs === 'unhealthy') running++
      if (obs === 'running') healthy++
      // A retiring instance was running and healthy when it was replaced, and runs until retired.
      if (t.previous !== null) {
        running++
        healthy++
      }
    }
    return { running, healthy }
  }

  /** Decide, apply, run the agent; returns the changes. */
  step(advanceMs: number): Change[] {
    const changes = this.decide()
    this.apply(changes)
    this.agent()
    this.nowMs += advanceMs
    return changes
  }

  /** Steps until a step changes nothing (at most `max`), returning the number of steps taken. */
  converge(advanceMs: number, max = 500): number {
    for (let i = 0; i < max; i++) {
      const changes = this.decide()
      const before = JSON.stringify([...this.tasks.entries()])
      this.apply(changes)
      this.agent()
      this.nowMs += advanceMs
      if (changes.length === 0 && before === JSON.stringify([...this.tasks.entries()])) return i
    }
    throw new Error(`no fixed point after ${max} steps`)
  }

  tasksOf(svc: string): Task[] {
    return [...this.tasks.values()].filter((t) => t.service === svc)
  }
}
