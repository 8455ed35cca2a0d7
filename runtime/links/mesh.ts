/**
 * The routing mesh (issue 13, "Published service ports"), the deciding part, pure: which ports
 * every peer answers on for which service, which peers may open a mesh stream, and which
 * published ports clash across services. A port published in mode `ingress` (the default) is
 * answered on every host at its published port and carried, as a link connection is, to a
 * healthy instance of the service wherever it runs; mode `host` is Docker's own `-p` on the
 * hosts that run an instance, and the scheduler keeps two of those off one host.
 *
 * A mesh route travels the link path under the name `@publish/<service>`: `@` never starts a
 * link's source (a service name or a container id), so the two never meet.
 */
import type { PublishedPort } from '../scheduler/spec.ts'

/** The link-name prefix of mesh routes. */
export const MESH_PREFIX = '@publish/'

/** What the mesh reads of a service spec. */
export interface PublishingService {
  readonly name: string
  readonly published: readonly PublishedPort[]
}

/** One port every peer answers on: connections to `published` go to an instance of `service` at `target`. */
export interface MeshRoute {
  /** The name the link path carries it under: `@publish/<service>`. */
  readonly link: string
  readonly service: string
  readonly published: number
  readonly target: number
}

/** The mesh route name of `service`. */
export function meshLink(service: string): string {
  return `${MESH_PREFIX}${service}`
}

/** The service a mesh route name stands for, or null when `link` is not one. */
export function meshService(link: string): string | null {
  if (!link.startsWith(MESH_PREFIX)) return null
  const name = link.slice(MESH_PREFIX.length)
  return name === '' || name.includes('/') ? null : name
}

/**
 * Every service's ingress ports, by published port. Two services never share one (the API
 * refuses it: `publishClashes`); should stored specs clash anyway (written before the check),
 * the service first by name keeps the port, so every peer picks the same one.
 */
export function meshRoutes(services: readonly PublishingService[]): MeshRoute[] {
  const byPort = new Map<number, MeshRoute>()
  const sorted = [...services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const s of sorted) {
    for (const p of s.published) {
      if (p.mode !== 'ingress' || p.protocol !== 'tcp' || byPort.has(p.published)) continue
      byPort.set(p.published, { link: meshLink(s.name), service: s.name, published: p.published, target: p.target })
    }
  }
  return [...byPort.values()].sort((a, b) => a.published - b.published)
}

/**
 * Whether a peer may open a mesh stream for `link` to target `port`: it must be a host of the
 * cluster (any of them answers every published port) and `port` one of the service's ingress
 * targets, so the mesh never reaches a port the service did not publish.
 */
export function meshAuthorized(remote: string, link: string, port: number, routes: readonly MeshRoute[], hosts: ReadonlySet<string>): boolean {
  return hosts.has(remote) && routes.some((r) => r.link === link && r.target === port)
}

/**
 * What the services in `changed` would clash on, one message each: a port published through
 * the mesh is taken on every host, so no other service may publish it (in either mode) with the
 * same protocol. Two `host`-mode ports may share a number; the scheduler keeps them on
 * different hosts. Clashes among services not in `changed` are not reported (they predate this write).
 */
export function publishClashes(services: readonly PublishingService[], changed: ReadonlySet<string>): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const s of services) {
    if (!changed.has(s.name)) continue
    for (const p of s.published) {
      for (const o of services) {
        if (o.name === s.name) continue
        const q = o.published.find((x) => x.published === p.published && x.protocol === p.protocol && (x.mode === 'ingress' || p.mode === 'ingress'))
        if (q === undefined) continue
        const pair = [s.name, o.name].sort().join('|') + `|${p.published}/${p.protocol}`
        if (seen.has(pair)) continue
        seen.add(pair)
        const mesh = q.mode === 'ingress' ? o.name : s.name
        out.push(`service ${s.name} publishes port ${p.published}/${p.protocol}, which service ${o.name} publishes too; ${mesh}'s is on the routing mesh (answered on every host), so no other service can have it: publish another port, or change ${o.name} first`)
      }
    }
  }
  return out
}
