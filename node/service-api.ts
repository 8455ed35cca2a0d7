/**
 * The admin API's services and host-availability endpoints: validates what users send,
 * writes specs through Raft (guarded so two concurrent writers cannot silently overwrite each
 * other), and shapes the listings of the command contract (`service ls`, `service ps`).
 */
import { ApiError } from './api-server.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import { serviceKey, type Compare, type TxnOp } from '../storage/statestore/index.ts'
import { readSchedulerState, type SchedulerState } from '../runtime/scheduler/state.ts'
import { decodeServiceRecord, encodeServiceRecord, instanceHash, nextRecord, rollbackRecord, specOf, validateSpec, type ServiceRecord, type ServiceSpec } from '../runtime/scheduler/spec.ts'
import { encodeAvailability, encodeServiceStatus, hostAvailabilityKey, serviceStatusKey, taskId, type ServiceStatus, type Task } from '../runtime/scheduler/task.ts'
import { publishClashes } from '../runtime/links/mesh.ts'

/** `shoal service ls --json` rows (the command contract's fields first). */
export interface ServiceRow {
  name: string
  mode: 'replicated' | 'global'
  /** Desired instances (global: one per host with a task). */
  replicas: number
  /** Instances running (healthy or not). */
  running: number
  /** Instances running and passing their health check (or without one). */
  healthy: number
  image: string
  ports: number[]
  /** Published ports: `ingress` ones are answered on every host (the routing mesh), `host` ones where an instance runs. */
  published: Array<{ published: number; target: number; protocol: 'tcp' | 'udp'; mode: 'ingress' | 'host' }>
  updateState: ServiceStatus['state'] | null
  version: number
  /** Every wanted instance runs the current spec, healthy, and nothing is left to retire or roll. */
  converged: boolean
  /** Why the rollout or placement is stuck, when the scheduler says. */
  message: string
}

/** `shoal service ps NAME --json` rows. */
export interface TaskRow {
  task: string
  slot: string
  host: string
  hostName: string | null
  state: string
  desiredState: string
  containerId: string | null
  specVersion: number
  error: string | null
  reason: string
  generation: number
  /** Set on a row for an instance kept running until its replacement is healthy (start-first). */
  retiring?: boolean
}

/** What a write did. */
export interface ServiceWriteResult {
  name: string
  version: number
  changed: boolean
  revision: number
}

const OBSERVED_RUNNING = new Set(['running', 'starting', 'unhealthy'])

function observedOf(t: Task): string {
  return t.observed !== null && t.observed.generation === t.generation ? t.observed.state : 'pending'
}

function specErrors(prefix: string, errors: readonly { path: string; message: string }[]): string {
  return `${prefix}: ${errors.map((e) => (e.path === '' ? e.message : `${e.path}: ${e.message}`)).join('; ')}`
}

export class ServiceApi {
  private readonly kv: KvService
  private readonly machine: StoreMachine

  constructor(kv: KvService, machine: StoreMachine) {
    this.kv = kv
    this.machine = machine
  }

  private state(): SchedulerState {
    return readSchedulerState(this.machine.store)
  }

  private record(name: string): { record: ServiceRecord | null; modRevision: number } {
    const kv = this.machine.store.get(serviceKey(name))
    if (kv === null) return { record: null, modRevision: 0 }
    const r = decodeServiceRecord(kv.value)
    if (!r.ok) throw new ApiError(500, specErrors(`the stored service ${name} does not decode`, r.errors))
    return { record: r.value, modRevision: kv.modRevision }
  }

  private existing(name: string): { record: ServiceRecord; modRevision: number } {
    const r = this.record(name)
    if (r.record === null) throw new ApiError(404, `no service named ${JSON.stringify(name)}; 'shoal service ls' lists them`)
    return { record: r.record, modRevision: r.modRevision }
  }

  list(): ServiceRow[] {
    const state = this.state()
    const status = new Map(state.statuses.map((s) => [s.service, s]))
    return state.services.map((s) => {
      const tasks = state.tasks.filter((t) => t.service === s.name && t.desired === 'running')
      const states = tasks.map(observedOf)
      const st = status.get(s.name)
      const updateState = st?.version === s.version ? st.state : null
      const instance = instanceHash(s)
      // Current: runs the spec's content (reconcile.ts decides the same way).
      const current = (t: Task): boolean => (t.instance !== undefined ? t.instance === instance : t.specVersion >= s.instanceVersion)
      const converged = (s.mode === 'global' || tasks.length === s.replicas) &&
        tasks.every((t) => current(t) && t.previous === null && observedOf(t) === 'running') &&
        updateState !== 'updating' && updateState !== 'rolling-back' && st?.rebalance !== true
      return {
        name: s.name,
        mode: s.mode,
        replicas: s.mode === 'global' ? tasks.length : s.replicas,
        running: states.filter((x) => OBSERVED_RUNNING.has(x)).length,
        healthy: states.filter((x) => x === 'running').length,
        image: s.image,
        ports: [...s.ports],
        published: s.published.map((x) => ({ published: x.published, target: x.target, protocol: x.protocol, mode: x.mode })),
        updateState,
        version: s.version,
        converged,
        message: st?.message ?? '',
      }
    })
  }

  inspect(name: string): { service: ServiceRecord; status: ServiceStatus | null; tasks: TaskRow[] } {
    const { record } = this.existing(name)
    const state = this.state()
    return { service: record, status: state.statuses.find((s) => s.service === name) ?? null, tasks: this.rows(state, name) }
  }

  ps(name: string): TaskRow[] {
    this.existing(name)
    return this.rows(this.state(), name)
  }

  private rows(state: SchedulerState, name: string): TaskRow[] {
    const hostName = new Map(state.hosts.map((h) => [h.peerId, h.name]))
    const rows: TaskRow[] = []
    for (const t of state.tasks.filter((x) => x.service === name)) {
      const current = t.observed !== null && t.observed.generation === t.generation ? t.observed : null
      rows.push({
        task: taskId(t), slot: t.slot, host: t.host, hostName: hostName.get(t.host) ?? null, state: observedOf(t), desiredState: t.desired,
        containerId: current?.containerId ?? null, specVersion: t.specVersion, error: current?.error ?? null, reason: t.reason, generation: t.generation,
      })
      if (t.previous !== null) {
        const p = t.previous
        rows.push({
          task: taskId({ service: t.service, slot: t.slot, generation: p.generation }), slot: t.slot, host: p.host, hostName: hostName.get(p.host) ?? null,
          state: 'running', desiredState: 'shutdown', containerId: null, specVersion: p.specVersion, error: null, reason: 'retiring', generation: p.generation, retiring: true,
        })
      }
    }
    return rows
  }

  /** Validates one spec from a request body. */
  parseSpec(input: unknown): ServiceSpec {
    const r = validateSpec(input)
    if (!r.ok) throw new ApiError(400, specErrors('invalid service spec', r.errors))
    return r.value
  }

  /**
   * Writes specs (create, update, apply): all or nothing, each guarded by the modRevision it
   * was read at, so a concurrent writer makes this fail (409, retry) rather than be overwritten.
   * `create` refuses a name that exists; `update` one that does not. An unchanged spec writes nothing.
   */
  async write(specs: readonly ServiceSpec[], mode: 'create' | 'update' | 'apply', prune = false): Promise<ServiceWriteResult[]> {
    const names = new Set<string>()
    for (const s of specs) {
      if (names.has(s.name)) throw new ApiError(400, `service ${s.name} is given twice`)
      names.add(s.name)
    }
    const compare: Compare[] = []
    const ops: TxnOp[] = []
    const results: Omit<ServiceWriteResult, 'revision'>[] = []
    for (const spec of specs) {
      const { record, modRevision } = this.record(spec.name)
      if (mode === 'create' && record !== null) throw new ApiError(409, `service ${spec.name} exists; change it with 'shoal service update' or 'shoal service apply'`)
      if (mode === 'update' && record === null) throw new ApiError(404, `no service named ${JSON.stringify(spec.name)}; create it with 'shoal service create'`)
      const next = nextRecord(record, spec)
      compare.push({ target: 'modRevision', key: serviceKey(spec.name), op: '=', value: modRevision })
      if (!next.changed) {
        results.push({ name: spec.name, version: record?.version ?? 0, changed: false })
        continue
      }
      ops.push({ type: 'put', key: serviceKey(spec.name), value: encodeServiceRecord(next.record) })
      results.push({ name: spec.name, version: next.record.version, changed: true })
    }
    if (prune) {
      for (const s of this.state().services) {
        if (names.has(s.name)) continue
        compare.push({ target: 'modRevision', key: serviceKey(s.name), op: '=', value: this.record(s.name).modRevision })
        ops.push({ type: 'delete', key: serviceKey(s.name) })
        results.push({ name: s.name, version: s.version, changed: true })
      }
    }
    if (ops.length === 0) return results.map((r) => ({ ...r, revision: this.machine.store.revision }))
    compare.push(...this.checkPublished(specs, prune))
    const r = await this.kv.write({ type: 'txn', compare, success: ops, failure: [] })
    if (r.response.type === 'txn' && !r.response.succeeded) throw new ApiError(409, 'a service changed while this write was prepared; run the command again')
    return results.map((x) => ({ ...x, revision: r.response.revision }))
  }

  /**
   * Refuses (409) a write whose published ports clash with another service's (runtime/links/mesh.ts
   * `publishClashes`); returns guards on the other publishing services, so one that changes
   * meanwhile makes the write fail and be retried rather than slip a clash in.
   */
  private checkPublished(specs: readonly ServiceSpec[], prune: boolean): Compare[] {
    const written = new Map(specs.map((s) => [s.name, s]))
    const others = this.state().services.filter((s) => !written.has(s.name) && !prune)
    const clashes = publishClashes([...others, ...specs], new Set(written.keys()))
    if (clashes.length > 0) throw new ApiError(409, clashes.join('; '))
    return others.filter((s) => s.published.length > 0).map((s) => ({ target: 'modRevision', key: serviceKey(s.name), op: '=', value: this.record(s.name).modRevision }))
  }

  /** `service scale NAME=N...`: replicas only, the rest of each spec kept. */
  async scale(scales: Readonly<Record<string, number>>): Promise<ServiceWriteResult[]> {
    const specs: ServiceSpec[] = []
    for (const [name, replicas] of Object.entries(scales)) {
      const { record } = this.existing(name)
      if (record.mode === 'global') throw new ApiError(400, `service ${name} is global (one instance per eligible host): it cannot be scaled`)
      specs.push(this.parseSpec({ ...specOf(record), replicas }))
    }
    return this.write(specs, 'update')
  }

  /** `service rollback NAME`: the previous spec as a new version, rolled out under the rollback config. */
  async rollback(name: string): Promise<ServiceWriteResult> {
    const { record, modRevision } = this.existing(name)
    const back = rollbackRecord(record)
    if (back === null) throw new ApiError(409, `service ${name} has no previous spec to roll back to`)
    const guards = this.checkPublished([back], false)
    const status: ServiceStatus = { service: name, version: back.version, state: 'rolling-back', message: `manual rollback to the spec of version ${record.previous?.version ?? '?'}`, rebalance: false }
    const r = await this.kv.write({
      type: 'txn',
      compare: [{ target: 'modRevision', key: serviceKey(name), op: '=', value: modRevision }, ...guards],
      success: [{ type: 'put', key: serviceKey(name), value: encodeServiceRecord(back) }, { type: 'put', key: serviceStatusKey(name), value: encodeServiceStatus(status) }],
      failure: [],
    })
    if (r.response.type === 'txn' && !r.response.succeeded) throw new ApiError(409, `service ${name} changed meanwhile; run the command again`)
    return { name, version: back.version, changed: true, revision: r.response.revision }
  }

  /** `service rebalance NAME`: asks the scheduler to even out the spread, batch by batch. */
  async rebalance(name: string): Promise<ServiceWriteResult> {
    const { record } = this.existing(name)
    const state = this.state()
    const current = state.statuses.find((s) => s.service === name)
    const status: ServiceStatus = current === undefined
      ? { service: name, version: record.version, state: 'completed', message: 'rebalance requested', rebalance: true }
      : { ...current, rebalance: true, message: 'rebalance requested' }
    const key = serviceStatusKey(name)
    const r = await this.kv.write({
      type: 'txn',
      compare: [{ target: 'modRevision', key, op: '=', value: state.revisions.get(key) ?? 0 }],
      success: [{ type: 'put', key, value: encodeServiceStatus(status) }],
      failure: [],
    })
    if (r.response.type === 'txn' && !r.response.succeeded) throw new ApiError(409, `service ${name}'s rollout moved on meanwhile; run the command again`)
    return { name, version: record.version, changed: true, revision: r.response.revision }
  }

  /** `service rm NAME`: the scheduler then stops every instance (with the grace period). */
  async remove(name: string): Promise<ServiceWriteResult> {
    const { record, modRevision } = this.existing(name)
    const r = await this.kv.write({
      type: 'txn',
      compare: [{ target: 'modRevision', key: serviceKey(name), op: '=', value: modRevision }],
      success: [{ type: 'delete', key: serviceKey(name) }, { type: 'delete', key: serviceStatusKey(name) }],
      failure: [],
    })
    if (r.response.type === 'txn' && !r.response.succeeded) throw new ApiError(409, `service ${name} changed meanwhile; run the command again`)
    return { name, version: record.version, changed: true, revision: r.response.revision }
  }

  /** `host drain|activate NAME`: NAME is a host name or peer id. */
  async setAvailability(host: string, drain: boolean): Promise<{ peerId: string; name: string; availability: 'drain' | 'active'; revision: number }> {
    const hosts = this.state().hosts
    const matches = hosts.filter((h) => h.peerId === host || h.name === host)
    if (matches.length === 0) throw new ApiError(404, `no host named ${JSON.stringify(host)}; 'shoal hosts' lists them`)
    if (matches.length > 1) throw new ApiError(409, `${matches.length} hosts are named ${JSON.stringify(host)}; give the peer id instead (shoal hosts --json)`)
    const h = matches[0] as (typeof matches)[number]
    const r = await this.kv.write({ type: 'put', key: hostAvailabilityKey(h.peerId), value: encodeAvailability(drain) })
    return { peerId: h.peerId, name: h.name, availability: drain ? 'drain' : 'active', revision: r.response.revision }
  }
}
