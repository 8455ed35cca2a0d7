/**
 * What a host's agent reads from its replica: the tasks assigned to it (or retiring on it),
 * every service record, and its own reports. Pure over a StateStore: the daemon's driver
 * (node/task-agent.ts) and the simulator read the same way.
 */
import { SERVICES_PREFIX, type StateStore } from '../../storage/statestore/index.ts'
import { decodeServiceRecord, type ServiceRecord } from '../scheduler/spec.ts'
import { TASKS_PREFIX, TASK_STATES_PREFIX, decodeObserved, decodeTask, type Observed, type Task } from '../scheduler/task.ts'

/**
 * Stands in for a task-state value that does not decode: generation 0 matches no task, so the
 * core overwrites it with a true report, or deletes it when its slot is not assigned here.
 */
export const UNREADABLE_REPORT: Observed = Object.freeze({ generation: 0, state: 'pending', sinceMs: 0 })

export interface AgentState {
  /** Tasks whose host, or whose retiring instance's host, is this one (observed: null). */
  readonly tasks: Task[]
  readonly services: Map<string, ServiceRecord>
  /** This host's reports, by task-state key. */
  readonly reported: Map<string, Observed>
}

export function readAgentState(store: Pick<StateStore, 'range'>, selfId: string): AgentState {
  const tasks: Task[] = []
  for (const kv of store.range(TASKS_PREFIX).kvs) {
    const r = decodeTask(kv.value, kv.key)
    if (!r.ok) continue
    if (r.value.host === selfId || r.value.previous?.host === selfId) tasks.push({ ...r.value, observed: null })
  }
  const services = new Map<string, ServiceRecord>()
  for (const kv of store.range(SERVICES_PREFIX).kvs) {
    const r = decodeServiceRecord(kv.value)
    if (r.ok && kv.key === `${SERVICES_PREFIX}${r.value.name}`) services.set(r.value.name, r.value)
  }
  const reported = new Map<string, Observed>()
  for (const kv of store.range(`${TASK_STATES_PREFIX}${selfId}/`).kvs) {
    const r = decodeObserved(kv.value)
    reported.set(kv.key, r.ok ? r.value : UNREADABLE_REPORT)
  }
  return { tasks, services, reported }
}
