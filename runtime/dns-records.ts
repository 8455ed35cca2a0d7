/** Reads what the DNS zone is built from out of a StateStore replica (pure). */
import { CONTAINERS_PREFIX, HOSTS_PREFIX, parseContainer, parseHost, type Container, type Host, type StateStore } from '../storage/statestore/index.ts'
import type { ZoneRecords } from '../protocols/dns/zone-build.ts'
import { outOfServiceIds } from './serving.ts'
import { aliasAnswers, normalizeLink, type LinkRecord } from './links/links.ts'
import { readLinkAddresses } from './links/store.ts'
import { LINKS_PREFIX, parseLink } from '../storage/statestore/index.ts'

/**
 * Every container and host record of `store`, and its revision. Records that do not parse are
 * skipped. With `selfHostId`, also the link aliases of that host (the server answering its
 * containers): which source container, asking which alias, gets which of the host's link addresses.
 */
export function zoneRecordsFromStore(store: Pick<StateStore, 'range' | 'revision'>, selfHostId?: string): ZoneRecords {
  const containers: Container[] = []
  for (const kv of store.range(CONTAINERS_PREFIX).kvs) {
    const parsed = parseContainer(kv.value)
    // Validated on write; a newer peer's record this version cannot read is left out.
    if (parsed.ok) containers.push(parsed.record)
  }
  const hosts: Host[] = []
  for (const kv of store.range(HOSTS_PREFIX).kvs) {
    const parsed = parseHost(kv.value)
    if (parsed.ok) hosts.push(parsed.record)
  }
  const records: ZoneRecords = { containers, hosts, revision: store.revision, outOfService: outOfServiceIds(store, containers) }
  if (selfHostId === undefined) return records
  const addresses = readLinkAddresses(store, selfHostId)
  if (addresses.size === 0) return records
  const links: LinkRecord[] = []
  for (const kv of store.range(LINKS_PREFIX).kvs) {
    const r = parseLink(kv.value)
    if (r.ok) links.push(normalizeLink(r.record))
  }
  return { ...records, aliases: aliasAnswers(selfHostId, links, containers, addresses) }
}
