// The link core (issue 13, runtime/links): endpoints resolved at create time, alias and port
// rules, sources per host, serving targets (local first), the link subnet, stable allocation,
// and the link records' keyspace rules (links/ anyone, link-addrs/<host>/ only that host).
import { describe, it, expect } from 'vitest'
import { container } from '../../protocols/dns/testing.ts'
import {
  aliasProblem, defaultPorts, hostHasSource, linkSourcesOn, linkState, linkTargets, normalizeLink, parseLinkPorts, resolveEndpoint,
  type LinkRecord,
} from '../../runtime/links/links.ts'
import { allocateAddresses, parseLinkSubnet, type Subnet } from '../../runtime/links/addresses.ts'
import { checkDelete, checkDeletePrefix, checkPut, encodeRecord, linkAddressKey, linkKey, parseLink } from '../../storage/statestore/index.ts'

const id = (c: string): string => c.repeat(64)
const web1 = container({ id: id('a'), name: 'web-1', host: 'A', ips: ['172.17.0.2'], labels: { 'shoal.service': 'web' } })
const web2 = container({ id: id('b'), name: 'web-2', host: 'B', ips: ['172.18.0.2'], labels: { 'shoal.service': 'web' } })
const dbA = container({ id: id('c'), name: 'db', host: 'A', ips: ['172.17.0.3'], ports: [{ containerPort: 5432, protocol: 'tcp' }] })
const dbB = container({ id: id('d'), name: 'db', host: 'B', ips: ['172.18.0.3'] })
const cache = container({ id: id('e'), name: 'cache', host: 'B', ips: ['172.18.0.4'], labels: { 'shoal.port': '6379,53/udp' } })
const all = [web1, web2, dbA, dbB, cache]

describe('resolveEndpoint', () => {
  it('a service wins over a container of the same name (a spec or running labelled containers make a service)', () => {
    expect(resolveEndpoint('web', new Set(), all)).toEqual({ ok: true, endpoint: { kind: 'service', name: 'web' } })
    expect(resolveEndpoint('cache', new Set(['cache']), all)).toEqual({ ok: true, endpoint: { kind: 'service', name: 'cache' } })
  })
  it('a container name on one host resolves to its full id', () => {
    expect(resolveEndpoint('cache', new Set(), all)).toMatchObject({ ok: true, endpoint: { kind: 'container', id: id('e'), host: 'B' } })
  })
  it('a container name on two hosts is an error asking for the id prefix', () => {
    const r = resolveEndpoint('db', new Set(), all, (h) => `host-${h}`)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error).toMatch(/db names a container on 2 hosts \(cccccccccccc on host-A, dddddddddddd on host-B\); give the id prefix/)
  })
  it('an id prefix of at least 4 hex characters; shorter or ambiguous ones are not', () => {
    expect(resolveEndpoint('DDDD', new Set(), all)).toMatchObject({ ok: true, endpoint: { kind: 'container', id: id('d') } })
    expect(resolveEndpoint('ddd', new Set(), all).ok).toBe(false)
    const twins = [container({ id: `abcd1${'0'.repeat(59)}` }), container({ id: `abcd2${'0'.repeat(59)}`, name: 'x' })]
    const r = resolveEndpoint('abcd', new Set(), twins)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error).toMatch(/matches 2 containers/)
  })
  it('unknown names and lost containers are errors that say where to look', () => {
    const r = resolveEndpoint('nope', new Set(), [...all, container({ id: id('f'), name: 'gone', state: 'lost' })])
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error).toMatch(/no service, container or container id "nope"/)
    expect(resolveEndpoint('gone', new Set(), [container({ id: id('f'), name: 'gone', state: 'lost' })]).ok).toBe(false)
    expect(resolveEndpoint('  ', new Set(), all).ok).toBe(false)
  })
})

describe('aliases and ports', () => {
  it('an alias is a lowercase DNS label and not one of the zone own names', () => {
    expect(aliasProblem('db')).toBeNull()
    expect(aliasProblem('my-db2')).toBeNull()
    for (const bad of ['DB', '-db', 'db-', 'a.b', 'a_b', '', 'x'.repeat(64)]) expect(aliasProblem(bad)).toMatch(/lowercase DNS label/)
    for (const reserved of ['host', 'ns', 'shoal']) expect(aliasProblem(reserved)).toMatch(/reserved/)
  })
  it('ports: PORT or PORT/udp, sorted and distinct; bad ones are errors', () => {
    expect(parseLinkPorts(['80', '53/udp', '80/tcp', '443'])).toEqual({ ok: true, ports: [{ port: 53, protocol: 'udp' }, { port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp' }] })
    for (const bad of ['0', '65536', 'http', '80/sctp', '']) expect(parseLinkPorts([bad]).ok).toBe(false)
  })
  it('default ports: a container label or exposed ports; a service spec, else its instances', () => {
    expect(defaultPorts({ kind: 'container', id: id('e'), name: 'cache', host: 'B' }, null, all)).toEqual([{ port: 53, protocol: 'udp' }, { port: 6379, protocol: 'tcp' }])
    expect(defaultPorts({ kind: 'container', id: id('c'), name: 'db', host: 'A' }, null, all)).toEqual([{ port: 5432, protocol: 'tcp' }])
    expect(defaultPorts({ kind: 'service', name: 'web' }, { ports: [80], published: [{ target: 53, protocol: 'udp' }] }, all)).toEqual([{ port: 53, protocol: 'udp' }, { port: 80, protocol: 'tcp' }])
    expect(defaultPorts({ kind: 'service', name: 'web' }, null, all)).toEqual([{ port: 8080, protocol: 'tcp' }])
    expect(defaultPorts({ kind: 'service', name: 'none' }, { ports: [], published: [] }, all)).toEqual([])
  })
})

const link = (over: Partial<LinkRecord>): LinkRecord => ({ source: 'web', sourceKind: 'service', target: id('c'), targetKind: 'container', alias: 'db', ports: [{ port: 5432, protocol: 'tcp' }], createdAtMs: 1, ...over })

describe('sources and targets', () => {
  it('linkSourcesOn: running instances of a service source, or the container itself, on that host only', () => {
    const l1 = link({})
    const l2 = link({ source: id('e'), sourceKind: 'container', alias: 'x' })
    expect(linkSourcesOn('A', [l1, l2], all)).toEqual([{ link: l1, containers: [web1] }])
    expect(linkSourcesOn('B', [l1, l2], all)).toEqual([{ link: l1, containers: [web2] }, { link: l2, containers: [cache] }])
    expect(linkSourcesOn('B', [l1], [{ ...web2, state: 'exited' }])).toEqual([])
  })
  it('hostHasSource answers the forwarder: stopped sources count, lost ones and other hosts do not', () => {
    expect(hostHasSource('B', link({}), [{ ...web2, state: 'exited' }])).toBe(true)
    expect(hostHasSource('B', link({}), [{ ...web2, state: 'lost' }])).toBe(false)
    expect(hostHasSource('C', link({}), all)).toBe(false)
  })
  it('linkTargets: serving instances of a service, local first; unhealthy, starting and out-of-service ones are left out', () => {
    const l = link({ target: 'web', targetKind: 'service' })
    const web3 = container({ id: id('1'), name: 'web-3', host: 'C', ips: ['172.19.0.2'], labels: { 'shoal.service': 'web' }, health: 'unhealthy' })
    const web4 = container({ id: id('2'), name: 'web-4', host: 'C', ips: ['172.19.0.3'], labels: { 'shoal.service': 'web' }, health: 'starting' })
    const web5 = container({ id: id('3'), name: 'web-5', host: 'C', ips: ['172.19.0.4'], labels: { 'shoal.service': 'web' } })
    const cs = [web1, web2, web3, web4, web5]
    expect(linkTargets(l, cs, new Set([id('3')]), 'B').map((t) => t.host)).toEqual(['B', 'A'])
    expect(linkTargets(l, cs, new Set(), 'A')).toEqual([
      { containerId: id('a'), host: 'A', ips: ['172.17.0.2'] }, { containerId: id('b'), host: 'B', ips: ['172.18.0.2'] }, { containerId: id('3'), host: 'C', ips: ['172.19.0.4'] },
    ])
  })
  it('linkTargets: a container target while it runs', () => {
    expect(linkTargets(link({}), all).map((t) => t.containerId)).toEqual([id('c')])
    expect(linkTargets(link({}), [{ ...dbA, state: 'exited' }])).toEqual([])
  })
  it('linkState: no-source, no-target, active', () => {
    expect(linkState(link({}), all, new Set())).toBe('active')
    expect(linkState(link({ source: 'api' }), all, new Set())).toBe('no-source')
    expect(linkState(link({ target: id('9') }), all, new Set())).toBe('no-target')
  })
  it('a link stored before issue 13 (source, target, alias) still parses, with defaults', () => {
    const r = parseLink(encodeRecord({ source: 'web', target: id('c'), alias: 'db' }))
    expect(r.ok).toBe(true)
    if (r.ok) expect(normalizeLink(r.record)).toEqual({ source: 'web', sourceKind: 'service', target: id('c'), targetKind: 'container', alias: 'db', ports: [], createdAtMs: 0 })
  })
})

describe('link subnet and addresses', () => {
  const sub = (text: string): Subnet => {
    const r = parseLinkSubnet(text)
    if (!r.ok) throw new Error(r.error)
    return r.subnet
  }
  it('the default and other good subnets parse; bad ones say why', () => {
    expect(sub('100.127.0.0/16')).toEqual({ network: (100 * 256 + 127) * 65536, prefix: 16 })
    expect(sub('10.99.0.0/24').prefix).toBe(24)
    const problems: Array<[string, RegExp]> = [
      ['100.127.0.0', /not an IPv4 CIDR/], ['fd00::/64', /not an IPv4 CIDR/], ['100.0.0.0/8', /\/16 to \/28/], ['100.127.0.0/30', /\/16 to \/28/],
      ['100.127.0.1/16', /host bits set; did you mean 100.127.0.0\/16/], ['172.20.0.0/16', /overlaps 172.16.0.0\/12/], ['192.168.5.0/24', /overlaps 192.168.0.0\/16/],
      ['127.1.0.0/16', /loopback/], ['224.1.0.0/16', /multicast/],
    ]
    for (const [text, why] of problems) {
      const r = parseLinkSubnet(text)
      expect(r.ok, text).toBe(false)
      if (!r.ok) expect(r.error).toMatch(why)
    }
  })
  it('new links take the lowest free address, skipping network, interface (.1) and broadcast', () => {
    const s = sub('100.127.0.0/28')
    const out = allocateAddresses(s, new Map(), ['web/db', 'web/cache'])
    expect(out).toEqual(new Map([['web/cache', '100.127.0.2'], ['web/db', '100.127.0.3']]))
    const full = allocateAddresses(s, new Map(), Array.from({ length: 20 }, (_, i) => `s/a${String(i).padStart(2, '0')}`))
    expect(full.size).toBe(13)
    expect([...full.values()]).not.toContain('100.127.0.15')
    expect([...full.values()]).not.toContain('100.127.0.1')
  })
  it('stable: an existing allocation never moves; freed addresses are reused only when free; out-of-subnet ones are replaced', () => {
    const s = sub('100.127.0.0/16')
    const existing = new Map([['a/x', '100.127.0.7'], ['b/y', '100.127.0.2'], ['old/z', '10.0.0.5']])
    const out = allocateAddresses(s, existing, ['a/x', 'b/y', 'c/new', 'old/z', 'c/new'])
    expect(out.get('a/x')).toBe('100.127.0.7')
    expect(out.get('b/y')).toBe('100.127.0.2')
    expect(out.get('c/new')).toBe('100.127.0.3')
    expect(out.get('old/z')).toBe('100.127.0.4')
    // The same state gives the same result whatever order the links come in.
    expect(allocateAddresses(s, existing, ['old/z', 'c/new', 'b/y', 'a/x'])).toEqual(out)
  })
})

describe('keyspace rules', () => {
  const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
  const addr = encodeRecord({ address: '100.127.0.2' })
  it('link-addrs/<host>/... only by that host; anything but {address: IPv4} is refused', () => {
    expect(checkPut(linkAddressKey('hostA', 'web', 'db'), addr, 'hostA', false)).toBeNull()
    expect(checkPut(linkAddressKey('hostA', 'web', 'db'), addr, 'hostB', false)?.code).toBe('permission-denied')
    expect(checkPut(linkAddressKey('hostA', 'web', 'db'), addr, 'hostB', true)?.code).toBe('permission-denied')
    expect(checkPut(linkAddressKey('hostA', 'web', 'db'), encodeRecord({ address: 'fd00::1' }), 'hostA', false)?.code).toBe('invalid-record')
    expect(checkPut('link-addrs/hostA/web', addr, 'hostA', false)?.code).toBe('invalid-record')
  })
  it('deleting: that host or the leader', () => {
    expect(checkDelete(linkAddressKey('hostA', 'web', 'db'), 'hostA', false)).toBeNull()
    expect(checkDelete(linkAddressKey('hostA', 'web', 'db'), 'hostB', false)?.code).toBe('permission-denied')
    expect(checkDelete(linkAddressKey('hostA', 'web', 'db'), 'hostB', true)).toBeNull()
    expect(checkDeletePrefix('link-addrs/hostA/', 'hostA', false)).toBeNull()
    expect(checkDeletePrefix('link-addrs/', 'hostA', false)?.code).toBe('permission-denied')
  })
  it('links/ take the new fields, checked; unknown fields stay allowed', () => {
    const good = { source: 'web', sourceKind: 'service', target: 'db', targetKind: 'service', alias: 'db', ports: [{ port: 5432, protocol: 'tcp' }], createdAtMs: 5, future: true }
    expect(checkPut(linkKey('web', 'db'), json(good), 'anyone', false)).toBeNull()
    for (const bad of [{ sourceKind: 'pod' }, { ports: [{ port: 0, protocol: 'tcp' }] }, { ports: 'x' }, { createdAtMs: -1 }]) {
      expect(checkPut(linkKey('web', 'db'), json({ ...good, ...bad }), 'anyone', false)?.code).toBe('invalid-record')
    }
  })
})
