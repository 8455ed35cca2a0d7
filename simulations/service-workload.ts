// The services workload: one user running `shoal service create|scale|update|rm`
// against a random node, as node/service-api.ts writes them: the node reads the
// service record from its replica, `nextRecord` makes the next version, and the
// write is one txn guarded by the record's modRevision (a concurrent writer
// makes it fail rather than be overwritten). Updates change the image or the
// environment, every spec has a health check (mostly), and now and then an
// update ships a broken image whose health check never passes, which trips
// the service's failure action (pause or rollback). It draws from its own
// random stream, so scenarios without services keep their seeds.
//
// After the faults, `repair()` plays the user who fixes what is broken: a
// service whose spec runs a broken image, or whose rollout is paused, gets a
// good image, so that every service can converge.

import { nextRecord, decodeServiceRecord, encodeServiceRecord, specOf, validateSpec, type ServiceRecord, type ServiceSpec } from '../runtime/scheduler/spec.ts'
import { decodeServiceStatus, serviceStatusKey } from '../runtime/scheduler/task.ts'
import { serviceKey, type Request } from '../storage/statestore/index.ts'
import { readSchedulerState } from '../runtime/scheduler/state.ts'
import type { ClientApi } from './client-api.ts'
import type { SimCluster } from './cluster.ts'
import { brokenImage } from './engine.ts'
import type { Rng } from './random.ts'

/** The workload's knobs. */
export interface ServiceWorkloadConfig {
  /** Think time between two commands (ms). */
  readonly gapMs: readonly [number, number]
  /** Relative weights of the commands. */
  readonly mix: { readonly scale: number; readonly update: number; readonly broken: number; readonly remove: number }
  /** Most replicas a scale asks for. */
  readonly maxReplicas: number
  /** Chance a service is global (one per eligible host). */
  readonly globalChance: number
}

export const DEFAULT_SERVICE_WORKLOAD: ServiceWorkloadConfig = {
  gapMs: [800, 2_500],
  mix: { scale: 3, update: 4, broken: 1, remove: 0.3 },
  maxReplicas: 4,
  globalChance: 0.2,
}

/** The services the user manages (never the container workload's svc0..svc2). */
export const SERVICE_NAMES: readonly string[] = ['web', 'api', 'jobs']

/** A command is given up after this long (its outcome unknown); the user moves on. */
const COMMAND_TIMEOUT_MS = 3_000
/** How long the user follows a change before moving on anyway, and how often it looks. */
const FOLLOW_MAX_MS = 12_000
const FOLLOW_POLL_MS = 300
/** How often the repair after the faults looks again. */
const REPAIR_POLL_MS = 500

/** How one service is shaped for its whole life (its update config, health check, grace). */
interface Shape {
  readonly mode: 'replicated' | 'global'
  readonly parallelism: number
  readonly order: 'stop-first' | 'start-first'
  readonly failureAction: 'pause' | 'rollback'
  readonly monitorMs: number
  readonly health: boolean
  readonly graceMs: number
  readonly restartDelayMs: number
  readonly constraint: string | null
}

/** Services through the node API, one command at a time. */
export class ServiceWorkload {
  /** Commands issued and how they ended, for the run's counts. */
  readonly counts: Record<string, number> = {}
  /** Called when a spec write of `service` commits (the rolling-update checker opens or closes its window). */
  onSpecCommitted: ((service: string, before: ServiceRecord | null, after: ServiceRecord | null) => void) | null = null
  private readonly cluster: SimCluster
  private readonly api: ClientApi
  private readonly rng: Rng
  private readonly config: ServiceWorkloadConfig
  private readonly shapes = new Map<string, Shape>()
  private serial = 0
  private stopAtUs = 0
  private busy = false
  private repairing = false
  /** Services whose last change the user follows until it converges (the CLI does), with the time it gives up. */
  private readonly following = new Map<string, number>()

  constructor(init: { cluster: SimCluster; api: ClientApi; rng: Rng; config: ServiceWorkloadConfig }) {
    this.cluster = init.cluster
    this.api = init.api
    this.rng = init.rng
    this.config = init.config
  }

  /** Whether no command is in flight. */
  get idle(): boolean {
    return !this.busy
  }

  /** Runs commands until `stopAtUs`. */
  start(stopAtUs: number): void {
    this.stopAtUs = stopAtUs
    this.next(300)
  }

  /** No more commands. */
  stop(): void {
    this.stopAtUs = 0
  }

  /**
   * After the faults: until every service runs a good spec with no paused rollout, send the
   * fixing update (a good image). Stops by itself once nothing is left to fix or at `untilUs`.
   */
  repair(untilUs: number): void {
    if (this.repairing) return
    this.repairing = true
    const poll = (): void => {
      const scheduler = this.cluster.scheduler
      if (scheduler.nowUs >= untilUs) {
        this.repairing = false
        return
      }
      if (!this.busy) {
        const broken = this.needsRepair()
        if (broken.length === 0) {
          this.repairing = false
          return
        }
        const name = broken[0] as string
        this.command(name, 'repair', (record) => (record === null ? null : this.withImage(record, `app:v${++this.serial}`)))
      }
      scheduler.after(REPAIR_POLL_MS * 1000, poll)
    }
    poll()
  }

  /** Whether the repair is still going. */
  get repairDone(): boolean {
    return !this.repairing && !this.busy
  }

  /**
   * Whether `name` has converged on the leader's replica, as `service ls` says it (ServiceApi.list):
   * every wanted instance runs the current content, healthy, nothing left to retire or roll.
   */
  private converged(name: string): boolean {
    const leader = this.cluster.leader()
    if (leader === undefined) return false
    const state = readSchedulerState(leader.store)
    const spec = state.services.find((s) => s.name === name)
    if (spec === undefined) return true
    const tasks = state.tasks.filter((t) => t.service === name && t.desired === 'running')
    const st = state.statuses.find((s) => s.service === name)
    const updateState = st?.version === spec.version ? st.state : null
    return (spec.mode === 'global' || tasks.length === spec.replicas) &&
      tasks.every((t) => t.specVersion >= spec.instanceVersion && t.previous === null && t.observed !== null && t.observed.generation === t.generation && t.observed.state === 'running') &&
      updateState !== 'updating' && updateState !== 'rolling-back'
  }

  /** Services (in the leader's replica) whose spec is broken or whose rollout is paused. */
  private needsRepair(): string[] {
    const leader = this.cluster.leader()
    if (leader === undefined) return [...SERVICE_NAMES]
    const out: string[] = []
    for (const name of SERVICE_NAMES) {
      const kv = leader.store.get(serviceKey(name))
      if (kv === null) continue
      const r = decodeServiceRecord(kv.value)
      if (!r.ok) continue
      const st = leader.store.get(serviceStatusKey(name))
      const status = st === null ? null : decodeServiceStatus(st.value)
      const paused = status !== null && status.ok && status.value.version === r.value.version && (status.value.state === 'paused' || status.value.state === 'rollback-paused')
      if (brokenImage(r.value.image) || paused) out.push(name)
    }
    return out
  }

  private next(gapMs?: number): void {
    const [lo, hi] = this.config.gapMs
    const waitMs = gapMs ?? this.rng.between(lo, hi)
    this.cluster.scheduler.after(waitMs * 1000, () => {
      if (this.cluster.scheduler.nowUs >= this.stopAtUs) return
      this.operate()
    })
  }

  private operate(): void {
    const nowUs = this.cluster.scheduler.nowUs
    for (const [name, untilUs] of [...this.following]) if (nowUs >= untilUs || this.converged(name)) this.following.delete(name)
    const free = SERVICE_NAMES.filter((n) => !this.following.has(n))
    if (free.length === 0) return this.next(FOLLOW_POLL_MS)
    const name = this.rng.pick(free)
    const { scale, update, broken, remove } = this.config.mix
    const dice = this.rng.next() * (scale + update + broken + remove)
    const kind = dice < scale ? 'scale' : dice < scale + update ? 'update' : dice < scale + update + broken ? 'broken' : 'remove'
    const replicas = this.rng.between(1, this.config.maxReplicas)
    const envValue = `e${this.rng.int(1000)}`
    const image = `app:v${++this.serial}`
    const bad = `app:bad${this.serial}`
    const envChange = this.rng.chance(0.4)
    this.command(name, kind, (record) => {
      if (record === null) return kind === 'remove' ? null : this.fresh(name, replicas)
      switch (kind) {
        case 'scale':
          return record.mode === 'global' ? null : { ...specOf(record), replicas }
        case 'update':
          return envChange ? { ...specOf(record), env: { ...record.env, V: envValue } } : this.withImage(record, image)
        case 'broken':
          return this.withImage(record, bad)
        case 'remove':
          return 'remove'
      }
    }, () => this.next())
  }

  /**
   * One command through a random node (ServiceApi.write / remove): read the record on that
   * node's replica, decide the next spec, write it guarded by the record's modRevision.
   */
  private command(name: string, kind: string, decide: (record: ServiceRecord | null) => ServiceSpec | 'remove' | null, then?: () => void): void {
    const cluster = this.cluster
    const nodeId = this.rng.pick(cluster.ids())
    const node = cluster.node(nodeId)
    const finish = (outcome: string): void => {
      this.count(`service-${kind}-${outcome}`)
      this.busy = false
      then?.()
    }
    this.busy = true
    if (node.state !== 'up') return finish('unavailable')
    const kv = node.store.get(serviceKey(name))
    const decoded = kv === null ? null : decodeServiceRecord(kv.value)
    const record = decoded !== null && decoded.ok ? decoded.value : null
    const modRevision = kv?.modRevision ?? 0
    const wanted = decide(record)
    let request: Request
    let after: ServiceRecord | null
    if (wanted === null) return finish('noop')
    if (wanted === 'remove') {
      if (record === null) return finish('noop')
      request = { type: 'txn', compare: [{ target: 'modRevision', key: serviceKey(name), op: '=', value: modRevision }], success: [{ type: 'delete', key: serviceKey(name) }, { type: 'delete', key: serviceStatusKey(name) }], failure: [] }
      after = null
    } else {
      const valid = validateSpec(wanted)
      if (!valid.ok) throw new Error(`service workload made an invalid spec for ${name}: ${valid.errors.map((e) => `${e.path} ${e.message}`).join('; ')}`)
      const next = nextRecord(record, valid.value)
      if (!next.changed) return finish('noop')
      request = { type: 'txn', compare: [{ target: 'modRevision', key: serviceKey(name), op: '=', value: modRevision }], success: [{ type: 'put', key: serviceKey(name), value: encodeServiceRecord(next.record) }], failure: [] }
      after = next.record
    }
    const scheduler = cluster.scheduler
    let settled = false
    scheduler.after(COMMAND_TIMEOUT_MS * 1000, () => {
      if (settled) return
      settled = true
      finish('unknown')
    })
    const requestId = `svc${++this.serial}`
    const describe = after === null ? `service rm ${name}` : `service ${record === null ? 'create' : kind} ${name} -> v${after.version} (${after.image}, ${after.mode === 'global' ? 'global' : `${after.replicas} replicas`})`
    this.api.write(nodeId, requestId, request, (o) => {
      const ok = o.kind === 'applied' && o.result.ok && o.result.response.type === 'txn' && o.result.response.succeeded
      // A write that commits after the user gave up still changed the spec: the checker hears of it.
      if (ok) {
        cluster.trace.note(scheduler.nowUs, 'client', `${describe} via ${nodeId}`)
        this.onSpecCommitted?.(name, record, after)
        if (after !== null) this.following.set(name, scheduler.nowUs + FOLLOW_MAX_MS * 1000)
      }
      if (settled) return
      settled = true
      finish(ok ? 'ok' : o.kind === 'applied' ? 'conflict' : o.kind)
    })
  }

  /** A new service's spec: its shape is drawn once, on first create. */
  private fresh(name: string, replicas: number): ServiceSpec | null {
    let shape = this.shapes.get(name)
    if (shape === undefined) {
      const rng = this.rng
      shape = {
        mode: rng.chance(this.config.globalChance) ? 'global' : 'replicated',
        parallelism: rng.between(1, 2),
        order: rng.chance(0.5) ? 'stop-first' : 'start-first',
        failureAction: rng.chance(0.5) ? 'pause' : 'rollback',
        monitorMs: rng.between(300, 1_500),
        health: rng.chance(0.85),
        graceMs: rng.between(200, 1_500),
        restartDelayMs: rng.between(200, 1_000),
        constraint: rng.chance(0.15) ? 'host.label.zone!=b' : null,
      }
      this.shapes.set(name, shape)
    }
    const update = { parallelism: shape.parallelism, delayMs: 0, order: shape.order, monitorMs: shape.monitorMs, failureAction: shape.failureAction, maxFailureRatio: 0 }
    const input = {
      name,
      image: `app:v${++this.serial}`,
      mode: shape.mode,
      ...(shape.mode === 'global' ? {} : { replicas }),
      ports: [8080],
      env: { V: 'e0' },
      ...(shape.constraint === null ? {} : { constraints: [shape.constraint] }),
      restart: { condition: 'any', delayMs: shape.restartDelayMs },
      ...(shape.health ? { healthCheck: { cmd: ['true'], intervalMs: 1_000, retries: 1 } } : {}),
      update,
      // The same config for a rollback, so the rolling-update bounds hold through one.
      rollback: update,
      stopGracePeriodMs: shape.graceMs,
    }
    const r = validateSpec(input)
    if (!r.ok) throw new Error(`service workload made an invalid spec for ${name}: ${r.errors.map((e) => `${e.path} ${e.message}`).join('; ')}`)
    return r.value
  }

  /** `record`'s spec with `image`; a broken image needs a health check to fail, so it gets one. */
  private withImage(record: ServiceRecord, image: string): ServiceSpec {
    const hc = record.healthCheck ?? (brokenImage(image) ? { cmd: ['true'], intervalMs: 1_000, timeoutMs: 1_000, retries: 1, startPeriodMs: 0 } : null)
    return { ...specOf(record), image, healthCheck: hc }
  }

  private count(what: string): void {
    this.counts[what] = (this.counts[what] ?? 0) + 1
  }
}
