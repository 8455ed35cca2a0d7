/**
 * Services: Shoal beside Docker Swarm, same machine, same run (Swarm's half: bench/swarm-anchor.ts),
 * one table with the ratio Shoal/Swarm per figure (< 1: Shoal is faster).
 *
 *   npm run bench -- --only services [--quick] [--rounds N] [--no-swarm]
 *   (SHOAL_BENCH_LOGS=DIR keeps the peers' debug logs there)
 *
 * Shoal's cluster: three peers on loopback, each with a private dockerd (tests/helpers/dockerd.ts,
 * main namespace: only the engines and DNS matter to Shoal) holding the busybox test image, every
 * peer with the default settings (--reschedule-grace 1 s, --dead-grace 30 s). Everything is driven
 * through the `shoal` CLI against the first peer's API (A), as a user would; the figures are read
 * from the same peer's API every 100 ms, as Swarm's half polls its manager.
 *
 * Scenarios (N = 30 replicas, or 6 with --quick; the halves run one after the other, never together):
 * - create: from spawning `shoal service create --detach --replicas N` to N tasks running;
 * - scale: a 3-replica service, all running; from spawning `shoal service scale --detach X=6` to 6 running;
 * - host death: the peer that is neither A nor the Raft leader and runs the most tasks (K) of the
 *   N-replica service loses its engine (Dockerd.crash(): dockerd, containerd and containers SIGKILLed)
 *   and its peer process (SIGKILL) at the same instant; from the kill until A lists the host dead,
 *   and until N tasks run on the other hosts. The host (engine, then peer) boots again before the
 *   next round.
 * - rolling update: a service of `nc -ll -p 8080 -e echo hi` (PID 1 ignores SIGTERM, so every stop
 *   takes the full grace, as Swarm's `sleep`) with `--update-parallelism P --update-delay 0s
 *   --stop-grace-period G` and every other update setting at its default; from spawning
 *   `shoal service update --detach --env-add` until N tasks of the new spec run and no old one does.
 *   Swarm's cases (N with parallelism 3 at grace 10 s and 0 s; 6 with parallelism 1 at 10 s, not
 *   with --quick, and 0 s), plus N at grace 0 s with `--update-monitor 0s`: Shoal's monitor window
 *   (5 s by default) gates every batch, Swarm's only delays its final "completed", so that row
 *   shows what the gate costs.
 * - requests during each rolling update: a client loop in this process asks the peers' DNS for
 *   the service name on the bridge gateways' port 53 (the server the instances' own resolv.conf
 *   names; each query to the next peer in turn), connects to one answered address (the next one in
 *   turn) on 8080, and expects the instance's greeting. It resolves for every request (no cache),
 *   as the README's promise is about new lookups. Swarm's half has no such loop.
 * Create, scale and host death run `rounds` times; each rolling update once.
 */
import { createSocket, type Socket } from 'node:dgram'
import { createConnection } from 'node:net'
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, apiGet, runCli, waitFor, type PeerProcess } from '../tests/helpers/processes.ts'
import { startDockerd, buildTestImage, dockerClient, TEST_IMAGE, type Dockerd } from '../tests/helpers/dockerd.ts'
import { query, decode } from '../protocols/dns/testing.ts'
import { measureSwarm, printSwarmTable, type SwarmFigures } from './swarm-anchor.ts'
import { percentile, printTable } from './stats.ts'

export interface ServicesBenchOptions {
  quick: boolean
  rounds: number
  /** false: Shoal's half alone (while developing); the Swarm columns show '-'. */
  swarm: boolean
}

interface ServiceRow { name: string; replicas: number; running: number; healthy: number; updateState: string | null; version: number; converged: boolean; message: string }
interface TaskRow { task: string; slot: string; host: string; hostName: string | null; state: string; desiredState: string; specVersion: number; retiring?: boolean }
interface StatusView { peerId: string; leader: string | null; role: string; voters: string[]; commitIndex: number; appliedIndex: number; dns: { listen: string[]; containers: { listen: string[] } } }

export interface ShoalHostDeath {
  victim: string
  /** Whether the killed host was the Raft leader (the bench picks one that is not, when it can). */
  wasLeader: boolean
  tasksOnNode: number
  /** Kill → A lists the host dead (SWIM). */
  deadMs: number
  /** Kill → N tasks running on the other hosts. */
  replacedMs: number
}

export interface Traffic {
  queries: number
  dnsFailures: number
  connections: number
  connFailures: number
  /** The first few failures, what and when (ms after the loop started). */
  samples: string[]
}

export interface ShoalRollingUpdate {
  tasks: number
  parallelism: number
  stopGraceS: number
  /** `--update-monitor` in seconds when set (diagnostic row); null: Shoal's default (5 s, which gates each batch). */
  monitorS: number | null
  /** `shoal service update` spawned → N tasks of the new spec running and none of the old. */
  totalMs: number
  /** `shoal service update` spawned → `service ls` says converged (every instance healthy, rollout done). */
  convergedMs: number
  traffic: Traffic
}

export interface ShoalFigures {
  replicas: number
  createMs: number[]
  /** `shoal service create --detach` spawned → the CLI exited (Node's start-up and the Raft write). */
  createCliMs: number[]
  scaleMs: number[]
  hostDeaths: ShoalHostDeath[]
  rollingUpdates: ShoalRollingUpdate[]
}

const POLL_MS = 100
const SETTLE_TIMEOUT_MS = 120_000
const SERVICE_PORT = 8080
/** An instance that answers every connection with "hi" and, as PID 1, ignores SIGTERM. */
const GREETER = ['nc', '-ll', '-p', String(SERVICE_PORT), '-e', 'echo', 'hi']
const DNS_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 1000
/** Pause between the client's requests: enough to see every batch, little enough CPU on 2 shared cores. */
const CLIENT_PAUSE_MS = 20
const FAILURE_SAMPLES = 10

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(POLL_MS)
  }
}

/** Runs `shoal ARGS` against `peer`'s API (before any `--`: what follows is the instances' command); throws unless it exits 0. */
async function shoal(peer: PeerProcess, args: string[], timeoutMs = 60_000): Promise<string> {
  const split = args.indexOf('--')
  const own = split < 0 ? args : args.slice(0, split)
  const r = await runCli([...own, '--api', peer.api, ...(split < 0 ? [] : args.slice(split))], {}, timeoutMs)
  if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`)
  return r.stdout
}

const services = (p: PeerProcess): Promise<ServiceRow[]> => apiGet<ServiceRow[]>(p.api, '/v1/services')
const tasksOf = (p: PeerProcess, name: string): Promise<TaskRow[]> => apiGet<TaskRow[]>(p.api, `/v1/services/ps?name=${encodeURIComponent(name)}`)
const runningTasks = (rows: TaskRow[]): TaskRow[] => rows.filter((t) => t.desiredState === 'running' && t.state === 'running')

/** Counts a service's containers on one engine (running only, or all). */
async function containersOn(engine: Dockerd, service: string, all: boolean): Promise<number> {
  const { docker, close } = dockerClient(engine.socket, 10_000)
  try {
    return (await docker.listContainers({ all, filters: JSON.stringify({ label: [`shoal.service=${service}`] }) })).length
  } finally {
    close()
  }
}

/** A client that resolves the service through the peers' DNS and connects to what it answered; see the file comment. */
class TrafficLoop {
  readonly traffic: Traffic = { queries: 0, dnsFailures: 0, connections: 0, connFailures: 0, samples: [] }
  private stopped = false
  private done: Promise<void> = Promise.resolve()
  private readonly udp: Socket = createSocket('udp4')
  private readonly pending = new Map<number, (answer: string[] | string) => void>()
  private nextId = 1
  private readonly startedAt = performance.now()
  private readonly servers: ReadonlyArray<{ host: string; port: number }>
  private readonly name: string

  constructor(servers: ReadonlyArray<{ host: string; port: number }>, name: string) {
    this.servers = servers
    this.name = name
    this.udp.on('message', (msg) => {
      const r = decode(msg)
      const resolve = this.pending.get(r.id ?? -1)
      if (resolve === undefined) return
      this.pending.delete(r.id ?? -1)
      const addrs = (r.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : []))
      resolve(r.rcode !== 'NOERROR' ? r.rcode : addrs.length === 0 ? 'no address' : addrs)
    })
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.udp.bind(0, '0.0.0.0', () => r()))
    this.done = this.loop()
  }

  async stop(): Promise<Traffic> {
    this.stopped = true
    await this.done
    this.udp.close()
    return this.traffic
  }

  private fail(what: string): void {
    if (this.traffic.samples.length < FAILURE_SAMPLES) this.traffic.samples.push(`${what} at ${((performance.now() - this.startedAt) / 1000).toFixed(2)} s`)
  }

  private resolve(server: { host: string; port: number }): Promise<string[] | string> {
    const id = this.nextId
    this.nextId = this.nextId % 65_535 + 1
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        resolve('timeout')
      }, DNS_TIMEOUT_MS)
      this.pending.set(id, (a) => {
        clearTimeout(timer)
        resolve(a)
      })
      this.udp.send(query(this.name, 'A', { id }), server.port, server.host)
    })
  }

  /** Connects and reads the greeting; '' when it came, else why not. */
  private greet(address: string): Promise<string> {
    return new Promise((resolve) => {
      let data = ''
      let settled = false
      const settle = (why: string): void => {
        if (settled) return
        settled = true
        socket.destroy()
        resolve(why)
      }
      const socket = createConnection({ host: address, port: SERVICE_PORT })
      socket.setTimeout(CONNECT_TIMEOUT_MS, () => settle(`no answer within ${CONNECT_TIMEOUT_MS} ms`))
      socket.on('data', (d: Buffer) => {
        data += d.toString()
        if (data.includes('hi')) settle('')
      })
      socket.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? err.message))
      socket.on('close', () => settle(data.includes('hi') ? '' : 'closed without a greeting'))
    })
  }

  private async loop(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const server = this.servers[i % this.servers.length] as { host: string; port: number }
      this.traffic.queries++
      const answer = await this.resolve(server)
      if (typeof answer === 'string') {
        this.traffic.dnsFailures++
        this.fail(`DNS ${server.host}:${server.port}: ${answer}`)
      } else {
        const address = answer[i % answer.length] as string
        this.traffic.connections++
        const why = await this.greet(address)
        if (why !== '') {
          this.traffic.connFailures++
          this.fail(`${address}:${SERVICE_PORT}: ${why}`)
        }
      }
      await sleep(CLIENT_PAUSE_MS)
    }
  }
}

/** Three peers with a private engine each; `a` is the one whose API the bench uses. */
class ShoalCluster {
  readonly cluster = new TestCluster()
  readonly engines: Dockerd[] = []
  readonly peers: PeerProcess[] = []
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.reapNow()
    // dockerd.ts's own handler reaps the engines and raises the signal again; once no listener is left, it ends the process.
    process.kill(process.pid, signal)
  }

  get a(): PeerProcess {
    return this.peers[0] as PeerProcess
  }

  async start(log: (line: string) => void): Promise<void> {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, this.onSignal)
    this.engines.push(...(await Promise.all(['bsa', 'bsb', 'bsc'].map((n) => startDockerd(n)))))
    await Promise.all(this.engines.map((d) => buildTestImage(d.socket)))
    log(`shoal: engines up (${this.engines.map((e) => e.subnet).join(', ')}), test image loaded`)
    const a = await this.cluster.add({ name: 'bench-a', docker: (this.engines[0] as Dockerd).socket, dns: '127.0.0.1:0' })
    this.peers.push(a)
    const join_ = { bootstrap: [await this.cluster.addrOf(a)], secretFile: join(a.dataDir, 'cluster.key'), dns: '127.0.0.1:0' }
    this.peers.push(await this.cluster.add({ name: 'bench-b', docker: (this.engines[1] as Dockerd).socket, ...join_ }))
    this.peers.push(await this.cluster.add({ name: 'bench-c', docker: (this.engines[2] as Dockerd).socket, ...join_ }))
    await waitFor('three voters and three host records', async () => {
      const st = await a.status<StatusView>()
      const hosts = await apiGet<unknown[]>(a.api, '/v1/hosts')
      return st.voters.length === 3 && hosts.length === 3 ? true : undefined
    }, 90_000)
    log(`shoal: three peers up (logs under ${this.cluster.root})`)
  }

  /** Where clients on each host resolve: the bridge gateway's port 53, else the peer's --dns address. */
  async dnsServers(): Promise<Array<{ host: string; port: number }>> {
    return Promise.all(this.peers.map(async (p) => {
      const st = await p.status<StatusView>()
      const at = st.dns.containers.listen[0] ?? st.dns.listen[0] ?? ''
      const colon = at.lastIndexOf(':')
      return { host: at.slice(0, colon), port: Number(at.slice(colon + 1)) }
    }))
  }

  async stop(): Promise<void> {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, this.onSignal)
    // SHOAL_BENCH_LOGS=DIR keeps the peers' debug logs, which the cluster's cleanup removes.
    const keep = process.env['SHOAL_BENCH_LOGS']
    if (keep !== undefined && keep !== '') {
      mkdirSync(keep, { recursive: true })
      for (const p of this.cluster.peers) if (existsSync(p.logFile)) copyFileSync(p.logFile, join(keep, `${p.name}.log`))
    }
    await this.cluster.cleanup()
    await Promise.all(this.engines.map((d) => d.stop()))
  }

  /** Synchronous teardown for a signal: peers killed, engines reaped, files removed. */
  private reapNow(): void {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, this.onSignal)
    for (const p of this.cluster.peers) if (p.exitCode === null) p.signal('SIGKILL')
    for (const e of this.engines) e.reapNow()
    rmSync(this.cluster.root, { recursive: true, force: true })
  }
}

async function waitRunning(c: ShoalCluster, name: string, count: number, timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
  await until(`${count} running tasks of ${name}`, async () => runningTasks(await tasksOf(c.a, name)).length >= count, timeoutMs)
}

/** Removes a service and waits until no engine runs a container of it, so the next scenario starts from idle engines. */
async function removeService(c: ShoalCluster, name: string, log: (line: string) => void): Promise<void> {
  await shoal(c.a, ['service', 'rm', name])
  await until(`the containers of ${name} to stop`, async () => {
    for (const e of c.engines) if (e.running() && (await containersOn(e, name, false)) > 0) return false
    return true
  })
  // Stopped containers cost no CPU, but an agent that leaves them behind is worth a line.
  await sleep(1000)
  const left = (await Promise.all(c.engines.map((e) => (e.running() ? containersOn(e, name, true) : 0)))).reduce((x, y) => x + y, 0)
  if (left > 0) log(`shoal: note: ${left} stopped container(s) of ${name} still exist 1 s after the last stopped`)
}

/** Spawned with --detach; returns (time to all running, time until the CLI returned). */
async function measureCreate(c: ShoalCluster, name: string, replicas: number): Promise<{ ms: number; cliMs: number }> {
  const t0 = performance.now()
  // A 1 s grace only makes the removal between scenarios faster; nothing measured here stops an instance.
  await shoal(c.a, ['service', 'create', name, '--image', TEST_IMAGE, '--replicas', String(replicas), '--stop-grace-period', '1s', '--detach', '--', 'sleep', '86400'])
  const cliMs = performance.now() - t0
  await waitRunning(c, name, replicas)
  return { ms: performance.now() - t0, cliMs }
}

async function measureScale(c: ShoalCluster, name: string, log: (line: string) => void): Promise<number> {
  await shoal(c.a, ['service', 'create', name, '--image', TEST_IMAGE, '--replicas', '3', '--stop-grace-period', '1s', '--detach', '--', 'sleep', '86400'])
  await waitRunning(c, name, 3)
  const t0 = performance.now()
  await shoal(c.a, ['service', 'scale', `${name}=6`, '--detach'])
  await waitRunning(c, name, 6)
  const ms = performance.now() - t0
  await removeService(c, name, log)
  return ms
}

/** Kills the host (engine and peer) that is neither A nor the leader and runs the most tasks, measures, then boots it again. */
async function measureHostDeath(c: ShoalCluster, name: string, replicas: number): Promise<ShoalHostDeath> {
  const st = await c.a.status<StatusView>()
  const ids = await Promise.all(c.peers.map(async (p) => (await p.status<StatusView>()).peerId))
  const running = runningTasks(await tasksOf(c.a, name))
  let victim = -1
  let tasksOnNode = -1
  for (let i = 1; i < c.peers.length; i++) {
    if (ids[i] === st.leader) continue
    const count = running.filter((t) => t.host === ids[i]).length
    if (count > tasksOnNode) {
      victim = i
      tasksOnNode = count
    }
  }
  // Only when B or C leads and the other runs nothing would this be -1; kill the leader then, and say so.
  if (victim < 0 || tasksOnNode === 0) victim = ids.indexOf(st.leader ?? '') > 0 ? ids.indexOf(st.leader ?? '') : 1
  tasksOnNode = running.filter((t) => t.host === ids[victim]).length
  const peer = c.peers[victim] as PeerProcess
  const engine = c.engines[victim] as Dockerd
  const victimId = ids[victim] as string
  const t0 = performance.now()
  peer.signal('SIGKILL')
  await engine.crash()
  await peer.exited
  let deadMs = NaN
  let replacedMs = NaN
  await until(`${peer.name} dead and ${replicas} tasks of ${name} running elsewhere`, async () => {
    const now = performance.now()
    if (Number.isNaN(replacedMs)) {
      const elsewhere = runningTasks(await tasksOf(c.a, name)).filter((t) => t.host !== victimId)
      if (elsewhere.length >= replicas) replacedMs = now - t0
    }
    if (Number.isNaN(deadMs) && (await c.a.stateOf(victimId)) === 'dead') deadMs = performance.now() - t0
    return !Number.isNaN(deadMs) && !Number.isNaN(replacedMs)
  })
  await engine.start()
  await peer.start()
  await until(`${peer.name} alive again and caught up`, async () => {
    if ((await c.a.stateOf(victimId)) !== 'alive') return false
    const [leader, back] = [await c.a.status<StatusView>(), await peer.status<StatusView>()]
    return back.appliedIndex >= leader.commitIndex
  })
  return { victim: peer.name, wasLeader: victimId === st.leader, tasksOnNode, deadMs, replacedMs }
}

async function measureRollingUpdate(c: ShoalCluster, name: string, tasks: number, parallelism: number, stopGraceS: number, monitorS: number | null): Promise<ShoalRollingUpdate> {
  await shoal(c.a, ['service', 'create', name, '--image', TEST_IMAGE, '--replicas', String(tasks), '--port', String(SERVICE_PORT),
    '--update-parallelism', String(parallelism), '--update-delay', '0s', '--stop-grace-period', `${stopGraceS}s`,
    ...(monitorS === null ? [] : ['--update-monitor', `${monitorS}s`]), '--detach', '--', ...GREETER])
  await until(`${name} converged`, async () => (await services(c.a)).find((s) => s.name === name)?.converged === true)
  const client = new TrafficLoop(await c.dnsServers(), `${name}.shoal`)
  await client.start()
  await sleep(1000)
  const t0 = performance.now()
  await shoal(c.a, ['service', 'update', name, '--env-add', `BENCH_UPDATE=${process.pid}`, '--detach'])
  const version = (await services(c.a)).find((s) => s.name === name)?.version ?? Infinity
  let totalMs = NaN
  let convergedMs = NaN
  const timeoutMs = Math.ceil(tasks / parallelism) * (stopGraceS + 10) * 1000 + SETTLE_TIMEOUT_MS
  await until(`the rolling update of ${name}`, async () => {
    const now = performance.now()
    if (Number.isNaN(totalMs)) {
      const up = (await tasksOf(c.a, name)).filter((t) => t.state === 'running')
      if (up.length === tasks && up.every((t) => t.specVersion >= version && t.retiring !== true)) totalMs = now - t0
    }
    if (Number.isNaN(convergedMs) && (await services(c.a)).find((s) => s.name === name)?.converged === true) convergedMs = performance.now() - t0
    return !Number.isNaN(totalMs) && !Number.isNaN(convergedMs)
  }, timeoutMs)
  await sleep(1000)
  const traffic = await client.stop()
  return { tasks, parallelism, stopGraceS, monitorS, totalMs, convergedMs, traffic }
}

/**
 * Runs one scenario; if it fails, says so, brings every engine and peer back and removes every
 * service, so the other scenarios still run and the table shows what was measured.
 */
async function attempt(c: ShoalCluster, what: string, log: (line: string) => void, run: () => Promise<void>): Promise<void> {
  try {
    await run()
  } catch (err) {
    log(`shoal: ${what} failed, left out of the table: ${err instanceof Error ? err.message : String(err)}`)
    try {
      for (const [i, e] of c.engines.entries()) {
        if (!e.running()) await e.start()
        const p = c.peers[i] as PeerProcess
        if (p.exitCode !== null) await p.start()
      }
      for (const svc of await services(c.a)) await removeService(c, svc.name, log)
    } catch (recoverErr) {
      log(`shoal: could not restore the cluster after that: ${recoverErr instanceof Error ? recoverErr.message : String(recoverErr)}`)
    }
  }
}

/** Runs every Shoal scenario on a fresh three-peer cluster and tears it down; see the file comment. */
export async function measureShoal(opts: { rounds: number; quick: boolean; log: (line: string) => void }): Promise<ShoalFigures> {
  const replicas = opts.quick ? 6 : 30
  const c = new ShoalCluster()
  const s = (v: number): string => `${(v / 1000).toFixed(2)} s`
  try {
    await c.start(opts.log)
    const f: ShoalFigures = { replicas, createMs: [], createCliMs: [], scaleMs: [], hostDeaths: [], rollingUpdates: [] }
    for (let round = 1; round <= opts.rounds; round++) await attempt(c, `round ${round}`, opts.log, async () => {
      const svc = `bench-create-${round}`
      const created = await measureCreate(c, svc, replicas)
      f.createMs.push(created.ms)
      f.createCliMs.push(created.cliMs)
      opts.log(`shoal round ${round}: ${replicas} replicas running ${s(created.ms)} after shoal service create (the CLI returned after ${s(created.cliMs)})`)
      const death = await measureHostDeath(c, svc, replicas)
      f.hostDeaths.push(death)
      opts.log(`shoal round ${round}: ${death.victim}${death.wasLeader ? ' (the Raft leader)' : ' (not the leader)'} with ${death.tasksOnNode} tasks killed: dead after ${s(death.deadMs)}, all ${replicas} running elsewhere after ${s(death.replacedMs)}`)
      await removeService(c, svc, opts.log)
      const scaled = await measureScale(c, `bench-scale-${round}`, opts.log)
      f.scaleMs.push(scaled)
      opts.log(`shoal round ${round}: scale 3→6 in ${s(scaled)}`)
    })
    // The same cases as Swarm's half, in the same order; then one with --update-monitor 0s, to show what
    // Shoal's monitor window costs (it gates each batch; Swarm's only delays the final "completed").
    const updates: Array<[number, number, number, number | null]> = [[replicas, 3, 10, null], [replicas, 3, 0, null], ...(opts.quick ? [] : [[6, 1, 10, null] as [number, number, number, null]]), [6, 1, 0, null], [replicas, 3, 0, 0]]
    for (const [i, [tasks, parallelism, grace, monitorS]] of updates.entries()) await attempt(c, `rolling update ${i}`, opts.log, async () => {
      const name = `bench-update-${i}`
      const u = await measureRollingUpdate(c, name, tasks, parallelism, grace, monitorS)
      f.rollingUpdates.push(u)
      const t = u.traffic
      opts.log(`shoal: rolling update of ${tasks} tasks, parallelism ${parallelism}, stop grace ${grace} s${monitorS === null ? '' : `, monitor ${monitorS} s`}: ${s(u.totalMs)} (converged at ${s(u.convergedMs)}); ` +
        `${t.queries} queries (${t.dnsFailures} failed), ${t.connections} connections (${t.connFailures} failed)${t.samples.length > 0 ? `: ${t.samples.join('; ')}` : ''}`)
      await removeService(c, name, opts.log)
    })
    return f
  } finally {
    await c.stop()
    opts.log('shoal: peers and engines removed')
  }
}

function ratio(shoal: number, swarm: number | undefined): string {
  return swarm === undefined || !Number.isFinite(shoal) || !Number.isFinite(swarm) || swarm === 0 ? '-' : `${(shoal / swarm).toFixed(2)}×`
}

/** Prints Shoal beside Swarm, with Shoal/Swarm per figure. */
export function printServicesTable(sh: ShoalFigures, sw: SwarmFigures | null): void {
  const sec = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : (v / 1000).toFixed(2))
  const row = (what: string, a: number[], b: number[] | undefined, goal: string): string[] => {
    const [a50, a99, b50, b99] = [percentile(a, 50), percentile(a, 99), b === undefined ? undefined : percentile(b, 50), b === undefined ? undefined : percentile(b, 99)]
    return [what, sec(a50), sec(a99), sec(b50), sec(b99), ratio(a50, b50), ratio(a99, b99), goal]
  }
  const k = [...new Set(sh.hostDeaths.map((d) => d.tasksOnNode))].join('/')
  const kSwarm = sw === null ? '' : `; Swarm K=${[...new Set(sw.hostDeaths.map((d) => d.tasksOnNode))].join('/')}`
  const rows: string[][] = [
    row(`create ${sh.replicas} replicas → all running`, sh.createMs, sw?.createMs, '≤ 1.0×'),
    row('scale 3→6 → all running', sh.scaleMs, sw?.scaleMs, '≤ 1.0×'),
    row(`host death (K=${k}${kSwarm}) → host dead / node down`, sh.hostDeaths.map((d) => d.deadMs), sw?.hostDeaths.map((d) => d.downMs), ''),
    row(`host death → K running elsewhere`, sh.hostDeaths.map((d) => d.replacedMs), sw?.hostDeaths.map((d) => d.replacedMs), 'p99 ≤ 3 s'),
  ]
  for (const u of sh.rollingUpdates) {
    const m = sw?.rollingUpdates.find((x) => x.tasks === u.tasks && x.parallelism === u.parallelism && x.stopGraceS === u.stopGraceS)
    const batches = Math.ceil(u.tasks / u.parallelism)
    rows.push([`rolling update ${u.tasks} tasks, par. ${u.parallelism}, grace ${u.stopGraceS} s${u.monitorS === null ? '' : ` (Shoal: --update-monitor ${u.monitorS}s)`} (per batch)`,
      `${sec(u.totalMs)} (${sec(u.totalMs / batches)})`, '-', m === undefined ? '-' : `${sec(m.totalMs)} (${sec(m.totalMs / batches)})`, '-', ratio(u.totalMs, m?.totalMs), '-', '≤ 0.5×'])
  }
  const rounds = sh.hostDeaths.length
  const swarmSide = sw === null ? 'Swarm not run' : `Swarm: ${sw.engine}, ${sw.managers} manager(s) + ${sw.workers} worker(s), ${sw.hostDeaths.length} rounds`
  printTable(`Services: Shoal (3 peers, default settings, ${rounds} rounds) beside Docker Swarm (${swarmSide}); seconds; ratio Shoal/Swarm, < 1 is faster`,
    ['scenario', 'Shoal p50', 'Shoal p99', 'Swarm p50', 'Swarm p99', 'ratio p50', 'ratio p99', 'goal'], rows)
  printTable('Requests to the service during each Shoal rolling update (resolve through a peer\'s DNS, then connect; goal: 0 failed)',
    ['rolling update', 'queries', 'DNS failed', 'connections', 'failed'],
    sh.rollingUpdates.map((u) => [`${u.tasks} tasks, par. ${u.parallelism}, grace ${u.stopGraceS} s${u.monitorS === null ? '' : `, monitor ${u.monitorS} s`}`, u.traffic.queries, u.traffic.dnsFailures, u.traffic.connections, u.traffic.connFailures]))
  const cli = sh.createCliMs
  process.stdout.write(`(shoal service create --detach itself returned after ${sec(percentile(cli, 50))} s p50: Node's start-up and the Raft write; Shoal's host-death victims: ${sh.hostDeaths.map((d) => `${d.victim}${d.wasLeader ? ' (leader)' : ''}`).join(', ')})\n`)
}

export async function servicesBench(opts: ServicesBenchOptions): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`)
  }
  let swarm: SwarmFigures | null = null
  if (opts.swarm) {
    try {
      swarm = await measureSwarm({ rounds: opts.rounds, quick: opts.quick, log })
      printSwarmTable(swarm)
    } catch (err) {
      log(`swarm: its half failed, the table shows Shoal alone: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  const shoalFigures = await measureShoal({ rounds: opts.rounds, quick: opts.quick, log })
  printServicesTable(shoalFigures, swarm)
}
