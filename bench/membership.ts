/**
 * Membership benchmark with real `shoal start` processes on loopback:
 *  - crash detection: `kill -9` of a peer -> every other peer's event stream says `dead`;
 *  - gossip fan-out: `shoal event` on one peer -> the event on every peer's stream;
 *  - false suspicions: `suspect` events about live peers during the quiet phases.
 * Times come from each observer's own event timestamps (one machine, one clock).
 */
import { request } from 'node:http'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { TestCluster, waitFor, type PeerProcess } from '../tests/helpers/processes.ts'
import { percentile, printTable } from './stats.ts'

interface StreamEvent { type: string; action?: string; peerId?: string; name?: string; id?: string; time?: string }

/** Follows one peer's `/v1/events` stream, recording arrival time of each event. */
function follow(peer: PeerProcess, onEvent: (e: StreamEvent, arrivedMs: number) => void): () => void {
  const req = request({ socketPath: peer.api, path: '/v1/events', method: 'GET' }, (res) => {
    // A killed peer's stream ends abruptly; that is the point of the benchmark, not an error.
    res.on('error', () => undefined)
    const lines = createInterface({ input: res })
    lines.on('error', () => undefined)
    lines.on('line', (line) => {
      if (line !== '') onEvent(JSON.parse(line) as StreamEvent, Date.now())
    })
  })
  req.on('error', () => undefined)
  req.end()
  return () => req.destroy()
}

function fire(peer: PeerProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ name, payload: '' })
    const req = request({ socketPath: peer.api, path: '/v1/events', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => resolve())
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function startCluster(n: number): Promise<{ cluster: TestCluster; peers: PeerProcess[]; ids: string[] }> {
  const cluster = new TestCluster()
  const founder = await cluster.add({ name: 'b0' })
  const seed = await cluster.addrOf(founder)
  const secretFile = join(founder.dataDir, 'cluster.key')
  const peers = [founder]
  // Start in small batches: twenty Node processes booting at once on two cores is its own benchmark.
  for (let i = 1; i < n; i += 4) {
    const batch = Array.from({ length: Math.min(4, n - i) }, (_, k) => cluster.add({ name: `b${i + k}`, bootstrap: [seed], secretFile }))
    peers.push(...(await Promise.all(batch)))
  }
  const ids = await Promise.all(peers.map(async (p) => (await p.status()).peerId))
  await waitFor(`${n} peers to see each other alive`, async () => {
    const views = await Promise.all(peers.map((p) => p.peers()))
    return views.every((v) => v.filter((m) => m.state === 'alive').length === n) ? true : undefined
  }, 60_000)
  return { cluster, peers, ids }
}

export async function membershipBench(sizes: number[], detectRounds: number, gossipRounds: number): Promise<void> {
  const detectionRows: Array<Array<string | number>> = []
  const gossipRows: Array<Array<string | number>> = []
  for (const n of sizes) {
    process.stderr.write(`membership bench: starting ${n} peers\n`)
    const { cluster, peers, ids } = await startCluster(n)
    try {
    let falseSuspicions = 0
    let suspicionsOfRestarted = 0
    let falseDeaths = 0
    let currentVictim: string | null = null
    let lastRestartedId: string | null = null
    let quiet = true
    const gossipArrivals = new Map<string, number[]>()
    const deadAt = new Map<string, number[]>()
    const record = (e: StreamEvent, arrived: number): void => {
      if (e.type === 'user' && e.name !== undefined) gossipArrivals.get(e.name)?.push(arrived)
      if (e.type === 'host' && e.action === 'suspect' && quiet) {
        if (e.peerId === lastRestartedId) suspicionsOfRestarted++
        else falseSuspicions++
      }
      if (e.type === 'host' && e.action === 'dead' && e.peerId !== undefined && e.time !== undefined) {
        if (e.peerId === currentVictim) deadAt.get(e.peerId)?.push(Date.parse(e.time))
        else falseDeaths++
      }
    }
    const unfollow = peers.map((p) => follow(p, record))
    await new Promise((r) => setTimeout(r, 500))

    // Gossip fan-out from the founder to everyone else.
    const fanout: number[] = []
    for (let round = 0; round < gossipRounds; round++) {
      const name = `bench-${n}-${round}`
      gossipArrivals.set(name, [])
      const t0 = Date.now()
      await fire(peers[0]!, name)
      await waitFor(`event ${name} on all ${n} peers`, () => ((gossipArrivals.get(name)?.length ?? 0) >= n ? true : undefined), 10_000, 2)
      const arrivals = gossipArrivals.get(name) ?? []
      fanout.push(Math.max(...arrivals) - t0)
      if (round % 10 === 9) process.stderr.write(`  gossip ${round + 1}/${gossipRounds}\n`)
    }
    gossipRows.push([n, gossipRounds, percentile(fanout, 50), percentile(fanout, 99), Math.max(...fanout)])

    // Crash detection: kill -9 a non-founder, wait for every survivor's `dead`, restart it.
    const detection: number[] = []
    for (let round = 0; round < detectRounds; round++) {
      const index = 1 + (round % (n - 1))
      const victim = peers[index]!
      const id = ids[index]!
      deadAt.set(id, [])
      currentVictim = id
      quiet = false
      const killedAt = Date.now()
      victim.signal('SIGKILL')
      await victim.exited
      await waitFor(`all survivors to see ${victim.name} dead`, () => ((deadAt.get(id)?.length ?? 0) >= n - 1 ? true : undefined), 30_000, 10)
      detection.push(Math.max(...(deadAt.get(id) ?? [])) - killedAt)
      await victim.start()
      lastRestartedId = id
      currentVictim = null
      unfollow[index] = follow(victim, record)
      await waitFor(`${victim.name} alive everywhere`, async () => {
        const states = await Promise.all(peers.map((p) => p.stateOf(id)))
        return states.every((s) => s === 'alive') ? true : undefined
      }, 30_000)
      await new Promise((r) => setTimeout(r, 300))
      quiet = true
      process.stderr.write(`  detection ${round + 1}/${detectRounds}: ${detection.at(-1)} ms\n`)
    }
    detectionRows.push([n, detectRounds, percentile(detection, 50), percentile(detection, 99), Math.max(...detection), falseDeaths, falseSuspicions, suspicionsOfRestarted])
    for (const stop of unfollow) stop()
    } finally {
      await cluster.cleanup()
    }
  }
  printTable('Crash detection: kill -9 -> dead on every other peer (ms); suspicions of live peers outside the kill windows',
    ['peers', 'rounds', 'p50 ms', 'p99 ms', 'max ms', 'false deaths', 'suspicions of others', 'of the peer just restarted'], detectionRows)
  printTable('Gossip fan-out: `shoal event` on one peer -> received by all peers (ms)',
    ['peers', 'rounds', 'p50 ms', 'p99 ms', 'max ms'], gossipRows)
}
