/** `shoal ps` and `shoal hosts`: the cluster's containers and hosts as this replica has them. */
import { CONTAINERS_PREFIX, HOSTS_PREFIX, parseContainer, parseHost, type Container, type Host, type StateStore } from '../storage/statestore/index.ts'

/** One row of `shoal ps --json`: the stored record plus the revision that last changed it. */
export type ContainerView = Container & { modRevision: number }

/** What `docker ps` shows without --all, plus `lost`: a container whose host vanished is news, not history. */
const SHOWN_BY_DEFAULT: ReadonlySet<string> = new Set(['running', 'paused', 'lost'])

export interface ContainerFilter {
  all: boolean
  /** A host's name or peer id. */
  host: string | null
}

/** The containers under the filter, sorted by host name, then container name. */
export function listContainers(store: StateStore, filter: ContainerFilter): ContainerView[] {
  const out: ContainerView[] = []
  for (const kv of store.range(CONTAINERS_PREFIX).kvs) {
    const parsed = parseContainer(kv.value)
    if (!parsed.ok) continue // validated on write; a newer peer's record we cannot read is skipped
    const c = parsed.record
    if (!filter.all && !SHOWN_BY_DEFAULT.has(c.state)) continue
    if (filter.host !== null && c.hostName !== filter.host && c.host !== filter.host) continue
    out.push({ ...c, modRevision: kv.modRevision })
  }
  return out.sort((a, b) => a.hostName.localeCompare(b.hostName) || a.name.localeCompare(b.name))
}

/** One row of `shoal hosts --json`: the stored host record, its liveness as this peer sees it, and its containers. */
export type HostView = Host & { state: 'alive' | 'suspect' | 'dead' | 'left' | 'unknown'; containers: { running: number; total: number } }

/** Every host with a record in the state, sorted by name; `stateOf` gives this peer's view of its liveness. */
export function listHosts(store: StateStore, stateOf: (peerId: string) => HostView['state']): HostView[] {
  const counts = new Map<string, { running: number; total: number }>()
  for (const kv of store.range(CONTAINERS_PREFIX).kvs) {
    const parsed = parseContainer(kv.value)
    if (!parsed.ok) continue
    const c = counts.get(parsed.record.host) ?? { running: 0, total: 0 }
    c.total++
    if (parsed.record.state === 'running') c.running++
    counts.set(parsed.record.host, c)
  }
  const out: HostView[] = []
  for (const kv of store.range(HOSTS_PREFIX).kvs) {
    const parsed = parseHost(kv.value)
    if (!parsed.ok) continue
    out.push({ ...parsed.record, state: stateOf(parsed.record.peerId), containers: counts.get(parsed.record.peerId) ?? { running: 0, total: 0 } })
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId))
}
