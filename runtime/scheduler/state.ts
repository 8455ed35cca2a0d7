/**
 * What the scheduler reads from a replica: services, rollout statuses, tasks joined with what
 * their hosts observe, host labels and drain flags, and the modRevision of every key it may
 * write (so each proposal is guarded against a state that moved on). Pure over a StateStore:
 * the daemon's leader loop and the simulator call it the same way.
 */
import { CONTAINERS_PREFIX, HOSTS_PREFIX, SERVICES_PREFIX, parseContainer, parseHost, type Container, type Host, type StateStore } from '../../storage/statestore/index.ts'
import { decodeServiceRecord, type ServiceRecord } from './spec.ts'
import type { SchedHost } from './feasible.ts'
import {
  HOST_AVAILABILITY_PREFIX, SERVICE_STATUS_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX,
  decodeDrained, decodeObserved, decodeServiceStatus, decodeTask, parseTaskStateKey, taskStateKey,
  type Observed, type ServiceStatus, type Task,
} from './task.ts'

export interface SchedulerState {
  readonly services: ServiceRecord[]
  readonly statuses: ServiceStatus[]
  /** Tasks with `observed` set from their own host's report (another host's report is ignored). */
  readonly tasks: Task[]
  readonly hosts: Host[]
  readonly drained: ReadonlySet<string>
  readonly containers: Container[]
  /** Every task-state record, by key (the leader clears those of hosts gone for good). */
  readonly observed: ReadonlyMap<string, Observed>
  /** modRevision of each key read (tasks, statuses, services); a key absent here is absent from the store. */
  readonly revisions: ReadonlyMap<string, number>
  /** Records that did not decode, as `key: error` (shown, never acted on). */
  readonly unreadable: string[]
}

/** Reads the scheduler's whole view from `store`. Bad records are skipped and listed, never thrown. */
export function readSchedulerState(store: StateStore): SchedulerState {
  const revisions = new Map<string, number>()
  const unreadable: string[] = []
  const services: ServiceRecord[] = []
  for (const kv of store.range(SERVICES_PREFIX).kvs) {
    revisions.set(kv.key, kv.modRevision)
    const r = decodeServiceRecord(kv.value)
    if (r.ok) services.push(r.value)
    else unreadable.push(`${kv.key}: ${r.errors.map((e) => `${e.path} ${e.message}`).join('; ')}`)
  }
  const statuses: ServiceStatus[] = []
  for (const kv of store.range(SERVICE_STATUS_PREFIX).kvs) {
    revisions.set(kv.key, kv.modRevision)
    const r = decodeServiceStatus(kv.value)
    if (r.ok) statuses.push(r.value)
    else unreadable.push(`${kv.key}: ${r.error}`)
  }
  const observed = new Map<string, Observed>()
  for (const kv of store.range(TASK_STATES_PREFIX).kvs) {
    const r = decodeObserved(kv.value)
    if (r.ok && parseTaskStateKey(kv.key) !== null) observed.set(kv.key, r.value)
  }
  const tasks: Task[] = []
  for (const kv of store.range(TASKS_PREFIX).kvs) {
    revisions.set(kv.key, kv.modRevision)
    const r = decodeTask(kv.value, kv.key)
    if (!r.ok) {
      unreadable.push(`${kv.key}: ${r.error}`)
      continue
    }
    tasks.push({ ...r.value, observed: observed.get(taskStateKey(r.value.host, r.value.service, r.value.slot)) ?? null })
  }
  const hosts: Host[] = []
  for (const kv of store.range(HOSTS_PREFIX).kvs) {
    const r = parseHost(kv.value)
    if (r.ok) hosts.push(r.record)
  }
  const drained = new Set<string>()
  for (const kv of store.range(HOST_AVAILABILITY_PREFIX).kvs) {
    if (decodeDrained(kv.value)) drained.add(kv.key.slice(HOST_AVAILABILITY_PREFIX.length))
  }
  const containers: Container[] = []
  for (const kv of store.range(CONTAINERS_PREFIX).kvs) {
    const r = parseContainer(kv.value)
    if (r.ok) containers.push(r.record)
  }
  return { services, statuses, tasks, hosts, drained, containers, observed, revisions, unreadable }
}

/** A member as the failure detector sees it, with when it entered that state (ms). */
export interface MemberLiveness {
  readonly peerId: string
  readonly state: SchedHost['liveness']
  readonly stateSinceMs: number
}

/**
 * The hosts as the leader's scheduler sees them: each host record with its liveness from the
 * failure detector. A host the leader has not heard of yet counts as dead since the leader
 * took over, and no state counts from before then: a fresh leader must not move every task
 * before SWIM has told it who is alive. The daemon's loop and the simulator both call this.
 */
export function schedulerHosts(state: Pick<SchedulerState, 'hosts' | 'drained'>, members: readonly MemberLiveness[], leaderSinceMs: number): SchedHost[] {
  const byId = new Map(members.map((m) => [m.peerId, m]))
  return state.hosts.map((h) => {
    const m = byId.get(h.peerId)
    return {
      id: h.peerId,
      name: h.name,
      labels: h.labels ?? {},
      cpus: h.cpus,
      memoryBytes: h.memoryBytes,
      liveness: m?.state ?? 'dead',
      livenessSinceMs: m === undefined ? leaderSinceMs : Math.max(m.stateSinceMs, leaderSinceMs),
      drained: state.drained.has(h.peerId),
    }
  })
}
