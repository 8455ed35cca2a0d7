/**
 * The Docker Swarm anchor for `bench/services.ts`: the same scenarios measured on three private
 * Docker engines in swarm mode, so Shoal's figures are printed beside Swarm's, measured on the
 * same machine in the same run.
 *
 *   const figures = await measureSwarm({ rounds: 3, quick: false, log: console.log })
 *   node bench/swarm-anchor.ts --quick [--rounds N] [--managers 1|3]     (alone; prints a table)
 *
 * Setup (see startSwarm):
 * - Three stock engines from tests/helpers/dockerd.ts, each in a network namespace of its own
 *   (/run/netns/shoal-dN, entered with nsenter --net). A fourth namespace made here, the hub,
 *   holds a Linux bridge; a veth pair joins each engine's namespace to it, with the addresses
 *   10.77.0.10-12/24 on the engines' ends. Nothing is added to the machine's own namespace, and
 *   the engines reach only each other (Swarm's 2377/tcp, 7946/tcp+udp, 4789/udp go over the bridge).
 * - `docker swarm init --advertise-addr 10.77.0.10` on the first engine; the other two join as
 *   workers by default (managers: 1), as the issue's anchor was presumably measured: the host
 *   killed is then a worker and the figure is Swarm's node-failure path alone, not a Raft
 *   election. `managers: 3` joins them as managers instead (what Swarm users run in production);
 *   the host killed is still never the first engine, the Raft leader the figures are read from.
 * - Every engine gets the busybox test image; services use `--no-resolve-image` (a local-only
 *   image) and publish no ports, so neither a registry nor the ingress overlay is needed.
 * - Teardown (engines with their containers, mounts and namespaces; then the hub) runs at the
 *   end, at process exit and on SIGINT/SIGTERM/SIGHUP.
 *
 * Scenarios (N = 30 replicas, or 6 with quick), all with Swarm's defaults unless named:
 * - create: from spawning `docker service create --detach --replicas N` to N tasks running.
 * - scale: a 3-replica service, all running; from `docker service scale --detach X=6` to 6 running.
 * - host death: a worker running K tasks of an N-replica service (the node with the most) loses
 *   dockerd, containerd and its containers to SIGKILL at once; from the kill until the manager
 *   lists the node down, and until N tasks run on the other nodes. The node then boots again
 *   and rejoins before the next round.
 * - rolling update: `docker service update --detach --env-add` of a service created with
 *   `--update-parallelism P --update-delay 0s` and the stop grace named (default 10 s, or 0 s);
 *   the tasks run `sleep`, which as PID 1 ignores SIGTERM, so each stop takes the full grace,
 *   as in the issue's anchor. Total time: until N tasks of the new spec run and no old one does.
 * create, scale and host death are measured `rounds` times; each rolling update once (quick mode
 * leaves out 6 tasks at parallelism 1 with the 10 s grace: ~75 s, and in the issue's anchor).
 * Quick mode with 2 rounds takes about 4 minutes on 2 shared cores; the full mode with 5, about 13.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildTestImage, dockerClient, startDockerd, TEST_IMAGE, type Dockerd } from '../tests/helpers/dockerd.ts'
import { percentile, printTable } from './stats.ts'

/** One host death: the tasks the node ran, and times from the kill (ms). */
export interface SwarmHostDeath {
  /** K: running tasks of the service on the killed node at the kill. */
  tasksOnNode: number
  /** Kill → the manager lists the node as down. */
  downMs: number
  /** Kill → all N tasks running on the other nodes. */
  replacedMs: number
}

export interface SwarmRollingUpdate {
  tasks: number
  parallelism: number
  /** The service's stop grace (`--stop-grace-period`); Swarm's default is 10 s. */
  stopGraceS: number
  /** `docker service update` spawned → N tasks of the new spec running and none of the old. */
  totalMs: number
  /** `docker service update` spawned → Swarm's UpdateStatus says completed (adds its 5 s --update-monitor). */
  completedMs: number
}

/** What measureSwarm returns; every time in milliseconds, one entry per round unless said. */
export interface SwarmFigures {
  /** `dockerd --version` of the engines. */
  engine: string
  managers: number
  workers: number
  /** N: replicas of the create, host-death and first rolling-update scenarios. */
  replicas: number
  /** `docker service create` spawned → N tasks running, per round. */
  createMs: number[]
  /** Scale 3→6: `docker service scale` spawned → 6 tasks running, per round. */
  scaleMs: number[]
  /** One entry per round. */
  hostDeaths: SwarmHostDeath[]
  /** N tasks with parallelism 3 (stop grace 10 s and 0 s), then the issue's 6 tasks with parallelism 1 (10 s, not with quick, and 0 s). */
  rollingUpdates: SwarmRollingUpdate[]
}

export interface SwarmOptions {
  rounds: number
  quick: boolean
  log: (line: string) => void
  /** 1 (default): one manager and two workers; 3: three managers. */
  managers?: 1 | 3
}

/** The hub's bridge subnet: one address per engine, .10 upward. */
const SUBNET_PREFIX = '10.77.0'
const FIRST_HOST = 10
const ENGINES = 3
const SWARM_PORT = 2377
const POLL_MS = 100
/** Swarm's own default, for the table and the timeouts. */
const DEFAULT_STOP_GRACE_S = 10
const SETTLE_TIMEOUT_MS = 120_000
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

interface TaskView {
  ID: string
  NodeID?: string
  Spec?: { ContainerSpec?: { Env?: string[] } }
  Status?: { State?: string }
  DesiredState?: string
}
interface NodeView {
  ID: string
  Status?: { State?: string }
}
interface ServiceView {
  UpdateStatus?: { State?: string }
}

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:${SYSTEM_PATH}` } })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status ?? r.signal}): ${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim()}`)
  return r.stdout
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Polls `check` every POLL_MS until it returns true; times out naming `what`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(POLL_MS)
  }
}

/**
 * The hub namespace and its bridge. Removing the namespace removes the bridge and every veth
 * (a veth pair dies with either end's namespace), so one `ip netns del` undoes all of it.
 */
class Hub {
  readonly name = `shoal-swarm-${process.pid}`
  private removed = false
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.remove()
    // The engines' own handlers (tests/helpers/dockerd.ts) reap them and raise the signal again.
    process.kill(process.pid, signal)
  }
  private readonly onExit = (): void => this.remove()

  create(): void {
    if (existsSync(`/run/netns/${this.name}`)) ip(['netns', 'del', this.name])
    process.once('exit', this.onExit)
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, this.onSignal)
    ip(['netns', 'add', this.name])
    this.ip(['link', 'add', 'br0', 'type', 'bridge'])
    this.ip(['link', 'set', 'br0', 'up'])
  }

  /** Joins an engine's namespace to the bridge with `address`/24 on its end (named swarm0). */
  attach(engine: Dockerd, index: number, address: string): void {
    if (engine.netnsPath === null) throw new Error(`engine ${engine.name} has no network namespace of its own; start it with { stock: true }`)
    const peerNs = basename(engine.netnsPath)
    const port = `sw${index}`
    // Made from inside the hub, so no interface ever appears in the machine's namespace.
    this.ip(['link', 'add', port, 'type', 'veth', 'peer', 'name', 'swarm0', 'netns', peerNs])
    this.ip(['link', 'set', port, 'master', 'br0'])
    this.ip(['link', 'set', port, 'up'])
    engine.inNamespaceOk('ip', ['addr', 'add', `${address}/24`, 'dev', 'swarm0'])
    engine.inNamespaceOk('ip', ['link', 'set', 'swarm0', 'up'])
  }

  remove(): void {
    if (this.removed) return
    this.removed = true
    process.removeListener('exit', this.onExit)
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, this.onSignal)
    try {
      if (existsSync(`/run/netns/${this.name}`)) ip(['netns', 'del', this.name])
    } catch {
      // Best effort at exit; the name is per pid, so a later run is not blocked by it.
    }
  }

  private ip(args: string[]): string {
    return ip(['-n', this.name, ...args])
  }
}

/** Three engines in one swarm; engines[0] is the first manager (the Raft leader) and is never killed. */
export interface SwarmCluster {
  engines: Dockerd[]
  addresses: string[]
  /** Swarm node id of each engine, by index. */
  nodeIds: string[]
  managers: number
  /** Tears everything down (idempotent). */
  stop(): void
}

/** Starts three engines in their namespaces, joins them over the hub bridge, and forms the swarm. */
export async function startSwarm(options: { managers: 1 | 3; log: (line: string) => void }): Promise<SwarmCluster> {
  const hub = new Hub()
  const engines: Dockerd[] = []
  const stop = (): void => {
    // SIGKILL to everything, then mounts, cgroups, namespaces and files: no swarm to leave gracefully.
    for (const e of engines) e.reapNow()
    hub.remove()
  }
  try {
    hub.create()
    const addresses: string[] = []
    for (let i = 0; i < ENGINES; i++) {
      // live-restore is beside the point: a host death kills containerd and the containers too.
      const engine = await startDockerd(`swarm-${i}`, { stock: true, liveRestore: false })
      engines.push(engine)
      const address = `${SUBNET_PREFIX}.${FIRST_HOST + i}`
      hub.attach(engine, i, address)
      addresses.push(address)
      await buildTestImage(engine.socket)
      options.log(`swarm: engine ${i} up (${engine.socket}, ${address})`)
    }
    const [first, ...others] = engines as [Dockerd, ...Dockerd[]]
    const leaderAddress = addresses[0] as string
    await first.dockerOk(['swarm', 'init', '--advertise-addr', leaderAddress, '--listen-addr', `${leaderAddress}:${SWARM_PORT}`])
    const role = options.managers === 3 ? 'manager' : 'worker'
    const token = await first.dockerOk(['swarm', 'join-token', '-q', role])
    for (const [i, e] of others.entries()) {
      const address = addresses[i + 1] as string
      await e.dockerOk(['swarm', 'join', '--token', token, '--advertise-addr', address, '--listen-addr', `${address}:${SWARM_PORT}`, `${leaderAddress}:${SWARM_PORT}`])
    }
    const nodeIds = await Promise.all(engines.map((e) => e.dockerOk(['info', '--format', '{{.Swarm.NodeID}}'])))
    await waitNodesReady(first, nodeIds)
    options.log(`swarm: ${options.managers} manager(s), ${ENGINES - options.managers} worker(s), all ready`)
    return { engines, addresses, nodeIds, managers: options.managers, stop }
  } catch (err) {
    stop()
    throw err
  }
}

async function listTasks(manager: Dockerd, service: string): Promise<TaskView[]> {
  const { docker, close } = dockerClient(manager.socket, 10_000)
  try {
    return (await docker.listTasks({ filters: JSON.stringify({ service: [service] }) })) as TaskView[]
  } finally {
    close()
  }
}

async function listNodes(manager: Dockerd): Promise<NodeView[]> {
  const { docker, close } = dockerClient(manager.socket, 10_000)
  try {
    return (await docker.listNodes()) as NodeView[]
  } finally {
    close()
  }
}

function runningTasks(tasks: TaskView[]): TaskView[] {
  return tasks.filter((t) => t.DesiredState === 'running' && t.Status?.State === 'running')
}

async function waitNodesReady(manager: Dockerd, nodeIds: string[]): Promise<void> {
  await until(`swarm nodes ${nodeIds.join(', ')} to be ready`, async () => {
    const nodes = await listNodes(manager)
    return nodeIds.every((id) => nodes.some((n) => n.ID === id && n.Status?.State === 'ready'))
  }, SETTLE_TIMEOUT_MS)
}

async function waitRunning(manager: Dockerd, service: string, count: number, timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
  await until(`${count} running tasks of ${service}`, async () => runningTasks(await listTasks(manager, service)).length >= count, timeoutMs)
}

/** Spawns `docker service create --detach` and returns when the CLI exits (the time is the caller's). */
async function createService(manager: Dockerd, name: string, replicas: number, extra: string[] = []): Promise<void> {
  await manager.dockerOk(['service', 'create', '--detach', '--quiet', '--name', name, '--replicas', String(replicas), '--no-resolve-image', ...extra, TEST_IMAGE, 'sleep', '86400'])
}

/** Removes a service and waits until no engine runs a container of it any more, so the next scenario starts from idle engines. */
async function removeService(cluster: SwarmCluster, name: string): Promise<void> {
  const manager = cluster.engines[0] as Dockerd
  await manager.dockerOk(['service', 'rm', name])
  await until(`the containers of ${name} to be gone`, async () => {
    for (const e of cluster.engines) {
      if (!e.running()) continue
      if ((await e.dockerOk(['ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${name}`])) !== '') return false
    }
    return true
  }, SETTLE_TIMEOUT_MS)
}

async function measureCreate(cluster: SwarmCluster, name: string, replicas: number): Promise<number> {
  const manager = cluster.engines[0] as Dockerd
  const t0 = performance.now()
  await createService(manager, name, replicas)
  await waitRunning(manager, name, replicas)
  return performance.now() - t0
}

async function measureScale(cluster: SwarmCluster, name: string): Promise<number> {
  const manager = cluster.engines[0] as Dockerd
  await createService(manager, name, 3)
  await waitRunning(manager, name, 3)
  const t0 = performance.now()
  await manager.dockerOk(['service', 'scale', '--detach', `${name}=6`])
  await waitRunning(manager, name, 6)
  const ms = performance.now() - t0
  await removeService(cluster, name)
  return ms
}

/**
 * Kills the non-first node running the most tasks of `service` (N running), measures, then boots
 * it again and waits until it is ready (its stale tasks are Swarm's to clean up).
 */
async function measureHostDeath(cluster: SwarmCluster, service: string, replicas: number): Promise<SwarmHostDeath> {
  const manager = cluster.engines[0] as Dockerd
  const running = runningTasks(await listTasks(manager, service))
  let victim = 1
  let tasksOnNode = -1
  for (let i = 1; i < cluster.engines.length; i++) {
    const count = running.filter((t) => t.NodeID === cluster.nodeIds[i]).length
    if (count > tasksOnNode) {
      victim = i
      tasksOnNode = count
    }
  }
  const engine = cluster.engines[victim] as Dockerd
  const nodeId = cluster.nodeIds[victim] as string
  const t0 = performance.now()
  await engine.crash()
  let downMs = NaN
  let replacedMs = NaN
  await until(`node ${victim} down and ${replicas} tasks of ${service} running elsewhere`, async () => {
    const now = performance.now()
    if (Number.isNaN(downMs)) {
      const node = (await listNodes(manager)).find((n) => n.ID === nodeId)
      if (node?.Status?.State === 'down') downMs = performance.now() - t0
    }
    if (Number.isNaN(replacedMs)) {
      const elsewhere = runningTasks(await listTasks(manager, service)).filter((t) => t.NodeID !== nodeId)
      if (elsewhere.length >= replicas) replacedMs = now - t0
    }
    return !Number.isNaN(downMs) && !Number.isNaN(replacedMs)
  }, SETTLE_TIMEOUT_MS)
  await engine.start()
  await waitNodesReady(manager, [nodeId])
  return { tasksOnNode, downMs, replacedMs }
}

async function measureRollingUpdate(cluster: SwarmCluster, name: string, tasks: number, parallelism: number, stopGraceS: number): Promise<SwarmRollingUpdate> {
  const manager = cluster.engines[0] as Dockerd
  await createService(manager, name, tasks, ['--update-parallelism', String(parallelism), '--update-delay', '0s', '--stop-grace-period', `${stopGraceS}s`])
  await waitRunning(manager, name, tasks)
  const marker = `BENCH_UPDATE=${process.pid}-${name}`
  const isNew = (t: TaskView): boolean => t.Spec?.ContainerSpec?.Env?.includes(marker) ?? false
  const t0 = performance.now()
  await manager.dockerOk(['service', 'update', '--detach', '--env-add', marker, name])
  let totalMs = NaN
  let completedMs = NaN
  // Each batch: the stop grace, the start, then Swarm's default 5 s --update-monitor at the end; generous.
  const timeoutMs = Math.ceil(tasks / parallelism) * (stopGraceS + 10) * 1000 + SETTLE_TIMEOUT_MS
  await until(`the rolling update of ${name}`, async () => {
    const now = performance.now()
    if (Number.isNaN(totalMs)) {
      const up = (await listTasks(manager, name)).filter((t) => t.Status?.State === 'running')
      if (up.length === tasks && up.every(isNew)) totalMs = now - t0
    }
    if (Number.isNaN(completedMs)) {
      const { docker, close } = dockerClient(manager.socket, 10_000)
      try {
        const svc = (await docker.getService(name).inspect()) as ServiceView
        if (svc.UpdateStatus?.State === 'completed') completedMs = performance.now() - t0
      } finally {
        close()
      }
    }
    return !Number.isNaN(totalMs) && !Number.isNaN(completedMs)
  }, timeoutMs)
  await removeService(cluster, name)
  return { tasks, parallelism, stopGraceS, totalMs, completedMs }
}

/** Runs every Swarm scenario on a fresh three-engine swarm and tears it down; see the file comment. */
export async function measureSwarm(opts: SwarmOptions): Promise<SwarmFigures> {
  if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error(`rounds must be a whole number of 1 or more, got ${opts.rounds}`)
  const managers = opts.managers ?? 1
  const replicas = opts.quick ? 6 : 30
  const engineVersion = spawnSync('dockerd', ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:${SYSTEM_PATH}` } }).stdout.trim()
  const cluster = await startSwarm({ managers, log: opts.log })
  try {
    const figures: SwarmFigures = { engine: engineVersion, managers, workers: ENGINES - managers, replicas, createMs: [], scaleMs: [], hostDeaths: [], rollingUpdates: [] }
    const ms = (v: number): string => `${(v / 1000).toFixed(1)} s`
    for (let round = 1; round <= opts.rounds; round++) {
      const svc = `bench-create-${round}`
      const created = await measureCreate(cluster, svc, replicas)
      figures.createMs.push(created)
      opts.log(`swarm round ${round}: ${replicas} replicas running ${ms(created)} after docker service create`)
      const death = await measureHostDeath(cluster, svc, replicas)
      figures.hostDeaths.push(death)
      opts.log(`swarm round ${round}: host with ${death.tasksOnNode} tasks killed: down after ${ms(death.downMs)}, all ${replicas} running elsewhere after ${ms(death.replacedMs)}`)
      await removeService(cluster, svc)
      const scaled = await measureScale(cluster, `bench-scale-${round}`)
      figures.scaleMs.push(scaled)
      opts.log(`swarm round ${round}: scale 3→6 in ${ms(scaled)}`)
    }
    // Quick mode leaves out the slowest case (6 tasks one by one with the 10 s grace, ~75 s; the issue's anchor has it).
    const updates: Array<[number, number, number]> = [
      [replicas, 3, DEFAULT_STOP_GRACE_S], [replicas, 3, 0], ...(opts.quick ? [] : [[6, 1, DEFAULT_STOP_GRACE_S] as [number, number, number]]), [6, 1, 0],
    ]
    for (const [i, [tasks, parallelism, grace]] of updates.entries()) {
      const u = await measureRollingUpdate(cluster, `bench-update-${i}`, tasks, parallelism, grace)
      figures.rollingUpdates.push(u)
      opts.log(`swarm: rolling update of ${tasks} tasks, parallelism ${parallelism}, stop grace ${grace} s: ${ms(u.totalMs)} (Swarm says completed at ${ms(u.completedMs)})`)
    }
    return figures
  } finally {
    cluster.stop()
    opts.log('swarm: engines, namespaces and bridge removed')
  }
}

/** Prints the Swarm figures alone, in the bench tables' style (the combined table is bench/services.ts's). */
export function printSwarmTable(f: SwarmFigures): void {
  const p = (values: number[], q: number): string => (percentile(values, q) / 1000).toFixed(1)
  const deaths = f.hostDeaths
  const k = [...new Set(deaths.map((d) => d.tasksOnNode))].join('/')
  printTable(`Docker Swarm anchor (${f.engine}; ${f.managers} manager(s) + ${f.workers} worker(s); ${deaths.length} rounds; seconds)`, ['scenario', 'p50', 'p99'], [
    [`create ${f.replicas} replicas → all running`, p(f.createMs, 50), p(f.createMs, 99)],
    ['scale 3→6 → all running', p(f.scaleMs, 50), p(f.scaleMs, 99)],
    [`host death (K=${k}) → node down`, p(deaths.map((d) => d.downMs), 50), p(deaths.map((d) => d.downMs), 99)],
    [`host death (K=${k}) → K running elsewhere`, p(deaths.map((d) => d.replacedMs), 50), p(deaths.map((d) => d.replacedMs), 99)],
    ...f.rollingUpdates.map((u) => [`rolling update ${u.tasks} tasks, parallelism ${u.parallelism}, grace ${u.stopGraceS} s`, (u.totalMs / 1000).toFixed(1), '-']),
  ])
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick')
  const rounds = Number(argValue('--rounds') ?? (quick ? 2 : 5))
  const managersArg = argValue('--managers') ?? '1'
  if (managersArg !== '1' && managersArg !== '3') throw new Error(`--managers takes 1 or 3, got ${managersArg}`)
  const figures = await measureSwarm({ rounds, quick, managers: managersArg === '3' ? 3 : 1, log: (line) => process.stderr.write(`${line}\n`) })
  printSwarmTable(figures)
}
