/** Reads what the DNS zone is built from out of a StateStore replica (pure). */
import { CONTAINERS_PREFIX, HOSTS_PREFIX, parseContainer, parseHost, type Container, type Host, type StateStore } from '../../storage/statestore/index.ts'
import type { ZoneRecords } from './zone-build.ts'
import { TASKS_PREFIX, decodeTask, taskKey, type Task } from '../../runtime/scheduler/task.ts'
import { TASK_LABEL } from '../../runtime/container-labels.ts'

/** Every container and host record of `store`, and its revision. Records that do not parse are skipped. */
export function zoneRecordsFromStore(store: Pick<StateStore, 'range' | 'revision'>): ZoneRecords {
  const containers: Container[] = []
  for (const kv of store.range(CONTAINERS_PREFIX).kvs) {
    const parsed = parseContainer(kv.value)
    // Validated on write; a newer peer's record this version cannot read is left out.
    if (parsed.ok) containers.push(parsed.record)
  }
  const hosts: Host[] = []
  for (const kv of store.range(HOSTS_PREFIX).kvs) {
    const parsed = parseHost(kv.value)
    if (parsed.ok) hosts.push(parsed.record)
  }
  return { containers, hosts, revision: store.revision, outOfService: outOfService(store, containers) }
}

/**
 * Ids of containers the scheduler started whose task no longer wants them (scaled down,
 * replaced by an update, moved away, removed): they leave their service's name the moment
 * that is committed, while their host drains and then stops them, so a rolling update sends
 * no new client to an instance about to stop.
 */
function outOfService(store: Pick<StateStore, 'range'>, containers: readonly Container[]): string[] {
  const managed = containers.filter((c) => Object.hasOwn(c.labels, TASK_LABEL))
  if (managed.length === 0) return []
  const tasks = new Map<string, Task>()
  for (const kv of store.range(TASKS_PREFIX).kvs) {
    const r = decodeTask(kv.value, kv.key)
    if (r.ok) tasks.set(kv.key, r.value)
  }
  const out: string[] = []
  for (const c of managed) {
    const m = /^([a-z0-9-]+)\.([^.]+)\.([1-9][0-9]*)$/.exec(c.labels[TASK_LABEL] ?? '')
    const t = m === null ? undefined : tasks.get(taskKey(m[1] as string, m[2] as string))
    const generation = Number(m?.[3])
    const current = t !== undefined && t.desired === 'running' &&
      ((t.host === c.host && t.generation === generation) || (t.previous !== null && t.previous.host === c.host && t.previous.generation === generation))
    if (!current) out.push(c.id)
  }
  return out
}
