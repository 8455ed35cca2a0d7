// The zone core: what each name answers, negative answers, precedence of names, rotation,
// truncation, EDNS, and the counters. Responses are decoded with dns-packet, an independent codec.
import { describe, it, expect } from 'vitest'
import { Zone, type ZoneAnswer } from '../../protocols/dns/zone.ts'
import type { ZoneRecords } from '../../protocols/dns/zone-build.ts'
import { answerData, container, decode, host, query, type QueryOptions, type QueryType, type Response } from '../../protocols/dns/testing.ts'

const ID_A = 'aaaaaaaaaaaa' + '0'.repeat(52)
const ID_B = 'bbbbbbbbbbbb' + '0'.repeat(52)
const ID_C = 'cccccccccccc' + '0'.repeat(52)

function zoneOf(records: Partial<ZoneRecords>, options: ConstructorParameters<typeof Zone>[0] = {}): Zone {
  const zone = new Zone(options)
  zone.load({ containers: [], hosts: [], revision: 7, ...records })
  return zone
}

function reply(a: ZoneAnswer): Uint8Array {
  if (a.kind !== 'reply') throw new Error(`expected a reply, got ${a.kind}`)
  return a.bytes
}

function ask(zone: Zone, name: string, type: QueryType, options: QueryOptions & { tcp?: boolean } = {}): Response {
  return decode(reply(zone.answer(query(name, type, options), options.tcp === true ? 'tcp' : 'udp')))
}

const web = (id: string, ip: string, over: Parameters<typeof container>[0] = {}) =>
  container({ id, name: `web-${id[0]}`, ips: [ip], labels: { 'shoal.service': 'web', 'shoal.port': '8080,53/udp' }, ...over })

describe('container and service names', () => {
  const zone = zoneOf({
    hosts: [host()],
    containers: [web(ID_A, '172.17.0.2'), web(ID_B, '172.17.0.3', { host: 'hostB', hostName: 'beta' }), container({ id: ID_C, name: 'db', ips: ['fd00::5', '172.17.0.9'] })],
  })

  it('CONTAINER.shoal answers its addresses, authoritative, with the question echoed as asked', () => {
    const r = ask(zone, 'DB.Shoal', 'A')
    expect(r).toMatchObject({ rcode: 'NOERROR', flag_aa: true, flag_qr: true, flag_rd: true, flag_tc: false, id: 4242 })
    expect(r.questions).toEqual([{ name: 'DB.Shoal', type: 'A', class: 'IN' }])
    expect(r.answers).toEqual([{ name: 'DB.Shoal', type: 'A', class: 'IN', ttl: 5, flush: false, data: '172.17.0.9' }])
    expect(answerData(ask(zone, 'db.shoal', 'AAAA'))).toEqual(['fd00::5'])
  })

  it('SERVICE.shoal answers every running member, rotated per query', () => {
    const first = answerData(ask(zone, 'web.shoal', 'A'))
    const second = answerData(ask(zone, 'web.shoal', 'A'))
    const third = answerData(ask(zone, 'web.shoal', 'A'))
    expect(first).toEqual(['172.17.0.2', '172.17.0.3'])
    expect(second).toEqual(['172.17.0.3', '172.17.0.2'])
    expect(third).toEqual(first)
  })

  it('SRV per port and protocol, for all ports, and in RFC 2782 form; targets resolve, with glue', () => {
    const r = ask(zone, '_8080._tcp.web.shoal', 'SRV')
    expect(answerData(r)).toEqual([
      { priority: 1, weight: 1, port: 8080, target: 'aaaaaaaaaaaa.shoal' },
      { priority: 1, weight: 1, port: 8080, target: 'bbbbbbbbbbbb.shoal' },
    ])
    expect((r.additionals ?? []).filter((a) => a.type !== 'OPT').map((a) => [a.name, a.type, 'data' in a ? a.data : null])).toEqual([
      ['aaaaaaaaaaaa.shoal', 'A', '172.17.0.2'], ['bbbbbbbbbbbb.shoal', 'A', '172.17.0.3'],
    ])
    expect(answerData(ask(zone, '_53._udp.web.shoal', 'SRV'))).toHaveLength(2)
    expect(answerData(ask(zone, 'web.shoal', 'SRV'))).toHaveLength(4)
    expect(answerData(ask(zone, '_web._udp.shoal', 'SRV'))).toEqual([
      { priority: 1, weight: 1, port: 53, target: 'aaaaaaaaaaaa.shoal' },
      { priority: 1, weight: 1, port: 53, target: 'bbbbbbbbbbbb.shoal' },
    ])
    expect(answerData(ask(zone, 'aaaaaaaaaaaa.shoal', 'A'))).toEqual(['172.17.0.2'])
    expect(ask(zone, '_9999._tcp.web.shoal', 'SRV').rcode).toBe('NXDOMAIN')
  })

  it('NAME.HOST.host.shoal and HOST.host.shoal', () => {
    expect(answerData(ask(zone, 'web-b.beta.host.shoal', 'A'))).toEqual(['172.17.0.3'])
    expect(answerData(ask(zone, 'alpha.host.shoal', 'A'))).toEqual(['10.0.0.1'])
  })

  it('PTR for container addresses, to a name that resolves back', () => {
    expect(answerData(ask(zone, '2.0.17.172.in-addr.arpa', 'PTR'))).toEqual(['web-a.shoal'])
    expect(answerData(ask(zone, '5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa', 'PTR'))).toEqual(['db.shoal'])
  })

  it('SOA and NS at the apex; ns.shoal resolves', () => {
    expect(answerData(ask(zone, 'shoal', 'SOA'))).toEqual([{ mname: 'ns.shoal', rname: 'hostmaster.shoal', serial: 7, refresh: 3600, retry: 600, expire: 86400, minimum: 5 }])
    const ns = ask(zone, 'shoal', 'NS')
    expect(answerData(ns)).toEqual(['ns.shoal'])
    expect((ns.additionals ?? []).filter((a) => a.type === 'A').map((a) => ('data' in a ? a.data : null))).toEqual(['127.0.0.1'])
    expect(answerData(ask(zone, 'ns.shoal', 'A'))).toEqual(['127.0.0.1'])
  })
})

describe('negative answers', () => {
  const zone = zoneOf({ hosts: [host()], containers: [container({ name: 'db', ips: ['172.17.0.9'] })] })

  it('an unknown name in the zone: NXDOMAIN, SOA in authority (RFC 2308)', () => {
    const r = ask(zone, 'nope.shoal', 'A')
    expect(r).toMatchObject({ rcode: 'NXDOMAIN', flag_aa: true, answers: [] })
    expect(r.authorities?.map((a) => [a.name, a.type, 'ttl' in a ? a.ttl : null])).toEqual([['shoal', 'SOA', 5]])
    expect(ask(zone, 'a.b.c.nope.shoal', 'A').authorities?.map((a) => a.name)).toEqual(['shoal'])
  })

  it('a known name asked for another type: NOERROR, no answer, SOA in authority', () => {
    const r = ask(zone, 'db.shoal', 'AAAA')
    expect(r).toMatchObject({ rcode: 'NOERROR', answers: [] })
    expect(r.authorities?.map((a) => a.type)).toEqual(['SOA'])
    expect(ask(zone, 'db.shoal', 'MX').rcode).toBe('NOERROR')
  })

  it('empty non-terminals are NODATA, not NXDOMAIN (RFC 8020)', () => {
    expect(ask(zone, 'host.shoal', 'A')).toMatchObject({ rcode: 'NOERROR', answers: [] })
  })

  it('outside the zone: REFUSED, not authoritative; forwarded when forwarding is on', () => {
    expect(ask(zone, 'example.com', 'A')).toMatchObject({ rcode: 'REFUSED', flag_aa: false, answers: [] })
    expect(ask(zone, 'xshoal', 'A').rcode).toBe('REFUSED')
    expect(ask(zone, '9.9.9.9.in-addr.arpa', 'PTR').rcode).toBe('REFUSED')
    const forwarding = zoneOf({}, { forwarding: true })
    expect(forwarding.answer(query('example.com', 'A'), 'udp').kind).toBe('forward')
    expect(ask(forwarding, 'nope.shoal', 'A')).toMatchObject({ rcode: 'NXDOMAIN', flag_ra: true })
  })

  it('a label that merely ends in the bytes of "shoal" is not in the zone', () => {
    // One label "x\x05shoal": its wire form ends like shoal's, but it is a name under the root.
    const bytes = Uint8Array.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 0x78, 5, 0x73, 0x68, 0x6f, 0x61, 0x6c, 0, 0, 1, 0, 1])
    expect(decode(reply(zone.answer(bytes, 'udp'))).rcode).toBe('REFUSED')
  })

  it('zone transfers and classes other than IN are refused', () => {
    expect(ask(zone, 'shoal', 'AXFR', { tcp: true }).rcode).toBe('REFUSED')
    expect(ask(zone, 'db.shoal', 'A', { qclass: 'CH' }).rcode).toBe('REFUSED')
    expect(ask(zone, 'db.shoal', 'A', { qclass: 'ANY' }).rcode).toBe('NOERROR')
  })

  it('ANY answers every record at the name', () => {
    expect(ask(zone, 'shoal', 'ANY').answers?.map((a) => a.type)).toEqual(['SOA', 'NS'])
  })
})

describe('which containers are answered, and under which names', () => {
  it('only running containers; a stopped one disappears on the next load', () => {
    const zone = zoneOf({ containers: [container({ name: 'db', state: 'exited' }), container({ id: ID_B, name: 'up' })] })
    expect(ask(zone, 'db.shoal', 'A').rcode).toBe('NXDOMAIN')
    expect(ask(zone, 'up.shoal', 'A').rcode).toBe('NOERROR')
    zone.load({ containers: [container({ id: ID_B, name: 'up', state: 'exited' })], hosts: [], revision: 9 })
    expect(ask(zone, 'up.shoal', 'A').rcode).toBe('NXDOMAIN')
    expect(zone.serial).toBe(9)
  })

  it('one name on two hosts answers both; each stays reachable as NAME.HOST.host.shoal and by short id', () => {
    const zone = zoneOf({ containers: [
      container({ id: ID_A, name: 'cache', ips: ['10.0.1.2'] }),
      container({ id: ID_B, name: 'cache', host: 'hostB', hostName: 'beta', ips: ['10.0.2.2'] }),
    ] })
    expect(answerData(ask(zone, 'cache.shoal', 'A')).sort()).toEqual(['10.0.1.2', '10.0.2.2'])
    expect(answerData(ask(zone, 'cache.beta.host.shoal', 'A'))).toEqual(['10.0.2.2'])
    expect(answerData(ask(zone, 'bbbbbbbbbbbb.shoal', 'A'))).toEqual(['10.0.2.2'])
  })

  it('a service name wins over a container of the same name', () => {
    const zone = zoneOf({ containers: [
      container({ id: ID_A, name: 'api', ips: ['10.0.0.1'] }),
      container({ id: ID_B, name: 'api-1', ips: ['10.0.0.2'], labels: { 'shoal.service': 'api' } }),
    ] })
    expect(answerData(ask(zone, 'api.shoal', 'A'))).toEqual(['10.0.0.2'])
    expect(answerData(ask(zone, 'api.alpha.host.shoal', 'A'))).toEqual(['10.0.0.1'])
    // Its PTR falls back to a name that still resolves to it.
    expect(answerData(ask(zone, '1.0.0.10.in-addr.arpa', 'PTR'))).toEqual(['api.alpha.host.shoal'])
  })

  it('names with dots are published as several labels; reserved names are not claimed', () => {
    const zone = zoneOf({ hosts: [host()], containers: [
      container({ id: ID_A, name: 'my.App', ips: ['10.0.0.1'] }),
      container({ id: ID_B, name: 'ns', ips: ['10.0.0.2'] }),
      container({ id: ID_C, name: 'alpha.host', ips: ['10.0.0.3'] }),
    ] })
    expect(answerData(ask(zone, 'my.app.shoal', 'A'))).toEqual(['10.0.0.1'])
    expect(ask(zone, 'app.shoal', 'A')).toMatchObject({ rcode: 'NOERROR', answers: [] })
    expect(answerData(ask(zone, 'ns.shoal', 'A'))).toEqual(['127.0.0.1'])
    expect(answerData(ask(zone, 'alpha.host.shoal', 'A'))).toEqual(['10.0.0.1'])
    expect(answerData(ask(zone, 'ns.alpha.host.shoal', 'A'))).toEqual(['10.0.0.2'])
  })

  it('bad addresses and names are skipped, not fatal', () => {
    const zone = zoneOf({ hosts: [host({ name: 'bad name', addrs: ['/ip4/1.2.3.4/tcp/1'] })], containers: [container({ name: 'ok', ips: ['999.1.1.1', '::g', '10.0.0.4'] })] })
    expect(answerData(ask(zone, 'ok.shoal', 'A'))).toEqual(['10.0.0.4'])
    expect(ask(zone, 'ok.shoal', 'AAAA').answers).toEqual([])
  })

  it('two replicas with the same records in another order build the same answers', () => {
    const a = [web(ID_A, '10.0.0.1'), web(ID_B, '10.0.0.2'), container({ id: ID_C, name: 'db', ips: ['10.0.0.3'] })]
    const one = zoneOf({ containers: a })
    const two = zoneOf({ containers: [...a].reverse() })
    for (const [name, type] of [['web.shoal', 'A'], ['web.shoal', 'SRV'], ['db.shoal', 'A']] as const) {
      expect(reply(one.answer(query(name, type), 'udp'))).toEqual(reply(two.answer(query(name, type), 'udp')))
    }
  })
})

describe('sizes, truncation and EDNS', () => {
  const big = Array.from({ length: 100 }, (_, i) => container({
    id: `${(0xd00000000000 + i).toString(16)}${'0'.repeat(52)}`, name: `big-${i}`, ips: [`10.9.0.${i + 1}`], labels: { 'shoal.service': 'big' },
  }))
  const zone = zoneOf({ containers: big })

  it('without EDNS a large answer is cut to whole records under 512 bytes, with TC and no OPT', () => {
    const bytes = reply(zone.answer(query('big.shoal', 'A', { edns: false }), 'udp'))
    const r = decode(bytes)
    expect(bytes.length).toBeLessThanOrEqual(512)
    expect(r.flag_tc).toBe(true)
    // 12 header + 13 question + 16 per record: 30 records fit in 512.
    expect(r.answers).toHaveLength(30)
    expect(r.additionals).toEqual([])
  })

  it('with EDNS the limit is the smaller payload size, and the OPT is kept', () => {
    const r = decode(reply(zone.answer(query('big.shoal', 'A', { edns: 1000 }), 'udp')))
    expect(r.flag_tc).toBe(true)
    expect(r.answers).toHaveLength(60)
    expect(r.additionals?.map((a) => a.type)).toEqual(['OPT'])
    const whole = decode(reply(zone.answer(query('big.shoal', 'A', { edns: 4096 }), 'udp')))
    expect(whole.flag_tc).toBe(true) // 1625 bytes > our 1232
  })

  it('over TCP the whole answer', () => {
    const r = ask(zone, 'big.shoal', 'A', { tcp: true })
    expect(r.flag_tc).toBe(false)
    expect(r.answers).toHaveLength(100)
  })

  it('additional records that do not fit are dropped without TC (RFC 2181 §9)', () => {
    const five = zoneOf({ containers: big.slice(0, 12) })
    // 12 SRV (37 bytes each) fit in 512 with the question; their 12 glue A records (35 each) do not.
    const r = ask(five, 'big.shoal', 'SRV', { edns: false })
    expect(r.flag_tc).toBe(false)
    expect(r.answers).toHaveLength(12)
    expect(r.additionals).toEqual([])
  })

  it('advertises our payload size, copies DO, and answers EDNS version 1 with BADVERS', () => {
    const r = ask(zone, 'big-1.shoal', 'A', { dnssecOk: true })
    const opt = r.additionals?.find((a) => a.type === 'OPT')
    expect(opt).toMatchObject({ udpPayloadSize: 1232, flag_do: true, extendedRcode: 0 })
    const bad = ask(zone, 'big-1.shoal', 'A', { ednsVersion: 1 })
    expect(bad.answers).toEqual([])
    expect(bad.additionals?.find((a) => a.type === 'OPT')).toMatchObject({ extendedRcode: 1 })
  })
})

describe('bad input', () => {
  it('FORMERR, NOTIMP or dropped, each counted, and the zone still answers', () => {
    const zone = zoneOf({ containers: [container({ name: 'db', ips: ['10.0.0.9'] })] })
    const good = query('db.shoal', 'A')
    const twoQuestions = Uint8Array.from(good)
    twoQuestions[5] = 2
    const notify = Uint8Array.from(good)
    notify[2] = 0x20
    const asResponse = Uint8Array.from(good)
    asResponse[2] = 0x81
    const outcomes = [
      zone.answer(good.subarray(0, 20), 'udp'),
      zone.answer(twoQuestions, 'udp'),
      zone.answer(notify, 'udp'),
      zone.answer(asResponse, 'udp'),
      zone.answer(new Uint8Array(5), 'udp'),
      zone.answer(new Uint8Array(5000), 'tcp'),
    ]
    expect(outcomes.map((o) => (o.kind === 'reply' ? decode(o.bytes).rcode : o.kind))).toEqual(['FORMERR', 'FORMERR', 'NOTIMP', 'drop', 'drop', 'FORMERR'])
    expect(answerData(decode(reply(zone.answer(good, 'udp'))))).toEqual(['10.0.0.9'])
    expect(zone.counters).toEqual({
      received: 7, answered: 1, nodata: 0, nxdomain: 0, refused: 0, forwarded: 0, malformed: 1, oversized: 1,
      multiQuestion: 1, notImplemented: 1, badVersion: 0, dropped: 2, truncated: 0,
    })
  })
})

describe('which instances a service name answers', () => {
  it('only instances that can serve: not starting or failing their health check, not ones their task no longer wants', () => {
    const ID_D = 'dddddddddddd' + '0'.repeat(52)
    const zone = zoneOf({
      containers: [
        web(ID_A, '172.17.0.2', { health: 'healthy' }),
        web(ID_B, '172.17.0.3', { health: 'starting' }),
        web(ID_C, '172.17.0.4', { health: 'unhealthy' }),
        web(ID_D, '172.17.0.5'),
      ],
      outOfService: [ID_D],
    })
    expect(answerData(ask(zone, 'web.shoal', 'A'))).toEqual(['172.17.0.2'])
    // Each keeps its own name: an operator can still reach a draining or unhealthy instance.
    expect(answerData(ask(zone, 'web-c.shoal', 'A'))).toEqual(['172.17.0.4'])
    expect(answerData(ask(zone, 'web-d.shoal', 'A'))).toEqual(['172.17.0.5'])
  })
})
