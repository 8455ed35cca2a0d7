/**
 * Links across hosts (issue 13): one bulk TCP transfer and request/response latency through a
 * Shoal link between two hosts, beside the same transfer directly between the hosts (the limit)
 * and through an `ssh -L` tunnel between them (an encrypted user-space anchor), in one table with
 * the ratio Shoal/ssh and whether the issue's goals are met (throughput at least the tunnel's;
 * under 1 ms of p99 round-trip latency added to the direct path).
 *
 *   npm run bench -- --only links [--quick]      (needs root, Docker's binaries, openssh-server)
 *
 * The hosts are as in tests/integration/links-netns.test.ts: each a network namespace with a stock
 * dockerd (docker0 172.17.0.1/16 on both) and a peer started with --link-interface shoal0, joined
 * only by a test LAN (tests/helpers/netns-lan.ts). A's container `client` is the link's source,
 * B's container `target` its target. Both containers only sleep: the measuring processes are this
 * file run by the repo's Node under `nsenter --net=/proc/<container pid>/ns/net`, i.e. inside the
 * container's network namespace (its address, its routes, docker0 on the way) while the binary
 * and its libraries come from the machine, so busybox needs no Node of its own. The link's
 * listener admits the client because its source address is the source container's.
 *
 * Paths (the same client and server code on each):
 * - direct: client in A's namespace, server in B's namespace on B's LAN address;
 * - ssh -L: an sshd in B's namespace on its LAN address (throwaway host and user keys in a temp
 *   dir, default ciphers), `ssh -N -L` in A's namespace; client to the tunnel's local end, which
 *   sshd forwards to the same server as direct;
 * - shoal link: client in `client`'s namespace to the link address, server in `target`'s.
 * Each client warms up (200 round trips, 8 MB) before it measures. Bulk: one connection, 256 KiB
 * writes, throughput until the server acknowledges every byte. Round trips: 64 B echoed, one at a
 * time, on one connection. Connect: a new connection plus one 1-byte round trip each.
 */
import net from 'node:net'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync, readFileSync, openSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../tests/helpers/dockerd.ts'
import { NetnsLan } from '../tests/helpers/netns-lan.ts'
import { HostPeer } from '../tests/helpers/host-peer.ts'
import { apiGet, runCli, tempDir, waitFor, NODE } from '../tests/helpers/processes.ts'
import { percentile, printTable } from './stats.ts'

export interface LinksBenchOptions {
  bulkMB: number
  requests: number
  connects: number
  requestBytes: number
}

interface PathFigures {
  mbPerSecond: number
  rttP50Us: number
  rttP99Us: number
  connectP50Us: number
  connectP99Us: number
}

const P2P_PORT = 7946
const SERVER_PORT = 9000
const TUNNEL_PORT = 9001
const SSH_PORT = 2222
const LAN = { a: '10.78.0.11', b: '10.78.0.12' }
const SELF = import.meta.filename
const SSHD = '/usr/sbin/sshd'

const progress = (line: string): void => void process.stderr.write(`links: ${line}\n`)

// ---- the measuring endpoints (this file run with `serve` or `measure`) ----

/** The server: the first byte says what a connection is: B = bulk sink (answers the byte count at the end), R = echo. */
function serve(host: string, port: number): void {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
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
  })
  server.listen({ host, port }, () => process.stdout.write('listening\n'))
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
  return times
}

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
  return times
}

async function measure(host: string, port: number, o: LinksBenchOptions): Promise<PathFigures> {
  // The path may still be coming up (the tunnel's listener, the link's address): a few seconds of retries.
  await waitFor(`${host}:${port} to answer`, async () => (await roundTrips(host, port, 1, o.requestBytes)).length === 1, 15_000, 200)
  await roundTrips(host, port, 200, o.requestBytes)
  await bulk(host, port, 8 * 1024 * 1024)
  const mbPerSecond = await bulk(host, port, o.bulkMB * 1024 * 1024)
  const rtt = await roundTrips(host, port, o.requests, o.requestBytes)
  const conn = await connectTrips(host, port, o.connects)
  return { mbPerSecond, rttP50Us: percentile(rtt, 50), rttP99Us: percentile(rtt, 99), connectP50Us: percentile(conn, 50), connectP99Us: percentile(conn, 99) }
}

// ---- the orchestration ----

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim()}`)
  return r.stdout
}

/** `nsenter --net=<netns>` + cmd; the process is nsenter's exec of cmd (no fork), so its pid is cmd's. */
const inNet = (netns: string, cmd: string, args: string[]): [string, string[]] => ['nsenter', [`--net=${netns}`, cmd, ...args]]

/** Starts a server in `netns`, resolved once it listens. */
async function startServer(netns: string, host: string, children: ChildProcess[]): Promise<void> {
  const [cmd, args] = inNet(netns, NODE, [SELF, 'serve', host, String(SERVER_PORT)])
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(proc)
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.once('data', () => resolve())
    proc.once('exit', (code) => reject(new Error(`the bench server in ${netns} exited with ${code} before it listened`)))
  })
}

/** Runs one measuring client in `netns`; its figures. */
async function measureIn(netns: string, host: string, port: number, o: LinksBenchOptions, children: ChildProcess[]): Promise<PathFigures> {
  const [cmd, args] = inNet(netns, NODE, [SELF, 'measure', host, String(port), JSON.stringify(o)])
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(proc)
  let out = ''
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve))
  if (code !== 0) throw new Error(`the measuring client for ${host}:${port} exited with ${code}`)
  return JSON.parse(out) as PathFigures
}

export async function linksBench(o: LinksBenchOptions): Promise<void> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: the ssh -L anchor needs it (apt-get install openssh-server), then run the bench again`)
  const root = tempDir('shoal-bench-links-')
  const children: ChildProcess[] = []
  const peers: HostPeer[] = []
  const engines: Dockerd[] = []
  let lan: NetnsLan | null = null
  const kill = (procs: Array<ChildProcess | null>): void => {
    for (const c of procs) if (c !== null && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  // Synchronous, so it also runs at exit and ahead of the engines' and LAN's own signal handlers
  // (which reap them and raise the signal again); alone, it raises the signal again itself.
  const killAll = (): void => kill([...children, ...peers.map((p) => p.proc)])
  const onSignal = (signal: NodeJS.Signals): void => {
    killAll()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  const onExit = (): void => {
    killAll()
    rmSync(root, { recursive: true, force: true })
  }
  process.once('exit', onExit)
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.prependOnceListener(s, onSignal)
  try {
    progress('starting two stock engines in namespaces of their own, and the LAN between them')
    const [dockA, dockB] = await Promise.all([startDockerd('lka', { stock: true }), startDockerd('lkb', { stock: true })])
    engines.push(dockA, dockB)
    await Promise.all([buildTestImage(dockA.socket), buildTestImage(dockB.socket)])
    const netA = dockA.netnsPath as string
    const netB = dockB.netnsPath as string
    lan = new NetnsLan('bench-links')
    lan.attach(netA, LAN.a)
    lan.attach(netB, LAN.b)
    // Ahead of the LAN's own handler again (it prepended itself after ours), so on an interrupt the
    // processes die while the LAN still carries their connections' goodbyes.
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.removeListener(s, onSignal)
      process.prependOnceListener(s, onSignal)
    }

    progress('starting the peers')
    const a = new HostPeer('host-a', join(root, 'host-a'), dockA, ['--listen', `/ip4/${LAN.a}/tcp/${P2P_PORT}`], 'info')
    peers.push(a)
    await a.start()
    const idA = (await apiGet<{ peerId: string }>(a.api, '/v1/status')).peerId
    const b = new HostPeer('host-b', join(root, 'host-b'), dockB, [
      '--listen', `/ip4/${LAN.b}/tcp/${P2P_PORT}`, '--bootstrap', `/ip4/${LAN.a}/tcp/${P2P_PORT}/p2p/${idA}`, '--secret-file', join(a.dataDir, 'cluster.key'),
    ], 'info')
    peers.push(b)
    await b.start()
    await waitFor('two voters', async () => ((await apiGet<{ voters: string[] }>(a.api, '/v1/status')).voters.length === 2 ? true : undefined), 60_000)

    progress('starting the containers and the servers')
    await dockB.dockerOk(['run', '-d', '--name', 'target', TEST_IMAGE, 'sleep', '36000'])
    await dockA.dockerOk(['run', '-d', '--name', 'client', TEST_IMAGE, 'sleep', '36000'])
    const pidOf = async (engine: Dockerd, name: string): Promise<string> => `/proc/${(await engine.dockerOk(['inspect', '-f', '{{.State.Pid}}', name])).trim()}/ns/net`
    const netClient = await pidOf(dockA, 'client')
    const netTarget = await pidOf(dockB, 'target')
    await startServer(netTarget, '0.0.0.0', children)
    await startServer(netB, '0.0.0.0', children)
    await waitFor('both peers to know both containers', async () => {
      for (const p of [a, b]) {
        const r = await runCli(['ps', '--json', '--api', p.api])
        if (r.code !== 0) return undefined
        const names = (JSON.parse(r.stdout) as Array<{ name: string }>).map((c) => c.name)
        if (!names.includes('client') || !names.includes('target')) return undefined
      }
      return true
    }, 30_000)

    progress('creating the link and the ssh tunnel')
    const created = await runCli(['link', 'create', 'client', 'target', '--alias', 'bench', '--port', String(SERVER_PORT), '--api', a.api])
    if (created.code !== 0) throw new Error(`shoal link create failed: ${created.stderr}`)
    const linkAddress = await waitFor('the link address on A', async () => {
      const r = await runCli(['link', 'ls', '--json', '--api', a.api])
      return r.code === 0 ? (JSON.parse(r.stdout) as Array<{ alias: string; address: string | null }>).find((l) => l.alias === 'bench')?.address ?? undefined : undefined
    }, 15_000)
    await waitFor('the link address on shoal0', async () => (dockA.inNamespaceOk('ip', ['-4', '-o', 'addr', 'show', 'dev', 'shoal0']).includes(`${linkAddress}/32`) ? true : undefined), 15_000)

    const sshDir = join(root, 'ssh')
    mkdirSync(sshDir, { mode: 0o700 })
    mkdirSync('/run/sshd', { recursive: true })
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sshDir, 'host_key')])
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sshDir, 'user_key')])
    writeFileSync(join(sshDir, 'authorized_keys'), readFileSync(join(sshDir, 'user_key.pub')))
    chmodSync(join(sshDir, 'authorized_keys'), 0o600)
    writeFileSync(join(sshDir, 'sshd_config'), [
      `ListenAddress ${LAN.b}:${SSH_PORT}`, `HostKey ${join(sshDir, 'host_key')}`, `AuthorizedKeysFile ${join(sshDir, 'authorized_keys')}`,
      'PidFile none', 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'PermitRootLogin prohibit-password', 'AllowTcpForwarding yes',
      // The session's own sshd process outlives a SIGKILLed listener; when an interrupt removes the
      // LAN before the client's FIN gets through, this ends it within seconds instead of TCP keepalive's hours.
      'ClientAliveInterval 1', 'ClientAliveCountMax 3', '',
    ].join('\n'))
    const sshdLog = openSync(join(root, 'sshd.log'), 'a')
    children.push(spawn(...inNet(netB, SSHD, ['-D', '-e', '-f', join(sshDir, 'sshd_config')]), { stdio: ['ignore', sshdLog, sshdLog] }))
    await waitFor('sshd to listen', () => (run('nsenter', [`--net=${netB}`, 'ss', '-ltn']).includes(`${LAN.b}:${SSH_PORT}`) ? true : undefined), 10_000)
    const sshLog = openSync(join(root, 'ssh.log'), 'a')
    const ssh = spawn(...inNet(netA, 'ssh', [
      '-N', '-F', '/dev/null', '-i', join(sshDir, 'user_key'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ExitOnForwardFailure=yes', '-p', String(SSH_PORT),
      '-L', `127.0.0.1:${TUNNEL_PORT}:127.0.0.1:${SERVER_PORT}`, `root@${LAN.b}`,
    ]), { stdio: ['ignore', sshLog, sshLog] })
    children.push(ssh)
    closeSync(sshdLog)
    closeSync(sshLog)
    await waitFor('the ssh tunnel to listen', () => {
      if (ssh.exitCode !== null) throw new Error(`ssh exited with ${ssh.exitCode}: ${readFileSync(join(root, 'ssh.log'), 'utf8')}`)
      return run('nsenter', [`--net=${netA}`, 'ss', '-ltn']).includes(`127.0.0.1:${TUNNEL_PORT}`) ? true : undefined
    }, 15_000)

    progress(`direct: ${o.bulkMB} MB, ${o.requests} round trips, ${o.connects} connects`)
    const direct = await measureIn(netA, LAN.b, SERVER_PORT, o, children)
    progress('ssh -L')
    const tunnel = await measureIn(netA, '127.0.0.1', TUNNEL_PORT, o, children)
    progress(`shoal link (${linkAddress})`)
    const shoal = await measureIn(netClient, linkAddress, SERVER_PORT, o, children)

    const row = (path: string, f: PathFigures): Array<string | number> => [path, f.mbPerSecond, f.rttP50Us, f.rttP99Us, f.connectP50Us, f.connectP99Us]
    const ratio = (x: number, y: number): string => (x / y).toFixed(2)
    printTable(
      `links across two hosts (namespaces, LAN veth; ${o.bulkMB} MB bulk; ${o.requests} round trips of ${o.requestBytes} B on one connection; ${o.connects} × new connection + 1 round trip)`,
      ['path', 'MB/s', 'rtt p50 us', 'rtt p99 us', 'conn p50 us', 'conn p99 us'],
      [
        row('direct (limit)', direct), row('ssh -L', tunnel), row('shoal link', shoal),
        ['shoal / ssh', ratio(shoal.mbPerSecond, tunnel.mbPerSecond), ratio(shoal.rttP50Us, tunnel.rttP50Us), ratio(shoal.rttP99Us, tunnel.rttP99Us), ratio(shoal.connectP50Us, tunnel.connectP50Us), ratio(shoal.connectP99Us, tunnel.connectP99Us)],
      ],
    )
    const added = shoal.rttP99Us - direct.rttP99Us
    process.stdout.write(`goal: throughput >= ssh -L: ${shoal.mbPerSecond >= tunnel.mbPerSecond ? 'met' : 'NOT met'} (${shoal.mbPerSecond.toFixed(0)} vs ${tunnel.mbPerSecond.toFixed(0)} MB/s)\n`)
    process.stdout.write(`goal: < 1 ms p99 round trip added to direct: ${added < 1000 ? 'met' : 'NOT met'} (+${(added / 1000).toFixed(2)} ms)\n`)
  } finally {
    progress('tearing down')
    kill(children)
    await Promise.all(peers.map((p) => p.stop()))
    await Promise.all(engines.map((e) => e.stop()))
    lan?.remove()
    process.removeListener('exit', onExit)
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, onSignal)
    rmSync(root, { recursive: true, force: true })
  }
}

if (process.argv[1] === SELF) {
  const [mode, host, port, options] = process.argv.slice(2)
  if (mode === 'serve' && host !== undefined && port !== undefined) serve(host, Number(port))
  else if (mode === 'measure' && host !== undefined && port !== undefined && options !== undefined) {
    process.stdout.write(JSON.stringify(await measure(host, Number(port), JSON.parse(options) as LinksBenchOptions)))
    process.exit(0)
  } else if (mode === undefined) await linksBench({ bulkMB: 200, requests: 2000, connects: 500, requestBytes: 64 })
  else throw new Error(`usage: node bench/links.ts [serve HOST PORT | measure HOST PORT OPTIONS_JSON] (no arguments: the whole bench)`)
}
