/**
 * What the link cores read from a StateStore replica (pure): links, containers, service names,
 * instances out of service, mesh routes, hosts, and one host's link addresses. The API, the address loop, DNS and
 * the forwarder all read through here.
 */
import {
  CONTAINERS_PREFIX, HOSTS_PREFIX, LINKS_PREFIX, LINK_ADDRS_PREFIX, SERVICES_PREFIX, parseContainer, parseLink, parseLinkAddress,
  type Container, type StateStore,
} from '../../storage/statestore/index.ts'
import { outOfServiceIds } from '../serving.ts'
import { normalizeLink, type LinkRecord } from './links.ts'
import { meshRoutes, type MeshRoute, type PublishingService } from './mesh.ts'
import { decodeServiceRecord } from '../scheduler/spec.ts'

/** The replica's links and what they are resolved against. */
export interface LinkView {
  readonly links: LinkRecord[]
  readonly containers: Container[]
  /** Names of services with a spec. */
  readonly services: ReadonlySet<string>
  readonly outOfService: ReadonlySet<string>
  /** The ports every peer answers on for a service (runtime/links/mesh.ts). */
  readonly mesh: MeshRoute[]
  /** Peer ids of the cluster's hosts (those with a host record). */
  readonly hosts: ReadonlySet<string>
}

/** Every link (records that do not parse are skipped), with containers, services, out-of-service ids, mesh routes and hosts. */
export function readLinkView(store: Pick<StateStore, 'range'>): LinkView {
  const links: LinkRecord[] = []
  for (const kv of store.range(LINKS_PREFIX).kvs) {
    const r = parseLink(kv.value)
    if (r.ok) links.push(normalizeLink(r.record))
  }
  const containers: Container[] = []
  for (const kv of store.range(CONTAINERS_PREFIX).kvs) {
    const r = parseContainer(kv.value)
    if (r.ok) containers.push(r.record)
  }
  const services = new Set<string>()
  const publishing: PublishingService[] = []
  for (const kv of store.range(SERVICES_PREFIX).kvs) {
    services.add(kv.key.slice(SERVICES_PREFIX.length))
    const r = decodeServiceRecord(kv.value)
    if (r.ok && r.value.published.length > 0) publishing.push(r.value)
  }
  const hosts = new Set(store.range(HOSTS_PREFIX).kvs.map((kv) => kv.key.slice(HOSTS_PREFIX.length)))
  return { links, containers, services, outOfService: new Set(outOfServiceIds(store, containers)), mesh: meshRoutes(publishing), hosts }
}

/** Host `hostId`'s link addresses: link name (`<source>/<alias>`) → IPv4 address. */
export function readLinkAddresses(store: Pick<StateStore, 'range'>, hostId: string): Map<string, string> {
  const prefix = `${LINK_ADDRS_PREFIX}${hostId}/`
  const out = new Map<string, string>()
  for (const kv of store.range(prefix).kvs) {
    const r = parseLinkAddress(kv.value)
    if (r.ok) out.set(kv.key.slice(prefix.length), r.record.address)
  }
  return out
}
