/**
 * Service and task changes as `shoal events` lines, from this peer's replica: every peer shows
 * the same changes in commit order, whichever peer leads or made them.
 */
import type { WatchEvent } from '../storage/statestore/index.ts'
import { SERVICES_PREFIX } from '../storage/statestore/index.ts'
import { decodeServiceRecord } from '../runtime/scheduler/spec.ts'
import { TASKS_PREFIX, TASK_STATES_PREFIX, decodeObserved, decodeTask, parseTaskStateKey, taskId } from '../runtime/scheduler/task.ts'

/** A service spec was written or removed. */
export interface ServiceEvent {
  type: 'service'
  action: 'created' | 'updated' | 'removed'
  service: string
  version: number | null
  revision: number
  time: string
}

/** The scheduler (re)assigned or stopped a task, or its host reported a new state. */
export interface TaskEvent {
  type: 'task'
  /** A scheduler decision (place, migrate, update, retire, stopped...) or an observed state (running, failed...). */
  action: string
  service: string
  slot: string
  task: string | null
  host: string | null
  error: string | null
  revision: number
  time: string
}

/** The events one applied change gives (none for keys outside these buckets). */
export function serviceEventsOf(e: WatchEvent, nowIso: string): Array<ServiceEvent | TaskEvent> {
  const key = e.kv.key
  const revision = e.kv.modRevision
  if (key.startsWith(SERVICES_PREFIX)) {
    const service = key.slice(SERVICES_PREFIX.length)
    if (e.type === 'delete') return [{ type: 'service', action: 'removed', service, version: null, revision, time: nowIso }]
    const r = decodeServiceRecord(e.kv.value)
    return [{ type: 'service', action: e.prevKv === undefined ? 'created' : 'updated', service, version: r.ok ? r.value.version : null, revision, time: nowIso }]
  }
  if (key.startsWith(TASKS_PREFIX)) {
    const [service = '', slot = ''] = key.slice(TASKS_PREFIX.length).split('/')
    if (e.type === 'delete') return [{ type: 'task', action: 'stopped', service, slot, task: null, host: null, error: null, revision, time: nowIso }]
    const r = decodeTask(e.kv.value, key)
    if (!r.ok) return []
    return [{ type: 'task', action: r.value.reason, service, slot, task: taskId(r.value), host: r.value.host, error: null, revision, time: nowIso }]
  }
  if (key.startsWith(TASK_STATES_PREFIX) && e.type === 'put') {
    const k = parseTaskStateKey(key)
    const r = decodeObserved(e.kv.value)
    if (k === null || !r.ok) return []
    return [{
      type: 'task', action: r.value.state, service: k.service, slot: k.slot,
      task: taskId({ service: k.service, slot: k.slot, generation: r.value.generation }), host: k.host, error: r.value.error ?? null, revision, time: nowIso,
    }]
  }
  return []
}

/** The prefixes whose changes become service and task events. */
export const SERVICE_EVENT_PREFIXES = [SERVICES_PREFIX, TASKS_PREFIX, TASK_STATES_PREFIX]
