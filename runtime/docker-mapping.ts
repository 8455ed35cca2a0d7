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

// --- bridge gateways: where containers reach this host ---

/**
 * The parts of one entry of `GET /networks` this layer reads; dockerode's `NetworkInspectInfo`
 * fits. Nullable throughout because the JSON comes off a socket.
 */
export interface DockerNetwork {
  Id?: string | null
  Name?: string | null
  Driver?: string | null
  Options?: Readonly<Record<string, string>> | null
  IPAM?: { Config?: ReadonlyArray<{ Subnet?: string | null; Gateway?: string | null } | null> | null } | null
}

/** Addresses per interface name, as `os.networkInterfaces()` gives them (only `address` is read). */
export type InterfaceAddresses = Readonly<Record<string, ReadonlyArray<{ readonly address: string }> | undefined>>

/** The bridge driver's option naming the Linux bridge of a network (`docker0` for the default one). */
export const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name'
/** Set to "true" on the network `docker run` uses without `--network`. */
export const DEFAULT_BRIDGE_OPTION = 'com.docker.network.bridge.default_bridge'

/**
 * How a gateway was found: listed in the network's IPAM config; the address of the network's
 * bridge interface on this host; or the subnet's first usable address, which is what Docker's
 * default IPAM gives the bridge when nothing else says.
 */
export type GatewaySource = 'ipam' | 'interface' | 'subnet'

export interface BridgeGateway {
  /** The Docker network's name. */
  network: string
  /** The Linux bridge interface the network uses, or null when it cannot be told. */
  bridge: string | null
  /** Canonical text (dotted quad, RFC 5952 IPv6). */
  address: string
  source: GatewaySource
  defaultBridge: boolean
}

export interface BridgeGateways {
  /** Every gateway address once: the default bridge's first (IPv4 before IPv6), then the other networks' by name. */
  addresses: string[]
  found: BridgeGateway[]
  /** Bridge networks (or subnets of them) with no gateway to be found, and why. */
  unresolved: Array<{ network: string; reason: string }>
}

/** An address as a family and a number (32 or 128 bits), so subnets are masks. */
interface IpValue {
  family: 4 | 6
  value: bigint
}

interface Cidr extends IpValue {
  prefix: number
}

const bitsOf = (family: 4 | 6): number => (family === 4 ? 32 : 128)

function parseIPv4Value(text: string): bigint | null {
  const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (parts === null) return null
  let value = 0n
  for (const part of parts.slice(1)) {
    const n = Number(part)
    if (n > 255) return null
    value = (value << 8n) | BigInt(n)
  }
  return value
}

function parseIpValue(text: string): IpValue | null {
  const v4 = parseIPv4Value(text)
  if (v4 !== null) return { family: 4, value: v4 }
  // IPv6 (RFC 4291 §2.2): groups, at most one `::`, maybe a trailing dotted quad; no zone id.
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(text)) return null
  const halves = text.split('::')
  if (halves.length > 2) return null
  const groupsOf = (part: string): bigint[] | null => {
    if (part === '') return []
    const out: bigint[] = []
    const pieces = part.split(':')
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string
      if (i === pieces.length - 1 && piece.includes('.')) {
        const quad = parseIPv4Value(piece)
        if (quad === null) return null
        out.push(quad >> 16n, quad & 0xffffn)
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(piece)) {
        out.push(BigInt(Number.parseInt(piece, 16)))
      } else {
        return null
      }
    }
    return out
  }
  const head = groupsOf(halves[0] as string)
  const tail = halves.length === 2 ? groupsOf(halves[1] as string) : []
  if (head === null || tail === null) return null
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null
  let value = 0n
  for (const g of [...head, ...new Array<bigint>(missing).fill(0n), ...tail]) value = (value << 16n) | g
  return { family: 6, value }
}

function formatIp(ip: IpValue): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 0xffn)).join('.')
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn))
  // RFC 5952 §4.2: the longest run (two or more) of zero groups becomes "::", the first on a tie.
  let bestAt = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestAt = i
      bestLength = j - i
    }
    i = j === i ? i + 1 : j
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':')
  return bestAt < 0 ? hex(groups) : `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLength))}`
}

function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/')
  if (slash < 0) return null
  const ip = parseIpValue(text.slice(0, slash))
  const prefixText = text.slice(slash + 1)
  if (ip === null || !/^\d{1,3}$/.test(prefixText)) return null
  const prefix = Number(prefixText)
  if (prefix > bitsOf(ip.family)) return null
  return { family: ip.family, value: ip.value & maskOf(ip.family, prefix), prefix }
}

function maskOf(family: 4 | 6, prefix: number): bigint {
  const bits = BigInt(bitsOf(family))
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n)
}

function within(subnet: Cidr, ip: IpValue): boolean {
  return ip.family === subnet.family && (ip.value & maskOf(subnet.family, subnet.prefix)) === subnet.value
}

/** fe80::/10: needs a zone (`%docker0`) to be used, which Docker's `--dns` cannot carry. */
function linkLocalV6(ip: IpValue): boolean {
  return ip.family === 6 && ip.value >> 118n === 0x3fan
}

/**
 * The subnet's first address after the network address, which Docker's default IPAM hands the
 * bridge; null when the subnet leaves none for a gateway (/31, /32, /127, /128).
 */
export function firstUsableAddress(subnet: string): string | null {
  const cidr = parseCidr(subnet)
  if (cidr === null || cidr.prefix >= bitsOf(cidr.family) - 1) return null
  return formatIp({ family: cidr.family, value: cidr.value + 1n })
}

/** The Linux bridge behind a network, named as Docker's bridge driver names it. */
function bridgeNameOf(network: DockerNetwork, defaultBridge: boolean): string | null {
  const named = network.Options?.[BRIDGE_NAME_OPTION]
  if (typeof named === 'string' && named !== '') return named
  if (defaultBridge) return 'docker0'
  // libnetwork's bridge driver: "br-" + the first 12 characters of the network id.
  const id = text(network.Id)
  return id.length >= 12 ? `br-${id.slice(0, 12)}` : null
}

/** Usable addresses of an interface: parsed, IPv6 link-local left out. */
function interfaceAddresses(interfaces: InterfaceAddresses, name: string | null): IpValue[] {
  if (name === null) return []
  const list = Object.hasOwn(interfaces, name) ? interfaces[name] : undefined
  if (!Array.isArray(list)) return []
  const out: IpValue[] = []
  for (const entry of list as ReadonlyArray<{ readonly address: string }>) {
    const ip = isObject(entry) ? parseIpValue(text(entry.address)) : null
    if (ip !== null && !linkLocalV6(ip)) out.push(ip)
  }
  return out
}

/**
 * Where containers on each bridge network reach this host, found as Docker itself puts the
 * address on the bridge: the gateway the network's IPAM config lists; else the address the
 * network's bridge interface (`com.docker.network.bridge.name`, or `br-` + id) holds on this
 * host within the subnet; else the subnet's first usable address. A stock engine lists no
 * gateway for its default bridge (`docker0`, 172.17.0.0/16) nor for a network created with
 * `--subnet` alone, so the last two steps are what finds them. `interfaces` are this network
 * namespace's (`os.networkInterfaces()`): the peer can listen only on addresses found there.
 */
export function bridgeGatewaysOf(networks: readonly DockerNetwork[], interfaces: InterfaceAddresses): BridgeGateways {
  const bridges = networks
    .filter((n) => isObject(n) && n.Driver === 'bridge')
    .map((n) => {
      const name = text(n.Name) || text(n.Id).slice(0, 12) || '?'
      const defaultBridge = n.Options?.[DEFAULT_BRIDGE_OPTION] === 'true' || name === 'bridge'
      return { n, name, defaultBridge, bridge: bridgeNameOf(n, defaultBridge) }
    })
    // The default bridge first: `docker run` without --network puts containers there.
    .sort((a, b) => Number(b.defaultBridge) - Number(a.defaultBridge) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const found: BridgeGateway[] = []
  const unresolved: BridgeGateways['unresolved'] = []
  for (const { n, name, defaultBridge, bridge } of bridges) {
    const local = interfaceAddresses(interfaces, bridge)
    const configs = Array.isArray(n.IPAM?.Config) ? n.IPAM.Config.filter(isObject) : []
    const mine: Array<{ ip: IpValue; source: GatewaySource }> = []
    if (configs.length === 0) {
      // No IPAM config at all: whatever the bridge holds is the truth.
      for (const ip of local) mine.push({ ip, source: 'interface' })
      if (local.length === 0) unresolved.push({ network: name, reason: `no subnet in its IPAM config and no address on ${bridge ?? 'its bridge'} in this network namespace` })
    }
    for (const config of configs) {
      const listed = parseIpValue(text(config.Gateway))
      if (listed !== null) {
        mine.push({ ip: listed, source: 'ipam' })
        continue
      }
      const subnet = parseCidr(text(config.Subnet))
      if (subnet === null) {
        unresolved.push({ network: name, reason: `neither a gateway nor a subnet in its IPAM config (${JSON.stringify(config)})` })
        continue
      }
      const onBridge = local.find((ip) => within(subnet, ip))
      if (onBridge !== undefined) {
        mine.push({ ip: onBridge, source: 'interface' })
        continue
      }
      const first = firstUsableAddress(text(config.Subnet))
      if (first === null) unresolved.push({ network: name, reason: `subnet ${text(config.Subnet)} leaves no address for a gateway` })
      else mine.push({ ip: parseIpValue(first) as IpValue, source: 'subnet' })
    }
    mine.sort((a, b) => a.ip.family - b.ip.family)
    for (const { ip, source } of mine) found.push({ network: name, bridge, address: formatIp(ip), source, defaultBridge })
  }
  return { addresses: [...new Set(found.map((g) => g.address))], found, unresolved }
}

/** One line for the log: `bridge (docker0): 172.17.0.1, the address of docker0`. */
export function describeGateway(g: BridgeGateway): string {
  const how = g.source === 'ipam'
    ? 'listed in its IPAM config'
    : g.source === 'interface'
      ? `the address of ${g.bridge ?? 'its bridge'}`
      : `the first address of its subnet${g.bridge === null ? '' : ` (${g.bridge} not found in this network namespace)`}`
  return `${g.network}${g.bridge === null ? '' : ` (${g.bridge})`}: ${g.address}, ${how}`
}
