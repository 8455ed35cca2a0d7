// The routing mesh's deciding core (runtime/links/mesh.ts): routes, route names, who may open a mesh stream, and clashes.
import { describe, it, expect } from 'vitest'
import { meshLink, meshService, meshRoutes, meshAuthorized, publishClashes, MESH_PREFIX } from '../../runtime/links/mesh.ts'
import type { PublishingService } from '../../runtime/links/mesh.ts'
import type { PublishedPort } from '../../runtime/scheduler/spec.ts'

const ingress = (published: number, target: number): PublishedPort => ({ published, target, protocol: 'tcp', mode: 'ingress' })
const host = (published: number, target: number, protocol: 'tcp' | 'udp' = 'tcp'): PublishedPort => ({ published, target, protocol, mode: 'host' })
const svc = (name: string, ...published: PublishedPort[]): PublishingService => ({ name, published })

describe('mesh route names', () => {
  it('round-trips a service name and refuses what is not a mesh route', () => {
    expect(meshLink('web')).toBe(`${MESH_PREFIX}web`)
    expect(meshService(meshLink('web'))).toBe('web')
    expect(meshService('web')).toBeNull()
    expect(meshService('client->web')).toBeNull()
    expect(meshService(MESH_PREFIX)).toBeNull()
    expect(meshService(`${MESH_PREFIX}a/b`)).toBeNull()
  })
})

describe('meshRoutes', () => {
  it('carries only tcp ingress ports, sorted by published port', () => {
    const routes = meshRoutes([svc('web', ingress(8080, 80), host(9000, 90)), svc('api', ingress(7000, 7000))])
    expect(routes).toEqual([
      { link: meshLink('api'), service: 'api', published: 7000, target: 7000 },
      { link: meshLink('web'), service: 'web', published: 8080, target: 80 },
    ])
  })
  it('gives a clashing port to the service first by name, whatever order the specs come in', () => {
    const a = meshRoutes([svc('zeta', ingress(80, 1)), svc('alpha', ingress(80, 2))])
    const b = meshRoutes([svc('alpha', ingress(80, 2)), svc('zeta', ingress(80, 1))])
    expect(a).toEqual(b)
    expect(a).toEqual([{ link: meshLink('alpha'), service: 'alpha', published: 80, target: 2 }])
  })
  it('is empty when nothing is published through the mesh', () => {
    expect(meshRoutes([svc('a'), svc('b', host(80, 80))])).toEqual([])
  })
})

describe('meshAuthorized', () => {
  const routes = meshRoutes([svc('web', ingress(8080, 80))])
  const hosts = new Set(['peerA', 'peerB'])
  it('lets any host of the cluster reach a published target of the service', () => {
    expect(meshAuthorized('peerA', meshLink('web'), 80, routes, hosts)).toBe(true)
    expect(meshAuthorized('peerB', meshLink('web'), 80, routes, hosts)).toBe(true)
  })
  it('refuses a peer that is no host, a port the service did not publish, and another service', () => {
    expect(meshAuthorized('stranger', meshLink('web'), 80, routes, hosts)).toBe(false)
    expect(meshAuthorized('peerA', meshLink('web'), 22, routes, hosts)).toBe(false)
    expect(meshAuthorized('peerA', meshLink('web'), 8080, routes, hosts)).toBe(false)
    expect(meshAuthorized('peerA', meshLink('db'), 80, routes, hosts)).toBe(false)
  })
})

describe('publishClashes', () => {
  it('refuses a second service on a port the mesh holds, in either mode and either order', () => {
    const meshFirst = publishClashes([svc('web', ingress(8080, 80)), svc('api', host(8080, 80))], new Set(['api']))
    expect(meshFirst).toHaveLength(1)
    expect(meshFirst[0]).toMatch(/^service api publishes port 8080\/tcp, which service web publishes too; web's is on the routing mesh/)
    const meshSecond = publishClashes([svc('web', host(8080, 80)), svc('api', ingress(8080, 80))], new Set(['api']))
    expect(meshSecond).toHaveLength(1)
    expect(meshSecond[0]).toMatch(/api's is on the routing mesh/)
    expect(publishClashes([svc('web', ingress(8080, 80)), svc('api', ingress(8080, 81))], new Set(['api']))).toHaveLength(1)
  })
  it('lets two host-mode ports share a number, and protocols not collide', () => {
    expect(publishClashes([svc('a', host(53, 53)), svc('b', host(53, 53))], new Set(['a', 'b']))).toEqual([])
    expect(publishClashes([svc('a', ingress(53, 53)), svc('b', host(53, 53, 'udp'))], new Set(['b']))).toEqual([])
  })
  it('reports each clash once, and only those the changed services take part in', () => {
    const services = [svc('a', ingress(80, 80)), svc('b', ingress(80, 80)), svc('c', ingress(90, 90)), svc('d', ingress(90, 90))]
    expect(publishClashes(services, new Set(['a', 'b']))).toHaveLength(1)
    expect(publishClashes(services, new Set(['a']))).toHaveLength(1)
    expect(publishClashes(services, new Set(['e']))).toEqual([])
    expect(publishClashes(services, new Set(['a', 'c']))).toHaveLength(2)
  })
  it('lets a service keep its own ports when it is rewritten', () => {
    expect(publishClashes([svc('web', ingress(8080, 80), ingress(8443, 443))], new Set(['web']))).toEqual([])
  })
})
