/**
 * Which instance a new link connection goes to (issue 13): the healthy instances the caller
 * resolved, spread round-robin, local ones first in the rotation and in the fallback. Pure: the cursor comes in as a value and the
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
 * The order in which to try targets for one connection. The first is picked round-robin by
 * `cursor` over every instance, local ones first in the rotation: consecutive connections go to
 * each healthy instance in turn, so a service's load spreads over all its hosts, as Swarm's VIP
 * and Kubernetes' service proxy spread it (a strict local preference would leave remote
 * instances idle whenever the source's host runs one). When the pick refuses, the remaining
 * local instances come next (no libp2p hop), then the remaining remote ones. Duplicates are dropped.
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
  const all = [...local, ...remote]
  const first = rotate(all, cursor)[0]
  if (first === undefined) return []
  return [first, ...rotate(local, cursor).filter((t) => t !== first), ...rotate(remote, cursor).filter((t) => t !== first)]
}

function rotate<T>(items: readonly T[], cursor: number): T[] {
  if (items.length === 0) return []
  const at = ((Math.trunc(cursor) % items.length) + items.length) % items.length
  return [...items.slice(at), ...items.slice(0, at)]
}
