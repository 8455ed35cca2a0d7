// Link aliases in DNS (issue 13): the answer depends on who asks. A source container (by its
// address) asking ALIAS or ALIAS.shoal gets the link address on its own host; anyone else gets
// the name's ordinary answer (NXDOMAIN, or the real service/container of that name). PTR of a
// link address names the alias. Built from the store like the peer does (zoneRecordsFromStore).
import { describe, it, expect } from 'vitest'
import { Zone, type ZoneAnswer } from '../../protocols/dns/zone.ts'
import type { ZoneRecords } from '../../protocols/dns/zone-build.ts'
import { zoneRecordsFromStore } from '../../runtime/dns-records.ts'
import { answerData, container, decode, query, type QueryType, type Response } from '../../protocols/dns/testing.ts'
import { StateStore } from '../../storage/statestore/store.ts'
import { containerKey, encodeRecord, linkAddressKey, linkKey } from '../../storage/statestore/index.ts'

const ID_S = '5' + '0'.repeat(63)
const ID_T = '7' + '0'.repeat(63)
const ID_O = '9' + '0'.repeat(63)

function zoneOf(records: Partial<ZoneRecords>): Zone {
  const zone = new Zone({})
  zone.load({ containers: [], hosts: [], revision: 3, ...records })
  return zone
}

function ask(zone: Zone, name: string, type: QueryType, querier: string | undefined, tcp = false): Response {
  const a: ZoneAnswer = zone.answer(query(name, type), tcp ? 'tcp' : 'udp', querier)
  if (a.kind !== 'reply') throw new Error(`expected a reply, got ${a.kind}`)
  return decode(a.bytes)
}

describe('alias answers per querier', () => {
  const containers = [
    container({ id: ID_S, name: 'client', ips: ['172.17.0.2'] }),
    container({ id: ID_T, name: 'db', ips: ['172.17.0.3'], host: 'hostB', hostName: 'beta' }),
    container({ id: ID_O, name: 'other', ips: ['172.17.0.4'] }),
    container({ id: 'a' + '0'.repeat(63), name: 'cache', ips: ['172.17.0.5'], labels: { 'shoal.service': 'cache' } }),
  ]
  const zone = zoneOf({
    containers,
    aliases: [
      { querier: '172.17.0.2', name: 'mydb', address: '100.127.0.2' },
      // An alias equal to a service name shadows it for its source only (as Docker's --link).
      { querier: '172.17.0.2', name: 'cache', address: '100.127.0.3' },
    ],
  })

  it('a source container asking ALIAS.shoal, in any case, gets the link address', () => {
    const r = ask(zone, 'MyDb.Shoal', 'A', '172.17.0.2')
    expect(r.rcode).toBe('NOERROR')
    expect(r.answers).toEqual([{ name: 'MyDb.Shoal', type: 'A', class: 'IN', ttl: 5, flush: false, data: '100.127.0.2' }])
  })

  it('the bare ALIAS answers too, for the source only; over TCP as over UDP', () => {
    expect(answerData(ask(zone, 'mydb', 'A', '172.17.0.2'))).toEqual(['100.127.0.2'])
    expect(answerData(ask(zone, 'mydb', 'A', '172.17.0.2', true))).toEqual(['100.127.0.2'])
    expect(ask(zone, 'mydb', 'A', '172.17.0.4').rcode).toBe('REFUSED')
  })

  it('a dual-stack socket view of the source address (::ffff:a.b.c.d) is the same querier', () => {
    expect(answerData(ask(zone, 'mydb.shoal', 'A', '::ffff:172.17.0.2'))).toEqual(['100.127.0.2'])
  })

  it('anyone else gets NXDOMAIN with the SOA', () => {
    for (const querier of ['172.17.0.4', '127.0.0.1', undefined]) {
      const r = ask(zone, 'mydb.shoal', 'A', querier)
      expect(r.rcode).toBe('NXDOMAIN')
      expect(r.authorities?.[0]?.type).toBe('SOA')
    }
  })

  it('an alias that is also a service name: the source gets the link, others the service', () => {
    expect(answerData(ask(zone, 'cache.shoal', 'A', '172.17.0.2'))).toEqual(['100.127.0.3'])
    expect(answerData(ask(zone, 'cache.shoal', 'A', '172.17.0.4'))).toEqual(['172.17.0.5'])
  })

  it('AAAA of an alias is NODATA for the source', () => {
    const r = ask(zone, 'mydb.shoal', 'AAAA', '172.17.0.2')
    expect(r.rcode).toBe('NOERROR')
    expect(r.answers ?? []).toEqual([])
    expect(r.authorities?.[0]?.type).toBe('SOA')
  })

  it('PTR of a link address names the alias', () => {
    expect(answerData(ask(zone, '2.0.127.100.in-addr.arpa', 'PTR', '172.17.0.4'))).toEqual(['mydb.shoal'])
    // A container's own PTR is unchanged.
    expect(answerData(ask(zone, '2.0.17.172.in-addr.arpa', 'PTR', '172.17.0.2'))).toEqual(['client.shoal'])
  })

  it('without aliases, answers are what they were', () => {
    const plain = zoneOf({ containers })
    expect(ask(plain, 'mydb.shoal', 'A', '172.17.0.2').rcode).toBe('NXDOMAIN')
    expect(answerData(ask(plain, 'cache.shoal', 'A', '172.17.0.2'))).toEqual(['172.17.0.5'])
  })
})

describe('aliases read from the store for one host', () => {
  let index = 0
  const put = (store: StateStore, key: string, value: Uint8Array): void => {
    // Each host writes its own records (records.ts ownership), as the peers do.
    const origin = key.split('/')[1] ?? 'test'
    const r = store.apply(++index, { origin, requestId: key, request: { type: 'put', key, value } })
    if (!r.ok) throw new Error(r.message)
  }
  const store = new StateStore()
  const src = container({ id: ID_S, name: 'client', ips: ['172.17.0.2'], host: 'hostA' })
  const srcB = container({ id: 'b' + '0'.repeat(63), name: 'client', ips: ['172.18.0.2'], host: 'hostB', hostName: 'beta', labels: { 'shoal.service': 'api' } })
  const srcA = container({ id: 'c' + '0'.repeat(63), name: 'api-1', ips: ['172.17.0.8'], host: 'hostA', labels: { 'shoal.service': 'api' } })
  for (const c of [src, srcB, srcA]) put(store, containerKey(c.host, c.id), encodeRecord(c))
  put(store, linkKey(ID_S, 'mydb'), encodeRecord({ source: ID_S, sourceKind: 'container', target: 'db', targetKind: 'service', alias: 'mydb', ports: [{ port: 5432, protocol: 'tcp' }], createdAtMs: 1 }))
  put(store, linkKey('api', 'store'), encodeRecord({ source: 'api', sourceKind: 'service', target: 'db', targetKind: 'service', alias: 'store', ports: [{ port: 5432, protocol: 'tcp' }], createdAtMs: 1 }))
  put(store, linkAddressKey('hostA', ID_S, 'mydb'), encodeRecord({ address: '100.127.0.2' }))
  put(store, linkAddressKey('hostA', 'api', 'store'), encodeRecord({ address: '100.127.0.3' }))
  put(store, linkAddressKey('hostB', 'api', 'store'), encodeRecord({ address: '100.127.0.2' }))

  it('host A answers its own sources with its own addresses', () => {
    const records = zoneRecordsFromStore(store, 'hostA')
    expect(records.aliases).toEqual([
      { querier: '172.17.0.2', name: 'mydb', address: '100.127.0.2' },
      { querier: '172.17.0.8', name: 'store', address: '100.127.0.3' },
    ])
    const zone = zoneOf(records)
    expect(answerData(ask(zone, 'store.shoal', 'A', '172.17.0.8'))).toEqual(['100.127.0.3'])
    // Host B's service instance does not ask host A's DNS; if it did, it is not a source here.
    expect(ask(zone, 'store.shoal', 'A', '172.18.0.2').rcode).toBe('NXDOMAIN')
  })

  it('host B answers its service instance with its own address for the same link', () => {
    expect(zoneRecordsFromStore(store, 'hostB').aliases).toEqual([{ querier: '172.18.0.2', name: 'store', address: '100.127.0.2' }])
  })

  it('without a host id, no aliases (the records are what they were)', () => {
    expect(zoneRecordsFromStore(store).aliases).toBeUndefined()
  })
})
