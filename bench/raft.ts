/**
 * Replicated writes and leader failover: a 3-voter Shoal cluster next to a 3-member etcd
 * cluster (Debian etcd-server, etcd3 client), same machine, same run, same workload.
 *  - writes/s and latency p50/p99 at 1, 16 and 64 concurrent clients (100-byte values,
 *    fsync on in both; Shoal clients spread over its three peers' API sockets, etcd clients
 *    over its three endpoints);
 *  - failover: kill -9 of the leader -> first acknowledged write through a survivor.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, request } from 'node:http'
import { Etcd3 } from 'etcd3'
import { TestCluster, tempDir, waitFor, type PeerProcess } from '../tests/helpers/processes.ts'
import { percentile, printTable } from './stats.ts'

const VALUE = 'x'.repeat(100)

/** A write client: resolves when the write is acknowledged, rejects otherwise. */
type Writer = (key: string) => Promise<void>

interface Target {
  name: string
  writers: Writer[]
  /** Kills the leader; resolves with the writer of a survivor and a restart function. */
  killLeader(): Promise<{ survivor: Writer; restart: () => Promise<void> }>
  stop(): Promise<void>
}

async function loadPhase(writers: Writer[], clients: number, durationMs: number): Promise<{ ops: number; latencies: number[] }> {
  const latencies: number[] = []
  const deadline = Date.now() + durationMs
  let n = 0
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const write = writers[c % writers.length] as Writer
    while (Date.now() < deadline) {
      const t0 = performance.now()
      await write(`bench/${c}/${n++}`)
      latencies.push(performance.now() - t0)
    }
  }))
  return { ops: latencies.length, latencies }
}

// --- Shoal -------------------------------------------------------------------------------

function shoalWriter(peer: PeerProcess): Writer {
  const agent = new Agent({ keepAlive: true, maxSockets: 128 })
  return (key) => new Promise((resolve, reject) => {
    const body = JSON.stringify({ key, value: VALUE })
    const req = request({ socketPath: peer.api, agent, method: 'PUT', path: '/v1/kv', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function startShoal(): Promise<Target> {
  const cluster = new TestCluster()
  const founder = await cluster.add({ name: 's0', extraArgs: ['--log-level', 'warn'] })
  const seed = await cluster.addrOf(founder)
  const secretFile = join(founder.dataDir, 'cluster.key')
  const peers = [founder, ...(await Promise.all([1, 2].map((i) => cluster.add({ name: `s${i}`, bootstrap: [seed], secretFile, extraArgs: ['--log-level', 'warn'] }))))]
  const voters = async (): Promise<boolean> => (await Promise.all(peers.filter((p) => p.exitCode === null).map((p) => p.status<{ voters: string[] }>()))).every((s) => s.voters.length === 3)
  await waitFor('three Shoal voters', () => voters(), 30_000)
  const writers = peers.map(shoalWriter)
  return {
    name: 'Shoal',
    writers,
    async killLeader() {
      const st = await Promise.all(peers.map((p) => p.status<{ role: string }>()))
      const i = st.findIndex((s) => s.role === 'leader')
      const leader = peers[i] as PeerProcess
      leader.signal('SIGKILL')
      await leader.exited
      return {
        survivor: writers[(i + 1) % 3] as Writer,
        restart: async () => {
          await leader.start()
          await waitFor('the old leader back as a follower', async () => ((await leader.status<{ role: string }>()).role === 'follower' ? true : undefined), 30_000)
        },
      }
    },
    stop: () => cluster.cleanup(),
  }
}

// --- etcd --------------------------------------------------------------------------------

async function startEtcd(): Promise<Target> {
  const root = tempDir('shoal-etcd-')
  const members = [0, 1, 2].map((i) => ({ name: `e${i}`, client: `http://127.0.0.1:${23790 + i}`, peer: `http://127.0.0.1:${23800 + i}`, dir: join(root, `e${i}`) }))
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',')
  const procs: Array<ChildProcess | null> = [null, null, null]
  const launch = (i: number): void => {
    const m = members[i]!
    mkdirSync(m.dir, { recursive: true })
    procs[i] = spawn('etcd', [
      '--name', m.name, '--data-dir', m.dir,
      '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
      '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer,
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'shoal-bench',
      '--log-level', 'error',
    ], { stdio: 'ignore' })
  }
  for (const i of [0, 1, 2]) launch(i)
  const clients = members.map((m) => new Etcd3({ hosts: m.client, dialTimeout: 1000 }))
  const writers: Writer[] = clients.map((c) => async (key) => {
    await Promise.race([c.put(key).value(VALUE), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 1000))])
  })
  await waitFor('etcd to accept writes', async () => {
    await writers[0]!('bench/ready')
    return true
  }, 30_000, 200)
  return {
    name: 'etcd',
    writers,
    async killLeader() {
      const st = await clients[0]!.maintenance.status()
      const ids = await Promise.all(clients.map(async (c) => (await c.maintenance.status()).header.member_id))
      const i = ids.indexOf(st.leader)
      procs[i]!.kill('SIGKILL')
      await new Promise((r) => procs[i]!.once('exit', r))
      return {
        survivor: writers[(i + 1) % 3] as Writer,
        restart: async () => {
          launch(i)
          await waitFor('the old etcd leader back', async () => {
            await writers[i]!('bench/back')
            return true
          }, 30_000, 200)
        },
      }
    },
    async stop() {
      for (const c of clients) c.close()
      for (const p of procs) p?.kill('SIGKILL')
      await new Promise((r) => setTimeout(r, 300))
      rmSync(root, { recursive: true, force: true })
    },
  }
}

/** Runs the write and failover benchmarks on both systems and prints the tables. */
export async function raftBench(options: { phaseMs: number; failoverRounds: number }): Promise<void> {
  const concurrency = [1, 16, 64]
  const writeRows: Array<Array<string | number>> = []
  const failoverRows: Array<Array<string | number>> = []
  const throughput = new Map<string, number[]>()
  const failover = new Map<string, number[]>()
  for (const start of [startShoal, startEtcd]) {
    const target = await start()
    try {
      process.stderr.write(`raft bench: ${target.name}\n`)
      const rates: number[] = []
      for (const c of concurrency) {
        await loadPhase(target.writers, c, 500) // warm-up
        const { ops, latencies } = await loadPhase(target.writers, c, options.phaseMs)
        const rate = ops / (options.phaseMs / 1000)
        rates.push(rate)
        writeRows.push([target.name, c, Math.round(rate), percentile(latencies, 50), percentile(latencies, 99)])
        process.stderr.write(`  ${c} clients: ${Math.round(rate)} writes/s\n`)
      }
      throughput.set(target.name, rates)
      const times: number[] = []
      for (let round = 0; round < options.failoverRounds; round++) {
        const { survivor, restart } = await target.killLeader()
        const t0 = performance.now()
        for (;;) {
          try {
            await survivor(`bench/failover/${round}`)
            break
          } catch {
            await new Promise((r) => setTimeout(r, 20))
          }
        }
        times.push(performance.now() - t0)
        process.stderr.write(`  failover ${round + 1}/${options.failoverRounds}: ${Math.round(times.at(-1) ?? 0)} ms\n`)
        await restart()
      }
      failover.set(target.name, times)
      failoverRows.push([target.name, options.failoverRounds, percentile(times, 50), percentile(times, 99), Math.max(...times)])
    } finally {
      await target.stop()
    }
  }
  const shoalRates = throughput.get('Shoal') ?? []
  const etcdRates = throughput.get('etcd') ?? []
  for (const [i, c] of concurrency.entries()) writeRows.push(['Shoal/etcd', c, `${((shoalRates[i] ?? 0) / (etcdRates[i] ?? 1)).toFixed(2)}x`, '', ''])
  printTable('Replicated writes, 3 voters, fsync on (100-byte values)', ['system', 'clients', 'writes/s', 'p50 ms', 'p99 ms'], writeRows)
  const f = (name: string, p: number): number => percentile(failover.get(name) ?? [], p)
  failoverRows.push(['Shoal/etcd', options.failoverRounds, `${(f('Shoal', 50) / f('etcd', 50)).toFixed(2)}x`, `${(f('Shoal', 99) / f('etcd', 99)).toFixed(2)}x`, ''])
  printTable('Leader failover: kill -9 of the leader -> first acknowledged write through a survivor (ms)', ['system', 'rounds', 'p50 ms', 'p99 ms', 'max ms'], failoverRows)
}
