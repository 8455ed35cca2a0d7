// Typed buckets: record validation and the ownership rule (a host writes its
// own containers; the leader may only mark them lost).
import { describe, it, expect } from 'vitest'
import { StoreDriver, text } from '../../storage/statestore/testing.ts'
import {
  checkAccess, containerKey, encodeRecord, hostKey, linkKey, parseContainer, parseHost, parseLink, parseService, serviceKey,
  type Container, type Host, type Link, type Service,
} from '../../storage/statestore/records.ts'

const container = (over: Partial<Container> = {}): Container => ({
  id: 'c1', name: 'web-1', image: 'app:1', host: 'hostA', hostName: 'alpha', ips: ['10.0.0.5'],
  ports: [{ containerPort: 8080, protocol: 'tcp', hostPort: 80 }], labels: { tier: 'web' }, state: 'running',
  startedAt: '2024-05-01T10:00:00.000Z', ...over,
})
const host: Host = { peerId: 'hostA', name: 'alpha', addrs: ['/ip4/10.0.0.1/tcp/7946'], version: '0.1.0', cpus: 4, memoryBytes: 8e9 }
const service: Service = { name: 'web', image: 'app:1', replicas: 3, ports: [8080], cmd: ['serve', '--port', '8080'] }
const link: Link = { source: 'web', target: 'db', alias: 'database' }

function putRecord(d: StoreDriver, key: string, value: Uint8Array, origin: string, asLeader = false) {
  return d.run({ type: 'put', key, value }, { origin, asLeader })
}

describe('container ownership', () => {
  it('a host writes and deletes its own containers', () => {
    const d = new StoreDriver()
    const key = containerKey('hostA', 'c1')
    expect(putRecord(d, key, encodeRecord(container()), 'hostA').ok).toBe(true)
    expect(d.del(key, { origin: 'hostA' }).ok).toBe(true)
  })

  it('another peer may not write or delete them', () => {
    const d = new StoreDriver()
    const key = containerKey('hostA', 'c1')
    putRecord(d, key, encodeRecord(container()), 'hostA')
    expect(putRecord(d, key, encodeRecord(container({ state: 'exited' })), 'hostB')).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.del(key, { origin: 'hostB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.run({ type: 'deletePrefix', prefix: 'containers/' }, { origin: 'hostB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.run({ type: 'deletePrefix', prefix: 'containers/hostA/' }, { origin: 'hostB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.run({ type: 'deletePrefix', prefix: '' }, { origin: 'hostB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    // 'containers/hostA' without the slash would also match containers/hostAB/...
    expect(d.run({ type: 'deletePrefix', prefix: 'containers/hostA' }, { origin: 'hostA' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.run({ type: 'deletePrefix', prefix: 'containers/hostA/' }, { origin: 'hostA' }).ok).toBe(true)
  })

  it('the leader may mark a container lost, but not write any other state for it', () => {
    const d = new StoreDriver()
    const key = containerKey('hostA', 'c1')
    putRecord(d, key, encodeRecord(container()), 'hostA')
    expect(putRecord(d, key, encodeRecord(container({ state: 'running' })), 'leaderP', true)).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(putRecord(d, key, encodeRecord(container({ state: 'lost' })), 'leaderP', true).ok).toBe(true)
    expect(d.del(key, { origin: 'leaderP', asLeader: true }).ok).toBe(true)
    expect(d.run({ type: 'deletePrefix', prefix: 'containers/' }, { origin: 'leaderP', asLeader: true }).ok).toBe(true)
  })

  it('the record must match its key and parse', () => {
    const d = new StoreDriver()
    expect(putRecord(d, containerKey('hostA', 'c2'), encodeRecord(container()), 'hostA')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, containerKey('hostA', 'c1'), encodeRecord(container({ host: 'hostB' })), 'hostA')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, 'containers/hostA', encodeRecord(container()), 'hostA')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, 'containers/hostA/c1/x', encodeRecord(container()), 'hostA')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, containerKey('hostA', 'c1'), text('{not json'), 'hostA')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, containerKey('hostA', 'c1'), new Uint8Array([0xff, 0xfe]), 'hostA')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(d.store.keyCount).toBe(0)
  })

  it('a txn touching another host\'s container is refused even in the branch not taken', () => {
    const d = new StoreDriver()
    const cmd = d.command({
      type: 'txn', compare: [],
      success: [{ type: 'put', key: 'kv/x', value: text('1') }],
      failure: [{ type: 'delete', key: containerKey('hostA', 'c1') }],
    }, { origin: 'hostB' })
    expect(checkAccess(cmd)).toMatchObject({ code: 'permission-denied' })
    expect(d.apply(cmd)).toMatchObject({ ok: false, code: 'permission-denied' })
  })
})

describe('other buckets', () => {
  it('hosts/<peerId> is written by that peer or the leader', () => {
    const d = new StoreDriver()
    expect(putRecord(d, hostKey('hostA'), encodeRecord(host), 'hostA').ok).toBe(true)
    expect(putRecord(d, hostKey('hostA'), encodeRecord(host), 'hostB')).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(putRecord(d, hostKey('hostB'), encodeRecord(host), 'hostB')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(d.del(hostKey('hostA'), { origin: 'hostB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.run({ type: 'deletePrefix', prefix: 'hosts/' }, { origin: 'hostA' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.del(hostKey('hostA'), { origin: 'leaderP', asLeader: true }).ok).toBe(true)
  })

  it('services and links are written by anyone but must be valid records matching their keys', () => {
    const d = new StoreDriver()
    expect(putRecord(d, serviceKey('web'), encodeRecord(service), 'anyPeer').ok).toBe(true)
    expect(putRecord(d, serviceKey('api'), encodeRecord(service), 'anyPeer')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, serviceKey('Web'), encodeRecord({ ...service, name: 'Web' }), 'anyPeer')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, serviceKey('web'), encodeRecord({ ...service, replicas: -1 }), 'anyPeer')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(putRecord(d, linkKey('web', 'database'), encodeRecord(link), 'anyPeer').ok).toBe(true)
    expect(putRecord(d, linkKey('web', 'db'), encodeRecord(link), 'anyPeer')).toMatchObject({ ok: false, code: 'invalid-record' })
    expect(d.run({ type: 'deletePrefix', prefix: 'links/' }, { origin: 'anyPeer' }).ok).toBe(true)
  })

  it('kv/ and other keys are free-form', () => {
    const d = new StoreDriver()
    expect(d.run({ type: 'put', key: 'kv/blob', value: new Uint8Array([0, 255, 1]) }).ok).toBe(true)
    expect(d.put('config/x', '1').ok).toBe(true)
  })
})

describe('record parsers', () => {
  it('round-trip every record type', () => {
    expect(parseContainer(encodeRecord(container()))).toEqual({ ok: true, record: container() })
    expect(parseHost(encodeRecord(host))).toEqual({ ok: true, record: host })
    expect(parseService(encodeRecord(service))).toEqual({ ok: true, record: service })
    expect(parseLink(encodeRecord(link))).toEqual({ ok: true, record: link })
  })

  it('accept unknown fields (newer writers) and return the known ones', () => {
    const bytes = text(JSON.stringify({ ...link, weight: 3 }))
    expect(parseLink(bytes)).toEqual({ ok: true, record: link })
  })

  it('keep a "__proto__" label as a label', () => {
    const bytes = text(JSON.stringify(container()).replace('"tier":"web"', '"__proto__":"x"'))
    const r = parseContainer(bytes)
    expect(r.ok && Object.getPrototypeOf(r.record.labels)).toBe(Object.prototype)
    expect(r.ok && Object.hasOwn(r.record.labels, '__proto__')).toBe(true)
  })

  const bad: Array<[string, Partial<Container> | Record<string, unknown>]> = [
    ['unknown state', { state: 'sleeping' }],
    ['bad ip', { ips: ['not an ip'] }],
    ['bad port', { ports: [{ containerPort: 70000, protocol: 'tcp' }] }],
    ['bad protocol', { ports: [{ containerPort: 80, protocol: 'sctp' }] }],
    ['bad time', { startedAt: 'yesterday' }],
    ['non-integer exit code', { exitCode: 1.5 }],
    ['bad health', { health: 'fine' }],
    ['labels not strings', { labels: { a: 1 } }],
    ['missing name', { name: undefined }],
  ]
  it.each(bad)('refuse a container with %s', (_name, over) => {
    expect(parseContainer(text(JSON.stringify({ ...container(), ...over }))).ok).toBe(false)
  })

  it('refuse non-objects', () => {
    for (const s of ['null', '[]', '1', '"x"']) expect(parseService(text(s)).ok).toBe(false)
  })
})
