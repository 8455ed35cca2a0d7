/**
 * Links (issue 13), the deciding part, pure: what a user's SOURCE and TARGET name, which
 * containers are a link's sources on a host, which instances serve its target, and what
 * `shoal link ls` says of it. The daemon (node/link-api.ts, node/link-addresses.ts, the
 * forwarder) and DNS call these; none of them decides this again.
 *
 * A link is stored at `links/<source>/<alias>` with its endpoints resolved when it is created:
 * a service by its name (every instance, on every host, now and later), a container by its full
 * id. An id is stable across `docker rename`, `docker restart` and a host's reboot, so the link
 * follows the container; a container removed and created again (`docker rm` + `docker run`,
 * Compose's recreate) has a new id, and the link then has no source or target until it is
 * created again (`shoal link ls` says `no-source` / `no-target`). Link a service to follow
 * replacements.
 */
import type { Container, Link, LinkEndpointKind, LinkPort } from '../../storage/statestore/index.ts'
import { serviceOf, servicePortsOf } from '../../storage/statestore/container-labels.ts'
import { isServing } from '../serving.ts'

/** A link with every field of issue 13 present (older records get defaults: `normalizeLink`). */
export interface LinkRecord {
  readonly source: string
  readonly sourceKind: LinkEndpointKind
  readonly target: string
  readonly targetKind: LinkEndpointKind
  readonly alias: string
  readonly ports: readonly LinkPort[]
  readonly createdAtMs: number
}

/** Links are named `<source>/<alias>` (the tail of their key, and of their address's key). */
export function linkName(link: Pick<Link, 'source' | 'alias'>): string {
  return `${link.source}/${link.alias}`
}

const FULL_ID = /^[0-9a-f]{64}$/
const ID_PREFIX = /^[0-9a-f]{4,64}$/
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/** A stored link with defaults for fields written before issue 13 (an id-shaped endpoint is a container). */
export function normalizeLink(link: Link): LinkRecord {
  const kind = (name: string, given: LinkEndpointKind | undefined): LinkEndpointKind => given ?? (FULL_ID.test(name) ? 'container' : 'service')
  return {
    source: link.source, sourceKind: kind(link.source, link.sourceKind),
    target: link.target, targetKind: kind(link.target, link.targetKind),
    alias: link.alias, ports: link.ports ?? [], createdAtMs: link.createdAtMs ?? 0,
  }
}

/** A resolved endpoint: a service name, or a container's full id (with where it runs, for messages). */
export type Endpoint =
  | { readonly kind: 'service'; readonly name: string }
  | { readonly kind: 'container'; readonly id: string; readonly name: string; readonly host: string }

export type EndpointResult = { readonly ok: true; readonly endpoint: Endpoint } | { readonly ok: false; readonly error: string }

/** The value stored for an endpoint: the service's name or the container's full id. */
export function endpointValue(e: Endpoint): string {
  return e.kind === 'service' ? e.name : e.id
}

/**
 * What `text` names: a service if one exists by that name (a spec in `services/`, or running
 * containers labelled `shoal.service=NAME`), else a container by name, else by id prefix (at
 * least 4 hex characters). A container name used on several hosts is ambiguous (Docker names
 * are unique per host only): the error lists the ids to choose from. Lost containers are not
 * candidates.
 */
export function resolveEndpoint(text: string, services: ReadonlySet<string>, containers: readonly Container[], hostName: (hostId: string) => string = (h) => h): EndpointResult {
  const t = text.trim()
  if (t === '') return { ok: false, error: 'an empty name: give a service name, a container name or a container id' }
  const lower = t.toLowerCase()
  const labelled = new Set(containers.filter((c) => c.state === 'running').map(serviceOf).filter((s): s is string => s !== null))
  if (services.has(lower) || labelled.has(lower)) return { ok: true, endpoint: { kind: 'service', name: lower } }
  const live = containers.filter((c) => c.state !== 'lost')
  const byName = live.filter((c) => c.name === t)
  if (byName.length === 1) {
    const c = byName[0] as Container
    return { ok: true, endpoint: { kind: 'container', id: c.id, name: c.name, host: c.host } }
  }
  if (byName.length > 1) {
    const list = byName.map((c) => `${c.id.slice(0, 12)} on ${hostName(c.host)}`).join(', ')
    return { ok: false, error: `${t} names a container on ${byName.length} hosts (${list}); give the id prefix of the one you mean` }
  }
  if (ID_PREFIX.test(lower)) {
    const byId = live.filter((c) => c.id.startsWith(lower))
    if (byId.length === 1) {
      const c = byId[0] as Container
      return { ok: true, endpoint: { kind: 'container', id: c.id, name: c.name, host: c.host } }
    }
    if (byId.length > 1) return { ok: false, error: `container id prefix ${t} matches ${byId.length} containers; give more characters` }
  }
  return { ok: false, error: `no service, container or container id ${JSON.stringify(t)}; 'shoal service ls' and 'shoal ps' list them` }
}

/** Labels of the zone `shoal.` itself: an alias equal to one would hide the zone's own names. */
export const RESERVED_ALIASES: ReadonlySet<string> = new Set(['shoal', 'host', 'ns'])

/** Why `alias` cannot be an alias, or null. */
export function aliasProblem(alias: string): string | null {
  if (!DNS_LABEL.test(alias)) return `alias ${JSON.stringify(alias)} must be a lowercase DNS label: a-z, 0-9 and '-', at most 63 characters, no '-' at either end`
  if (RESERVED_ALIASES.has(alias)) return `alias ${JSON.stringify(alias)} is reserved (the zone's own names: ${[...RESERVED_ALIASES].join(', ')}); choose another`
  return null
}

export type PortsResult = { readonly ok: true; readonly ports: LinkPort[] } | { readonly ok: false; readonly error: string }

/** Parses `--port` values: `P` or `P/tcp` or `P/udp`; sorted, distinct. */
export function parseLinkPorts(values: readonly string[]): PortsResult {
  const ports: LinkPort[] = []
  for (const v of values) {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(v.trim())
    const port = Number(m?.[1])
    if (m === null || port < 1 || port > 65535) return { ok: false, error: `port ${JSON.stringify(v)} is not PORT or PORT/udp (1-65535)` }
    ports.push({ port, protocol: m[2]?.toLowerCase() === 'udp' ? 'udp' : 'tcp' })
  }
  return { ok: true, ports: distinctPorts(ports) }
}

function distinctPorts(ports: readonly LinkPort[]): LinkPort[] {
  const byKey = new Map<string, LinkPort>()
  for (const p of ports) byKey.set(`${String(p.port).padStart(5, '0')}/${p.protocol}`, p)
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p)
}

/** What a service spec says of its ports (ServiceSpec's `ports` and `published`). */
export interface ServicePortsSpec {
  readonly ports: readonly number[]
  readonly published: ReadonlyArray<{ readonly target: number; readonly protocol: 'tcp' | 'udp' }>
}

/**
 * The target's own ports, the default of a link's: for a service, its spec's ports and
 * published targets, else what its running instances announce; for a container, its
 * `shoal.port` label or exposed ports (runtime/container-labels.ts `servicePortsOf`).
 */
export function defaultPorts(target: Endpoint, spec: ServicePortsSpec | null, containers: readonly Container[]): LinkPort[] {
  if (target.kind === 'container') {
    const c = containers.find((x) => x.id === target.id)
    return c === undefined ? [] : servicePortsOf(c)
  }
  if (spec !== null && (spec.ports.length > 0 || spec.published.length > 0)) {
    return distinctPorts([...spec.ports.map((port): LinkPort => ({ port, protocol: 'tcp' })), ...spec.published.map((p): LinkPort => ({ port: p.target, protocol: p.protocol }))])
  }
  return distinctPorts(containers.filter((c) => c.state === 'running' && serviceOf(c) === target.name).flatMap(servicePortsOf))
}

/** Whether `c` is one of `link`'s source containers (running or not). */
export function isSourceContainer(link: Pick<LinkRecord, 'source' | 'sourceKind'>, c: Container): boolean {
  return link.sourceKind === 'service' ? serviceOf(c) === link.source : c.id === link.source
}

/** The running source containers of every link on host `hostId`; links without one there are left out. */
export function linkSourcesOn(hostId: string, links: readonly LinkRecord[], containers: readonly Container[]): Array<{ link: LinkRecord; containers: Container[] }> {
  const here = containers.filter((c) => c.host === hostId && c.state === 'running')
  const out: Array<{ link: LinkRecord; containers: Container[] }> = []
  for (const link of links) {
    const sources = here.filter((c) => isSourceContainer(link, c))
    if (sources.length > 0) out.push({ link, containers: sources })
  }
  return out
}

/**
 * Whether host `hostId` has a source container of `link`, running or not: the forwarder's
 * authorisation question ("may peer P open a stream for link L?"). Lost records do not count.
 */
export function hostHasSource(hostId: string, link: Pick<LinkRecord, 'source' | 'sourceKind'>, containers: readonly Container[]): boolean {
  return containers.some((c) => c.host === hostId && c.state !== 'lost' && isSourceContainer(link, c))
}

/** One instance a link's connections may go to. */
export interface LinkTarget {
  readonly containerId: string
  readonly host: string
  /** The container's own addresses (reached on its host), in record order. */
  readonly ips: readonly string[]
}

/**
 * The instances serving `link`'s target, those on `localHost` first (no libp2p hop), then by
 * host and id. A service's are its running instances that are healthy (or have no health
 * check) and not out of service (runtime/serving.ts: DNS answers the same ones); a container
 * target is itself while it runs.
 */
export function linkTargets(link: Pick<LinkRecord, 'target' | 'targetKind'>, containers: readonly Container[], outOfService: ReadonlySet<string> = new Set(), localHost: string | null = null): LinkTarget[] {
  const serving = containers.filter((c) => c.state === 'running' && c.ips.length > 0 && (link.targetKind === 'service'
    ? serviceOf(c) === link.target && isServing(c, outOfService)
    : c.id === link.target))
  serving.sort((a, b) => Number(b.host === localHost) - Number(a.host === localHost) || compare(a.host, b.host) || compare(a.id, b.id))
  return serving.map((c) => ({ containerId: c.id, host: c.host, ips: c.ips }))
}

/** What `shoal link ls` says of a link. */
export type LinkState = 'active' | 'no-target' | 'no-source'

/** `no-source` when no source container exists anywhere (lost ones aside), else `no-target` without a serving instance, else `active`. */
export function linkState(link: LinkRecord, containers: readonly Container[], outOfService: ReadonlySet<string>): LinkState {
  if (!containers.some((c) => c.state !== 'lost' && isSourceContainer(link, c))) return 'no-source'
  return linkTargets(link, containers, outOfService).length > 0 ? 'active' : 'no-target'
}

/** A DNS alias answer on one host: `querier` asking `name` gets `address` (see protocols/dns). */
export interface AliasAnswer {
  readonly querier: string
  readonly name: string
  readonly address: string
}

/**
 * The alias answers of host `hostId`: each running source container's addresses, for each link
 * this host gave an address (`addresses`: link name → address).
 */
export function aliasAnswers(hostId: string, links: readonly LinkRecord[], containers: readonly Container[], addresses: ReadonlyMap<string, string>): AliasAnswer[] {
  const out: AliasAnswer[] = []
  for (const { link, containers: sources } of linkSourcesOn(hostId, links, containers)) {
    const address = addresses.get(linkName(link))
    if (address === undefined) continue
    for (const c of sources) for (const querier of c.ips) out.push({ querier, name: link.alias, address })
  }
  return out
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
