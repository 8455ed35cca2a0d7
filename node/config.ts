/** Resolves and validates `shoal start` options into a complete peer configuration. */
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { existsSync } from 'node:fs'
import { isIP } from 'node:net'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { UsageError, errorMessage } from './errors.ts'
import { DEFAULT_LINK_SUBNET, parseLinkSubnet, type Subnet } from '../runtime/links/addresses.ts'
import { isLogLevel, type LogLevel } from './logger.ts'
import { defaultDataDir } from './data-home.ts'

export { defaultDataDir } from './data-home.ts'
import { DEFAULT_LINK_INTERFACE } from './link-interface.ts'

/** Options as the user gave them (all optional; defaults filled by `resolveStartConfig`). */
export interface StartOptions {
  dataDir?: string
  listen?: string[]
  bootstrap?: string[]
  api?: string
  name?: string
  secretFile?: string
  dns?: string
  dnsForward?: string
  dnsTtl?: string
  dnsLoops?: string
  docker?: string
  logLevel?: string
  voters?: string
  deadGrace?: string
  snapshotEntries?: string
  labels?: string[]
  rescheduleGrace?: string
  linkSubnet?: string
  linkInterface?: string
  publishAddress?: string
}

/** Where the DNS server listens, or off. */
export type DnsListen = { host: string; port: number } | 'off'

/** A fully resolved, validated peer configuration. */
export interface StartConfig {
  dataDir: string
  listen: Multiaddr[]
  bootstrap: Multiaddr[]
  apiSocket: string
  name: string
  secretFile: string | undefined
  dns: DnsListen
  /** Upstream resolver for names outside `shoal.`; null = refuse them (never an open resolver). */
  dnsForward: { host: string; port: number } | null
  /** TTL of answers from the zone, in seconds. */
  dnsTtl: number
  /** Event loops answering DNS over UDP (this thread plus worker threads sharing the port). */
  dnsLoops: number
  docker: string | 'none'
  dockerDefaulted: boolean
  logLevel: LogLevel
  /** Voters autopilot keeps; undefined = 3, or 5 from 5 alive peers. */
  voters: number | undefined
  /** How long a voter or learner stays dead before autopilot removes it. */
  deadGraceMs: number
  /** Applied entries between snapshots (the log before a snapshot is then compacted). */
  snapshotEntries: number
  /** `--label K=V`: this host's labels, matched by placement constraints (`host.label.K==V`). */
  labels: Record<string, string>
  /** How long a host stays dead before the leader places its tasks elsewhere. */
  rescheduleGraceMs: number
  /** `--link-subnet CIDR`: where this host's link addresses come from (runtime/links/addresses.ts). */
  linkSubnet: Subnet
  /** `--link-interface NAME|none`: the interface the peer puts its link addresses on; null = the operator does. */
  linkInterface: string | null
  /** `--publish-address ADDR|none`: where this host answers services' published ports (the routing mesh); null = it does not. */
  publishAddress: string | null
}

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/7946'
export const DEFAULT_DNS = '127.0.0.1:5353'
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock'
/** sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL. */
const UNIX_SOCKET_PATH_MAX_BYTES = 107
const NAME_PATTERN = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/

/** Validates a Unix socket path's length, which the kernel limits. */
export function checkSocketPath(path: string, flag: string): string {
  if (Buffer.byteLength(path) > UNIX_SOCKET_PATH_MAX_BYTES) {
    throw new UsageError(`${flag} ${path} is longer than ${UNIX_SOCKET_PATH_MAX_BYTES} bytes, the limit for Unix socket paths; choose a shorter path`)
  }
  return path
}

function parseMultiaddr(text: string, flag: string): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(text)
  } catch (err) {
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not a valid multiaddr (${errorMessage(err)}); expected e.g. /ip4/10.0.0.1/tcp/7946`)
  }
  const names = ma.getComponents().map((c) => c.name)
  if (!names.includes('tcp')) throw new UsageError(`${flag} ${text}: Shoal peers speak TCP; expected e.g. /ip4/10.0.0.1/tcp/7946`)
  return ma
}

function parseCount(text: string | undefined, flag: string, min: number, max: number, fallback: number): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!/^\d+(\.\d+)?$/.test(text) || n < min || n > max) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a number from ${min} to ${max}`)
  return n
}

/** Most DNS event loops: more than the cores only adds threads that wait. */
const DNS_LOOPS_MAX = 16

/** A whole number from `min` to `max`, or `fallback` when the flag is absent. */
function parseWhole(text: string | undefined, flag: string, min: number, max: number, fallback: number): number {
  const n = parseCount(text, flag, min, max, fallback)
  if (!Number.isInteger(n)) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a whole number from ${min} to ${max}`)
  return n
}

/** Parses `HOST:PORT` or `off` for --dns. */
export function parseDnsListen(text: string): DnsListen {
  if (text === 'off') return 'off'
  return parseHostPort(text, '--dns', 'HOST:PORT (e.g. 127.0.0.1:5353; port 0 picks a free one, shown by shoal status) or off', null, true)
}

/** Parses `ADDR[:PORT]` for --dns-forward (port 53 by default); the address must be an IP, so no lookup is needed to reach it. */
export function parseDnsForward(text: string): { host: string; port: number } {
  const addr = parseHostPort(text, '--dns-forward', 'an upstream resolver IP[:PORT], e.g. 10.0.0.2 or [fd00::2]:53', 53)
  if (isIP(addr.host) === 0) throw new UsageError(`--dns-forward ${JSON.stringify(text)}: the upstream must be an IP address, e.g. 10.0.0.2 or [fd00::2]:53`)
  return addr
}

function parseHostPort(text: string, flag: string, expected: string, defaultPort: number | null, allowZero = false): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+|[0-9a-fA-F:]+)(?::(\d{1,5}))?$/.exec(text)
  const bare = match !== null && match[2] === undefined
  const port = match === null ? NaN : bare ? (defaultPort ?? NaN) : Number(match[2])
  if (match === null || match[1] === undefined || !(port >= (allowZero ? 0 : 1) && port <= 65535)) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected ${expected}`)
  return { host: match[1].replace(/^\[|\]$/g, ''), port }
}

/** Fills defaults and validates every option; throws UsageError with the fix on bad input. */
export function resolveStartConfig(options: StartOptions, env: NodeJS.ProcessEnv = process.env): StartConfig {
  const dataDir = resolve(options.dataDir ?? defaultDataDir(env))
  const listen = (options.listen !== undefined && options.listen.length > 0 ? options.listen : [DEFAULT_LISTEN]).map((a) => parseMultiaddr(a, '--listen'))
  for (const ma of listen) {
    if (ma.getComponents().some((c) => c.name === 'p2p')) throw new UsageError(`--listen ${ma.toString()}: a listen address has no /p2p/ part; drop it`)
  }
  const bootstrap = (options.bootstrap ?? []).map((a) => {
    const ma = parseMultiaddr(a, '--bootstrap')
    if (ma.getComponents().findLast((c) => c.name === 'p2p') === undefined) {
      throw new UsageError(`--bootstrap ${a}: the address must end with /p2p/<peer id>; copy it from 'shoal status' on that peer`)
    }
    return ma
  })
  const apiSocket = checkSocketPath(resolve(options.api ?? join(dataDir, 'shoal.sock')), '--api')
  const name = options.name ?? hostname().split('.')[0] ?? 'shoal'
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(`--name ${JSON.stringify(name)}: a peer name is a DNS label (letters, digits and '-', 1-63 characters), e.g. --name host-1`)
  }
  const logLevel = options.logLevel ?? 'info'
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level ${JSON.stringify(logLevel)}: expected one of error, warn, info, debug`)
  let docker: string | 'none'
  let dockerDefaulted = false
  if (options.docker === undefined) {
    dockerDefaulted = true
    docker = existsSync(DEFAULT_DOCKER_SOCKET) ? DEFAULT_DOCKER_SOCKET : 'none'
  } else {
    docker = options.docker === 'none' ? 'none' : checkSocketPath(resolve(options.docker), '--docker')
  }
  return {
    dataDir,
    listen,
    bootstrap,
    apiSocket,
    name,
    secretFile: options.secretFile === undefined ? undefined : resolve(options.secretFile),
    dns: parseDnsListen(options.dns ?? DEFAULT_DNS),
    dnsForward: options.dnsForward === undefined || options.dnsForward === 'off' ? null : parseDnsForward(options.dnsForward),
    dnsTtl: Math.round(parseCount(options.dnsTtl, '--dns-ttl', 0, 86_400, 5)),
    dnsLoops: parseWhole(options.dnsLoops, '--dns-loops', 1, DNS_LOOPS_MAX, 1),
    docker,
    dockerDefaulted,
    logLevel,
    voters: options.voters === undefined ? undefined : (() => {
      const n = parseCount(options.voters, '--voters', 1, 7, 3)
      if (!Number.isInteger(n) || n % 2 === 0) throw new UsageError(`--voters ${options.voters}: use an odd number (1, 3, 5 or 7): an even voter count tolerates no more failures than the odd one below it`)
      return n
    })(),
    deadGraceMs: Math.round(parseCount(options.deadGrace, '--dead-grace', 1, 86_400, 30) * 1000),
    snapshotEntries: Math.round(parseCount(options.snapshotEntries, '--snapshot-entries', 10, 10_000_000, 10_000)),
    labels: parseHostLabels(options.labels ?? []),
    // SWIM only declares a host dead after its suspicion timeout, and a blip it refutes never
    // gets there: a second more is enough, and keeps a dead host's tasks moving within seconds.
    rescheduleGraceMs: Math.round(parseCount(options.rescheduleGrace, '--reschedule-grace', 0, 86_400, 1) * 1000),
    linkSubnet: parseLinkSubnetFlag(options.linkSubnet),
    linkInterface: parseLinkInterfaceFlag(options.linkInterface),
    publishAddress: parsePublishAddressFlag(options.publishAddress),
  }
}

/**
 * `--link-interface NAME|none` (default shoal0). `none`: the peer manages no interface; the
 * operator puts the link addresses on one (or the peers share one network namespace, as in tests).
 */
export function parseLinkInterfaceFlag(text: string | undefined): string | null {
  if (text === 'none') return null
  const name = text ?? DEFAULT_LINK_INTERFACE
  // Linux's IFNAMSIZ: 15 characters; '/' and whitespace are not allowed in interface names.
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    throw new UsageError(`--link-interface ${JSON.stringify(name)}: give an interface name of 1-15 letters, digits, '_', '.' or '-' (default ${DEFAULT_LINK_INTERFACE}), or none to put the link addresses on an interface yourself`)
  }
  return name
}

/**
 * `--publish-address ADDR|none` (default 0.0.0.0, every address of the host, as Docker's `-p`).
 * `none`: this peer answers no published port (peers sharing one network namespace, as in tests).
 */
export function parsePublishAddressFlag(text: string | undefined): string | null {
  if (text === 'none') return null
  const address = text ?? '0.0.0.0'
  if (isIP(address) === 0) throw new UsageError(`--publish-address ${JSON.stringify(address)}: give an IP address of this host (default 0.0.0.0: all of them), or none to answer no published port here`)
  return address
}

/** `--link-subnet CIDR` (default 100.127.0.0/16); the rules are runtime/links/addresses.ts's. */
export function parseLinkSubnetFlag(text: string | undefined): Subnet {
  const r = parseLinkSubnet(text ?? DEFAULT_LINK_SUBNET)
  if (!r.ok) throw new UsageError(`--link-subnet: ${r.error}`)
  return r.subnet
}

const HOST_LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/

/** Parses repeated `--label K=V` (Docker's `--label` on dockerd; constraints read them as host.label.K). */
export function parseHostLabels(items: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {}
  if (items.length > 64) throw new UsageError('--label: at most 64 labels per host')
  for (const item of items) {
    const eq = item.indexOf('=')
    const key = eq < 0 ? item : item.slice(0, eq)
    const value = eq < 0 ? '' : item.slice(eq + 1)
    if (!HOST_LABEL_KEY.test(key)) throw new UsageError(`--label ${JSON.stringify(item)}: give KEY=VALUE, the key made of letters, digits, '.', '_', '/', '-' (e.g. --label zone=eu-1)`)
    if (value.length > 256 || value.includes('\n')) throw new UsageError(`--label ${JSON.stringify(item)}: the value must be one line of at most 256 characters`)
    if (Object.hasOwn(labels, key)) throw new UsageError(`--label ${key} is given twice`)
    labels[key] = value
  }
  return labels
}
