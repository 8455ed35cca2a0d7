// Typed buckets of the keyspace and who may write them.
//
//   hosts/<peerId>                  Host        written by that peer (or the leader)
//   containers/<hostPeerId>/<id>    Container   written by that host; the leader may
//                                               only mark one 'lost', and may delete
//   services/<name>                 Service     anyone
//   links/<source>/<alias>          Link        anyone
//   link-addrs/<host>/<src>/<alias> {address}   written by that host; the leader may delete
//   tasks/<service>/<slot>          Task        the leader (its scheduler) only
//   task-states/<host>/<svc>/<slot> Observed    written by that host; the leader may delete
//   service-status/<service>        rollout     anyone (the leader; a CLI rollback/rebalance)
//   host-availability/<peerId>      drain       anyone (`shoal host drain|activate`)
//   anything else (kv/, locks/...)  free-form   anyone
//
// Values are JSON in UTF-8. Records are validated on write so every reader can
// parse what it reads. Unknown JSON fields are allowed (and stay in the stored
// bytes; parsers return the known ones): a newer peer may add a field and older
// replicas must still accept the write, or replicas of different versions
// would diverge on the same log entry.

import type { Command, TxnOp } from './commands.ts'
import { assertNever, commandError, type CommandError } from './results.ts'
import { isValidOrigin } from './validate.ts'

/** Bucket of host records. */
export const HOSTS_PREFIX = 'hosts/'
/** Bucket of container records, grouped by host. */
export const CONTAINERS_PREFIX = 'containers/'
/** Bucket of service specs. */
export const SERVICES_PREFIX = 'services/'
/** Bucket of links. */
export const LINKS_PREFIX = 'links/'
/** Bucket of link addresses: `link-addrs/<hostPeerId>/<source>/<alias>` = `{address}`, per source host. */
export const LINK_ADDRS_PREFIX = 'link-addrs/'
/** Bucket of task assignments (runtime/scheduler/task.ts); only the leader writes them. */
export const TASKS_PREFIX = 'tasks/'
/** Bucket of what each host observes of its tasks, grouped by host like containers/. */
export const TASK_STATES_PREFIX = 'task-states/'
/** Free-form user keys (`shoal kv`). */
export const KV_PREFIX = 'kv/'

/** Lifecycle of a container; 'lost' is set by the leader when its host is gone. */
export type ContainerState = 'created' | 'running' | 'paused' | 'exited' | 'dead' | 'lost'
/** Docker health status. */
export type ContainerHealth = 'none' | 'starting' | 'healthy' | 'unhealthy'

/** A published port. */
export interface PortMapping {
  readonly containerPort: number
  readonly protocol: 'tcp' | 'udp'
  readonly hostPort?: number
  readonly hostIp?: string
}

/** One container, as its host reports it. Times are ISO-8601 strings set by the host. */
export interface Container {
  readonly id: string
  readonly name: string
  readonly image: string
  readonly host: string
  readonly hostName: string
  readonly ips: readonly string[]
  readonly ports: readonly PortMapping[]
  readonly labels: Readonly<Record<string, string>>
  readonly state: ContainerState
  readonly startedAt?: string
  readonly finishedAt?: string
  readonly exitCode?: number
  readonly health?: ContainerHealth
}

/** One host, as it registers itself. */
export interface Host {
  readonly peerId: string
  readonly name: string
  readonly addrs: readonly string[]
  readonly version: string
  readonly cpus: number
  readonly memoryBytes: number
  /** `shoal start --label K=V`: what placement constraints (`host.label.K==V`) match. */
  readonly labels?: Readonly<Record<string, string>>
}

/** A desired service: `replicas` containers of `image`. */
export interface Service {
  readonly name: string
  readonly image: string
  readonly replicas: number
  readonly ports: readonly number[]
  readonly cmd: readonly string[]
}

/** What a link endpoint names: every instance of a service, or one container (by full id). */
export type LinkEndpointKind = 'service' | 'container'

/** A port a link carries. */
export interface LinkPort {
  readonly port: number
  readonly protocol: 'tcp' | 'udp'
}

/**
 * `source`'s containers reach `target` under the name `alias`. The kinds, ports and creation
 * time came with issue 13; a link written before them (source, target, alias only) still
 * parses, with the fields absent.
 */
export interface Link {
  readonly source: string
  readonly target: string
  readonly alias: string
  readonly sourceKind?: LinkEndpointKind
  readonly targetKind?: LinkEndpointKind
  readonly ports?: readonly LinkPort[]
  readonly createdAtMs?: number
}

/** Where a link's alias answers on one source host (`link-addrs/<host>/<source>/<alias>`). */
export interface LinkAddress {
  readonly address: string
}

/** Outcome of parsing a record. */
export type RecordResult<T> = { readonly ok: true; readonly record: T } | { readonly ok: false; readonly error: string }

/** Most IPs, ports, labels, addrs or cmd arguments in one record. */
export const RECORD_MAX_ITEMS = 64
/** Longest free-text field (image, label value, cmd argument, addr). */
export const RECORD_MAX_TEXT_CHARS = 4096
/** Most replicas of one service. */
export const SERVICE_MAX_REPLICAS = 1000

const CONTAINER_STATES: readonly ContainerState[] = ['created', 'running', 'paused', 'exited', 'dead', 'lost']
const HEALTHS: readonly ContainerHealth[] = ['none', 'starting', 'healthy', 'unhealthy']
// Docker's container name rule; also used for link endpoints and host names.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
// Service names and aliases become DNS labels (RFC 1035 §2.3.1); lowercase only
// so two services cannot differ by case alone (DNS is case-insensitive).
const DNS_LABEL_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const CONTAINER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/
const IP_PATTERN = /^[0-9A-Fa-f:.]{2,45}$/
const ISO_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})$/

const utf8 = new TextDecoder('utf-8', { fatal: true })
const utf8Encoder = new TextEncoder()

function parseJson(bytes: Uint8Array): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(bytes))
  } catch {
    return { ok: false, error: 'not UTF-8 JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'not a JSON object' }
  // JSON.parse gives a plain object; reading it as a record of unknowns is what it is.
  return { ok: true, value: value as Record<string, unknown> }
}

function isText(value: unknown, maxChars = RECORD_MAX_TEXT_CHARS): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= maxChars
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
}

function isTextList(value: unknown, item: (v: unknown) => boolean): value is string[] {
  return Array.isArray(value) && value.length <= RECORD_MAX_ITEMS && value.every(item)
}

function isPort(value: unknown): value is number {
  return isInt(value, 1, 65535)
}

function isOptional(value: unknown, check: (v: unknown) => boolean): boolean {
  return value === undefined || check(value)
}

function parseLabels(value: unknown): Record<string, string> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const entries = Object.entries(value)
  if (entries.length > RECORD_MAX_ITEMS) return undefined
  if (!entries.every(([k, v]) => isText(k, 256) && typeof v === 'string' && v.length <= RECORD_MAX_TEXT_CHARS)) return undefined
  // fromEntries defines own properties, so a "__proto__" label stays a label.
  return Object.fromEntries(entries)
}

function parsePort(value: unknown): PortMapping | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const p = value as Record<string, unknown>
  const protocol = p['protocol']
  if (!isPort(p['containerPort']) || (protocol !== 'tcp' && protocol !== 'udp')) return undefined
  if (!isOptional(p['hostPort'], isPort) || !isOptional(p['hostIp'], (v) => typeof v === 'string' && IP_PATTERN.test(v))) return undefined
  return {
    containerPort: p['containerPort'], protocol,
    ...(typeof p['hostPort'] === 'number' ? { hostPort: p['hostPort'] } : {}),
    ...(typeof p['hostIp'] === 'string' ? { hostIp: p['hostIp'] } : {}),
  }
}

/** Parses a container record (never throws). */
export function parseContainer(bytes: Uint8Array): RecordResult<Container> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const r = json.value
  const id = r['id']
  const name = r['name']
  const image = r['image']
  const host = r['host']
  const hostName = r['hostName']
  const ips = r['ips']
  const labels = parseLabels(r['labels'])
  const ports = Array.isArray(r['ports']) && r['ports'].length <= RECORD_MAX_ITEMS ? r['ports'].map(parsePort) : undefined
  const state = CONTAINER_STATES.find((s) => s === r['state'])
  const { startedAt, finishedAt, exitCode } = r
  const health = HEALTHS.find((h) => h === r['health'])
  const isTime = (v: unknown): v is string => typeof v === 'string' && v.length <= 40 && ISO_TIME_PATTERN.test(v)
  if (typeof id !== 'string' || !CONTAINER_ID_PATTERN.test(id)) return { ok: false, error: 'container id is invalid' }
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) return { ok: false, error: 'container name is invalid' }
  if (!isText(image, 256)) return { ok: false, error: 'container image is invalid' }
  if (!isValidOrigin(host)) return { ok: false, error: 'container host is not a peer id' }
  if (!isText(hostName, 253)) return { ok: false, error: 'container hostName is invalid' }
  if (!isTextList(ips, (v) => typeof v === 'string' && IP_PATTERN.test(v))) return { ok: false, error: 'container ips are invalid' }
  if (!ports || !ports.every((p): p is PortMapping => p !== undefined)) return { ok: false, error: 'container ports are invalid' }
  if (!labels) return { ok: false, error: 'container labels are invalid' }
  if (!state) return { ok: false, error: 'container state is invalid' }
  if ((startedAt !== undefined && !isTime(startedAt)) || (finishedAt !== undefined && !isTime(finishedAt))) return { ok: false, error: 'container times are not ISO-8601' }
  if (exitCode !== undefined && !isInt(exitCode, -2147483648, 2147483647)) return { ok: false, error: 'container exitCode is invalid' }
  if (r['health'] !== undefined && !health) return { ok: false, error: 'container health is invalid' }
  return {
    ok: true,
    record: {
      id, name, image, host, hostName, ips, ports, labels, state,
      ...(isTime(startedAt) ? { startedAt } : {}),
      ...(isTime(finishedAt) ? { finishedAt } : {}),
      ...(typeof exitCode === 'number' ? { exitCode } : {}),
      ...(health ? { health } : {}),
    },
  }
}

/** Parses a host record (never throws). */
export function parseHost(bytes: Uint8Array): RecordResult<Host> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const r = json.value
  const { peerId, name, addrs, version, cpus, memoryBytes } = r
  if (!isValidOrigin(peerId)) return { ok: false, error: 'host peerId is invalid' }
  if (!isText(name, 253)) return { ok: false, error: 'host name is invalid' }
  if (!isTextList(addrs, (v) => isText(v, 256))) return { ok: false, error: 'host addrs are invalid' }
  if (!isText(version, 64)) return { ok: false, error: 'host version is invalid' }
  if (!isInt(cpus, 0, 1_000_000) || !isInt(memoryBytes, 0, Number.MAX_SAFE_INTEGER)) return { ok: false, error: 'host resources are invalid' }
  if (r['labels'] === undefined) return { ok: true, record: { peerId, name, addrs, version, cpus, memoryBytes } }
  const labels = parseLabels(r['labels'])
  if (!labels) return { ok: false, error: 'host labels are invalid' }
  return { ok: true, record: { peerId, name, addrs, version, cpus, memoryBytes, labels } }
}

/** Parses a service spec (never throws). */
export function parseService(bytes: Uint8Array): RecordResult<Service> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const r = json.value
  const { name, image, replicas, ports, cmd } = r
  if (typeof name !== 'string' || !DNS_LABEL_PATTERN.test(name)) return { ok: false, error: 'service name is not a lowercase DNS label' }
  if (!isText(image, 256)) return { ok: false, error: 'service image is invalid' }
  if (!isInt(replicas, 0, SERVICE_MAX_REPLICAS)) return { ok: false, error: `service replicas must be 0..${SERVICE_MAX_REPLICAS}` }
  if (!Array.isArray(ports) || ports.length > RECORD_MAX_ITEMS || !ports.every(isPort)) return { ok: false, error: 'service ports are invalid' }
  if (!isTextList(cmd, (v) => typeof v === 'string' && v.length <= RECORD_MAX_TEXT_CHARS)) return { ok: false, error: 'service cmd is invalid' }
  return { ok: true, record: { name, image, replicas, ports, cmd } }
}

const LINK_KINDS: readonly LinkEndpointKind[] = ['service', 'container']

function parseLinkPort(value: unknown): LinkPort | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const p = value as Record<string, unknown>
  const { port, protocol } = p
  if (!isPort(port) || (protocol !== 'tcp' && protocol !== 'udp')) return undefined
  return { port, protocol }
}

/** Parses a link (never throws). */
export function parseLink(bytes: Uint8Array): RecordResult<Link> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const r = json.value
  const { source, target, alias, createdAtMs } = r
  if (typeof source !== 'string' || !NAME_PATTERN.test(source)) return { ok: false, error: 'link source is invalid' }
  if (typeof target !== 'string' || !NAME_PATTERN.test(target)) return { ok: false, error: 'link target is invalid' }
  if (typeof alias !== 'string' || !DNS_LABEL_PATTERN.test(alias)) return { ok: false, error: 'link alias is not a lowercase DNS label' }
  const sourceKind = LINK_KINDS.find((k) => k === r['sourceKind'])
  const targetKind = LINK_KINDS.find((k) => k === r['targetKind'])
  if (r['sourceKind'] !== undefined && sourceKind === undefined) return { ok: false, error: 'link sourceKind must be "service" or "container"' }
  if (r['targetKind'] !== undefined && targetKind === undefined) return { ok: false, error: 'link targetKind must be "service" or "container"' }
  let ports: LinkPort[] | undefined
  if (r['ports'] !== undefined) {
    const raw = r['ports']
    if (!Array.isArray(raw) || raw.length > RECORD_MAX_ITEMS) return { ok: false, error: 'link ports are invalid' }
    const parsed = raw.map(parseLinkPort)
    if (!parsed.every((p): p is LinkPort => p !== undefined)) return { ok: false, error: 'link ports are invalid' }
    ports = parsed
  }
  if (createdAtMs !== undefined && !isInt(createdAtMs, 0, Number.MAX_SAFE_INTEGER)) return { ok: false, error: 'link createdAtMs is invalid' }
  return {
    ok: true,
    record: {
      source, target, alias,
      ...(sourceKind !== undefined ? { sourceKind } : {}),
      ...(targetKind !== undefined ? { targetKind } : {}),
      ...(ports !== undefined ? { ports } : {}),
      ...(typeof createdAtMs === 'number' ? { createdAtMs } : {}),
    },
  }
}

const IPV4_PATTERN = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

/** Parses a link address record (never throws). */
export function parseLinkAddress(bytes: Uint8Array): RecordResult<LinkAddress> {
  const json = parseJson(bytes)
  if (!json.ok) return json
  const address = json.value['address']
  if (typeof address !== 'string' || !IPV4_PATTERN.test(address)) return { ok: false, error: 'link address is not an IPv4 address' }
  return { ok: true, record: { address } }
}

/** JSON-encodes a record as a value. */
export function encodeRecord(record: Container | Host | Service | Link | LinkAddress): Uint8Array {
  return utf8Encoder.encode(JSON.stringify(record))
}

/** Key of a host record. */
export function hostKey(peerId: string): string {
  return `${HOSTS_PREFIX}${peerId}`
}

/** Key of a container record. */
export function containerKey(hostPeerId: string, containerId: string): string {
  return `${CONTAINERS_PREFIX}${hostPeerId}/${containerId}`
}

/** Key of a service spec. */
export function serviceKey(name: string): string {
  return `${SERVICES_PREFIX}${name}`
}

/** Key of a link. */
export function linkKey(source: string, alias: string): string {
  return `${LINKS_PREFIX}${source}/${alias}`
}

/** Key of a link's address on one source host. */
export function linkAddressKey(hostPeerId: string, source: string, alias: string): string {
  return `${LINK_ADDRS_PREFIX}${hostPeerId}/${source}/${alias}`
}

function segments(key: string, prefix: string): string[] {
  return key.slice(prefix.length).split('/')
}

const denied = (message: string): CommandError => commandError('permission-denied', message)
const invalid = (message: string): CommandError => commandError('invalid-record', message)

/** Checks that `origin` may put `value` at `key`, and that a typed bucket's value is its record. */
export function checkPut(key: string, value: Uint8Array, origin: string, asLeader: boolean): CommandError | null {
  if (key.startsWith(HOSTS_PREFIX)) {
    const [peerId, ...rest] = segments(key, HOSTS_PREFIX)
    if (rest.length > 0 || peerId === undefined) return invalid('host keys are hosts/<peerId>')
    if (peerId !== origin && !asLeader) return denied(`only ${peerId} may write ${key}`)
    const parsed = parseHost(value)
    if (!parsed.ok) return invalid(parsed.error)
    return parsed.record.peerId === peerId ? null : invalid('host peerId does not match its key')
  }
  if (key.startsWith(CONTAINERS_PREFIX)) {
    const [host, id, ...rest] = segments(key, CONTAINERS_PREFIX)
    if (rest.length > 0 || host === undefined || id === undefined) return invalid('container keys are containers/<hostPeerId>/<containerId>')
    const parsed = parseContainer(value)
    if (!parsed.ok) return invalid(parsed.error)
    if (parsed.record.host !== host || parsed.record.id !== id) return invalid('container host or id does not match its key')
    if (host === origin) return null
    // The leader marks the containers of a vanished host lost; it never invents
    // or edits a live container on another host's behalf.
    if (asLeader && parsed.record.state === 'lost') return null
    return denied(asLeader ? `the leader may only mark ${key} lost` : `only ${host} may write ${key}`)
  }
  if (key.startsWith(TASKS_PREFIX)) {
    // Assignments are the scheduler's alone: two writers would race over which host runs a slot.
    if (!asLeader) return denied(`only the leader's scheduler may write ${key}`)
    const [service, slot, ...rest] = segments(key, TASKS_PREFIX)
    if (rest.length > 0 || service === undefined || slot === undefined || service === '' || slot === '') return invalid('task keys are tasks/<service>/<slot>')
    return parseJson(value).ok ? null : invalid('a task is a JSON object')
  }
  if (key.startsWith(LINK_ADDRS_PREFIX)) {
    // One writer per key: the source host allocates its own addresses (two hosts allocating
    // from one map would race), and nobody else can hand a host an address it did not choose.
    const [host, source, alias, ...rest] = segments(key, LINK_ADDRS_PREFIX)
    if (rest.length > 0 || host === undefined || source === undefined || alias === undefined || host === '' || source === '' || alias === '') return invalid('link address keys are link-addrs/<hostPeerId>/<source>/<alias>')
    if (host !== origin) return denied(`only ${host} may write ${key}`)
    const parsed = parseLinkAddress(value)
    return parsed.ok ? null : invalid(parsed.error)
  }
  if (key.startsWith(TASK_STATES_PREFIX)) {
    const [host, service, slot, ...rest] = segments(key, TASK_STATES_PREFIX)
    if (rest.length > 0 || host === undefined || service === undefined || slot === undefined || service === '' || slot === '') return invalid('task state keys are task-states/<hostPeerId>/<service>/<slot>')
    if (host !== origin) return denied(`only ${host} may write ${key}`)
    return parseJson(value).ok ? null : invalid('a task state is a JSON object')
  }
  if (key.startsWith(SERVICES_PREFIX)) {
    const [name, ...rest] = segments(key, SERVICES_PREFIX)
    if (rest.length > 0 || name === undefined) return invalid('service keys are services/<name>')
    const parsed = parseService(value)
    if (!parsed.ok) return invalid(parsed.error)
    return parsed.record.name === name ? null : invalid('service name does not match its key')
  }
  if (key.startsWith(LINKS_PREFIX)) {
    const [source, alias, ...rest] = segments(key, LINKS_PREFIX)
    if (rest.length > 0 || source === undefined || alias === undefined) return invalid('link keys are links/<source>/<alias>')
    const parsed = parseLink(value)
    if (!parsed.ok) return invalid(parsed.error)
    return parsed.record.source === source && parsed.record.alias === alias ? null : invalid('link source or alias does not match its key')
  }
  return null
}

/** Checks that `origin` may delete `key`. */
export function checkDelete(key: string, origin: string, asLeader: boolean): CommandError | null {
  if (asLeader) return null
  if (key.startsWith(TASKS_PREFIX)) return denied(`only the leader's scheduler may delete ${key}`)
  const owned = [HOSTS_PREFIX, CONTAINERS_PREFIX, TASK_STATES_PREFIX, LINK_ADDRS_PREFIX].find((b) => key.startsWith(b))
  if (owned !== undefined) {
    const bucket = owned
    const [owner] = segments(key, bucket)
    return owner === origin ? null : denied(`only ${owner ?? 'its owner'} or the leader may delete ${key}`)
  }
  return null
}

function overlaps(prefix: string, bucket: string): boolean {
  return prefix.startsWith(bucket) || bucket.startsWith(prefix)
}

/**
 * Checks that `origin` may delete every key `prefix` could match, whatever the
 * store holds now (so the answer does not depend on state): a host may clear
 * its own containers/<self>/ subtree; anything reaching into hosts/ or other
 * hosts' containers needs the leader.
 */
export function checkDeletePrefix(prefix: string, origin: string, asLeader: boolean): CommandError | null {
  if (asLeader) return null
  if (overlaps(prefix, HOSTS_PREFIX) || overlaps(prefix, TASKS_PREFIX)) return denied(`only the leader may delete by prefix ${JSON.stringify(prefix)}`)
  for (const bucket of [CONTAINERS_PREFIX, TASK_STATES_PREFIX, LINK_ADDRS_PREFIX]) {
    if (overlaps(prefix, bucket) && !prefix.startsWith(`${bucket}${origin}/`)) return denied(`only the leader may delete by prefix ${JSON.stringify(prefix)}`)
  }
  return null
}

function opAccessError(op: TxnOp, origin: string, asLeader: boolean): CommandError | null {
  switch (op.type) {
    case 'put':
      return checkPut(op.key, op.value, origin, asLeader)
    case 'delete':
      return checkDelete(op.key, origin, asLeader)
    case 'deletePrefix':
      return checkDeletePrefix(op.prefix, origin, asLeader)
    default:
      return assertNever(op)
  }
}

/**
 * Ownership and record checks for every write a command could make (both txn
 * branches, since either may run). Stateless: lease ownership is checked at
 * apply time. The node layer may call it before proposing to fail fast.
 */
export function checkAccess(cmd: Command): CommandError | null {
  const asLeader = cmd.asLeader === true
  const r = cmd.request
  switch (r.type) {
    case 'put':
    case 'delete':
    case 'deletePrefix':
      return opAccessError(r, cmd.origin, asLeader)
    case 'txn':
      for (const op of [...r.success, ...r.failure]) {
        const e = opAccessError(op, cmd.origin, asLeader)
        if (e) return e
      }
      return null
    case 'compact':
    case 'leaseGrant':
    case 'leaseRevoke':
      return null
    default:
      return assertNever(r)
  }
}
