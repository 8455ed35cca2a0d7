/**
 * Turns what a runtime observed into a `Container` record the StateStore accepts.
 *
 * Every record a runtime emits must pass `parseContainer(encodeRecord(c))`
 * (storage/statestore/records.ts), or the peer's proposal would be refused by every replica.
 * Rather than drop a container over one oversized field, fields are clamped to the record
 * limits and each clamp is reported, so the caller can log it:
 * - name: leading '/' dropped, characters Docker would not allow replaced by '-', cut to
 *   128 characters; an empty result becomes the 12-character short id;
 * - image: cut to 256 characters ('unknown' when empty);
 * - ips / ports: invalid entries dropped, duplicates merged, sorted, at most 64;
 * - labels: keys longer than 256 characters dropped, values cut to 4096 characters, at most
 *   64 labels (`shoal.*` labels first, then by key), then labels dropped from the end until
 *   the whole record encodes to at most CONTAINER_RECORD_MAX_BYTES;
 * - times: kept when ISO-8601, omitted when unparsable or Docker's zero time.
 * Only an invalid id or host identity makes a record impossible (`ok: false`).
 */
import {
  encodeRecord, isValidOrigin, parseContainer, RECORD_MAX_ITEMS, RECORD_MAX_TEXT_CHARS,
  type Container, type ContainerHealth, type ContainerState, type PortMapping,
} from '../storage/statestore/index.ts'
import type { RuntimeIdentity } from './runtime.ts'

/** Largest encoded container record a runtime emits (the store allows 512 KiB values; a record is normally < 2 KiB). */
export const CONTAINER_RECORD_MAX_BYTES = 64 * 1024
/** Longest container name (records.ts NAME_PATTERN). */
export const CONTAINER_NAME_MAX_CHARS = 128
/** Longest image reference in a record. */
export const CONTAINER_IMAGE_MAX_CHARS = 256
/** Longest label key in a record. */
export const LABEL_KEY_MAX_CHARS = 256
/** Longest host name in a record. */
export const HOST_NAME_MAX_CHARS = 253
/** Label prefix kept first when labels must be dropped. */
export const SHOAL_LABEL_PREFIX = 'shoal.'

/** Docker reports "never" as this time. */
const ZERO_TIME_PREFIX = '0001-01-01T'
// Same rules as records.ts (not exported there); parseContainer is still the final check.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const CONTAINER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/
const IP_PATTERN = /^[0-9A-Fa-f:.]{2,45}$/
const ISO_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})$/
const ISO_TIME_MAX_CHARS = 40
const INT32_MIN = -2147483648
const INT32_MAX = 2147483647

/** What a runtime knows about a container, before clamping. */
export interface ContainerDraft {
  id: string
  name: string
  image: string
  ips: readonly string[]
  ports: readonly PortMapping[]
  labels: Readonly<Record<string, string>>
  state: ContainerState
  startedAt?: string | null
  finishedAt?: string | null
  exitCode?: number | null
  health?: ContainerHealth | null
}

/** A record, with what had to be clamped to make it valid. */
export type RecordOutcome = { ok: true; container: Container; clamped: string[] } | { ok: false; error: string }

/** Throws when the identity could not stamp a valid record (a configuration bug). */
export function checkIdentity(identity: RuntimeIdentity): void {
  if (!isValidOrigin(identity.hostId)) throw new Error(`runtime identity: host id ${JSON.stringify(identity.hostId)} is not a peer id`)
  if (identity.hostName.length < 1 || identity.hostName.length > HOST_NAME_MAX_CHARS) {
    throw new Error(`runtime identity: host name must be 1..${HOST_NAME_MAX_CHARS} characters`)
  }
}

/** Cuts `text` to at most `maxChars` UTF-16 units without splitting a surrogate pair. */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text
  let end = maxChars
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end-- // high surrogate whose pair would be cut
  return text.slice(0, end)
}

/** A container name as records accept it (see the file comment). */
export function clampName(raw: string, id: string): string {
  let name = raw.startsWith('/') ? raw.slice(1) : raw
  name = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '')
  name = name.slice(0, CONTAINER_NAME_MAX_CHARS)
  return NAME_PATTERN.test(name) ? name : id.slice(0, 12)
}

/** An ISO-8601 time as records accept it, or undefined for "never" and garbage. */
export function clampTime(raw: string | null | undefined): string | undefined {
  if (typeof raw !== 'string' || raw === '' || raw.startsWith(ZERO_TIME_PREFIX)) return undefined
  if (raw.length <= ISO_TIME_MAX_CHARS && ISO_TIME_PATTERN.test(raw)) return raw
  const ms = Date.parse(raw)
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined
}

function isPortNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= 65535
}

function validPort(p: PortMapping): PortMapping | undefined {
  if (!isPortNumber(p.containerPort) || (p.protocol !== 'tcp' && p.protocol !== 'udp')) return undefined
  const hostPort = isPortNumber(p.hostPort) ? p.hostPort : undefined
  const hostIp = typeof p.hostIp === 'string' && IP_PATTERN.test(p.hostIp) ? p.hostIp : undefined
  return {
    containerPort: p.containerPort,
    protocol: p.protocol,
    ...(hostPort === undefined ? {} : { hostPort }),
    ...(hostIp === undefined ? {} : { hostIp }),
  }
}

function portKey(p: PortMapping): string {
  return `${String(p.containerPort).padStart(5, '0')}/${p.protocol}/${p.hostIp ?? ''}/${String(p.hostPort ?? 0).padStart(5, '0')}`
}

/** Valid, distinct ports sorted by container port, protocol, host IP, host port; at most RECORD_MAX_ITEMS. */
export function clampPorts(ports: readonly PortMapping[]): PortMapping[] {
  const byKey = new Map<string, PortMapping>()
  for (const raw of ports) {
    const p = validPort(raw)
    if (p !== undefined) byKey.set(portKey(p), p)
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, RECORD_MAX_ITEMS).map(([, p]) => p)
}

/** Valid, distinct addresses in their given order; at most RECORD_MAX_ITEMS. */
export function clampIps(ips: readonly string[]): string[] {
  return [...new Set(ips.filter((ip) => typeof ip === 'string' && IP_PATTERN.test(ip)))].slice(0, RECORD_MAX_ITEMS)
}

/** Label entries in keep-first order: `shoal.*` first, then by key. */
function orderedLabels(labels: Readonly<Record<string, string>>): Array<[string, string]> {
  const entries = Object.entries(labels).filter(([k, v]) => typeof v === 'string' && k.length >= 1 && k.length <= LABEL_KEY_MAX_CHARS)
  const rank = (k: string): number => (k.startsWith(SHOAL_LABEL_PREFIX) ? 0 : 1)
  return entries
    .map(([k, v]): [string, string] => [k, truncateText(v, RECORD_MAX_TEXT_CHARS)])
    .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
}

function isState(value: unknown): value is ContainerState {
  return value === 'created' || value === 'running' || value === 'paused' || value === 'exited' || value === 'dead' || value === 'lost'
}

function isHealth(value: unknown): value is ContainerHealth {
  return value === 'none' || value === 'starting' || value === 'healthy' || value === 'unhealthy'
}

/** Builds a valid record from a draft, clamping what does not fit (see the file comment). */
export function toContainerRecord(draft: ContainerDraft, identity: RuntimeIdentity): RecordOutcome {
  if (typeof draft.id !== 'string' || !CONTAINER_ID_PATTERN.test(draft.id)) return { ok: false, error: `container id ${JSON.stringify(draft.id)} is invalid` }
  if (!isValidOrigin(identity.hostId)) return { ok: false, error: 'host id is not a peer id' }
  if (identity.hostName.length < 1 || identity.hostName.length > HOST_NAME_MAX_CHARS) return { ok: false, error: 'host name is invalid' }
  if (!isState(draft.state)) return { ok: false, error: `container state ${JSON.stringify(draft.state)} is invalid` }
  const clamped: string[] = []
  const name = clampName(typeof draft.name === 'string' ? draft.name : '', draft.id)
  if (name !== (draft.name ?? '').replace(/^\//, '')) clamped.push('name')
  let image = truncateText(typeof draft.image === 'string' ? draft.image : '', CONTAINER_IMAGE_MAX_CHARS)
  if (image === '') image = 'unknown'
  if (image !== draft.image) clamped.push('image')
  const ips = clampIps(draft.ips ?? [])
  if (ips.length !== (draft.ips ?? []).length) clamped.push('ips')
  const ports = clampPorts(draft.ports ?? [])
  if (ports.length !== (draft.ports ?? []).length) clamped.push('ports')
  const labelEntries = orderedLabels(draft.labels ?? {})
  const labelCount = Object.keys(draft.labels ?? {}).length
  let kept = labelEntries.slice(0, RECORD_MAX_ITEMS)
  if (kept.length !== labelCount || kept.some(([k, v]) => draft.labels[k] !== v)) clamped.push('labels')
  const startedAt = clampTime(draft.startedAt)
  const finishedAt = clampTime(draft.finishedAt)
  const exitCode = typeof draft.exitCode === 'number' && Number.isSafeInteger(draft.exitCode) ? Math.min(INT32_MAX, Math.max(INT32_MIN, draft.exitCode)) : undefined
  const health = isHealth(draft.health) ? draft.health : undefined
  const build = (labels: Array<[string, string]>): Container => ({
    id: draft.id,
    name,
    image,
    host: identity.hostId,
    hostName: identity.hostName,
    ips,
    ports,
    // fromEntries defines own properties, so a "__proto__" label stays a label.
    labels: Object.fromEntries(labels),
    state: draft.state,
    ...(startedAt === undefined ? {} : { startedAt }),
    ...(finishedAt === undefined ? {} : { finishedAt }),
    ...(exitCode === undefined ? {} : { exitCode }),
    ...(health === undefined ? {} : { health }),
  })
  let container = build(kept)
  let bytes = encodeRecord(container)
  if (bytes.length > CONTAINER_RECORD_MAX_BYTES) {
    if (!clamped.includes('labels')) clamped.push('labels')
    // Drop from the end (least important first) until it fits; bounded by the label count.
    let low = 0
    let high = kept.length
    while (low < high) {
      const mid = Math.ceil((low + high) / 2)
      if (encodeRecord(build(kept.slice(0, mid))).length <= CONTAINER_RECORD_MAX_BYTES) low = mid
      else high = mid - 1
    }
    kept = kept.slice(0, low)
    container = build(kept)
    bytes = encodeRecord(container)
  }
  const parsed = parseContainer(bytes)
  if (!parsed.ok) return { ok: false, error: `record still invalid after clamping: ${parsed.error}` }
  return { ok: true, container, clamped }
}
