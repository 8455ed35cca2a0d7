/**
 * Which running containers serve their service (pure, over a StateStore replica): the one rule
 * DNS answers (`SERVICE.shoal`) and link targets (runtime/links) share, so a link never sends a
 * connection to an instance DNS has already taken out of its service.
 */
import type { Container, StateStore } from '../storage/statestore/index.ts'
import { TASKS_PREFIX, decodeTask, taskKey, type Task } from './scheduler/task.ts'
import { TASK_LABEL } from '../storage/statestore/container-labels.ts'

/**
 * Ids of containers the scheduler started whose task no longer wants them (scaled down,
 * replaced by an update, moved away, removed): they leave their service's name the moment
 * that is committed, while their host drains and then stops them, so a rolling update sends
 * no new client to an instance about to stop.
 */
export function outOfServiceIds(store: Pick<StateStore, 'range'>, containers: readonly Container[]): string[] {
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

/**
 * Whether a running container answers for its service: not one still starting or failing its
 * health check (moby#23970), nor one its task no longer wants (it is draining).
 */
export function isServing(container: Pick<Container, 'id' | 'health'>, outOfService: ReadonlySet<string>): boolean {
  return container.health !== 'starting' && container.health !== 'unhealthy' && !outOfService.has(container.id)
}
