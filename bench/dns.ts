/**
 * DNS answers per second: Shoal's DNS server next to dnsmasq, same machine, same run, same
 * 1,000 names (Shoal from 1,000 container records in a StateStore, dnsmasq from a hosts file
 * with the same names and addresses), same dnsperf query file and settings.
 *  - throughput: dnsperf unthrottled (`-c CLIENTS -q OUTSTANDING`), in rounds that alternate
 *    the servers so a noisy neighbour hurts each alike; qps, average latency, server CPU per query;
 *  - latency: dnsperf at a fixed QPS with per-query latencies (`-v`), p50 and p99.
 * Shoal runs in this process with 1 UDP event loop and with worker threads; dnsmasq is the
 * Debian build, cache sized for all names. Loopback only.
 */
import { spawn } from 'node:child_process'
import dgram from 'node:dgram'
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { StoreDriver } from '../storage/statestore/testing.ts'
import { containerKey, encodeRecord, hostKey } from '../storage/statestore/records.ts'
import { DnsServer } from '../protocols/dns/index.ts'
import { zoneRecordsFromStore } from '../runtime/dns-records.ts'
import { container, host, query } from '../protocols/dns/testing.ts'
import { tempDir } from '../tests/helpers/processes.ts'
import { percentile, printTable } from './stats.ts'

/** What to run. */
export interface DnsBenchOptions {
  /** Seconds of unthrottled load per server, split over `rounds`. */
  readonly seconds: number
  readonly rounds: number
  /** QPS and seconds of the latency phase. */
  readonly latencyQps: number
  readonly latencySeconds: number
  /** Shoal variants: UDP event loops of each. */
  readonly loops: readonly number[]
}

const NAMES = 1000
const HOSTS = 10
/** dnsperf simulated clients and queries outstanding: enough to keep either server busy. */
const CLIENTS = 10
const OUTSTANDING = 200
const DNSMASQ = '/usr/sbin/dnsmasq'

interface Target {
  readonly name: string
  readonly port: number
  /** CPU seconds used so far by the server (user + system). */
  readonly cpuSeconds: () => number
  readonly stop: () => Promise<void>
}

interface Load {
  completed: number
  seconds: number
  latencySum: number
  cpuSeconds: number
  notNoerror: number
}

const ip = (i: number): string => `10.77.${i >> 8}.${i & 0xff}`

export async function dnsBench(options: DnsBenchOptions): Promise<void> {
  for (const [bin, pkg] of [['dnsperf', 'dnsperf'], [DNSMASQ, 'dnsmasq-base']] as const) {
    if (!onPath(bin)) throw new Error(`${bin} is missing: run 'bash scripts/install-packages.sh bench' (installs ${pkg}), or 'npm run bench'`)
  }
  const dir = tempDir('shoal-dns-bench-')
  const queries = join(dir, 'queries.txt')
  const hostsFile = join(dir, 'hosts')
  writeFileSync(queries, Array.from({ length: NAMES }, (_, i) => `c${i}.shoal A\n`).join(''))
  writeFileSync(hostsFile, Array.from({ length: NAMES }, (_, i) => `${ip(i)} c${i}.shoal\n`).join(''))

  // The records, written as their hosts would, applied to a real StateStore.
  const d = new StoreDriver()
  for (let h = 0; h < HOSTS; h++) {
    const peerId = `benchHost${h}`
    d.run({ type: 'put', key: hostKey(peerId), value: encodeRecord(host({ peerId, name: `host-${h}` })) }, { origin: peerId })
  }
  for (let i = 0; i < NAMES; i++) {
    const peerId = `benchHost${i % HOSTS}`
    const id = `${(0xbe0000000000 + i).toString(16)}${'0'.repeat(52)}`
    const c = container({ id, name: `c${i}`, host: peerId, hostName: `host-${i % HOSTS}`, ips: [ip(i)], labels: { 'shoal.service': `svc${i % 50}` } })
    const r = d.run({ type: 'put', key: containerKey(peerId, id), value: encodeRecord(c) }, { origin: peerId })
    if (!r.ok) throw new Error(`bench record refused: ${r.message}`)
  }

  const targets: Target[] = []
  try {
    targets.push(await startDnsmasq(hostsFile))
    let rebuildMs = NaN
    let names = 0
    for (const loops of options.loops) {
      const server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], records: () => zoneRecordsFromStore(d.store), udpEventLoops: loops })
      const [address] = await server.start()
      server.rebuildNow()
      rebuildMs = server.stats().zone.lastRebuildMs
      names = server.stats().zone.names
      await waitForAnswer(address!.port)
      const started = process.cpuUsage()
      targets.push({
        name: `shoal (${loops} loop${loops > 1 ? 's' : ''})`, port: address!.port,
        cpuSeconds: () => { const u = process.cpuUsage(started); return (u.user + u.system) / 1e6 },
        stop: () => server.stop(),
      })
    }
    process.stdout.write(`\nDNS: ${NAMES} names (Shoal zone: ${names} names incl. services, ids, PTRs; rebuilt from the StateStore in ${rebuildMs.toFixed(1)} ms)\n`)

    const loads = new Map<Target, Load>(targets.map((t) => [t, { completed: 0, seconds: 0, latencySum: 0, cpuSeconds: 0, notNoerror: 0 }]))
    const perRound = options.seconds / options.rounds
    for (let round = 0; round < options.rounds; round++) {
      for (const t of targets) {
        const cpu0 = t.cpuSeconds()
        const out = await dnsperf(dir, ['-s', '127.0.0.1', '-p', String(t.port), '-d', queries, '-l', String(perRound), '-c', String(CLIENTS), '-q', String(OUTSTANDING)])
        const load = loads.get(t)!
        load.cpuSeconds += t.cpuSeconds() - cpu0
        const completed = num(out, /Queries completed:\s+(\d+)/)
        load.completed += completed
        load.seconds += num(out, /Run time \(s\):\s+([\d.]+)/)
        load.latencySum += completed * num(out, /Average Latency \(s\):\s+([\d.]+)/)
        load.notNoerror += completed - num(out, /NOERROR (\d+)/)
      }
    }

    const latencies = new Map<Target, number[]>()
    for (const t of targets) {
      const out = await dnsperf(dir, ['-s', '127.0.0.1', '-p', String(t.port), '-d', queries, '-l', String(options.latencySeconds), '-Q', String(options.latencyQps), '-v'])
      latencies.set(t, [...out.matchAll(/^> \w+ \S+ \w+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000))
    }

    const base = loads.get(targets[0]!)!
    const baseQps = base.completed / base.seconds
    printTable(
      `DNS throughput (dnsperf -c ${CLIENTS} -q ${OUTSTANDING}, ${options.rounds} alternating rounds, ${options.seconds} s per server) and latency (at ${options.latencyQps} qps)`,
      ['server', 'qps', 'avg ms', 'CPU us/query', `p50 ms @${options.latencyQps}`, `p99 ms @${options.latencyQps}`, 'not NOERROR', 'vs dnsmasq'],
      targets.map((t) => {
        const l = loads.get(t)!
        const qps = l.completed / l.seconds
        const lat = latencies.get(t) ?? []
        // dnsmasq's CPU comes from /proc; Shoal's is this whole process (its own loop or its workers).
        const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-')
        return [t.name, qps, ms((l.latencySum / Math.max(1, l.completed)) * 1000), (l.cpuSeconds / Math.max(1, l.completed)) * 1e6,
          ms(percentile(lat, 50)), ms(percentile(lat, 99)), l.notNoerror, `${(qps / baseQps).toFixed(2)}x`]
      }),
    )
  } finally {
    for (const t of targets) await t.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function onPath(bin: string): boolean {
  if (bin.startsWith('/')) return existsSync(bin)
  return (process.env['PATH'] ?? '').split(':').some((p) => existsSync(join(p, bin)))
}

function num(text: string, pattern: RegExp): number {
  const m = pattern.exec(text)
  if (m === null) throw new Error(`dnsperf output lacks ${pattern}:\n${text.slice(-2000)}`)
  return Number(m[1])
}

/** Runs dnsperf with output to a file (not a pipe: reading a pipe would take this event loop from Shoal). */
async function dnsperf(dir: string, args: string[]): Promise<string> {
  const file = join(dir, 'dnsperf.out')
  const fd = openSync(file, 'w')
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('dnsperf', args, { stdio: ['ignore', fd, fd] })
      child.on('error', reject)
      child.on('exit', resolve)
    })
    const out = readFileSync(file, 'utf8')
    if (code !== 0) throw new Error(`dnsperf ${args.join(' ')} exited ${code}:\n${out.slice(-2000)}`)
    return out
  } finally {
    closeSync(fd)
  }
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const { port } = s.address()
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

async function startDnsmasq(hostsFile: string): Promise<Target> {
  const port = await freeUdpPort()
  const child = spawn(DNSMASQ, [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, `--port=${port}`,
    '--listen-address=127.0.0.1', '--bind-interfaces', '--cache-size=10000', '--pid-file=', '--log-facility=-',
    // As root, dnsmasq would switch to 'nobody', who cannot read our private temp dir.
    `--user=${userInfo().username}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  try {
    await waitForAnswer(port)
  } catch (err) {
    child.kill('SIGKILL')
    throw new Error(`dnsmasq did not answer on 127.0.0.1:${port}: ${stderr || String(err)}`)
  }
  const stat = `/proc/${child.pid}/stat`
  const ticks = (): number => {
    // Fields 14 and 15 (after the parenthesised command name): utime, stime, in clock ticks (100/s on Linux).
    const fields = readFileSync(stat, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  }
  return { name: 'dnsmasq 2.90', port, cpuSeconds: ticks, stop: async () => { child.kill('SIGTERM'); await exited } }
}

/** Resolves once c0.shoal answers on `port` (a server that is up and loaded). */
async function waitForAnswer(port: number): Promise<void> {
  const deadline = Date.now() + 10_000
  const socket = dgram.createSocket('udp4')
  try {
    for (;;) {
      const answered = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 200)
        socket.once('message', (m) => { clearTimeout(timer); resolve(m.length > 12 && ((m[3] as number) & 0x0f) === 0 && m[7] === 1) })
        socket.send(query('c0.shoal', 'A', { edns: false }), port, '127.0.0.1')
      })
      if (answered) return
      if (Date.now() > deadline) throw new Error('no answer for c0.shoal within 10 s')
    }
  } finally {
    socket.close()
  }
}
