// Thousands of random and mutated packets over UDP and TCP (seeded: a failure replays), then the
// server must still answer correctly, every reply it sent must be a well-formed response, and
// its counters must account for every packet. Loopback only.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import dgram from 'node:dgram'
import net from 'node:net'
import * as dnsPacket from 'dns-packet'
import { mulberry32 } from '../../protocols/prng.ts'
import { DnsServer } from '../../protocols/dns/index.ts'
import { parseQuery } from '../../protocols/dns/wire.ts'
import { container, decode, query } from '../../protocols/dns/testing.ts'

const SEED = 0x5eed
const UDP_PACKETS = 4000
const TCP_CONNECTIONS = 40
const BATCH = 100
/** The AD bit: set only by the stub upstream, so relayed replies can be told from ours. */
const STUB_MARK = 0x20

type Rng = () => number

const int = (rng: Rng, n: number): number => Math.floor(rng() * n)

function randomBytes(rng: Rng, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = int(rng, 256)
  return out
}

const SEEDS: readonly Uint8Array[] = [
  query('db.shoal', 'A'), query('web.shoal', 'SRV', { edns: false }), query('_80._tcp.web.shoal', 'SRV'),
  query('nope.shoal', 'AAAA'), query('example.test', 'A'), query('2.0.17.172.in-addr.arpa', 'PTR'), query('shoal', 'ANY'),
]

/** One fuzz packet: random bytes, or a valid query cut, flipped, stretched or with counts rewritten. */
function fuzzPacket(rng: Rng): Uint8Array {
  const base = SEEDS[int(rng, SEEDS.length)] as Uint8Array
  switch (int(rng, 8)) {
    case 0: return randomBytes(rng, int(rng, 64))
    case 1: return randomBytes(rng, 12 + int(rng, 600))
    case 2: return base.slice(0, int(rng, base.length))
    case 3: {
      const out = Uint8Array.from(base)
      for (let i = 0, n = 1 + int(rng, 4); i < n; i++) out[int(rng, out.length)] = int(rng, 256)
      return out
    }
    case 4: {
      const out = new Uint8Array(base.length + 1 + int(rng, 40))
      out.set(base)
      out.set(randomBytes(rng, out.length - base.length), base.length)
      return out
    }
    case 5: {
      // Rewrite one of the four section counts (QD, AN, NS, AR).
      const out = Uint8Array.from(base)
      const at = 4 + 2 * int(rng, 4)
      out[at] = int(rng, 3) === 0 ? int(rng, 256) : 0
      out[at + 1] = int(rng, 256)
      return out
    }
    case 6: {
      // Label lengths pointing past the end, compression pointers into the header or to themselves.
      const out = Uint8Array.from(base)
      out[12] = [0x3f, 0xc0, 0xc0 | int(rng, 64), 0x40 + int(rng, 64)][int(rng, 4)] as number
      out[13] = int(rng, 256)
      return out
    }
    default: {
      const out = new Uint8Array(int(rng, 10) === 0 ? 5000 : 300 + int(rng, 200))
      out.set(base.subarray(0, 12))
      return out
    }
  }
}

/** An upstream stub that answers any query it can read with NXDOMAIN, echoing the question, marked with the AD bit. */
async function startUpstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4')
  socket.on('message', (msg, rinfo) => {
    const parsed = parseQuery(msg)
    if (!parsed.ok) return
    const out = Buffer.from(msg.subarray(0, parsed.query.questionEnd))
    out[2] = 0x80 | ((out[2] as number) & 0x79)
    out[3] = 0x80 | STUB_MARK | 3
    out.fill(0, 6, 12)
    socket.send(out, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  return { port: socket.address().port, close: () => new Promise((r) => socket.close(() => r())) }
}

function exchangeUdp(port: number, msg: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const client = dgram.createSocket('udp4')
    const timer = setTimeout(() => { client.close(); reject(new Error('no UDP answer within 2 s')) }, 2000)
    client.on('message', (reply) => { clearTimeout(timer); client.close(); resolve(reply) })
    client.send(msg, port, '127.0.0.1')
  })
}

function exchangeTcp(port: number, msg: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no TCP answer within 2 s')) }, 2000)
    let got = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        clearTimeout(timer)
        socket.destroy()
        resolve(got.subarray(2, 2 + got.readUInt16BE(0)))
      }
    })
    socket.on('error', reject)
    const frame = Buffer.alloc(2 + msg.length)
    frame.writeUInt16BE(msg.length, 0)
    frame.set(msg, 2)
    socket.write(frame)
  })
}

const until = async (what: string, ok: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('DNS fuzz', () => {
  let server: DnsServer
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let port = 0

  beforeAll(async () => {
    upstream = await startUpstream()
    server = new DnsServer({
      listen: [{ host: '127.0.0.1', port: 0 }],
      records: () => ({ revision: 1, hosts: [], containers: [
        container({ name: 'db', ips: ['172.17.0.2'] }),
        container({ id: 'b'.repeat(64), name: 'web-1', ips: ['172.17.0.3'], labels: { 'shoal.service': 'web', 'shoal.port': '80' } }),
      ] }),
      forward: { host: '127.0.0.1', port: upstream.port }, forwardTimeoutMs: 300,
      tcpConnectionsMax: 8, tcpIdleTimeoutMs: 300,
    })
    port = (await server.start())[0]!.port
  })

  afterAll(async () => {
    await server?.stop()
    await upstream?.close()
  })

  it(`survives ${UDP_PACKETS} random and mutated UDP packets, and every reply is a well-formed response`, async () => {
    const rng = mulberry32(SEED)
    const client = dgram.createSocket('udp4')
    const replies: Buffer[] = []
    client.on('message', (m) => replies.push(m))
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve))
    const before = server.stats().queries.received
    for (let sent = 0; sent < UDP_PACKETS; sent += BATCH) {
      for (let i = 0; i < BATCH; i++) client.send(fuzzPacket(rng), port, '127.0.0.1')
      // Pace by what the server has read, so the kernel never drops for a full buffer.
      await until('the server to read the batch', () => server.stats().queries.received - before >= sent + BATCH)
    }
    // Forwarded ones answer within the forward timeout.
    await new Promise((r) => setTimeout(r, 400))
    client.close()

    const q = server.stats().queries
    expect(replies.some((r) => ((r[3] as number) & STUB_MARK) !== 0), 'some were forwarded and relayed').toBe(true)
    expect(q.received - before).toBe(UDP_PACKETS)
    expect(q.received).toBe(q.answered + q.nodata + q.nxdomain + q.refused + q.forwarded + q.malformed + q.oversized + q.multiQuestion + q.notImplemented + q.badVersion + q.dropped)
    // Each kind of bad input was produced and counted.
    for (const key of ['malformed', 'oversized', 'multiQuestion', 'dropped', 'notImplemented'] as const) expect(q[key], key).toBeGreaterThan(0)
    expect(replies.length).toBeGreaterThan(UDP_PACKETS / 2)
    for (const r of replies) {
      expect(r.length).toBeGreaterThanOrEqual(12)
      expect((r[2] as number) & 0x80).toBe(0x80)
      // Our own replies are read back by an independent codec (relayed ones are the stub's).
      if (((r[3] as number) & STUB_MARK) === 0) expect(() => dnsPacket.decode(r)).not.toThrow()
    }

    const answer = decode(await exchangeUdp(port, query('DB.shoal', 'A')))
    expect(answer.answers?.map((a) => ('data' in a ? a.data : null))).toEqual(['172.17.0.2'])
  })

  it('survives garbage over TCP: random frames, lies about lengths, too many connections, idle clients', async () => {
    const rng = mulberry32(SEED + 1)
    const stats0 = server.stats().tcp
    const sockets: net.Socket[] = []
    for (let c = 0; c < TCP_CONNECTIONS; c++) {
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => undefined)
      sockets.push(socket)
      await new Promise<void>((resolve) => { socket.once('connect', resolve); socket.once('close', () => resolve()) })
      const frames: Buffer[] = []
      for (let i = 0; i < 20; i++) {
        const body = fuzzPacket(rng)
        const frame = Buffer.alloc(2 + body.length)
        // Mostly honest lengths; sometimes a length that promises more than ever comes.
        frame.writeUInt16BE(int(rng, 10) === 0 ? int(rng, 65536) : Math.min(body.length, 65535), 0)
        frame.set(body, 2)
        frames.push(frame)
      }
      if (!socket.destroyed) socket.write(Buffer.concat(frames))
      // Leave some open and silent (idle timeout), close others at once.
      if (c % 2 === 0) socket.destroy()
    }
    await until('idle connections to be closed', () => server.stats().tcp.open === 0, 5000)
    const tcp = server.stats().tcp
    expect(tcp.accepted - stats0.accepted + tcp.rejected - stats0.rejected).toBe(TCP_CONNECTIONS)
    expect(tcp.idleClosed - stats0.idleClosed).toBeGreaterThan(0)
    for (const s of sockets) s.destroy()

    const answer = decode(await exchangeTcp(port, query('web.shoal', 'SRV')))
    expect(answer.answers?.map((a) => ('data' in a ? a.data : null))).toEqual([{ priority: 1, weight: 1, port: 80, target: 'bbbbbbbbbbbb.shoal' }])
    const q = server.stats().queries
    expect(q.received).toBe(q.answered + q.nodata + q.nxdomain + q.refused + q.forwarded + q.malformed + q.oversized + q.multiQuestion + q.notImplemented + q.badVersion + q.dropped)
  })

  it('refuses connections beyond the bound while the bound is reached', async () => {
    const before = server.stats().tcp.rejected
    const sockets = await Promise.all(Array.from({ length: 12 }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s))
      s.on('error', () => undefined)
    })))
    await until('extra connections to be refused', () => server.stats().tcp.rejected - before === 4, 2000)
    expect(server.stats().tcp.open).toBe(8)
    for (const s of sockets) s.destroy()
    await until('connections to close', () => server.stats().tcp.open === 0, 2000)
  })
})
