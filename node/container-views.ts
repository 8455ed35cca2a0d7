/** `shoal ps`: the cluster's containers as this replica has them, filtered like `docker ps`. */
import { CONTAINERS_PREFIX, parseContainer, type Container, type StateStore } from '../storage/statestore/index.ts'

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
