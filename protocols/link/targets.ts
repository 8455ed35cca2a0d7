/**
 * Which instance a new link connection goes to (issue 13): the healthy instances the caller
 * resolved, local ones first, spread round-robin. Pure: the cursor comes in as a value and the
 * caller keeps it per link.
 */

/** One running, healthy instance of a link's target, as the peer's replica knows it. */
export interface LinkInstance {
  /** Peer id of the host it runs on. */
  host: string
  /** Its address on that host's container network. */
  ip: string
  port: number
}

/**
 * The order in which to try targets for one connection: the local instances rotated by
 * `cursor`, then the remote ones rotated by `cursor`. A local instance is reached with no
 * libp2p hop at all, so it always comes first (as Swarm's mesh prefers a local task); the
 * remote ones are the fallback when every local one refuses. Duplicates are dropped.
 */
export function orderTargets(targets: readonly LinkInstance[], selfId: string, cursor: number): LinkInstance[] {
  const seen = new Set<string>()
  const local: LinkInstance[] = []
  const remote: LinkInstance[] = []
  for (const t of targets) {
    const key = `${t.host}|${t.ip}|${t.port}`
    if (seen.has(key)) continue
    seen.add(key)
    ;(t.host === selfId ? local : remote).push(t)
  }
  return [...rotate(local, cursor), ...rotate(remote, cursor)]
}

function rotate<T>(items: readonly T[], cursor: number): T[] {
  if (items.length === 0) return []
  const at = ((Math.trunc(cursor) % items.length) + items.length) % items.length
  return [...items.slice(at), ...items.slice(0, at)]
}
