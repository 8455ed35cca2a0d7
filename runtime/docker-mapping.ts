/**
 * Pure translation of Docker Engine API data into Shoal's terms: an inspect result into a
 * `ContainerDraft`, the newline-delimited JSON of `GET /events` into container events, and
 * which event actions matter. No I/O here; `docker-runtime.ts` does the talking.
 */
import type { ContainerHealth, ContainerState, PortMapping } from '../storage/statestore/index.ts'
import type { ContainerDraft } from './container-record.ts'

/**
 * The parts of `GET /containers/{id}/json` this layer reads. Every field is optional and
 * nullable because the JSON comes off a socket; dockerode's `ContainerInspectInfo` fits.
 */
export interface DockerInspect {
  Id?: string | null
  Name?: string | null
  Image?: string | null
  Config?: {
    Image?: string | null
    Labels?: Readonly<Record<string, string>> | null
    ExposedPorts?: Readonly<Record<string, unknown>> | null
  } | null
  State?: {
    Status?: string | null
    Running?: boolean | null
    Paused?: boolean | null
    Restarting?: boolean | null
    Dead?: boolean | null
    ExitCode?: number | null
    StartedAt?: string | null
    FinishedAt?: string | null
    Health?: { Status?: string | null } | null
  } | null
  NetworkSettings?: {
    IPAddress?: string | null
    GlobalIPv6Address?: string | null
    Ports?: Readonly<Record<string, ReadonlyArray<{ HostIp?: string | null; HostPort?: string | null }> | null>> | null
    Networks?: Readonly<Record<string, { IPAddress?: string | null; GlobalIPv6Address?: string | null } | null>> | null
  } | null
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '')
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Docker's status words onto ours. `restarting` (between runs, waiting out the restart
 * back-off) and `removing` have no process running: both read as `exited`.
 */
export function stateOf(state: DockerInspect['State']): ContainerState {
  switch (text(state?.Status)) {
    case 'created':
      return 'created'
    case 'running':
      return state?.Paused === true ? 'paused' : 'running'
    case 'paused':
      return 'paused'
    case 'restarting':
    case 'removing':
    case 'exited':
      return 'exited'
    case 'dead':
      return 'dead'
    default:
      // Unknown word (a newer engine): fall back on the flags.
      if (state?.Running === true) return state.Paused === true ? 'paused' : 'running'
      return state?.Dead === true ? 'dead' : 'exited'
  }
}

function healthOf(state: DockerInspect['State']): ContainerHealth | undefined {
  const status = text(state?.Health?.Status)
  return status === 'none' || status === 'starting' || status === 'healthy' || status === 'unhealthy' ? status : undefined
}

/** `"80/tcp"` → [80, 'tcp']; undefined for other protocols (sctp) and garbage. */
export function parsePortKey(key: string): [number, 'tcp' | 'udp'] | undefined {
  const match = /^(\d{1,5})\/(tcp|udp)$/.exec(key)
  if (match === null) return undefined
  const port = Number(match[1])
  return port >= 1 && port <= 65535 ? [port, match[2] === 'udp' ? 'udp' : 'tcp'] : undefined
}

/**
 * Exposed and published ports. A published port gives one mapping per host binding (Docker
 * binds `-p 8080:80` on both 0.0.0.0 and ::); an exposed-only port gives one mapping without
 * a host side. A stopped container has no live bindings: its ports read as exposed.
 */
export function portsOf(info: DockerInspect): PortMapping[] {
  const ports: PortMapping[] = []
  const seen = new Set<string>()
  const live = isObject(info.NetworkSettings?.Ports) ? info.NetworkSettings.Ports : {}
  for (const [key, bindings] of Object.entries(live)) {
    const parsed = parsePortKey(key)
    if (parsed === undefined) continue
    const [containerPort, protocol] = parsed
    seen.add(key)
    const list = Array.isArray(bindings) ? bindings : []
    let published = false
    for (const b of list) {
      if (!isObject(b)) continue
      const hostPort = Number.parseInt(text(b.HostPort), 10)
      const hostIp = text(b.HostIp)
      if (!(hostPort >= 1 && hostPort <= 65535)) continue
      published = true
      ports.push({ containerPort, protocol, hostPort, ...(hostIp === '' ? {} : { hostIp }) })
    }
    if (!published) ports.push({ containerPort, protocol })
  }
  const exposed = isObject(info.Config?.ExposedPorts) ? info.Config.ExposedPorts : {}
  for (const key of Object.keys(exposed)) {
    const parsed = parsePortKey(key)
    if (parsed === undefined || seen.has(key)) continue
    ports.push({ containerPort: parsed[0], protocol: parsed[1] })
  }
  return ports
}

/** Every network's IPv4 and global IPv6 address, networks in name order (stable across inspects). */
export function ipsOf(info: DockerInspect): string[] {
  const ips: string[] = []
  const networks = isObject(info.NetworkSettings?.Networks) ? info.NetworkSettings.Networks : {}
  for (const name of Object.keys(networks).sort()) {
    const n = networks[name]
    if (!isObject(n)) continue
    ips.push(text(n.IPAddress), text(n.GlobalIPv6Address))
  }
  // The legacy top-level fields repeat the default bridge's addresses; kept in case a network entry is missing.
  ips.push(text(info.NetworkSettings?.IPAddress), text(info.NetworkSettings?.GlobalIPv6Address))
  return [...new Set(ips.filter((ip) => ip !== ''))]
}

function labelsOf(info: DockerInspect): Record<string, string> {
  const raw = info.Config?.Labels
  if (!isObject(raw)) return {}
  return Object.fromEntries(Object.entries(raw).filter((entry): entry is [string, string] => typeof entry[1] === 'string'))
}

/**
 * An inspect result as a draft record (clamped later by `toContainerRecord`). The image is
 * the reference the container was created from (`Config.Image`), or the image id without one.
 * `exitCode` and `finishedAt` describe the current stop only, so a running container (even one
 * restarted after an earlier exit) carries neither.
 */
export function draftFromInspect(info: DockerInspect): ContainerDraft {
  const state = stateOf(info.State)
  const stopped = state === 'exited' || state === 'dead'
  const health = healthOf(info.State)
  const exitCode = info.State?.ExitCode
  return {
    id: text(info.Id),
    name: text(info.Name),
    image: text(info.Config?.Image) || text(info.Image),
    ips: ipsOf(info),
    ports: portsOf(info),
    labels: labelsOf(info),
    state,
    startedAt: text(info.State?.StartedAt) || null,
    finishedAt: stopped ? text(info.State?.FinishedAt) || null : null,
    exitCode: stopped && typeof exitCode === 'number' ? exitCode : null,
    health: health ?? null,
  }
}

/** What the runtime does about an event action. */
export type EventEffect = 'inspect' | 'remove' | 'ignore'

/**
 * Actions that change what a record holds. `exec_*`, `attach`, `resize`, `top`, `copy`,
 * `export`, `commit`... do not, and a busy container would otherwise be inspected per exec.
 */
const INSPECT_ACTIONS: ReadonlySet<string> = new Set([
  'create', 'start', 'restart', 'die', 'stop', 'kill', 'oom', 'pause', 'unpause', 'rename', 'update', 'health_status',
])

/** The effect of an action; `health_status: healthy` and the like are matched on the word before ':'. */
export function eventEffect(action: string): EventEffect {
  const word = action.split(':', 1)[0]?.trim() ?? ''
  if (word === 'destroy') return 'remove'
  return INSPECT_ACTIONS.has(word) ? 'inspect' : 'ignore'
}

/** One container event off the stream. */
export interface DockerContainerEvent {
  id: string
  action: string
  /** The container name from the actor attributes, when given. */
  name: string | null
}

/** Longest event line kept; a longer one is counted as garbage and skipped up to its newline. */
export const EVENT_LINE_MAX_CHARS = 256 * 1024
const EVENT_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/

/**
 * Splits the `GET /events` body into events. Robust to chunks that cut lines (or UTF-8
 * sequences) anywhere; a line that is not a JSON event is counted in `garbageLines` and
 * skipped, never fatal. Events of other types (image, network...) count in `otherEvents`.
 */
export class EventLineParser {
  garbageLines = 0
  otherEvents = 0
  containerEvents = 0
  private readonly decoder = new TextDecoder('utf-8')
  private partial = ''
  private skipping = false

  /** Feeds one chunk; returns the container events completed by it. */
  push(chunk: Uint8Array | string): DockerContainerEvent[] {
    const data = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    const events: DockerContainerEvent[] = []
    let start = 0
    for (;;) {
      const newline = data.indexOf('\n', start)
      if (newline < 0) break
      const piece = data.slice(start, newline)
      start = newline + 1
      if (this.skipping) {
        this.skipping = false
        this.partial = ''
        continue
      }
      const line = this.partial + piece
      this.partial = ''
      this.parseLine(line, events)
    }
    if (!this.skipping) {
      this.partial += data.slice(start)
      if (this.partial.length > EVENT_LINE_MAX_CHARS) {
        this.garbageLines++
        this.partial = ''
        this.skipping = true
      }
    }
    return events
  }

  /** Flushes a last line that had no newline (the stream ended). */
  end(): DockerContainerEvent[] {
    const rest = this.partial + this.decoder.decode()
    this.partial = ''
    const events: DockerContainerEvent[] = []
    if (!this.skipping) this.parseLine(rest, events)
    this.skipping = false
    return events
  }

  private parseLine(line: string, out: DockerContainerEvent[]): void {
    const trimmed = line.trim()
    if (trimmed === '') return
    let value: unknown
    try {
      value = JSON.parse(trimmed)
    } catch {
      this.garbageLines++
      return
    }
    const event = this.toEvent(value)
    if (event === 'garbage') this.garbageLines++
    else if (event === 'other') this.otherEvents++
    else {
      this.containerEvents++
      out.push(event)
    }
  }

  private toEvent(value: unknown): DockerContainerEvent | 'garbage' | 'other' {
    if (!isObject(value)) return 'garbage'
    // API >= 1.22 has Type/Action/Actor; older engines only status/id (container events only).
    const type = value['Type']
    if (type !== undefined && type !== 'container') return typeof type === 'string' ? 'other' : 'garbage'
    const actor = isObject(value['Actor']) ? value['Actor'] : {}
    const id = typeof actor['ID'] === 'string' ? actor['ID'] : value['id']
    const action = typeof value['Action'] === 'string' ? value['Action'] : value['status']
    if (typeof id !== 'string' || !EVENT_ID_PATTERN.test(id) || typeof action !== 'string' || action === '') return 'garbage'
    const attributes = isObject(actor['Attributes']) ? actor['Attributes'] : {}
    const name = typeof attributes['name'] === 'string' ? attributes['name'] : null
    return { id, action, name }
  }
}
