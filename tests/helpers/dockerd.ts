/**
 * Private Docker engines for tests: one dockerd per simulated host, each with its own
 * containerd, data, bridge and subnet, so several run side by side (in one test process or
 * in several test runs on one machine) and never touch the machine's own Docker.
 *
 *   const a = await startDockerd('a')            // a.socket, a.subnet 10.213.N.0/24, a.gateway
 *   await buildTestImage(a.socket)               // 'shoal-test/busybox:1', built once per run
 *   await a.docker(['run', '-d', '--name', 'web', '-l', 'shoal.service=web', TEST_IMAGE, 'sleep', '3600'])
 *     (from a shell: docker -H unix://<a.socket> run -d --name web -l shoal.service=web shoal-test/busybox:1 sleep 3600)
 *   await a.kill()                               // crash dockerd (SIGKILL); containerd and containers live on
 *   await a.start()                              // same data root: the containers are still there, still running
 *   await a.crash()                              // a host's death: dockerd, containerd and containers SIGKILLed; start() boots it again
 *   await a.stop()                               // everything gone: containers, daemons, mounts, bridge, files
 *
 *   const s = await startDockerd('stock', { stock: true })   // Docker's own network defaults, in a namespace of its own
 *   spawn(...s.inNamespace(NODE, [MAIN, 'start', '--docker', s.socket]))  // a peer beside s's docker0
 *
 * How one engine is set up (root = a fresh /tmp/shoal-dockerd-NAME-XXXXXX):
 * - Slot N (1..250) is claimed with an exclusive lock file in /tmp/shoal-dockerd-locks/N.json
 *   holding our pid; a lock whose pid is dead is reaped first (its processes, mounts,
 *   cgroups, bridge and files), so a test run killed with -9 does not leak into the next.
 * - Network: a Linux bridge `shoal-dN` with 10.213.N.1/24, created here and handed to dockerd
 *   with `--bridge` (`--bip` alone would make every dockerd fight over docker0). No NAT,
 *   no iptables rules, no IP forwarding (`--ip-masq=false --iptables=false --ip-forward=false`):
 *   containers reach only their bridge and this host's own addresses. `--dns 10.213.N.1`
 *   points every container's resolv.conf at its own gateway, never the machine's resolver.
 *   Published ports go through docker-proxy; publish on loopback (`-p 127.0.0.1:PORT:80`).
 * - containerd: started here, one per engine, and given to dockerd with `--containerd`.
 *   A dockerd-managed containerd dies with dockerd (Pdeathsig) and, once its zombie lingers,
 *   blocks the restart ("timeout waiting for containerd"); a separate one keeps running across
 *   a dockerd crash, as on a real host, so `--live-restore` keeps containers running and a
 *   restart takes well under a second. Namespaces `shoal-dN` / `shoal-dN-plugins` and the
 *   cgroup parent `shoal-dN` keep engines apart even on a shared containerd.
 * - Storage: overlay2, falling back to vfs (once per process) if dockerd refuses it.
 * - A stock engine (`{ stock: true }`) keeps dockerd's network defaults instead: no --bridge,
 *   --bip, --dns nor iptables/NAT flags, so it makes its own `docker0` (172.17.0.1/16 in an empty
 *   namespace) and lists no gateway for it, as on a freshly installed host. It runs in a network
 *   namespace of its own, /run/netns/shoal-dN with loopback up, so that docker0 and its iptables
 *   rules cannot clash with the machine's or other engines'; data, exec root, pidfile, socket,
 *   containerd and cgroup parent stay private as for the others. Programs meant to share its
 *   network (a peer listening on docker0) start through `inNamespace` (nsenter --net: `ip netns
 *   exec` remounts /sys, and dockerd then finds no cgroups). The namespace goes with the engine.
 * - Every engine is torn down synchronously when the test process exits or gets SIGTERM/SIGINT/
 *   SIGHUP (vitest ends its workers with SIGTERM); after a SIGKILL, by the next run's slot claim.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  closeSync, copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync,
  readSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs'
import { Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Docker from 'dockerode'
import type { CliResult } from './processes.ts'

/** The image every engine gets from `buildTestImage`: busybox applets in /bin, PATH=/bin. */
export const TEST_IMAGE = 'shoal-test/busybox:1'
const TEST_IMAGE_REPO = 'shoal-test/busybox'
const TEST_IMAGE_TAG = '1'
/** busybox-static's binary (Debian); a dynamically linked busybox cannot run in an empty root. */
const BUSYBOX = '/bin/busybox'

const LOCK_DIR = join(tmpdir(), 'shoal-dockerd-locks')
/** Slots give the bridge name and the subnet 10.213.N.0/24. */
const SLOT_MIN = 1
const SLOT_MAX = 250
const DOCKERD_START_TIMEOUT_MS = 30_000
const CONTAINERD_START_TIMEOUT_MS = 15_000
const DAEMON_STOP_TIMEOUT_MS = 10_000
const REAP_WAIT_MS = 3_000
const LOG_TAIL_CHARS = 3_000
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface DockerdOptions {
  /** Keep containers running while dockerd is down (default true). */
  liveRestore?: boolean
  /** Docker's own network defaults (its docker0, no --bip/--bridge), in a network namespace of its own; see the file comment. */
  stock?: boolean
}

/** What a slot lock file records: enough to reap the engine without its process. */
interface SlotLock {
  pid: number
  slot: number
  root: string
  bridge: string
  cgroupParent: string
  namespace: string
  containerdSocket: string
  /** A stock engine's network namespace (name under /run/netns), removed with it. */
  netns?: string
}

type StorageDriver = 'overlay2' | 'vfs'
/** Falls back to vfs for the rest of the process once overlay2 was refused. */
let preferredDriver: StorageDriver = 'overlay2'

/** Every engine this process started, torn down if the process exits without stop(). */
const LIVE = new Set<Dockerd>()
let tarballDir: string | null = null
function reapAll(): void {
  for (const d of [...LIVE]) d.reapNow()
  removeTarball()
}
process.once('exit', reapAll)
/**
 * Vitest ends its fork workers with SIGTERM, which skips 'exit' handlers: while engines live,
 * a signal reaps them first, then is raised again with the default action restored.
 */
const FATAL_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
function onFatalSignal(signal: NodeJS.Signals): void {
  reapAll()
  watchSignals(false)
  process.kill(process.pid, signal)
}
function watchSignals(on: boolean): void {
  for (const s of FATAL_SIGNALS) {
    process.removeListener(s, onFatalSignal)
    if (on) process.on(s, onFatalSignal)
  }
}

/**
 * Polls `check` every `intervalMs` until it returns true; a throw from `check` fails at once
 * (a daemon that exited will not come back), running out of time fails with `what`.
 */
async function pollUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function run(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:${SYSTEM_PATH}` } })
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error === undefined ? '' : r.error.message}` }
}

function runOrThrow(cmd: string, args: string[]): string {
  const r = run(cmd, args)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.out.trim()}`)
  return r.out
}

/** Whether `pid` is a live (not zombie) process. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // /proc/PID/stat: "pid (comm) S ..."; comm may hold spaces or parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

/** Cgroup directories of an engine's containers: v1 (per controller) and v2. */
function cgroupDirs(parent: string): string[] {
  const base = '/sys/fs/cgroup'
  const dirs: string[] = []
  if (existsSync(join(base, parent))) dirs.push(join(base, parent))
  let controllers: string[] = []
  try {
    controllers = readdirSync(base)
  } catch {
    return dirs
  }
  for (const c of controllers) if (existsSync(join(base, c, parent)) && !dirs.includes(join(base, c, parent))) dirs.push(join(base, c, parent))
  return dirs
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name))
  } catch {
    return []
  }
}

/** Process names (comm, cut to 15 characters) of an engine's own programs. */
const ENGINE_PROGRAMS = /^(?:dockerd|containerd.*|docker-proxy|runc|docker)$/

/** Pids of everything an engine runs: daemons and shims (by name and path), containers (by cgroup), and their children. */
function enginePids(lock: SlotLock): number[] {
  const found = new Set<number>()
  const parents = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    const stat = readText(`/proc/${pid}/stat`)
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    parents.set(pid, ppid)
    // Only Docker's own programs: a peer under test started with `--docker <root>/docker.sock` must survive.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    if (ENGINE_PROGRAMS.test(comm) && readText(`/proc/${pid}/cmdline`).includes(lock.root)) found.add(pid)
  }
  for (const dir of cgroupDirs(lock.cgroupParent)) {
    const stack = [dir]
    while (stack.length > 0) {
      const d = stack.pop() as string
      for (const line of readText(join(d, 'cgroup.procs')).split('\n')) if (/^\d+$/.test(line)) found.add(Number(line))
      stack.push(...subdirs(d))
    }
  }
  // Children (docker-proxy under dockerd), bounded by the process count.
  for (let grew = true, rounds = 0; grew && rounds < 8; rounds++) {
    grew = false
    for (const [pid, ppid] of parents) {
      if (!found.has(pid) && found.has(ppid) && pid !== process.pid) {
        found.add(pid)
        grew = true
      }
    }
  }
  return [...found]
}

/**
 * Removes every trace of an engine, synchronously (it also runs in the exit handler):
 * kills its processes, unmounts, removes cgroups, shim sockets, the bridge, files and the lock.
 */
function reapEngine(lock: SlotLock): void {
  const pids = enginePids(lock)
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  const deadline = Date.now() + REAP_WAIT_MS
  while (pids.some(pidAlive) && Date.now() < deadline) sleepSync(20)
  const mounts = readText('/proc/self/mountinfo').split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mp) => mp === lock.root || mp.startsWith(`${lock.root}/`))
    .sort((a, b) => b.length - a.length)
  for (const mp of mounts) run('umount', ['-l', mp])
  const containerIds = new Set<string>()
  for (const dir of cgroupDirs(lock.cgroupParent)) {
    // Depth-first: a cgroup directory goes only once its children are gone; the kernel may need a moment after the kills.
    const removeTree = (d: string): void => {
      for (const child of subdirs(d)) {
        containerIds.add(child.slice(child.lastIndexOf('/') + 1))
        removeTree(child)
      }
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          rmdirSync(d)
          return
        } catch {
          sleepSync(20)
        }
      }
    }
    removeTree(dir)
  }
  // A killed shim leaves its socket in /run/containerd/s, named by sha256(containerd address/namespace/id).
  for (const id of containerIds) {
    const name = createHash('sha256').update(join(lock.containerdSocket, lock.namespace, id)).digest('hex')
    rmSync(join('/run/containerd/s', name), { force: true })
  }
  if (run('ip', ['link', 'show', lock.bridge]).code === 0) run('ip', ['link', 'del', lock.bridge])
  // Deleting the name is enough: the kernel frees the namespace (docker0, iptables rules) with its last process.
  if (lock.netns !== undefined && existsSync(join(NETNS_DIR, lock.netns))) run('ip', ['netns', 'del', lock.netns])
  try {
    rmSync(lock.root, { recursive: true, force: true })
  } catch {
    // Something still mounted; lazily unmounted above, so the next reap gets it.
  }
  const lockPath = join(LOCK_DIR, `${lock.slot}.json`)
  try {
    const current = JSON.parse(readFileSync(lockPath, 'utf8')) as SlotLock
    if (current.pid === lock.pid && current.root === lock.root) unlinkSync(lockPath)
  } catch {
    // Not ours any more, or already gone.
  }
}

function readLock(path: string): SlotLock | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SlotLock
  } catch {
    return null
  }
}

/** Where `ip netns add` puts named network namespaces. */
const NETNS_DIR = '/run/netns'

function bridgeOf(slot: number): string {
  return `shoal-d${slot}`
}

/** Whether 10.213.N.0/24 is free of other interfaces' addresses. */
function subnetFree(slot: number): boolean {
  const r = run('ip', ['-4', '-o', 'addr', 'show'])
  return !r.out.split('\n').some((line) => line.includes(` 10.213.${slot}.`) && !line.includes(` ${bridgeOf(slot)} `))
}

/**
 * Reaps every engine whose owner process is dead (killed with -9, or a worker that never ran
 * its handlers). The lock is first renamed aside, atomically, so only one claimant reaps it.
 */
function reapStaleLocks(): void {
  for (const entry of readdirSync(LOCK_DIR)) {
    const path = join(LOCK_DIR, entry)
    const aside = /^\d+\.json\.stale-(\d+)$/.exec(entry)
    if (aside !== null) {
      // A claimant that died while reaping: finish its job.
      if (pidAlive(Number(aside[1]))) continue
      const lock = readLock(path)
      if (lock !== null) reapEngine(lock)
      rmSync(path, { force: true })
      continue
    }
    if (!/^\d+\.json$/.test(entry)) continue
    const holder = readLock(path)
    // null: unreadable, or being written this instant by a claimant; left alone either way.
    if (holder === null || pidAlive(holder.pid)) continue
    const moved = `${path}.stale-${process.pid}`
    try {
      renameSync(path, moved)
    } catch {
      continue // another claimant got there first
    }
    const stale = readLock(moved)
    if (stale !== null && pidAlive(stale.pid)) {
      // Raced with a fresh claim of the freed slot: give it back.
      if (!existsSync(path)) renameSync(moved, path)
      continue
    }
    if (stale !== null) reapEngine(stale)
    rmSync(moved, { force: true })
  }
}

/** Claims the lowest free slot, after reaping dead owners' engines; returns its lock, written with our pid. */
function claimSlot(makeLock: (slot: number) => SlotLock): SlotLock {
  mkdirSync(LOCK_DIR, { recursive: true })
  reapStaleLocks()
  for (let slot = SLOT_MIN; slot <= SLOT_MAX; slot++) {
    const path = join(LOCK_DIR, `${slot}.json`)
    const lock = makeLock(slot)
    try {
      writeFileSync(path, JSON.stringify(lock), { flag: 'wx' })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      continue // taken (or its owner died just now: the next claim reaps it)
    }
    if (!subnetFree(slot)) {
      unlinkSync(path)
      continue
    }
    return lock
  }
  throw new Error(`no free dockerd slot in ${LOCK_DIR} (${SLOT_MIN}..${SLOT_MAX})`)
}

/** Whether an ELF file asks for a program interpreter (is dynamically linked). */
function isDynamicElf(path: string): boolean {
  const fd = openSync(path, 'r')
  try {
    const header = Buffer.alloc(64)
    readSync(fd, header, 0, 64, 0)
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) return true // not ELF64: do not trust it
    const phoff = Number(header.readBigUInt64LE(0x20))
    const phentsize = header.readUInt16LE(0x36)
    const phnum = header.readUInt16LE(0x38)
    const table = Buffer.alloc(phentsize * phnum)
    readSync(fd, table, 0, table.length, phoff)
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return true // PT_INTERP
    return false
  } finally {
    closeSync(fd)
  }
}

const TARBALL_DIR_PREFIX = 'shoal-test-image-'

/** Removes tarball directories of dead processes (a test worker need not run its exit handler). */
function removeStaleTarballs(): void {
  for (const entry of readdirSync(tmpdir())) {
    const pid = Number(/^shoal-test-image-(\d+)-/.exec(entry)?.[1])
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) rmSync(join(tmpdir(), entry), { recursive: true, force: true })
  }
}

function removeTarball(): void {
  if (tarballDir !== null) rmSync(tarballDir, { recursive: true, force: true })
  tarballDir = null
}

/**
 * The image tarball: a root holding /bin/busybox and a link per applet. Built once per process
 * while any engine lives (every engine may need it), removed with the last one.
 */
function testImageTarball(): string {
  if (tarballDir !== null && existsSync(join(tarballDir, 'busybox.tar'))) return join(tarballDir, 'busybox.tar')
  if (!existsSync(BUSYBOX) || isDynamicElf(BUSYBOX)) {
    throw new Error(`${BUSYBOX} is missing or not static: install busybox-static (scripts/install-packages.sh tests docker.io busybox-static)`)
  }
  removeStaleTarballs()
  const dir = mkdtempSync(join(tmpdir(), `${TARBALL_DIR_PREFIX}${process.pid}-`))
  tarballDir = dir
  const rootfs = join(dir, 'rootfs')
  mkdirSync(join(rootfs, 'bin'), { recursive: true })
  mkdirSync(join(rootfs, 'tmp'))
  chmodSync(join(rootfs, 'tmp'), 0o1777)
  mkdirSync(join(rootfs, 'etc'))
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'))
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755)
  const applets = runOrThrow(BUSYBOX, ['--list']).split('\n').map((a) => a.trim()).filter((a) => /^[A-Za-z0-9_.[-]+$/.test(a) && a !== 'busybox')
  for (const applet of applets) symlinkSync('busybox', join(rootfs, 'bin', applet))
  runOrThrow('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', join(dir, 'busybox.tar'), '.'])
  rmSync(rootfs, { recursive: true, force: true })
  return join(dir, 'busybox.tar')
}

/** A dockerode client on its own agent; `close` destroys its sockets (no handles left behind). */
export function dockerClient(socket: string, timeoutMs = 30_000): { docker: Docker; close: () => void } {
  const agent = new Agent({ keepAlive: true })
  // docker-modem takes an `agent` option its typings do not list.
  const options = { socketPath: socket, timeout: timeoutMs, agent } as Docker.DockerOptions & { agent: Agent }
  return { docker: new Docker(options), close: () => agent.destroy() }
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    stream.on('data', (d: Buffer | string) => (text += d.toString()))
    stream.on('end', () => resolve(text))
    stream.on('error', reject)
  })
}

/**
 * Imports TEST_IMAGE into the engine at `socket` (skipped when present), like
 * `docker import --change "ENV PATH=/bin" busybox.tar shoal-test/busybox:1`.
 */
export async function buildTestImage(socket: string): Promise<string> {
  const { docker, close } = dockerClient(socket, 60_000)
  try {
    try {
      await docker.getImage(TEST_IMAGE).inspect()
      return TEST_IMAGE
    } catch {
      // Not there yet.
    }
    const progress = await readAll(await docker.importImage(testImageTarball(), { repo: TEST_IMAGE_REPO, tag: TEST_IMAGE_TAG, changes: ['ENV PATH=/bin'] }))
    const error = progress.split('\n').map((l) => { try { return JSON.parse(l) as { error?: string } } catch { return {} } }).find((m) => m.error !== undefined)
    if (error !== undefined) throw new Error(`importing ${TEST_IMAGE} failed: ${error.error}`)
    await docker.getImage(TEST_IMAGE).inspect()
    return TEST_IMAGE
  } finally {
    close()
  }
}

function logTail(path: string, chars = LOG_TAIL_CHARS): string {
  const text = readText(path)
  return text.length > chars ? `…${text.slice(-chars)}` : text
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
}

async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return
  const exited = exitOf(child)
  child.kill(signal)
  let timer: ReturnType<typeof setTimeout> | null = null
  const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), timeoutMs) })])
  if (timer !== null) clearTimeout(timer)
  if (timedOut) {
    child.kill('SIGKILL')
    await exited
  }
}

function isRunning(child: ChildProcess | null): boolean {
  return child !== null && child.exitCode === null && child.signalCode === null
}

/** One private Docker engine; see the file comment. */
export class Dockerd {
  readonly name: string
  readonly slot: number
  readonly root: string
  /** Path of the engine's API socket (give it to `shoal start --docker` or DockerRuntime). */
  readonly socket: string
  /** `unix://` + socket, for `docker -H`. */
  readonly host: string
  readonly bridgeName: string
  readonly subnet: string
  readonly gateway: string
  readonly logFile: string
  readonly containerdLogFile: string
  readonly liveRestore: boolean
  /** Docker's network defaults in a namespace of its own (see the file comment). */
  readonly stock: boolean
  /** Path of a stock engine's network namespace (for `nsenter --net=`), else null. */
  readonly netnsPath: string | null
  private readonly lock: SlotLock
  private storageDriver: StorageDriver = preferredDriver
  private containerd: ChildProcess | null = null
  private dockerd: ChildProcess | null = null
  private reaped = false

  constructor(name: string, options: DockerdOptions = {}) {
    this.name = name
    this.liveRestore = options.liveRestore ?? true
    this.stock = options.stock ?? false
    const safeName = name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 12)
    const root = mkdtempSync(join(tmpdir(), `shoal-dockerd-${safeName}-`))
    try {
      this.lock = claimSlot((slot) => ({
        pid: process.pid, slot, root, bridge: bridgeOf(slot), cgroupParent: bridgeOf(slot), namespace: bridgeOf(slot),
        containerdSocket: join(root, 'containerd', 'containerd.sock'),
        ...(this.stock ? { netns: bridgeOf(slot) } : {}),
      }))
    } catch (err) {
      rmSync(root, { recursive: true, force: true })
      throw err
    }
    this.root = root
    this.slot = this.lock.slot
    this.socket = join(this.root, 'docker.sock')
    this.host = `unix://${this.socket}`
    // A stock engine: what dockerd picks by default in an empty namespace (tests should still ask the peer).
    this.bridgeName = this.stock ? 'docker0' : this.lock.bridge
    this.subnet = this.stock ? '172.17.0.0/16' : `10.213.${this.slot}.0/24`
    this.gateway = this.stock ? '172.17.0.1' : `10.213.${this.slot}.1`
    this.netnsPath = this.lock.netns === undefined ? null : join(NETNS_DIR, this.lock.netns)
    // The slot is ours: a namespace left under its name is a dead run's.
    if (this.lock.netns !== undefined && existsSync(join(NETNS_DIR, this.lock.netns))) run('ip', ['netns', 'del', this.lock.netns])
    this.logFile = join(this.root, 'dockerd.log')
    this.containerdLogFile = join(this.root, 'containerd.log')
    LIVE.add(this)
    watchSignals(true)
  }

  /** Creates the bridge and starts containerd (once) and dockerd; resolves when the API answers. */
  async start(): Promise<this> {
    if (this.reaped) throw new Error(`dockerd ${this.name} was stopped for good; start a new one`)
    if (isRunning(this.dockerd)) return this
    if (this.stock) this.ensureNetns()
    else this.ensureBridge()
    await this.startContainerd()
    try {
      await this.startDockerd()
    } catch (err) {
      const log = readText(this.logFile)
      if (this.storageDriver === 'overlay2' && /overlay|graphdriver|storage.driver/i.test(log) && !existsSync(join(this.root, 'data', 'overlay2'))) {
        preferredDriver = 'vfs'
        this.storageDriver = 'vfs'
        await this.startDockerd()
      } else {
        throw err
      }
    }
    return this
  }

  /** Crashes dockerd (default SIGKILL; SIGTERM for a clean shutdown). containerd and, with live-restore, the containers keep running. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await stopChild(this.dockerd, signal, DAEMON_STOP_TIMEOUT_MS)
    this.dockerd = null
  }

  /**
   * A host's death: SIGKILL to everything the engine runs at once (dockerd, containerd, shims,
   * containers), as a power loss would; data, namespace and bridge stay, so start() boots it again.
   */
  async crash(): Promise<void> {
    const pids = enginePids(this.lock)
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    await Promise.all([this.dockerd, this.containerd].filter((c): c is ChildProcess => c !== null).map(exitOf))
    await pollUntil(`the processes of ${this.name} to die`, () => !pids.some(pidAlive), REAP_WAIT_MS, 20)
    this.dockerd = null
    this.containerd = null
  }

  /** kill, then start on the same data root. */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<this> {
    await this.kill(signal)
    return this.start()
  }

  /** Whether dockerd is running. */
  running(): boolean {
    return isRunning(this.dockerd)
  }

  /** Removes every container, stops both daemons, and removes the bridge, mounts, cgroups and files. */
  async stop(): Promise<void> {
    if (this.reaped) return
    if (isRunning(this.dockerd)) {
      const { docker, close } = dockerClient(this.socket, 15_000)
      try {
        const all = await docker.listContainers({ all: true })
        await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)))
      } catch {
        // The reap below kills whatever is left.
      } finally {
        close()
      }
    }
    await stopChild(this.dockerd, 'SIGTERM', DAEMON_STOP_TIMEOUT_MS)
    await stopChild(this.containerd, 'SIGTERM', DAEMON_STOP_TIMEOUT_MS)
    this.reapNow()
  }

  /** Synchronous teardown (exit handler; the end of stop()). */
  reapNow(): void {
    if (this.reaped) return
    this.reaped = true
    LIVE.delete(this)
    reapEngine(this.lock)
    if (LIVE.size === 0) {
      removeTarball()
      watchSignals(false)
    }
  }

  /** Runs the docker CLI against this engine: `docker -H unix://SOCKET ARGS…`. */
  docker(args: string[], timeoutMs = 60_000): Promise<CliResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: join(this.root, 'cli'), PATH: `${process.env['PATH'] ?? ''}:${SYSTEM_PATH}` }
    for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) delete env[k]
    return new Promise((resolve, reject) => {
      const child = spawn('docker', ['-H', this.host, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`docker ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${stderr}`))
      }, timeoutMs)
      child.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      child.on('exit', (code, signal) => {
        clearTimeout(timer)
        resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr })
      })
    })
  }

  /** Like `docker`, but throws unless it exits 0; returns trimmed stdout. */
  async dockerOk(args: string[], timeoutMs = 60_000): Promise<string> {
    const r = await this.docker(args, timeoutMs)
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`)
    return r.stdout.trim()
  }

  /**
   * `cmd args…` as a command line running in this engine's network namespace (a stock engine's;
   * unchanged for the others): `spawn(...d.inNamespace('ip', ['addr']))`.
   */
  inNamespace(cmd: string, args: string[]): [string, string[]] {
    return this.netnsPath === null ? [cmd, args] : ['nsenter', [`--net=${this.netnsPath}`, cmd, ...args]]
  }

  /** Runs a short command in this engine's network namespace; throws unless it exits 0; returns its output. */
  inNamespaceOk(cmd: string, args: string[]): string {
    return runOrThrow(...this.inNamespace(cmd, args))
  }

  /** The end of dockerd's log, for failure messages. */
  logTail(chars = LOG_TAIL_CHARS): string {
    return logTail(this.logFile, chars)
  }

  private ensureBridge(): void {
    if (run('ip', ['link', 'show', this.bridgeName]).code === 0) {
      if (run('ip', ['-4', '-o', 'addr', 'show', 'dev', this.bridgeName]).out.includes(`${this.gateway}/24`)) return
      run('ip', ['link', 'del', this.bridgeName])
    }
    runOrThrow('ip', ['link', 'add', this.bridgeName, 'type', 'bridge'])
    runOrThrow('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.bridgeName])
    runOrThrow('ip', ['link', 'set', this.bridgeName, 'up'])
  }

  /** A stock engine's namespace with loopback up; kept across dockerd restarts (docker0 and the containers live in it). */
  private ensureNetns(): void {
    const name = this.lock.netns as string
    if (!existsSync(join(NETNS_DIR, name))) runOrThrow('ip', ['netns', 'add', name])
    this.inNamespaceOk('ip', ['link', 'set', 'lo', 'up'])
  }

  private spawnDaemon(cmd: string, args: string[], logFile: string): ChildProcess {
    const fd = openSync(logFile, 'a')
    try {
      return spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, PATH: `${SYSTEM_PATH}:${process.env['PATH'] ?? ''}` } })
    } finally {
      closeSync(fd)
    }
  }

  private async startContainerd(): Promise<void> {
    if (isRunning(this.containerd)) return
    const dir = join(this.root, 'containerd')
    mkdirSync(dir, { recursive: true })
    const config = join(dir, 'config.toml')
    writeFileSync(config, [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${this.lock.containerdSocket}"`,
      '[ttrpc]',
      '  address = ""',
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(dir, 'opt')}"`,
      '',
    ].join('\n'))
    rmSync(this.lock.containerdSocket, { force: true })
    const child = this.spawnDaemon('containerd', ['--config', config, '--log-level', 'warn'], this.containerdLogFile)
    this.containerd = child
    try {
      await pollUntil(`containerd of ${this.name} to listen on ${this.lock.containerdSocket}`, () => {
        if (!isRunning(child)) throw new Error(`containerd of ${this.name} exited (${child.exitCode ?? child.signalCode})`)
        return existsSync(this.lock.containerdSocket) && statSync(this.lock.containerdSocket).isSocket()
      }, CONTAINERD_START_TIMEOUT_MS, 50)
    } catch (err) {
      await stopChild(child, 'SIGKILL', DAEMON_STOP_TIMEOUT_MS)
      this.containerd = null
      throw new Error(`${err instanceof Error ? err.message : String(err)}\ncontainerd log (${this.containerdLogFile}):\n${logTail(this.containerdLogFile)}`)
    }
  }

  private async startDockerd(): Promise<void> {
    const daemonJson = join(this.root, 'daemon.json')
    // An empty config file, so the machine's /etc/docker/daemon.json cannot change these engines.
    if (!existsSync(daemonJson)) writeFileSync(daemonJson, '{}\n')
    // Our previous dockerd is dead (kill() waited for it): a stale pid file could name a reused pid.
    rmSync(join(this.root, 'dockerd.pid'), { force: true })
    const args = [
      '--config-file', daemonJson,
      '--data-root', join(this.root, 'data'),
      '--exec-root', join(this.root, 'exec'),
      '--pidfile', join(this.root, 'dockerd.pid'),
      '-H', this.host,
      '--containerd', this.lock.containerdSocket,
      '--containerd-namespace', this.lock.namespace,
      '--containerd-plugins-namespace', `${this.lock.namespace}-plugins`,
      '--cgroup-parent', this.lock.cgroupParent,
      // A stock engine keeps every network default: its own docker0, iptables, NAT, the host's resolvers.
      ...(this.stock ? [] : [
        '--bridge', this.bridgeName,
        '--ip-masq=false',
        '--iptables=false',
        '--ip-forward=false',
        '--userland-proxy=true',
        '--dns', this.gateway,
      ]),
      '--storage-driver', this.storageDriver,
      '--log-level', 'warn',
      ...(this.liveRestore ? ['--live-restore'] : []),
    ]
    const child = this.spawnDaemon(...this.inNamespace('dockerd', args), this.logFile)
    this.dockerd = child
    const { docker, close } = dockerClient(this.socket, 1_000)
    try {
      await pollUntil(`dockerd ${this.name} to answer on ${this.socket}`, async () => {
        if (!isRunning(child)) throw new Error(`dockerd ${this.name} exited (${child.exitCode ?? child.signalCode})`)
        if (!existsSync(this.socket)) return false
        try {
          return typeof (await docker.version()).Version === 'string'
        } catch {
          return false // not listening yet
        }
      }, DOCKERD_START_TIMEOUT_MS, 100)
    } catch (err) {
      await stopChild(child, 'SIGKILL', DAEMON_STOP_TIMEOUT_MS)
      this.dockerd = null
      throw new Error(`${err instanceof Error ? err.message : String(err)}\ndockerd log (${this.logFile}):\n${this.logTail()}`)
    } finally {
      close()
    }
  }
}

/** Starts a private engine for the simulated host `name` (see the file comment). */
export async function startDockerd(name: string, options: DockerdOptions = {}): Promise<Dockerd> {
  const d = new Dockerd(name, options)
  try {
    return await d.start()
  } catch (err) {
    await d.stop()
    throw err
  }
}
