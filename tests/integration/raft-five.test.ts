/**
 * Five real peers: autopilot grows the voter set to 5 (the default once 5 peers are alive);
 * with two voters killed at once the remaining three keep a quorum, elect a leader if needed,
 * and keep every acknowledged write.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { join } from 'node:path'
import { TestCluster, waitFor, apiRequest, type PeerProcess } from '../helpers/processes.ts'

interface St { peerId: string; role: string; term: number; voters: string[]; learners: string[] }

describe('a five-peer Raft cluster', () => {
  const cluster = new TestCluster()
  let peers: PeerProcess[] = []
  const put = (peer: PeerProcess, key: string, value: string) =>
    waitFor(`put ${key}`, async () => ((await apiRequest(peer.api, 'PUT', '/v1/kv', { key, value })).status === 200 ? true : undefined), 30_000, 200)

  beforeAll(async () => {
    const founder = await cluster.add({ name: 'f0' })
    const seed = await cluster.addrOf(founder)
    const secretFile = join(founder.dataDir, 'cluster.key')
    peers = [founder, ...(await Promise.all([1, 2, 3, 4].map((i) => cluster.add({ name: `f${i}`, bootstrap: [seed], secretFile }))))]
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('autopilot makes all five peers voters', async () => {
    await waitFor('five voters everywhere', async () => {
      const st = await Promise.all(peers.map((p) => p.status<St>()))
      return st.every((s) => s.voters.length === 5 && s.learners.length === 0) ? true : undefined
    }, 60_000)
    const st = await Promise.all(peers.map((p) => p.status<St>()))
    expect(st.filter((s) => s.role === 'leader')).toHaveLength(1)
  })

  it('survives two voters killed at once, leader included, and keeps every acknowledged write', async () => {
    for (let i = 0; i < 10; i++) await put(peers[i % 5]!, `five/${i}`, `v${i}`)
    const st = await Promise.all(peers.map((p) => p.status<St>()))
    const leader = st.findIndex((s) => s.role === 'leader')
    const victims = [leader, (leader + 1) % 5]
    for (const i of victims) peers[i]!.signal('SIGKILL')
    await Promise.all(victims.map((i) => peers[i]!.exited))
    const survivors = peers.filter((_, i) => !victims.includes(i))
    await put(survivors[0]!, 'five/after', 'ok')
    for (const p of survivors) {
      const list = await apiRequest<{ kvs: Array<{ key: string; value: string }> }>(p.api, 'GET', '/v1/kv/list?prefix=five/&consistent=1')
      expect(list.status).toBe(200)
      expect(list.body.kvs.map((kv) => kv.key).sort()).toEqual([...Array.from({ length: 10 }, (_, i) => `five/${i}`), 'five/after'].sort())
    }
  })
})
