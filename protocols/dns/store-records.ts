/** Reads what the DNS zone is built from out of a StateStore replica (pure). */
import { CONTAINERS_PREFIX, HOSTS_PREFIX, parseContainer, parseHost, type Container, type Host, type StateStore } from '../../storage/statestore/index.ts'
import type { ZoneRecords } from './zone-build.ts'

/** Every container and host record of `store`, and its revision. Records that do not parse are skipped. */
export function zoneRecordsFromStore(store: Pick<StateStore, 'range' | 'revision'>): ZoneRecords {
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
  return { containers, hosts, revision: store.revision }
}
