// The DNS server over real sockets, asked by real `dig` over UDP and TCP, fed by a real
// StateStore that receives container and host records the way a peer applies them.
// Loopback only: the forwarding upstream is a stub this test starts on 127.0.0.1.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import net from 'node:net'
import * as dnsPacket from 'dns-packet'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import { containerKey, encodeRecord, hostKey, type Container, type Host } from '../../storage/statestore/records.ts'
import { DnsListenError, DnsServer } from '../../protocols/dns/index.ts'
import { zoneRecordsFromStore } from '../../runtime/dns-records.ts'
import { container, host } from '../../protocols/dns/testing.ts'

interface Dig {
  status: string
  flags: string[]
  answer: string[][]
  authority: string[][]
  size: number
}

/** Runs dig against `port` on 127.0.0.1 and parses its sections. */
function dig(port: number, args: string[]): Promise<Dig> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=3', ...args], { timeout: 15_000 }, (err, stdout) => {
      if (err && stdout === '') return reject(err)
      const section = (title: string): string[][] => {
        const start = stdout.indexOf(`;; ${title} SECTION:\n`)
        if (start < 0) return []
        const body = stdout.slice(start).split('\n').slice(1)
        const end = body.indexOf('')
        return body.slice(0, end < 0 ? undefined : end).map((l) => l.split(/\s+/))
      }
      const status = /status: (\w+)/.exec(stdout)?.[1]
      const flags = /;; flags: ([^;]*);/.exec(stdout)?.[1]
      if (status === undefined || flags === undefined) return reject(new Error(`dig ${args.join(' ')} printed no answer:\n${stdout}`))
      resolve({ status, flags: flags.trim().split(' '), answer: section('ANSWER'), authority: section('AUTHORITY'), size: Number(/MSG SIZE\s+rcvd: (\d+)/.exec(stdout)?.[1] ?? NaN) })
    })
  })
}

const data = (d: Dig): string[] => d.answer.map((r) => r.slice(4).join(' '))

/** A stub upstream on loopback: `example.test` is 192.0.2.1, `silent.test` never answers, the rest NXDOMAIN. */
async function startUpstream(): Promise<{ port: number; queries: string[]; close: () => Promise<void> }> {
  const queries: string[] = []
  const answer = (msg: Buffer): Buffer | null => {
    const q = dnsPacket.decode(msg)
    const name = q.questions?.[0]?.name ?? ''
    queries.push(name)
    if (name === 'silent.test') return null
    const known = name === 'example.test'
    return dnsPacket.encode({
      type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), questions: q.questions,
      answers: known ? [{ name, type: 'A', ttl: 60, data: '192.0.2.1' }] : [],
    })
  }
  const tcp = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      const reply = answer(chunk.subarray(2, 2 + chunk.readUInt16BE(0)))
      if (reply === null) return
      const frame = Buffer.alloc(2 + reply.length)
      frame.writeUInt16BE(reply.length, 0)
      reply.copy(frame, 2)
      socket.end(frame)
    })
  })
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
  const port = (tcp.address() as net.AddressInfo).port
  const udp = dgram.createSocket('udp4')
  udp.on('message', (msg, rinfo) => {
    const reply = answer(msg)
    if (reply !== null) udp.send(reply, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', resolve))
  return { port, queries, close: async () => { udp.close(); await new Promise((r) => tcp.close(r)) } }
}

const ID = (n: number): string => `${(0xc0de00000000 + n).toString(16)}${'0'.repeat(52)}`

describe('DNS server, asked by dig', () => {
  const d = new StoreDriver()
  let server: DnsServer
  let refusing: DnsServer
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let port = 0

  const putHost = (h: Host): void => {
    expect(d.run({ type: 'put', key: hostKey(h.peerId), value: encodeRecord(h) }, { origin: h.peerId }).ok).toBe(true)
  }
  const putContainer = (c: Container): void => {
    expect(d.run({ type: 'put', key: containerKey(c.host, c.id), value: encodeRecord(c) }, { origin: c.host }).ok).toBe(true)
  }
  /** As the peer does after applying entries: say so, then wait for the debounced rebuild. */
  async function changed(): Promise<void> {
    server.changed()
    refusing.changed()
    const deadline = Date.now() + 5000
    while (server.stats().zone.serial !== d.store.revision || refusing.stats().zone.serial !== d.store.revision) {
      if (Date.now() > deadline) throw new Error('the DNS zone did not rebuild within 5 s')
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  beforeAll(async () => {
    upstream = await startUpstream()
    const records = () => zoneRecordsFromStore(d.store)
    server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], records, forward: { host: '127.0.0.1', port: upstream.port }, forwardTimeoutMs: 500 })
    refusing = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], records })
    port = (await server.start())[0]!.port
    await refusing.start()
    putHost(host())
    putHost(host({ peerId: 'hostB', name: 'beta', addrs: ['/ip4/10.0.0.2/tcp/7946'] }))
    putContainer(container({ id: ID(1), name: 'web-1', ips: ['172.17.0.2', 'fd00::2'], labels: { 'shoal.service': 'web', 'shoal.port': '8080' } }))
    putContainer(container({ id: ID(2), name: 'web-2', host: 'hostB', hostName: 'beta', ips: ['172.17.0.3'], labels: { 'shoal.service': 'web', 'shoal.port': '8080' } }))
    putContainer(container({ id: ID(3), name: 'db', ips: ['172.17.0.9'] }))
    for (let i = 0; i < 80; i++) {
      putContainer(container({ id: ID(100 + i), name: `big-${i}`, host: 'hostB', hostName: 'beta', ips: [`10.8.0.${i + 1}`], labels: { 'shoal.service': 'big' } }))
    }
    await changed()
  })

  afterAll(async () => {
    await server?.stop()
    await refusing?.stop()
    await upstream?.close()
  })

  it('CONTAINER.shoal: A and AAAA over UDP and TCP, whichever host runs it', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const a = await dig(port, ['db.shoal', 'A', transport])
      expect(a).toMatchObject({ status: 'NOERROR', answer: [['db.shoal.', '5', 'IN', 'A', '172.17.0.9']] })
      expect(a.flags).toEqual(['qr', 'aa', 'rd', 'ra'])
    }
    expect(data(await dig(port, ['web-2.shoal', 'A']))).toEqual(['172.17.0.3'])
    expect(data(await dig(port, ['web-1.shoal', 'AAAA']))).toEqual(['fd00::2'])
  })

  it('names are case-insensitive, and the question comes back as asked', async () => {
    const r = await dig(port, ['WeB-1.ShOaL', 'A'])
    expect(r.answer).toEqual([['WeB-1.ShOaL.', '5', 'IN', 'A', '172.17.0.2']])
  })

  it('SERVICE.shoal: every member, rotated per query', async () => {
    const first = data(await dig(port, ['web.shoal', 'A']))
    const second = data(await dig(port, ['web.shoal', 'A']))
    expect([...first].sort()).toEqual(['172.17.0.2', '172.17.0.3'])
    expect(second).toEqual([...first].reverse())
  })

  it('SRV for the service port, with targets that resolve', async () => {
    const srv = await dig(port, ['_8080._tcp.web.shoal', 'SRV'])
    expect(srv.status).toBe('NOERROR')
    expect(data(srv).sort()).toEqual([`1 1 8080 ${ID(1).slice(0, 12)}.shoal.`, `1 1 8080 ${ID(2).slice(0, 12)}.shoal.`])
    const target = srv.answer[0]![7]!
    expect((await dig(port, [target, 'A'])).status).toBe('NOERROR')
    expect(data(await dig(port, ['web.shoal', 'SRV']))).toHaveLength(2)
  })

  it('HOST.host.shoal, PTR, SOA and NS', async () => {
    expect(data(await dig(port, ['beta.host.shoal', 'A']))).toEqual(['10.0.0.2'])
    expect(data(await dig(port, ['alpha.host.shoal', 'A']))).toEqual(['10.0.0.1'])
    expect(data(await dig(port, ['-x', '172.17.0.9']))).toEqual(['db.shoal.'])
    expect(data(await dig(port, ['shoal', 'SOA']))).toEqual([`ns.shoal. hostmaster.shoal. ${d.store.revision} 3600 600 86400 5`])
    expect(data(await dig(port, ['shoal', 'NS']))).toEqual(['ns.shoal.'])
  })

  it('NXDOMAIN with the SOA for unknown names; NODATA for a known name and another type', async () => {
    const nx = await dig(port, ['nope.shoal', 'A'])
    expect(nx.status).toBe('NXDOMAIN')
    expect(nx.answer).toEqual([])
    expect(nx.authority.map((r) => [r[0], r[3]])).toEqual([['shoal.', 'SOA']])
    const nodata = await dig(port, ['db.shoal', 'AAAA'])
    expect(nodata).toMatchObject({ status: 'NOERROR', answer: [] })
    expect(nodata.authority.map((r) => r[3])).toEqual(['SOA'])
  })

  it('names outside the zone: REFUSED without an upstream', async () => {
    const r = await dig(refusing.addresses[0]!.port, ['example.test', 'A'])
    expect(r).toMatchObject({ status: 'REFUSED', answer: [] })
    expect(r.flags).not.toContain('aa')
  })

  it('names outside the zone: forwarded to the upstream over UDP and TCP, and SERVFAIL when it is silent', async () => {
    const before = server.stats().forward!.relayed
    for (const transport of ['+notcp', '+tcp']) {
      const r = await dig(port, ['example.test', 'A', transport])
      expect(r).toMatchObject({ status: 'NOERROR', answer: [['example.test.', '60', 'IN', 'A', '192.0.2.1']] })
    }
    expect((await dig(port, ['missing.test', 'A'])).status).toBe('NXDOMAIN')
    expect((await dig(port, ['silent.test', 'A'])).status).toBe('SERVFAIL')
    const stats = server.stats().forward!
    expect(stats.relayed - before).toBe(3)
    expect(stats.timeouts).toBe(1)
    expect(upstream.queries.filter((q) => q === 'example.test')).toHaveLength(2)
  })

  it('a large service: TC over UDP, then the whole answer over TCP', async () => {
    const udp = await dig(port, ['big.shoal', 'A', '+ignore', '+noedns'])
    expect(udp.flags).toContain('tc')
    expect(udp.size).toBeLessThanOrEqual(512)
    expect(udp.answer).toHaveLength(30)
    const edns = await dig(port, ['big.shoal', 'A', '+ignore', '+bufsize=1232'])
    expect(edns.flags).toContain('tc')
    expect(edns.size).toBeLessThanOrEqual(1232)
    // dig retries over TCP on TC by itself.
    const retried = await dig(port, ['big.shoal', 'A', '+noedns'])
    expect(retried.flags).not.toContain('tc')
    expect(retried.answer).toHaveLength(80)
    expect((await dig(port, ['big.shoal', 'A', '+tcp'])).answer).toHaveLength(80)
  })

  it('a container that stops disappears as soon as its record changes', async () => {
    putContainer(container({ id: ID(3), name: 'db', ips: ['172.17.0.9'], state: 'exited' }))
    await changed()
    expect((await dig(port, ['db.shoal', 'A'])).status).toBe('NXDOMAIN')
    putContainer(container({ id: ID(3), name: 'db', ips: ['172.17.0.9'] }))
    await changed()
    expect(data(await dig(port, ['db.shoal', 'A']))).toEqual(['172.17.0.9'])
  })

  it('a burst of changes costs one rebuild', async () => {
    const before = server.stats().zone.rebuilds
    for (let i = 0; i < 50; i++) {
      putContainer(container({ id: ID(200 + i), name: `burst-${i}`, ips: [`10.9.9.${i + 1}`] }))
      server.changed()
    }
    await changed()
    expect(server.stats().zone.rebuilds - before).toBe(1)
    expect(data(await dig(port, ['burst-49.shoal', 'A']))).toEqual(['10.9.9.50'])
  })

  it('says which flag to change when the port is taken', async () => {
    const other = new DnsServer({ listen: [{ host: '127.0.0.1', port }], records: () => zoneRecordsFromStore(d.store) })
    const err = await other.start().then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(DnsListenError)
    expect((err as Error).message).toBe(`DNS cannot listen on 127.0.0.1:${port} over TCP (EADDRINUSE): another program holds that port (an mDNS responder such as avahi often holds 5353); choose another with --dns HOST:PORT, or turn DNS off with --dns off`)
  })

  it('counts what it answered', () => {
    const s = server.stats()
    const q = s.queries
    expect(q.received).toBe(q.answered + q.nodata + q.nxdomain + q.refused + q.forwarded + q.malformed + q.oversized + q.multiQuestion + q.notImplemented + q.badVersion + q.dropped)
    expect(q.nxdomain).toBeGreaterThanOrEqual(2)
    expect(q.truncated).toBeGreaterThanOrEqual(3)
    expect(s.tcp.accepted).toBeGreaterThanOrEqual(4)
    expect(s.zone.rebuilds).toBeGreaterThanOrEqual(3)
  })
})

describe('DNS server on several event loops', () => {
  it('worker threads share the UDP port and answer from the same records', async () => {
    const d = new StoreDriver()
    expect(d.run({ type: 'put', key: containerKey('hostA', ID(1)), value: encodeRecord(container({ id: ID(1), name: 'solo', ips: ['10.1.1.1'] })) }, { origin: 'hostA' }).ok).toBe(true)
    const server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], records: () => zoneRecordsFromStore(d.store), udpEventLoops: 2 })
    try {
      const { port } = (await server.start())[0]!
      for (let i = 0; i < 4; i++) expect(data(await dig(port, ['solo.shoal', 'A']))).toEqual(['10.1.1.1'])
      expect(d.run({ type: 'put', key: containerKey('hostA', ID(2)), value: encodeRecord(container({ id: ID(2), name: 'late', ips: ['10.1.1.2'] })) }, { origin: 'hostA' }).ok).toBe(true)
      server.changed()
      const deadline = Date.now() + 5000
      let late = await dig(port, ['late.shoal', 'A'])
      while (late.status !== 'NOERROR' && Date.now() < deadline) late = await dig(port, ['late.shoal', 'A'])
      expect(data(late)).toEqual(['10.1.1.2'])
      // Workers report every 0.5 s.
      await new Promise((r) => setTimeout(r, 700))
      expect(server.stats().queries.answered).toBeGreaterThanOrEqual(5)
      expect(server.stats().udp.eventLoops).toBe(2)
    } finally {
      await server.stop()
    }
  })
})
