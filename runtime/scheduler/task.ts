/**
 * Task records (issue 12): one per slot of a service. Pure.
 *
 * Keys (mirroring `containers/<hostPeerId>/<id>` in storage/statestore/records.ts):
 *
 *   tasks/<service>/<slot>     replicated service; slot is 1..replicas, written without padding
 *   tasks/<service>/<hostId>   global service; one per eligible host
 *   service-status/<service>   ServiceStatus: the rolling update / rebalance progress (leader only)
 *
 * The leader's scheduler writes the assignment (host, specVersion, generation, desired,
 * previous); the assigned host writes only `observed`. A new instance for the same slot (a
 * reschedule, an update, a move) bumps `generation`, so the task id in the container label
 * `shoal.task` (`<service>.<slot>.<generation>`) tells an old container from the current one.
 */
import { compareKeys } from '../../storage/statestore/keys.ts'
import { TASKS_PREFIX, TASK_STATES_PREFIX } from '../../storage/statestore/records.ts'
import { isValidOrigin } from '../../storage/statestore/validate.ts'

export { TASKS_PREFIX, TASK_STATES_PREFIX }
export const SERVICE_STATUS_PREFIX = 'service-status/'
/** `host-availability/<peerId>`: `{"availability": "active" | "drain"}`, written by `shoal host drain|activate`. */
export const HOST_AVAILABILITY_PREFIX = 'host-availability/'

/** What the scheduler wants of the task's instance. */
export type DesiredState = 'running' | 'shutdown'

/**
 * What the host last saw of the current generation:
 * - `pending`: assigned, not started yet; `starting`: running, health check not yet passing;
 * - `running`: running and healthy (or without a health check); `unhealthy`: running, failing its check;
 * - `failed`: the restart policy gave up; `complete`: exited and the policy does not restart it;
 * - `shutdown`: stopped on purpose.
 */
export type ObservedState = 'pending' | 'starting' | 'running' | 'unhealthy' | 'failed' | 'complete' | 'shutdown'

export interface Observed {
  /** The generation this observation is about (an older one says nothing of the current instance). */
  readonly generation: number
  readonly state: ObservedState
  /** Since when (ms, the host's clock as carried into the store) the state holds. */
  readonly sinceMs: number
  readonly containerId?: string
  readonly error?: string
}

/** An instance being replaced that keeps running until the new one is healthy (update order start-first). */
export interface Retiring {
  readonly host: string
  readonly generation: number
  readonly specVersion: number
}

export interface Task {
  readonly service: string
  /** `1..replicas` as a decimal string, or the host peer id for a global service. */
  readonly slot: string
  readonly generation: number
  readonly host: string
  readonly specVersion: number
  readonly desired: DesiredState
  readonly previous: Retiring | null
  readonly observed: Observed | null
  /** Why the last assignment was made (place, reschedule, migrate, update, rollback, rebalance...): shown by `service ps`. */
  readonly reason: string
  readonly createdAtMs: number
  readonly updatedAtMs: number
  /**
   * What the instance runs (spec.ts `instanceHash` of the spec it was made from). A rollout
   * replaces exactly the tasks whose instance differs from the service's, so a rollback
   * touches only the instances the failed update changed. Absent on older records.
   */
  readonly instance?: string
}

/** Progress of the service's rollout, kept by the leader. */
export type UpdateState = 'updating' | 'paused' | 'completed' | 'rolling-back' | 'rollback-paused' | 'rollback-completed'

export interface ServiceStatus {
  readonly service: string
  /** The spec version this status is about; a newer spec starts a new rollout. */
  readonly version: number
  readonly state: UpdateState
  readonly message: string
  /** `shoal service rebalance` asked for an even spread and it is not reached yet. */
  readonly rebalance: boolean
}

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const SLOT = /^[1-9][0-9]{0,3}$/
const CONTAINER_ID = /^[A-Za-z0-9_.-]{1,128}$/
const OBSERVED: readonly ObservedState[] = ['pending', 'starting', 'running', 'unhealthy', 'failed', 'complete', 'shutdown']
const UPDATE_STATES: readonly UpdateState[] = ['updating', 'paused', 'completed', 'rolling-back', 'rollback-paused', 'rollback-completed']

export function taskKey(service: string, slot: string): string {
  return `${TASKS_PREFIX}${service}/${slot}`
}

/** Prefix of one service's tasks (for a range read or a watch). */
export function serviceTasksPrefix(service: string): string {
  return `${TASKS_PREFIX}${service}/`
}

/**
 * Where host `host` reports what it sees of its instance of a slot. Kept apart from the
 * assignment (`tasks/...`) so each key has one writer, as containers/ does: the leader and
 * the host never race over one record, and ownership is checked without reading state.
 * `Task.observed` is this record, joined in by whoever reads tasks (only when its host is the
 * task's host).
 */
export function taskStateKey(host: string, service: string, slot: string): string {
  return `${TASK_STATES_PREFIX}${host}/${service}/${slot}`
}

/** Parses a task state key into its parts, or null. */
export function parseTaskStateKey(key: string): { host: string; service: string; slot: string } | null {
  if (!key.startsWith(TASK_STATES_PREFIX)) return null
  const [host, service, slot, ...rest] = key.slice(TASK_STATES_PREFIX.length).split('/')
  if (host === undefined || service === undefined || slot === undefined || rest.length > 0) return null
  return { host, service, slot }
}

export function hostAvailabilityKey(peerId: string): string {
  return `${HOST_AVAILABILITY_PREFIX}${peerId}`
}

export function serviceStatusKey(service: string): string {
  return `${SERVICE_STATUS_PREFIX}${service}`
}

/** The id put in the `shoal.task` container label. */
export function taskId(t: Pick<Task, 'service' | 'slot' | 'generation'>): string {
  return `${t.service}.${t.slot}.${t.generation}`
}

/** Tasks in key order (slots compare numerically so 2 precedes 10). */
export function compareTasks(a: Task, b: Task): number {
  if (a.service !== b.service) return compareKeys(a.service, b.service)
  const x = SLOT.test(a.slot) ? Number(a.slot) : Number.NaN
  const y = SLOT.test(b.slot) ? Number(b.slot) : Number.NaN
  if (!Number.isNaN(x) && !Number.isNaN(y)) return x - y
  return compareKeys(a.slot, b.slot)
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isGen = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1
const isShortText = (v: unknown): v is string => typeof v === 'string' && v.length <= 1024

export type TaskResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string }

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Bytes of a task, fields in a fixed order. */
export function encodeTask(t: Task): Uint8Array {
  const observed = t.observed === null ? null : {
    generation: t.observed.generation, state: t.observed.state, sinceMs: t.observed.sinceMs,
    ...(t.observed.containerId === undefined ? {} : { containerId: t.observed.containerId }),
    ...(t.observed.error === undefined ? {} : { error: t.observed.error }),
  }
  const previous = t.previous === null ? null : { host: t.previous.host, generation: t.previous.generation, specVersion: t.previous.specVersion }
  return encoder.encode(JSON.stringify({
    service: t.service, slot: t.slot, generation: t.generation, host: t.host, specVersion: t.specVersion, desired: t.desired,
    previous, observed, reason: t.reason, createdAtMs: t.createdAtMs, updatedAtMs: t.updatedAtMs,
    ...(t.instance === undefined ? {} : { instance: t.instance }),
  }))
}

function parseJson(bytes: Uint8Array): TaskResult<Obj> {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(bytes))
  } catch {
    return { ok: false, error: 'not UTF-8 JSON' }
  }
  return isObj(value) ? { ok: true, value } : { ok: false, error: 'not a JSON object' }
}

/** Reads a task stored at `key` (unknown fields ignored, known ones checked; never throws). */
export function decodeTask(bytes: Uint8Array, key?: string): TaskResult<Task> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const r = json.value
  const { service, slot, generation, host, specVersion, desired, reason, createdAtMs, updatedAtMs } = r
  if (typeof service !== 'string' || !DNS_LABEL.test(service)) return { ok: false, error: 'task service is not a lowercase DNS label' }
  // All digits means a replica slot (peer ids are never all digits): it must be 1..9999.
  if (typeof slot !== 'string' || !(/^[0-9]+$/.test(slot) ? SLOT.test(slot) : isValidOrigin(slot))) return { ok: false, error: 'task slot is neither 1..9999 nor a host peer id' }
  if (!isGen(generation)) return { ok: false, error: 'task generation must be an integer >= 1' }
  if (!isValidOrigin(host)) return { ok: false, error: 'task host is not a peer id' }
  if (!isGen(specVersion)) return { ok: false, error: 'task specVersion must be an integer >= 1' }
  if (desired !== 'running' && desired !== 'shutdown') return { ok: false, error: 'task desired must be running or shutdown' }
  if (!isShortText(reason)) return { ok: false, error: 'task reason must be a string of at most 1024 characters' }
  if (!isMs(createdAtMs) || !isMs(updatedAtMs)) return { ok: false, error: 'task times must be non-negative integer milliseconds' }
  let previous: Retiring | null = null
  if (r['previous'] !== undefined && r['previous'] !== null) {
    const p = r['previous']
    if (!isObj(p) || !isValidOrigin(p['host']) || !isGen(p['generation']) || !isGen(p['specVersion'])) return { ok: false, error: 'task previous is invalid' }
    previous = { host: p['host'], generation: p['generation'], specVersion: p['specVersion'] }
  }
  let observed: Observed | null = null
  if (r['observed'] !== undefined && r['observed'] !== null) {
    const o = r['observed']
    if (!isObj(o)) return { ok: false, error: 'task observed must be an object' }
    const parsed = parseObserved(o)
    if (!parsed.ok) return parsed
    observed = parsed.value
  }
  if (key !== undefined && key !== taskKey(service, slot)) return { ok: false, error: `task stored at ${key} names ${taskKey(service, slot)}` }
  const instance = r['instance']
  if (instance !== undefined && (typeof instance !== 'string' || !/^[0-9a-f]{1,64}$/.test(instance))) return { ok: false, error: 'task instance must be a hex digest' }
  return { ok: true, value: { service, slot, generation, host, specVersion, desired, previous, observed, reason, createdAtMs, updatedAtMs, ...(instance === undefined ? {} : { instance }) } }
}

/** Bytes of a host's observation (a `task-states/` value). */
export function encodeObserved(o: Observed): Uint8Array {
  return encoder.encode(JSON.stringify({
    generation: o.generation, state: o.state, sinceMs: o.sinceMs,
    ...(o.containerId === undefined ? {} : { containerId: o.containerId }),
    ...(o.error === undefined ? {} : { error: o.error }),
  }))
}

/** Reads a `task-states/` value (never throws). */
export function decodeObserved(bytes: Uint8Array): TaskResult<Observed> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  return parseObserved(json.value)
}

function parseObserved(o: Obj): TaskResult<Observed> {
  const state = OBSERVED.find((s) => s === o['state'])
  if (!isGen(o['generation']) || state === undefined || !isMs(o['sinceMs'])) return { ok: false, error: 'task observed needs generation, a known state and sinceMs' }
  if (o['containerId'] !== undefined && (typeof o['containerId'] !== 'string' || !CONTAINER_ID.test(o['containerId']))) return { ok: false, error: 'task observed containerId is invalid' }
  if (o['error'] !== undefined && !isShortText(o['error'])) return { ok: false, error: 'task observed error must be a string of at most 1024 characters' }
  return {
    ok: true,
    value: {
      generation: o['generation'], state, sinceMs: o['sinceMs'],
      ...(typeof o['containerId'] === 'string' ? { containerId: o['containerId'] } : {}),
      ...(typeof o['error'] === 'string' ? { error: o['error'] } : {}),
    },
  }
}

/** Whether a host is drained, from its `host-availability/` value (unreadable = active). */
export function decodeDrained(bytes: Uint8Array): boolean {
  const json = parseJson(bytes)
  return json.ok && json.value['availability'] === 'drain'
}

export function encodeAvailability(drain: boolean): Uint8Array {
  return encoder.encode(JSON.stringify({ availability: drain ? 'drain' : 'active' }))
}

export function encodeServiceStatus(s: ServiceStatus): Uint8Array {
  return encoder.encode(JSON.stringify({ service: s.service, version: s.version, state: s.state, message: s.message, rebalance: s.rebalance }))
}

export function decodeServiceStatus(bytes: Uint8Array): TaskResult<ServiceStatus> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const { service, version, state, message, rebalance } = json.value
  if (typeof service !== 'string' || !DNS_LABEL.test(service)) return { ok: false, error: 'status service is not a lowercase DNS label' }
  if (!isGen(version)) return { ok: false, error: 'status version must be an integer >= 1' }
  const s = UPDATE_STATES.find((u) => u === state)
  if (s === undefined) return { ok: false, error: `status state must be one of ${UPDATE_STATES.join(', ')}` }
  if (!isShortText(message)) return { ok: false, error: 'status message must be a string of at most 1024 characters' }
  if (typeof rebalance !== 'boolean') return { ok: false, error: 'status rebalance must be true or false' }
  return { ok: true, value: { service, version, state: s, message, rebalance } }
}
