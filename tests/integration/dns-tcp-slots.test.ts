// DNS over TCP under slow clients (issue 17 §5, RFC 7766 §6.2): 256 connections that each
// trickle one byte every second must not keep `dig +tcp` out. Real sockets from other loopback
// addresses (127.0.0.2 and up: Linux routes all of 127/8 to lo), the real server with its
// default limits, and the real `dig`.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import net from 'node:net'
import { DnsServer } from '../../protocols/dns/index.ts'
import { container, query } from '../../protocols/dns/testing.ts'

const SLOW_CONNECTIONS = 256
const TRICKLE_INTERVAL_MS = 1_000

/** `dig +tcp` from 127.0.0.1; resolves with its answer lines, or rejects with what it printed. */
function digTcp(port: number, name: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-b', '127.0.0.1', '-p', String(port), '+tcp', '+tries=1', '+time=2', '+short', name, 'A'], { timeout: 15_000 }, (err, stdout) => {
      if (err !== null || stdout.includes(';;')) reject(new Error(`dig +tcp ${name} failed: ${stdout}${err?.message ?? ''}`))
      else resolve(stdout.trim().split('\n').filter((l) => l !== ''))
    })
  })
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * A slow-loris client: connects from `localAddress`, then sends one byte of a length prefix
 * that promises a 512-byte query, and one more byte every TRICKLE_INTERVAL_MS, never finishing.
 */
function trickle(port: number, localAddress: string): { socket: net.Socket; closed: Promise<void> } {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress })
  socket.on('error', () => undefined)
  let timer: NodeJS.Timeout | null = null
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    if (timer !== null) clearInterval(timer)
    resolve()
  }))
  socket.once('connect', () => {
    const bytes = [0x02, 0x00, ...new Array<number>(512).fill(0)]
    let next = 0
    const send = (): void => {
      if (!socket.destroyed && next < bytes.length) socket.write(Buffer.from([bytes[next++] ?? 0]))
    }
    send()
    timer = setInterval(send, TRICKLE_INTERVAL_MS)
  })
  return { socket, closed }
}

describe('DNS over TCP keeps slots for real clients', () => {
  let server: DnsServer
  let port = 0

  beforeAll(async () => {
    // Default limits: these are what a peer runs with.
    server = new DnsServer({
      listen: [{ host: '127.0.0.1', port: 0 }],
      records: () => ({ revision: 1, hosts: [], containers: [container({ name: 'db', ips: ['172.17.0.2'] })] }),
    })
    port = (await server.start())[0]!.port
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('256 trickling connections from one address get that address\'s share, and dig +tcp still answers', async () => {
    const before = server.stats().tcp
    const slow = Array.from({ length: SLOW_CONNECTIONS }, () => trickle(port, '127.0.0.2'))
    await until('every slow connection to be accepted or refused', () => {
      const t = server.stats().tcp
      return t.accepted - before.accepted + t.rejected - before.rejected === SLOW_CONNECTIONS
    }, 10_000)
    // While the trickle goes on, a client from another address is answered over TCP.
    expect(await digTcp(port, 'db.shoal')).toEqual(['172.17.0.2'])
    const t = server.stats().tcp
    expect(t.rejectedPerClient - before.rejectedPerClient).toBeGreaterThan(0)
    expect(t.open).toBeLessThan(SLOW_CONNECTIONS)
    for (const s of slow) s.socket.destroy()
    await until('the slow connections to close', () => server.stats().tcp.open === 0, 10_000)
  })

  it('256 trickling connections from many addresses are cut at the message deadline, not kept alive byte by byte', async () => {
    const before = server.stats().tcp
    // 16 addresses x 16 connections: every slot of the server taken, no per-client limit hit.
    const slow = Array.from({ length: SLOW_CONNECTIONS }, (_, i) => trickle(port, `127.0.1.${2 + (i % 16)}`))
    await until('every slow connection to be accepted', () => server.stats().tcp.accepted - before.accepted === SLOW_CONNECTIONS, 10_000)
    // Each sends a byte every second, so an idle timer would never fire; the per-message
    // deadline closes them all, and dig +tcp gets in (it may be refused while they are open).
    await Promise.all(slow.map((s) => s.closed))
    const t = server.stats().tcp
    expect(t.slowMessageClosed - before.slowMessageClosed).toBe(SLOW_CONNECTIONS)
    expect(await digTcp(port, 'db.shoal')).toEqual(['172.17.0.2'])
  })

  it('a connection sending whole queries forever is closed at its maximum age', async () => {
    const aging = new DnsServer({
      listen: [{ host: '127.0.0.1', port: 0 }],
      records: () => ({ revision: 1, hosts: [], containers: [container({ name: 'db', ips: ['172.17.0.2'] })] }),
      tcpConnectionAgeMaxMs: 1_000,
    })
    const agingPort = (await aging.start())[0]!.port
    try {
      const socket = net.connect(agingPort, '127.0.0.1')
      socket.on('error', () => undefined)
      let replies = 0
      socket.on('data', () => replies++)
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      const q = Buffer.from(query('db.shoal', 'A'))
      const frame = Buffer.alloc(2 + q.length)
      frame.writeUInt16BE(q.length, 0)
      frame.set(q, 2)
      // A query every 100 ms: never idle, never a partial message.
      const timer = setInterval(() => socket.destroyed || socket.write(frame), 100)
      await closed
      clearInterval(timer)
      expect(replies).toBeGreaterThan(0)
      expect(aging.stats().tcp.ageClosed).toBe(1)
      expect(aging.stats().tcp.idleClosed + aging.stats().tcp.slowMessageClosed).toBe(0)
    } finally {
      await aging.stop()
    }
  })
})
