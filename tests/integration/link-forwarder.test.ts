/**
 * The link data path (issue 13) between two real libp2p hosts over loopback: a LinkForwarder on
 * each, TCP servers on 127.0.0.x standing in for containers, clients on link addresses.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import net from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost, type ShoalLibp2p } from '../../node/libp2p-host.ts'
import { newClusterSecret } from '../../node/data-dir.ts'
import { createLogger } from '../../node/logger.ts'
import { LinkForwarder, LINK_PROTOCOL, type LinkInstance } from '../../node/link-forwarder.ts'
import { waitFor } from '../helpers/processes.ts'

const MB = 1024 * 1024

/** A "container": a TCP server on a loopback address, with a behaviour per connection. */
async function server(host: string, onConnection: (socket: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
  // A forwarder may reset a target connection (that is what several cases check from the client's
  // side); a "container" must not crash the test process when it reads that reset.
  const s = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined)
    onConnection(socket)
  })
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject)
    s.listen({ host, port: 0 }, () => resolve())
  })
  return { server: s, port: (s.address() as net.AddressInfo).port }
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true })
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve(socket)
    })
  })
}

/** Reads until the peer's FIN; rejects with the socket's error (a reset) if there is one. */
function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
    socket.once('error', reject)
  })
}

/** Resolves with the error code a socket ends with (ECONNRESET for a reset), or 'closed' on a clean close. */
function endOf(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let code = 'closed'
    socket.on('data', () => undefined)
    socket.once('error', (err: NodeJS.ErrnoException) => {
      code = err.code ?? err.message
    })
    socket.once('close', () => resolve(code))
  })
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

describe('LinkForwarder over libp2p', () => {
  const hosts: ShoalLibp2p[] = []
  const forwarders: LinkForwarder[] = []
  const servers: net.Server[] = []
  let idA = ''
  let idB = ''
  /** The cluster's view of each link's instances, as both peers' replicas would see it. */
  const instances = new Map<string, LinkInstance[]>()
  /** Links whose source runs on host A: B admits A's streams only for these. */
  const sourcesOnA = new Set<string>()

  beforeAll(async () => {
    const secret = newClusterSecret()
    for (let i = 0; i < 2; i++) {
      const { libp2p } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [multiaddr('/ip4/127.0.0.1/tcp/0')], bootstrap: [], clusterSecret: secret })
      await libp2p.start()
      hosts.push(libp2p)
    }
    idA = hosts[0]!.peerId.toString()
    idB = hosts[1]!.peerId.toString()
    await hosts[0]!.peerStore.merge(hosts[1]!.peerId, { multiaddrs: hosts[1]!.getMultiaddrs() })
    await hosts[1]!.peerStore.merge(hosts[0]!.peerId, { multiaddrs: hosts[0]!.getMultiaddrs() })
    for (const libp2p of hosts) {
      const selfId = libp2p.peerId.toString()
      const f = new LinkForwarder({
        libp2p,
        selfId,
        log: createLogger('warn', `links-${selfId.slice(-4)}`),
        authorize: (remote, link, port) => remote === idA && sourcesOnA.has(link) && (instances.get(link) ?? []).some((t) => t.port === port),
        resolveTargets: (link, port) => (instances.get(link) ?? []).filter((t) => t.port === port),
        // Only clients from 127.0.0.1 may use web/private (as only a link's sources may use it).
        admitClient: (client, link) => link !== 'web/private' || client === '127.0.0.1',
      })
      await f.start()
      forwarders.push(f)
    }
  })

  afterAll(async () => {
    for (const f of forwarders) await f.stop()
    for (const s of servers) s.close()
    await Promise.all(hosts.map((h) => h.stop()))
  })

  /** A target "container" on host B (or A) and a link address on host A that reaches it. */
  async function link(name: string, address: string, onConnection: (socket: net.Socket) => void, on: 'A' | 'B' = 'B', ip = '127.0.0.20'): Promise<number> {
    const s = await server(ip, onConnection)
    servers.push(s.server)
    instances.set(name, [{ host: on === 'A' ? idA : idB, ip, port: s.port }])
    sourcesOnA.add(name)
    await forwarders[0]!.listen(address, s.port, name)
    return s.port
  }

  const echo = (socket: net.Socket): void => {
    socket.pipe(socket)
  }

  it('carries a few MB intact both ways, and a client that shuts down writing still reads the reply', async () => {
    const port = await link('web/echo', '127.0.0.11', echo)
    const data = randomBytes(6 * MB)
    const client = await connect('127.0.0.11', port)
    const reply = readAll(client)
    client.end(data)
    const got = await reply
    expect(got.byteLength).toBe(data.byteLength)
    expect(sha(got)).toBe(sha(data))
    expect(forwarders[0]!.stats.connections.remote).toBeGreaterThanOrEqual(1)
    expect(forwarders[1]!.stats.connections.accepted).toBeGreaterThanOrEqual(1)
    await waitFor('the connection is done on both peers', () => (forwarders[0]!.stats.active === 0 && forwarders[1]!.stats.active === 0 ? true : undefined))
  })

  it("passes the target's half-close to the client, and the client's later bytes still reach the target", async () => {
    let received: Promise<Buffer> = Promise.resolve(Buffer.alloc(0))
    const port = await link('web/greeter', '127.0.0.12', (socket) => {
      received = readAll(socket)
      socket.end('hello, then FIN')
    })
    const client = await connect('127.0.0.12', port)
    const greeting = await readAll(client) // resolves on the target's FIN
    expect(greeting.toString()).toBe('hello, then FIN')
    client.end('written after the FIN')
    expect((await received).toString()).toBe('written after the FIN')
  })

  it('passes a reset from the client to the target, and from the target to the client', async () => {
    const targetEnds: Array<Promise<string>> = []
    const targetSockets: net.Socket[] = []
    const port = await link('web/reset', '127.0.0.13', (socket) => {
      targetSockets.push(socket)
      targetEnds.push(endOf(socket))
    })
    // Client resets: the target sees ECONNRESET.
    const c1 = await connect('127.0.0.13', port)
    c1.write('x')
    await waitFor('the target has the first connection', () => (targetSockets.length === 1 ? true : undefined))
    c1.resetAndDestroy()
    expect(await targetEnds[0]).toBe('ECONNRESET')
    // Target resets: the client sees ECONNRESET.
    const c2 = await connect('127.0.0.13', port)
    const c2End = endOf(c2)
    c2.write('y')
    await waitFor('the target has the second connection', () => (targetSockets.length === 2 ? true : undefined))
    targetSockets[1]!.resetAndDestroy()
    expect(await c2End).toBe('ECONNRESET')
  })

  it('reaches a target on its own host with no libp2p hop', async () => {
    const port = await link('web/local', '127.0.0.14', echo, 'A', '127.0.0.21')
    const localBefore = forwarders[0]!.stats.connections.local
    const remoteBefore = forwarders[0]!.stats.connections.remote
    const acceptedBefore = forwarders[1]!.stats.connections.accepted
    const client = await connect('127.0.0.14', port)
    const reply = readAll(client)
    client.end('local please')
    expect((await reply).toString()).toBe('local please')
    expect(forwarders[0]!.stats.connections.local).toBe(localBefore + 1)
    expect(forwarders[0]!.stats.connections.remote).toBe(remoteBefore)
    expect(forwarders[1]!.stats.connections.accepted).toBe(acceptedBefore)
  })

  it('refuses and counts a stream from a peer that hosts no source of the link, and the client is reset', async () => {
    const port = await link('intruder/db', '127.0.0.15', echo)
    sourcesOnA.delete('intruder/db')
    const before = forwarders[1]!.stats.refused.unauthorized
    const client = net.connect({ host: '127.0.0.15', port })
    expect(await endOf(client)).toBe('ECONNRESET')
    expect(forwarders[1]!.stats.refused.unauthorized).toBe(before + 1)
    expect(forwarders[0]!.stats.refusedByRemote.unauthorized).toBeGreaterThanOrEqual(1)
  })

  it('resets a client that admitClient refuses, before any stream is opened', async () => {
    const port = await link('web/private', '127.0.0.25', echo)
    const before = { refused: forwarders[0]!.stats.clientsRefused, remote: forwarders[0]!.stats.connections.remote, accepted: forwarders[1]!.stats.connections.accepted }
    // The reset may come before or after the client sees its connect: either way it is a reset.
    const stranger = net.connect({ host: '127.0.0.25', port, localAddress: '127.0.0.99' })
    expect(await endOf(stranger)).toBe('ECONNRESET')
    expect(forwarders[0]!.stats.clientsRefused).toBe(before.refused + 1)
    expect(forwarders[1]!.stats.connections.accepted).toBe(before.accepted)
    const source = await connect('127.0.0.25', port)
    const reply = readAll(source)
    source.end('from a source')
    expect((await reply).toString()).toBe('from a source')
    expect(forwarders[0]!.stats.connections.remote).toBe(before.remote + 1)
  })

  it('resets the client promptly when the target refuses the connection', async () => {
    // A port nothing listens on: bind, note the port, close.
    const gone = await server('127.0.0.20', () => undefined)
    await new Promise<void>((resolve) => gone.server.close(() => resolve()))
    instances.set('web/down', [{ host: idB, ip: '127.0.0.20', port: gone.port }])
    sourcesOnA.add('web/down')
    await forwarders[0]!.listen('127.0.0.16', gone.port, 'web/down')
    const before = forwarders[1]!.stats.refused['target-unreachable']
    const client = net.connect({ host: '127.0.0.16', port: gone.port })
    expect(await endOf(client)).toBe('ECONNRESET')
    expect(forwarders[1]!.stats.refused['target-unreachable']).toBe(before + 1)
  })

  it('resets and counts a stream with a bad header', async () => {
    const before = forwarders[1]!.stats.refused['bad-header']
    for (const garbage of [new Uint8Array([0xff, 0xff, 1, 2]), new Uint8Array([0, 5, 0x7b, 0x7d, 0x20, 0x20, 0x20]), new Uint8Array([0, 2, 0xc3, 0x28])]) {
      const stream = await hosts[0]!.dialProtocol(hosts[1]!.peerId, LINK_PROTOCOL)
      const closed = new Promise<boolean>((resolve) => stream.addEventListener('close', (evt) => resolve(evt.error !== undefined), { once: true }))
      stream.send(garbage)
      expect(await closed).toBe(true)
    }
    expect(forwarders[1]!.stats.refused['bad-header']).toBe(before + 3)
  })

  it('spreads new connections over the instances of a service, and follows an instance that moved', async () => {
    const answer = (name: string) => (socket: net.Socket): void => {
      socket.on('error', () => undefined)
      socket.end(name)
    }
    // Three instances on their own addresses, all answering on one port, as a service's would.
    const one = await server('127.0.0.22', answer('one'))
    const port = one.port
    const listenOn = async (ip: string, name: string): Promise<net.Server> => {
      const s = net.createServer(answer(name))
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen({ host: ip, port }, () => resolve())
      })
      return s
    }
    servers.push(one.server, await listenOn('127.0.0.23', 'two'), await listenOn('127.0.0.24', 'three'))
    const at = (ip: string): LinkInstance => ({ host: idB, ip, port })
    let placement = [at('127.0.0.22'), at('127.0.0.23')]
    instances.set('web/svc', placement)
    sourcesOnA.add('web/svc')
    await forwarders[0]!.listen('127.0.0.19', port, 'web/svc')
    const ask = async (): Promise<string> => {
      const c = await connect('127.0.0.19', port)
      const r = readAll(c)
      c.end()
      return (await r).toString()
    }
    const seen: string[] = []
    for (let i = 0; i < 4; i++) seen.push(await ask())
    expect(seen.filter((x) => x === 'one')).toHaveLength(2)
    expect(seen.filter((x) => x === 'two')).toHaveLength(2)
    // The service moved: the next connection goes to the new instance at once.
    placement = [at('127.0.0.24')]
    instances.set('web/svc', placement)
    expect(await ask()).toBe('three')
  })

  it('opens and closes listeners to match the wanted set; a closed link address refuses connections', async () => {
    const s = await server('127.0.0.20', echo)
    servers.push(s.server)
    instances.set('web/sync', [{ host: idB, ip: '127.0.0.20', port: s.port }])
    sourcesOnA.add('web/sync')
    const f = forwarders[0]!
    const before = f.stats.listeners
    const wanted = [
      { address: '127.0.0.31', port: s.port, link: 'web/sync' },
      { address: '127.0.0.32', port: s.port, link: 'web/sync' },
    ]
    // The forwarder's other listeners are not in this set, so sync would close them; keep them.
    const others = f.listening()
    expect(await f.sync([...others, ...wanted])).toMatchObject({ opened: 2, closed: 0, failed: [] })
    expect(f.stats.listeners).toBe(before + 2)
    expect(await f.sync([...others, ...wanted])).toMatchObject({ opened: 0, closed: 0 })
    const c = await connect('127.0.0.32', s.port)
    const r = readAll(c)
    c.end('via sync')
    expect((await r).toString()).toBe('via sync')
    // An address that is not on this host is reported, not thrown, and the rest still syncs.
    const result = await f.sync([...others, wanted[0]!, { address: '192.0.2.77', port: s.port, link: 'web/sync' }])
    expect(result.closed).toBe(1)
    expect(result.failed).toHaveLength(1)
    expect(result.failed[0]!.error).toMatch(/EADDRNOTAVAIL.*not on any interface/)
    await expect(connect('127.0.0.32', s.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    // Unlisten returns at once though a connection is open; that connection goes on.
    const open = await connect('127.0.0.31', s.port)
    const openReply = readAll(open)
    open.write('before ')
    await f.unlisten('127.0.0.31', s.port)
    await expect(connect('127.0.0.31', s.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    open.end('and after unlisten')
    expect((await openReply).toString()).toBe('before and after unlisten')
    expect(f.stats.listeners).toBe(before)
  })

  it('holds a bounded number of bytes while a fast writer pushes 50 MB to a reader paused for a while', async () => {
    const TOTAL = 50 * MB
    const chunk = randomBytes(256 * 1024)
    /** Writes TOTAL bytes as fast as the socket takes them (honouring its own back-pressure), then FIN. */
    const firehose = (socket: net.Socket): void => {
      let sent = 0
      const pump = (): void => {
        while (sent < TOTAL) {
          sent += chunk.byteLength
          if (!socket.write(chunk)) return void socket.once('drain', pump)
        }
        socket.end()
      }
      pump()
    }
    let maxBuffered = 0
    const sample = setInterval(() => {
      maxBuffered = Math.max(maxBuffered, forwarders[0]!.bufferedBytes() + forwarders[1]!.bufferedBytes())
    }, 5)
    try {
      // Target -> client: the target writes, the client does not read for 1.5 s, then reads
      // slowly: in bursts of a few ms every 20 ms, so the forwarder pauses and resumes often.
      const port = await link('web/firehose', '127.0.0.17', (socket) => {
        socket.resume()
        firehose(socket)
      })
      const client = await connect('127.0.0.17', port)
      client.pause()
      await new Promise((r) => setTimeout(r, 1500))
      let got = 0
      const done = new Promise<void>((resolve, reject) => {
        client.on('data', (c: Buffer) => (got += c.byteLength))
        client.once('end', () => resolve())
        client.once('error', reject)
      })
      const throttle = setInterval(() => {
        client.resume()
        setTimeout(() => client.pause(), 3)
      }, 20)
      client.end()
      await done.finally(() => clearInterval(throttle))
      expect(got).toBe(TOTAL)
      const downMax = maxBuffered

      // Client -> target: the client writes, the target does not read for 1.5 s.
      maxBuffered = 0
      let targetGot = 0
      let targetDone: Promise<void> = Promise.resolve()
      const port2 = await link('web/sink', '127.0.0.18', (socket) => {
        socket.pause()
        targetDone = new Promise<void>((resolve) => {
          setTimeout(() => {
            socket.on('data', (c: Buffer) => (targetGot += c.byteLength))
            socket.once('end', () => {
              socket.end()
              resolve()
            })
            socket.resume()
          }, 1500)
        })
      })
      const writer = await connect('127.0.0.18', port2)
      writer.resume()
      firehose(writer)
      await waitFor('the target read all 50 MB', () => (targetGot === TOTAL ? true : undefined), 60_000)
      await targetDone
      const upMax = maxBuffered
      console.log(`link buffering while 50 MB meet a paused reader: down ${(downMax / MB).toFixed(1)} MB, up ${(upMax / MB).toFixed(1)} MB`)
      // A forwarder that buffered without bound would hold most of the 50 MB (the kernel's
      // socket buffers on loopback take only a few MB; without pausing, 22 and 41 MB were seen).
      // The bound per connection and direction: a paused read buffer of one link stream window
      // (4 MiB) plus the socket write buffer it was last emptied into, plus a chunk or two.
      expect(downMax).toBeLessThan(12 * MB)
      expect(upMax).toBeLessThan(12 * MB)
    } finally {
      clearInterval(sample)
    }
  }, 120_000)
})
