/**
 * Container propagation with real processes and a real private dockerd: from `docker start`
 * on host A (the engine's start call returning: the container runs) to the running record applied on every peer of a
 * three-peer cluster, observed through each peer's `/v1/containers/watch` stream.
 * Also the gossip path (the container event on every peer's event stream) and DNS (every
 * peer's server answering the new name with the container's address).
 */
import { createSocket } from 'node:dgram'
import { query, decode, answerData } from '../protocols/dns/testing.ts'
import { request } from 'node:http'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { TestCluster, waitFor, type PeerProcess } from '../tests/helpers/processes.ts'
import { startDockerd, buildTestImage, dockerClient, TEST_IMAGE } from '../tests/helpers/dockerd.ts'
import { percentile, printTable } from './stats.ts'

interface Line { type: string; id?: string; action?: string; container?: { state: string } | null }

/** Follows an NDJSON stream on a peer's API; calls `onLine` with each line and its arrival time. */
function follow(peer: PeerProcess, path: string, onLine: (l: Line, atMs: number) => void): () => void {
  const req = request({ socketPath: peer.api, path, method: 'GET' }, (res) => {
    // Streams end abruptly when the cluster is torn down; that is no error of the benchmark.
    res.on('error', () => undefined)
    const lines = createInterface({ input: res })
    lines.on('error', () => undefined)
    lines.on('line', (line) => {
      if (line !== '') onLine(JSON.parse(line) as Line, performance.now())
    })
  })
  req.on('error', () => undefined)
  req.end()
  return () => req.destroy()
}

export async function containersBench(options: { containers: number }): Promise<void> {
  const dockerd = await startDockerd('bench-a')
  const cluster = new TestCluster()
  const { docker, close } = dockerClient(dockerd.socket)
  const stops: Array<() => void> = []
  try {
    await buildTestImage(dockerd.socket)
    const a = await cluster.add({ name: 'bench-a', docker: dockerd.socket, dns: '127.0.0.1:0' })
    const join_ = { bootstrap: [await cluster.addrOf(a)], secretFile: join(a.dataDir, 'cluster.key'), dns: '127.0.0.1:0' }
    const peers = [a, await cluster.add({ name: 'bench-b', ...join_ }), await cluster.add({ name: 'bench-c', ...join_ })]
    const dnsPorts = await Promise.all(peers.map(async (p) => Number((await p.status<{ dns: { listen: string[] } }>()).dns.listen[0]!.split(':')[1])))
    await waitFor('three voters and a full gossip mesh', async () => {
      const st = await a.status<{ peerId: string; voters: string[]; gossip: { events: { subscribers: number } } }>()
      return st.voters.length === 3 && st.gossip.events.subscribers === 2 ? true : undefined
    }, 60_000)

    // Per container id: when each peer applied its running record / saw its gossip event.
    const applied = new Map<string, number[]>()
    const gossiped = new Map<string, number[]>()
    const note = (map: Map<string, number[]>, id: string, at: number): void => {
      const list = map.get(id) ?? []
      list.push(at)
      map.set(id, list)
    }
    for (const p of peers) {
      const seenApplied = new Set<string>()
      const seenGossip = new Set<string>()
      stops.push(follow(p, '/v1/containers/watch', (l, at) => {
        if (l.type === 'put' && l.id !== undefined && l.container?.state === 'running' && !seenApplied.has(l.id)) {
          seenApplied.add(l.id)
          note(applied, l.id, at)
        }
      }))
      stops.push(follow(p, '/v1/events', (l, at) => {
        if (l.type === 'container' && l.action === 'running' && l.id !== undefined && !seenGossip.has(l.id)) {
          seenGossip.add(l.id)
          note(gossiped, l.id, at)
        }
      }))
    }
    await new Promise((r) => setTimeout(r, 500)) // streams open

    const toRecord: number[] = []
    const toEvent: number[] = []
    const toDns: number[] = []
    // One UDP socket asks every peer's DNS for the new name until each answers with its address.
    const udp = createSocket('udp4')
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()))
    let dnsWanted: { ip: string; answered: Set<number>; done: () => void; last: number } | null = null
    udp.on('message', (msg, rinfo) => {
      const w = dnsWanted
      if (w === null) return
      const port = rinfo.port
      if (w.answered.has(port)) return
      if (answerData(decode(msg)).includes(w.ip)) {
        w.answered.add(port)
        w.last = performance.now()
        if (w.answered.size === dnsPorts.length) w.done()
      }
    })
    const startCall: number[] = []
    for (let i = 0; i < options.containers; i++) {
      const c = await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['sleep', '3600'], name: `bench-${i}` })
      const t0 = performance.now()
      await c.start()
      const t1 = performance.now()
      startCall.push(t1 - t0)
      const ip = ((await c.inspect()).NetworkSettings.Networks['bridge']?.IPAddress) ?? ''
      let finish: () => void = () => undefined
      const wanted = { ip, answered: new Set<number>(), done: () => finish(), last: 0 }
      const dnsDone = new Promise<void>((resolve) => (finish = resolve))
      dnsWanted = wanted
      const asking = setInterval(() => {
        for (const port of dnsPorts) if (!wanted.answered.has(port)) udp.send(query(`bench-${i}.shoal`, 'A'), port, '127.0.0.1')
      }, 2)
      await Promise.race([dnsDone, new Promise((r) => setTimeout(r, 30_000))])
      clearInterval(asking)
      if (wanted.answered.size === dnsPorts.length) toDns.push(wanted.last - t1)
      const done = await waitFor(`bench-${i} on every peer`, () => ((applied.get(c.id)?.length ?? 0) === peers.length && (gossiped.get(c.id)?.length ?? 0) === peers.length ? true : undefined), 30_000, 2)
      if (done) {
        toRecord.push(Math.max(...(applied.get(c.id) ?? [])) - t1)
        toEvent.push(Math.max(...(gossiped.get(c.id) ?? [])) - t1)
      }
      if ((i + 1) % 10 === 0) process.stderr.write(`  containers bench: ${i + 1}/${options.containers}\n`)
    }
    printTable(`docker start on host A (the engine's start call returned) -> visible on all 3 peers (${options.containers} containers; goal p99 < 300 ms)`, ['path', 'p50 ms', 'p99 ms', 'max ms'], [
      ['the start call itself (dockerd)', percentile(startCall, 50), percentile(startCall, 99), Math.max(...startCall)],
      ['record applied (Raft)', percentile(toRecord, 50), percentile(toRecord, 99), Math.max(...toRecord)],
      ['event (gossip)', percentile(toEvent, 50), percentile(toEvent, 99), Math.max(...toEvent)],
      ['name answered by DNS', percentile(toDns, 50), percentile(toDns, 99), Math.max(...toDns)],
    ])
    udp.close()
  } finally {
    for (const stop of stops) stop()
    close()
    await cluster.cleanup()
    await dockerd.stop()
  }
}
