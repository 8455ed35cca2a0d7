/**
 * The link data path (issue 13) on loopback: one bulk TCP transfer and request/response round
 * trips directly to a server, through a link to a local instance (plain TCP relay), and through
 * a link to a remote instance (libp2p stream: pnet + Noise + Yamux between two peers). The
 * target's peer and the server run in a worker thread, so each peer has its own event loop as
 * on two hosts; bench/links.ts (namespaces, ssh -L anchor) is where cross-host figures belong.
 *
 * Run alone: node bench/link-forwarder.ts [--mb 200] [--requests 2000] [--bytes 64] [--one-thread]
 */
import net from 'node:net'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost, type ShoalLibp2p } from '../node/libp2p-host.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import { newClusterSecret } from '../node/data-dir.ts'
import { createLogger } from '../node/logger.ts'
import { LinkForwarder, type LinkInstance } from '../node/link-forwarder.ts'

export interface LinkForwarderBenchOptions {
  /** Run the target's peer on this thread too (one event loop for both peers). */
  oneThread?: boolean
  bulkMB: number
  requests: number
  requestBytes: number
}

interface PathFigures {
  path: string
  mbPerSecond: number
  rttP50Us: number
  rttP99Us: number
  connectP50Us: number
  connectP99Us: number
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

function listen(host: string, port: number, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, onConnection)
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port }, () => resolve(server))
  })
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true, noDelay: true })
    s.once('error', reject)
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
  })
}

/** The "container": the first byte says what a connection is: B = bulk sink, R = echo. */
function target(socket: net.Socket): void {
  let mode: 'unknown' | 'bulk' | 'echo' = 'unknown'
  let received = 0
  socket.on('data', (chunk: Buffer) => {
    if (mode === 'unknown') {
      mode = chunk[0] === 0x42 ? 'bulk' : 'echo'
      chunk = chunk.subarray(1)
    }
    if (mode === 'bulk') received += chunk.byteLength
    else if (chunk.byteLength > 0) socket.write(chunk)
  })
  socket.on('end', () => (mode === 'bulk' ? socket.end(`${received}`) : socket.end()))
  socket.on('error', () => undefined)
}

async function bulk(host: string, port: number, bytes: number): Promise<number> {
  const socket = await connect(host, port)
  const chunk = Buffer.alloc(256 * 1024, 0x61)
  const started = performance.now()
  const reply = new Promise<string>((resolve, reject) => {
    let text = ''
    socket.on('data', (c: Buffer) => (text += c.toString()))
    socket.once('end', () => resolve(text))
    socket.once('error', reject)
  })
  socket.write('B')
  let sent = 0
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (sent < bytes) {
        sent += chunk.byteLength
        if (!socket.write(chunk)) return void socket.once('drain', pump)
      }
      socket.end()
      resolve()
    }
    pump()
  })
  const got = Number(await reply)
  if (got !== sent) throw new Error(`bulk transfer delivered ${got} of ${sent} bytes`)
  return sent / 1024 / 1024 / ((performance.now() - started) / 1000)
}

async function roundTrips(host: string, port: number, count: number, size: number): Promise<number[]> {
  const socket = await connect(host, port)
  socket.write('R')
  const payload = Buffer.alloc(size, 0x72)
  const times: number[] = []
  let pending: { need: number; done: () => void } | null = null
  socket.on('data', (c: Buffer) => {
    if (pending === null) return
    pending.need -= c.byteLength
    if (pending.need <= 0) pending.done()
  })
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    await new Promise<void>((resolve) => {
      pending = { need: size, done: resolve }
      socket.write(payload)
    })
    pending = null
    times.push((performance.now() - t0) * 1000)
  }
  socket.end()
  return times.sort((a, b) => a - b)
}

/** A new connection per request: connect, one round trip, close (what a short-lived client sees). */
async function connectTrips(host: string, port: number, count: number): Promise<number[]> {
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    const s = await connect(host, port)
    await new Promise<void>((resolve, reject) => {
      s.once('data', () => resolve())
      s.once('error', reject)
      s.write('R1')
    })
    times.push((performance.now() - t0) * 1000)
    s.destroy()
  }
  return times.sort((a, b) => a - b)
}

interface PeerInfo {
  peerId: string
  addrs: string[]
  port: number
}

/** Starts a peer with a link forwarder whose every link resolves to `route()`. */
async function startPeer(secret: Uint8Array, route: (selfId: string) => Map<string, LinkInstance[]>): Promise<{ libp2p: ShoalLibp2p; forwarder: LinkForwarder; stop(): Promise<void> }> {
  const { libp2p } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [multiaddr('/ip4/127.0.0.1/tcp/0')], bootstrap: [], clusterSecret: secret })
  await libp2p.start()
  const routes = route(libp2p.peerId.toString())
  const forwarder = new LinkForwarder({
    libp2p,
    selfId: libp2p.peerId.toString(),
    log: createLogger('warn', 'links'),
    authorize: () => true,
    resolveTargets: (link) => routes.get(link) ?? [],
  })
  await forwarder.start()
  return { libp2p, forwarder, stop: async () => { await forwarder.stop(); await libp2p.stop() } }
}

/** The worker: the target's peer and the target server, on their own event loop. */
async function targetPeer(secret: Uint8Array, port: number): Promise<void> {
  const peer = await startPeer(secret, (self) => new Map([['bench/remote', [{ host: self, ip: '127.0.0.20', port }]]]))
  const info: PeerInfo = { peerId: peer.libp2p.peerId.toString(), addrs: peer.libp2p.getMultiaddrs().map(String), port }
  parentPort?.postMessage(info)
  parentPort?.once('message', () => void peer.stop().then(() => process.exit(0)))
}

export async function linkForwarderBench(options: LinkForwarderBenchOptions): Promise<PathFigures[]> {
  const secret = newClusterSecret()
  const server = await listen('127.0.0.20', 0, target)
  const port = (server.address() as net.AddressInfo).port
  let stopRemote: () => Promise<void>
  let remote: PeerInfo
  if (options.oneThread === true) {
    const b = await startPeer(secret, (self) => new Map([['bench/remote', [{ host: self, ip: '127.0.0.20', port }]]]))
    remote = { peerId: b.libp2p.peerId.toString(), addrs: b.libp2p.getMultiaddrs().map(String), port }
    stopRemote = () => b.stop()
  } else {
    const worker = new Worker(new URL(import.meta.url), { workerData: { secret, port } })
    remote = await new Promise<PeerInfo>((resolve, reject) => {
      worker.once('message', (m: PeerInfo) => resolve(m))
      worker.once('error', reject)
    })
    stopRemote = async () => {
      worker.postMessage('stop')
      await new Promise((resolve) => worker.once('exit', resolve))
    }
  }
  const a = await startPeer(secret, (self) => new Map([
    ['bench/local', [{ host: self, ip: '127.0.0.20', port }]],
    ['bench/remote', [{ host: remote.peerId, ip: '127.0.0.20', port }]],
  ]))
  await a.libp2p.peerStore.merge(peerIdFromString(remote.peerId), { multiaddrs: remote.addrs.map((m) => multiaddr(m)) })
  await a.forwarder.listen('127.0.0.41', port, 'bench/local')
  await a.forwarder.listen('127.0.0.42', port, 'bench/remote')
  // Warm up the libp2p connection and JIT before measuring.
  await roundTrips('127.0.0.42', port, 200, options.requestBytes)
  await bulk('127.0.0.42', port, 8 * 1024 * 1024)

  const out: PathFigures[] = []
  for (const [path, host] of [['direct', '127.0.0.20'], ['link, local instance', '127.0.0.41'], ['link, remote instance (libp2p)', '127.0.0.42']] as const) {
    const mbPerSecond = await bulk(host, port, options.bulkMB * 1024 * 1024)
    const rtt = await roundTrips(host, port, options.requests, options.requestBytes)
    const conn = await connectTrips(host, port, Math.min(options.requests, 500))
    out.push({ path, mbPerSecond, rttP50Us: percentile(rtt, 50), rttP99Us: percentile(rtt, 99), connectP50Us: percentile(conn, 50), connectP99Us: percentile(conn, 99) })
  }
  await a.stop()
  await stopRemote()
  server.close()

  console.log(`\nlink data path on loopback, ${options.oneThread === true ? 'both peers on one thread' : "the target's peer in a worker thread"} (${options.bulkMB} MB bulk; ${options.requests} round trips of ${options.requestBytes} B on one connection; connect+1 round trip per new connection)`)
  console.log(`${'path'.padEnd(32)} ${'MB/s'.padStart(8)} ${'rtt p50 us'.padStart(11)} ${'rtt p99 us'.padStart(11)} ${'conn p50 us'.padStart(12)} ${'conn p99 us'.padStart(12)}`)
  for (const f of out) {
    console.log(`${f.path.padEnd(32)} ${f.mbPerSecond.toFixed(0).padStart(8)} ${f.rttP50Us.toFixed(0).padStart(11)} ${f.rttP99Us.toFixed(0).padStart(11)} ${f.connectP50Us.toFixed(0).padStart(12)} ${f.connectP99Us.toFixed(0).padStart(12)}`)
  }
  return out
}

if (!isMainThread) {
  const data = workerData as { secret: Uint8Array; port: number }
  await targetPeer(data.secret, data.port)
} else if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const arg = (name: string, fallback: number): number => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback)
  await linkForwarderBench({ oneThread: process.argv.includes('--one-thread'), bulkMB: arg('--mb', 200), requests: arg('--requests', 2000), requestBytes: arg('--bytes', 64) })
}
