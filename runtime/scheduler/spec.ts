/**
 * The service spec (issue 12), its validator and its canonical encoding. Pure.
 *
 * Stored under `services/<name>` as a `ServiceRecord`: the spec's fields, flat, plus `version`
 * and `previous` (the spec `shoal service rollback` returns to). The flat layout keeps the
 * record a superset of the StateStore's older `Service` check (storage/statestore/records.ts
 * `parseService`: name, image, replicas 0..1000, ports, cmd), so every replica accepts it;
 * a global service stores `replicas: 0` there and `mode: 'global'`.
 *
 * Durations are integer milliseconds, sizes integer bytes, CPUs a decimal count (0.5 = half
 * a core, kept to 1/1000). Where the issue is silent the defaults are Docker Swarm's
 * (`docker service create`), named on each field below.
 */
import { formatConstraint, parseConstraint } from './constraint.ts'
import { fnv1a64 } from '../../storage/statestore/hash.ts'

/** Most replicas of one service (the StateStore's SERVICE_MAX_REPLICAS). */

export const SPEC_MAX_REPLICAS = 1000
/** Most items in one list or map of a spec (the StateStore's RECORD_MAX_ITEMS). */
export const SPEC_MAX_ITEMS = 64
/** Longest free text (argument, env value, label value). */
export const SPEC_MAX_TEXT_CHARS = 4096
/** Longest duration accepted anywhere (one week): longer is a typo, not a wish. */
export const SPEC_MAX_DURATION_MS = 7 * 24 * 3600 * 1000

export type RestartCondition = 'none' | 'on-failure' | 'any'
export type UpdateOrder = 'stop-first' | 'start-first'
export type FailureAction = 'pause' | 'rollback' | 'continue'

/**
 * How a published port is reached: `ingress` (the routing mesh: every peer's host answers on the
 * port and carries connections to a healthy instance wherever it runs; TCP only) or `host` (Docker
 * binds it on the hosts that run an instance, `-p published:target`).
 */
export type PublishMode = 'ingress' | 'host'

/** A port reachable on the hosts (`--publish published:target/protocol`, mode ingress by default). */
export interface PublishedPort {
  readonly published: number
  readonly target: number
  readonly protocol: 'tcp' | 'udp'
  readonly mode: PublishMode
}

/** Reservations are for placement; limits are passed to Docker. 0 = none. */
export interface ResourceSet {
  /** Decimal CPUs (Docker's `--cpus`). Default 0. */
  readonly cpus: number
  /** Bytes. Default 0. */
  readonly memoryBytes: number
}

export interface RestartPolicy {
  /** Swarm default `any`. */
  readonly condition: RestartCondition
  /** 0 = unlimited (Swarm default). */
  readonly maxAttempts: number
  /** Back-off before a restart; Swarm default 5 s. */
  readonly delayMs: number
  /** Window in which attempts count; 0 = unbounded (Swarm default). */
  readonly windowMs: number
}

/** Handed to Docker's HEALTHCHECK; defaults are Docker's. */
export interface HealthCheck {
  /** Exec form (`CMD`); a single string is run by the shell (`CMD-SHELL`). */
  readonly cmd: readonly string[]
  /** Default 30 s. */
  readonly intervalMs: number
  /** Default 30 s. */
  readonly timeoutMs: number
  /** Default 3. */
  readonly retries: number
  /** Default 0. */
  readonly startPeriodMs: number
}

/** How tasks are replaced on an update (and, as `rollback`, on a rollback). */
export interface UpdateConfig {
  /** Tasks per batch; 0 = all at once. Swarm default 1. */
  readonly parallelism: number
  /** Pause between batches. Swarm default 0. */
  readonly delayMs: number
  /** Swarm default `stop-first`. */
  readonly order: UpdateOrder
  /** How long a new instance must stay running (and healthy) for its batch to count as done. Swarm default 5 s. */
  readonly monitorMs: number
  /** Swarm default `pause`. */
  readonly failureAction: FailureAction
  /** Failed fraction of updated tasks tolerated, 0..1. Swarm default 0. */
  readonly maxFailureRatio: number
}

/** What a host does with its tasks when it cannot reach the leader (Nomad's `max_client_disconnect`). */
export interface OnDisconnect {
  /** `keep` (default, as Swarm and Nomad without the setting) or `stop`. */
  readonly action: 'keep' | 'stop'
  /** For `stop`: after this long without the leader. Default 0. */
  readonly afterMs: number
}

/** A service, as a user declares it. Every field is present after validation. */
export interface ServiceSpec {
  /** Lowercase DNS label: it becomes `<name>.shoal`. */
  readonly name: string
  readonly image: string
  /** Overrides the image's ENTRYPOINT (Swarm's ContainerSpec.Command); empty = the image's. */
  readonly entrypoint: readonly string[]
  /** Overrides the image's CMD (Compose `command`, Swarm's Args); empty = the image's. */
  readonly cmd: readonly string[]
  /** Environment, KEY -> value. */
  readonly env: Readonly<Record<string, string>>
  /** Container labels (the user's; `shoal.*` is reserved). */
  readonly labels: Readonly<Record<string, string>>
  readonly mode: 'replicated' | 'global'
  /** Desired instances for `replicated`; 0 for `global`. Default 1. */
  readonly replicas: number
  /** Container ports announced in SRV records (sorted, distinct). */
  readonly ports: readonly number[]
  /** Host ports (sorted by published, protocol). */
  readonly published: readonly PublishedPort[]
  readonly reservations: ResourceSet
  readonly limits: ResourceSet
  /** Canonical constraint texts, e.g. `host.label.zone==a` (sorted, distinct). */
  readonly constraints: readonly string[]
  readonly restart: RestartPolicy
  /** Absent: the image's own HEALTHCHECK, if any, is what Docker reports. */
  readonly healthCheck: HealthCheck | null
  readonly update: UpdateConfig
  readonly rollback: UpdateConfig
  /** Swarm default 10 s. */
  readonly stopGracePeriodMs: number
  readonly onDisconnect: OnDisconnect
}

/** A spec as stored: `version` grows by one each time the content changes. */
export interface ServiceRecord extends ServiceSpec {
  readonly version: number
  /**
   * The version at which what an instance runs (image, command, env, labels, ports, resources,
   * health check) last changed. Tasks at an older specVersion are rolled to the new content;
   * newer ones are current, so a scale or a change of the update config restarts nothing.
   */
  readonly instanceVersion: number
  /** The spec before the last change (for rollback), without its own `previous`. */
  readonly previous: (ServiceSpec & { readonly version: number }) | null
}

/** One problem with an input, by field path (`update.parallelism`, `env.FOO`, `published[1].target`). */
export interface SpecError {
  readonly path: string
  readonly message: string
}

export type SpecResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly SpecError[] }

export const DEFAULT_UPDATE: UpdateConfig = { parallelism: 1, delayMs: 0, order: 'stop-first', monitorMs: 5000, failureAction: 'pause', maxFailureRatio: 0 }
export const DEFAULT_RESTART: RestartPolicy = { condition: 'any', maxAttempts: 0, delayMs: 5000, windowMs: 0 }
export const DEFAULT_STOP_GRACE_MS = 10_000

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,255}$/
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,255}$/
// Docker's image reference grammar is long; this keeps the characters it allows.
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,255}$/

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Collects errors while reading an untrusted object; every reader returns a usable default on error. */
class Reader {
  readonly errors: SpecError[] = []
  private readonly strict: boolean
  constructor(strict: boolean) {
    this.strict = strict
  }

  fail(path: string, message: string): void {
    this.errors.push({ path, message })
  }

  object(v: unknown, path: string, known: readonly string[]): Obj {
    if (v === undefined || v === null) return {}
    if (!isObj(v)) {
      this.fail(path, 'must be an object')
      return {}
    }
    if (this.strict) {
      for (const key of Object.keys(v)) if (!known.includes(key)) this.fail(join(path, key), `unknown field (known: ${known.join(', ')})`)
    }
    return v
  }

  int(v: unknown, path: string, min: number, max: number, fallback: number): number {
    if (v === undefined) return fallback
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer ${min}..${max}`)
      return fallback
    }
    return v
  }

  duration(v: unknown, path: string, fallback: number): number {
    if (v === undefined) return fallback
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > SPEC_MAX_DURATION_MS) {
      this.fail(path, `must be whole milliseconds 0..${SPEC_MAX_DURATION_MS}`)
      return fallback
    }
    return v
  }

  ratio(v: unknown, path: string, fallback: number): number {
    if (v === undefined) return fallback
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
      this.fail(path, 'must be a number 0..1')
      return fallback
    }
    return v
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], fallback: T): T {
    if (v === undefined) return fallback
    const hit = allowed.find((a) => a === v)
    if (hit === undefined) this.fail(path, `must be one of ${allowed.join(', ')}`)
    return hit ?? fallback
  }

  text(v: unknown, path: string, pattern: RegExp | null, what: string): string {
    if (typeof v !== 'string' || v.length > SPEC_MAX_TEXT_CHARS || (pattern !== null && !pattern.test(v))) {
      this.fail(path, v === undefined ? `is required (${what})` : `must be ${what}`)
      return ''
    }
    return v
  }

  list(v: unknown, path: string): unknown[] {
    if (v === undefined) return []
    if (!Array.isArray(v)) {
      this.fail(path, 'must be a list')
      return []
    }
    if (v.length > SPEC_MAX_ITEMS) {
      this.fail(path, `has more than ${SPEC_MAX_ITEMS} items`)
      return []
    }
    return v
  }

  strings(v: unknown, path: string): string[] {
    return this.list(v, path).map((item, i) => this.text(item, `${path}[${i}]`, null, `a string of at most ${SPEC_MAX_TEXT_CHARS} characters`))
  }

  map(v: unknown, path: string, keyPattern: RegExp, keyWhat: string): Record<string, string> {
    if (v === undefined) return {}
    if (!isObj(v)) {
      this.fail(path, 'must be an object of strings')
      return {}
    }
    const entries = Object.entries(v)
    if (entries.length > SPEC_MAX_ITEMS) this.fail(path, `has more than ${SPEC_MAX_ITEMS} entries`)
    const out: Array<[string, string]> = []
    for (const [k, val] of entries) {
      if (!keyPattern.test(k)) this.fail(join(path, k), `key must be ${keyWhat}`)
      else out.push([k, this.text(val, join(path, k), null, `a string of at most ${SPEC_MAX_TEXT_CHARS} characters`)])
    }
    return sortedRecord(out)
  }

  cpus(v: unknown, path: string): number {
    if (v === undefined) return 0
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1_000_000) {
      this.fail(path, 'must be a number of CPUs 0..1000000 (0.5 = half a core)')
      return 0
    }
    return Math.round(v * 1000) / 1000
  }
}

function join(path: string, key: string): string {
  if (path === '') return key
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

// fromEntries defines own properties, so a "__proto__" key stays a key.
function sortedRecord(entries: Array<[string, string]>): Record<string, string> {
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function readResources(r: Reader, v: unknown, path: string): ResourceSet {
  const o = r.object(v, path, ['cpus', 'memoryBytes'])
  return { cpus: r.cpus(o['cpus'], join(path, 'cpus')), memoryBytes: r.int(o['memoryBytes'], join(path, 'memoryBytes'), 0, Number.MAX_SAFE_INTEGER, 0) }
}

function readUpdate(r: Reader, v: unknown, path: string): UpdateConfig {
  const o = r.object(v, path, ['parallelism', 'delayMs', 'order', 'monitorMs', 'failureAction', 'maxFailureRatio'])
  return {
    parallelism: r.int(o['parallelism'], join(path, 'parallelism'), 0, SPEC_MAX_REPLICAS, DEFAULT_UPDATE.parallelism),
    delayMs: r.duration(o['delayMs'], join(path, 'delayMs'), DEFAULT_UPDATE.delayMs),
    order: r.oneOf(o['order'], join(path, 'order'), ['stop-first', 'start-first'], DEFAULT_UPDATE.order),
    monitorMs: r.duration(o['monitorMs'], join(path, 'monitorMs'), DEFAULT_UPDATE.monitorMs),
    failureAction: r.oneOf(o['failureAction'], join(path, 'failureAction'), ['pause', 'rollback', 'continue'], DEFAULT_UPDATE.failureAction),
    maxFailureRatio: r.ratio(o['maxFailureRatio'], join(path, 'maxFailureRatio'), DEFAULT_UPDATE.maxFailureRatio),
  }
}

const SPEC_FIELDS = [
  'name', 'image', 'entrypoint', 'cmd', 'env', 'labels', 'mode', 'replicas', 'ports', 'published', 'reservations', 'limits',
  'constraints', 'restart', 'healthCheck', 'update', 'rollback', 'stopGracePeriodMs', 'onDisconnect',
] as const

function readSpec(r: Reader, input: unknown): ServiceSpec {
  if (!isObj(input)) return emptySpec()
  const o = r.object(input, '', SPEC_FIELDS)
  const name = r.text(o['name'], 'name', DNS_LABEL, 'a lowercase DNS label (a-z, 0-9, -; at most 63; no leading or trailing -)')
  const image = r.text(o['image'], 'image', IMAGE, 'an image reference such as nginx:1.27 or registry:5000/app@sha256:...')
  const mode = r.oneOf(o['mode'], 'mode', ['replicated', 'global'], 'replicated')
  let replicas = r.int(o['replicas'], 'replicas', 0, SPEC_MAX_REPLICAS, mode === 'global' ? 0 : 1)
  if (mode === 'global' && o['replicas'] !== undefined && o['replicas'] !== 0) {
    r.fail('replicas', 'must be left out for mode global (one instance per eligible host)')
    replicas = 0
  }
  const ports = [...new Set(r.list(o['ports'], 'ports').map((p, i) => r.int(p, `ports[${i}]`, 1, 65535, 0)))].filter((p) => p > 0).sort((a, b) => a - b)
  const published: PublishedPort[] = []
  r.list(o['published'], 'published').forEach((p, i) => {
    const path = `published[${i}]`
    const po = r.object(p, path, ['published', 'target', 'protocol', 'mode'])
    if (!isObj(p)) return
    const entry: PublishedPort = {
      published: r.int(po['published'], `${path}.published`, 1, 65535, 0),
      target: r.int(po['target'], `${path}.target`, 1, 65535, 0),
      protocol: r.oneOf(po['protocol'], `${path}.protocol`, ['tcp', 'udp'], 'tcp'),
      mode: r.oneOf(po['mode'], `${path}.mode`, ['ingress', 'host'], 'ingress'),
    }
    // The mesh carries byte streams; a datagram port is bound by Docker where an instance runs.
    if (entry.protocol === 'udp' && entry.mode === 'ingress') {
      r.fail(`${path}.mode`, `udp port ${entry.published} must be published with mode host (the routing mesh carries tcp only): --publish published=${entry.published},target=${entry.target},protocol=udp,mode=host`)
    }
    if (po['published'] === undefined) r.fail(`${path}.published`, 'is required (the host port)')
    if (po['target'] === undefined) r.fail(`${path}.target`, 'is required (the container port)')
    if (published.some((q) => q.published === entry.published && q.protocol === entry.protocol)) r.fail(path, `host port ${entry.published}/${entry.protocol} is published twice`)
    else published.push(entry)
  })
  published.sort((a, b) => a.published - b.published || (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0))
  const constraints = new Set<string>()
  r.list(o['constraints'], 'constraints').forEach((c, i) => {
    const parsed = parseConstraint(c)
    if (parsed.ok) constraints.add(formatConstraint(parsed.constraint))
    else r.fail(`constraints[${i}]`, parsed.error)
  })
  const ro = r.object(o['restart'], 'restart', ['condition', 'maxAttempts', 'delayMs', 'windowMs'])
  const restart: RestartPolicy = {
    condition: r.oneOf(ro['condition'], 'restart.condition', ['none', 'on-failure', 'any'], DEFAULT_RESTART.condition),
    maxAttempts: r.int(ro['maxAttempts'], 'restart.maxAttempts', 0, 1_000_000, DEFAULT_RESTART.maxAttempts),
    delayMs: r.duration(ro['delayMs'], 'restart.delayMs', DEFAULT_RESTART.delayMs),
    windowMs: r.duration(ro['windowMs'], 'restart.windowMs', DEFAULT_RESTART.windowMs),
  }
  let healthCheck: HealthCheck | null = null
  if (o['healthCheck'] !== undefined && o['healthCheck'] !== null) {
    const ho = r.object(o['healthCheck'], 'healthCheck', ['cmd', 'intervalMs', 'timeoutMs', 'retries', 'startPeriodMs'])
    const cmd = r.strings(ho['cmd'], 'healthCheck.cmd')
    if (isObj(o['healthCheck']) && cmd.length === 0) r.fail('healthCheck.cmd', 'is required (the command that exits 0 when healthy)')
    healthCheck = {
      cmd,
      intervalMs: r.duration(ho['intervalMs'], 'healthCheck.intervalMs', 30_000),
      timeoutMs: r.duration(ho['timeoutMs'], 'healthCheck.timeoutMs', 30_000),
      retries: r.int(ho['retries'], 'healthCheck.retries', 0, 1000, 3),
      startPeriodMs: r.duration(ho['startPeriodMs'], 'healthCheck.startPeriodMs', 0),
    }
    if (healthCheck.intervalMs === 0) r.fail('healthCheck.intervalMs', 'must be more than 0')
  }
  const reservations = readResources(r, o['reservations'], 'reservations')
  const limits = readResources(r, o['limits'], 'limits')
  if (limits.cpus > 0 && reservations.cpus > limits.cpus) r.fail('reservations.cpus', 'is more than limits.cpus')
  if (limits.memoryBytes > 0 && reservations.memoryBytes > limits.memoryBytes) r.fail('reservations.memoryBytes', 'is more than limits.memoryBytes')
  const dobj = r.object(o['onDisconnect'], 'onDisconnect', ['action', 'afterMs'])
  const labels = r.map(o['labels'], 'labels', LABEL_KEY, 'a label key (letters, digits, . _ - /)')
  for (const key of Object.keys(labels)) if (key.startsWith('shoal.')) r.fail(join('labels', key), 'the shoal. prefix is reserved for Shoal\'s own labels')
  return {
    name, image,
    entrypoint: r.strings(o['entrypoint'], 'entrypoint'),
    cmd: r.strings(o['cmd'], 'cmd'),
    env: r.map(o['env'], 'env', ENV_KEY, 'an environment variable name'),
    labels, mode, replicas, ports, published, reservations, limits,
    constraints: [...constraints].sort(),
    restart, healthCheck,
    update: readUpdate(r, o['update'], 'update'),
    rollback: readUpdate(r, o['rollback'], 'rollback'),
    stopGracePeriodMs: r.duration(o['stopGracePeriodMs'], 'stopGracePeriodMs', DEFAULT_STOP_GRACE_MS),
    onDisconnect: { action: r.oneOf(dobj['action'], 'onDisconnect.action', ['keep', 'stop'], 'keep'), afterMs: r.duration(dobj['afterMs'], 'onDisconnect.afterMs', 0) },
  }
}

function emptySpec(): ServiceSpec {
  return {
    name: '', image: '', entrypoint: [], cmd: [], env: {}, labels: {}, mode: 'replicated', replicas: 1, ports: [], published: [],
    reservations: { cpus: 0, memoryBytes: 0 }, limits: { cpus: 0, memoryBytes: 0 }, constraints: [], restart: DEFAULT_RESTART,
    healthCheck: null, update: DEFAULT_UPDATE, rollback: DEFAULT_UPDATE, stopGracePeriodMs: DEFAULT_STOP_GRACE_MS, onDisconnect: { action: 'keep', afterMs: 0 },
  }
}

/**
 * Turns untrusted JSON (CLI flags or a parsed file, already in this shape) into a spec with
 * every default filled, or every problem found. Unknown fields are errors. Never throws.
 */
export function validateSpec(input: unknown): SpecResult<ServiceSpec> {
  if (!isObj(input)) return { ok: false, errors: [{ path: '', message: 'a service spec must be a JSON object' }] }
  const r = new Reader(true)
  const spec = readSpec(r, input)
  return r.errors.length === 0 ? { ok: true, value: spec } : { ok: false, errors: r.errors }
}

/** Orders the fields of a spec canonically (so equal specs encode to equal bytes). */
function canonicalSpec(s: ServiceSpec): ServiceSpec {
  const res = (x: ResourceSet): ResourceSet => ({ cpus: x.cpus, memoryBytes: x.memoryBytes })
  const upd = (u: UpdateConfig): UpdateConfig => ({
    parallelism: u.parallelism, delayMs: u.delayMs, order: u.order, monitorMs: u.monitorMs, failureAction: u.failureAction, maxFailureRatio: u.maxFailureRatio,
  })
  return {
    name: s.name, image: s.image, entrypoint: [...s.entrypoint], cmd: [...s.cmd],
    env: sortedRecord(Object.entries(s.env)), labels: sortedRecord(Object.entries(s.labels)),
    mode: s.mode, replicas: s.replicas, ports: [...s.ports],
    published: s.published.map((p) => ({ published: p.published, target: p.target, protocol: p.protocol, mode: p.mode })),
    reservations: res(s.reservations), limits: res(s.limits), constraints: [...s.constraints],
    restart: { condition: s.restart.condition, maxAttempts: s.restart.maxAttempts, delayMs: s.restart.delayMs, windowMs: s.restart.windowMs },
    healthCheck: s.healthCheck === null ? null : {
      cmd: [...s.healthCheck.cmd], intervalMs: s.healthCheck.intervalMs, timeoutMs: s.healthCheck.timeoutMs,
      retries: s.healthCheck.retries, startPeriodMs: s.healthCheck.startPeriodMs,
    },
    update: upd(s.update), rollback: upd(s.rollback), stopGracePeriodMs: s.stopGracePeriodMs,
    onDisconnect: { action: s.onDisconnect.action, afterMs: s.onDisconnect.afterMs },
  }
}

/** The canonical text of a spec's content: equal iff the specs are the same (version aside). */
export function specFingerprint(spec: ServiceSpec): string {
  return JSON.stringify(canonicalSpec(spec))
}

/**
 * What a container of the service is made of: a change here needs new instances. Ports published
 * through the mesh are the peers' listeners, not the container's, so changing them replaces nothing.
 */
function instanceFingerprint(s: ServiceSpec): string {
  const c = canonicalSpec(s)
  const bound = c.published.filter((p) => p.mode === 'host')
  return JSON.stringify([c.image, c.entrypoint, c.cmd, c.env, c.labels, c.ports, bound, c.reservations, c.limits, c.healthCheck])
}

/** A digest of what an instance of `spec` runs (stored on tasks as `instance`). */
export function instanceHash(spec: ServiceSpec): string {
  return fnv1a64(encoder.encode(instanceFingerprint(spec)))
}

/** Whether instances of `a` and `b` would be the same containers. */
export function sameInstance(a: ServiceSpec, b: ServiceSpec): boolean {
  return instanceFingerprint(a) === instanceFingerprint(b)
}

/** Whether two specs have the same content. */
export function sameSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  return specFingerprint(a) === specFingerprint(b)
}

/** Just the spec part of a record. */
export function specOf(record: ServiceSpec): ServiceSpec {
  return canonicalSpec(record)
}

/**
 * What writing `spec` over `current` means: no change (re-applying an unchanged spec is a
 * no-op), or the next record (version + 1, the old content kept as `previous`).
 */
export function nextRecord(current: ServiceRecord | null, spec: ServiceSpec): { changed: false } | { changed: true; record: ServiceRecord } {
  if (current !== null && sameSpec(current, spec)) return { changed: false }
  const previous = current === null ? null : { ...canonicalSpec(current), version: current.version }
  const version = current === null ? 1 : current.version + 1
  const instanceVersion = current !== null && sameInstance(current, spec) ? current.instanceVersion : version
  return { changed: true, record: { ...canonicalSpec(spec), version, instanceVersion, previous } }
}

/** The record a rollback writes: the previous content at the next version, or null when there is none. */
export function rollbackRecord(current: ServiceRecord): ServiceRecord | null {
  if (current.previous === null) return null
  const version = current.version + 1
  const instanceVersion = sameInstance(current, current.previous) ? current.instanceVersion : version
  return { ...canonicalSpec(current.previous), version, instanceVersion, previous: { ...canonicalSpec(current), version: current.version } }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Canonical bytes of a record (fixed field order, sorted maps and lists). */
export function encodeServiceRecord(record: ServiceRecord): Uint8Array {
  const previous = record.previous === null ? null : { ...canonicalSpec(record.previous), version: record.previous.version }
  return encoder.encode(JSON.stringify({ ...canonicalSpec(record), version: record.version, instanceVersion: record.instanceVersion, previous }))
}

/**
 * Reads a stored record. Unknown fields are ignored (a newer peer may have added one), but
 * every known field must be valid. Never throws.
 */
export function decodeServiceRecord(bytes: Uint8Array): SpecResult<ServiceRecord> {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(bytes))
  } catch {
    return { ok: false, errors: [{ path: '', message: 'not UTF-8 JSON' }] }
  }
  return parseServiceRecord(value)
}

/** Reads a record from JSON already parsed (lenient about unknown fields). */
export function parseServiceRecord(value: unknown): SpecResult<ServiceRecord> {
  if (!isObj(value)) return { ok: false, errors: [{ path: '', message: 'a service record must be a JSON object' }] }
  const r = new Reader(false)
  const spec = readSpec(r, value)
  const version = r.int(value['version'], 'version', 1, Number.MAX_SAFE_INTEGER, 1)
  if (value['version'] === undefined) r.fail('version', 'is required')
  // Absent in a record written before it existed: then every change counted as a new instance.
  const instanceVersion = value['instanceVersion'] === undefined ? version : r.int(value['instanceVersion'], 'instanceVersion', 1, version, 1)
  let previous: ServiceRecord['previous'] = null
  if (value['previous'] !== undefined && value['previous'] !== null) {
    const p = value['previous']
    if (!isObj(p)) r.fail('previous', 'must be an object or null')
    else {
      const inner = new Reader(false)
      const prevSpec = readSpec(inner, p)
      const prevVersion = inner.int(p['version'], 'version', 1, Number.MAX_SAFE_INTEGER, 1)
      for (const e of inner.errors) r.fail(join('previous', e.path), e.message)
      previous = { ...prevSpec, version: prevVersion }
    }
  }
  return r.errors.length === 0 ? { ok: true, value: { ...spec, version, instanceVersion, previous } } : { ok: false, errors: r.errors }
}
