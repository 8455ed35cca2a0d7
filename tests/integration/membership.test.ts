/**
 * Real `shoal start` processes on loopback: bootstrap, liveness, crash detection, graceful
 * leave, restart with the same identity, and refusal of a peer without the cluster secret.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, waitFor, type PeerProcess } from '../helpers/processes.ts'
import { newClusterSecret } from '../../node/data-dir.ts'

describe('a five-peer cluster on loopback', () => {
  const cluster = new TestCluster()
  let peers: PeerProcess[] = []
  let ids: string[] = []

  /** Waits until every running peer in `observers` reports `peerId` in `state`. */
  const everyoneSees = (observers: PeerProcess[], peerId: string, state: string, timeoutMs = 20_000): Promise<true> =>
    waitFor(`${observers.map((o) => o.name).join(',')} to see ${peerId} ${state}`, async () => {
      const states = await Promise.all(observers.map((o) => o.stateOf(peerId)))
      return states.every((s) => s === state) ? true : undefined
    }, timeoutMs)

  beforeAll(async () => {
    const founder = await cluster.add({ name: 'p0' })
    const seed = await cluster.addrOf(founder)
    const secretFile = join(founder.dataDir, 'cluster.key')
    const joiners = await Promise.all([1, 2, 3, 4].map((i) => cluster.add({ name: `p${i}`, bootstrap: [seed], secretFile })))
    peers = [founder, ...joiners]
    ids = await Promise.all(peers.map(async (p) => (await p.status()).peerId))
  })

  afterAll(async () => {
    await cluster.cleanup()
  })

  it('every peer sees all five peers alive, with names and addresses', async () => {
    await waitFor('all peers to see 5 alive members', async () => {
      const views = await Promise.all(peers.map((p) => p.peers()))
      return views.every((v) => v.length === 5 && v.every((m) => m.state === 'alive')) ? true : undefined
    })
    const view = await peers[2]!.peers()
    expect(view.map((m) => m.name).sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4'])
    expect(view.map((m) => m.peerId).sort()).toEqual([...ids].sort())
    expect(view.filter((m) => m.self).map((m) => m.peerId)).toEqual([ids[2]])
    const status = await peers[1]!.status<{ members: Record<string, number>; role: string; runtime: string; addrs: string[] }>()
    // Liveness was the condition waited for above; here only that status counts the same members.
    expect(Object.values(status.members).reduce((a, b) => a + b, 0)).toBe(5)
    expect(status.runtime).toBe('none')
    expect(status.addrs.every((a) => a.endsWith(`/p2p/${ids[1]}`))).toBe(true)
  })

  it('kill -9 of a peer: the others report it dead', async () => {
    const victim = peers[4]!
    victim.signal('SIGKILL')
    await victim.exited
    await everyoneSees(peers.slice(0, 4), ids[4]!, 'dead')
  })

  it('SIGTERM of a peer: it leaves, the others report it left (not dead), its socket is gone', async () => {
    const leaver = peers[3]!
    leaver.signal('SIGTERM')
    expect(await leaver.exited).toBe(0)
    await everyoneSees(peers.slice(0, 3), ids[3]!, 'left', 5_000)
    expect(leaver.log()).toContain('leaving the cluster')
    const { existsSync } = await import('node:fs')
    expect(existsSync(leaver.api)).toBe(false)
  })

  it('the killed peer restarts on its data dir with the same peer id and is alive again', async () => {
    const victim = peers[4]!
    await victim.start()
    expect((await victim.status()).peerId).toBe(ids[4])
    await everyoneSees(peers.slice(0, 3), ids[4]!, 'alive')
    await waitFor('the restarted peer to see the others alive', async () => {
      const view = await victim.peers()
      return ids.slice(0, 3).every((id) => view.find((m) => m.peerId === id)?.state === 'alive') ? true : undefined
    })
  })

  it('a peer holding another secret never becomes a member, and its attempts are counted', async () => {
    const wrongSecret = join(cluster.root, 'wrong.key')
    writeFileSync(wrongSecret, newClusterSecret())
    const before = (await peers[0]!.status<{ security: { rejectedInbound: number } }>()).security.rejectedInbound
    const intruder = await cluster.add({ name: 'intruder', bootstrap: [await cluster.addrOf(peers[0]!)], secretFile: wrongSecret })
    const intruderId = (await intruder.status()).peerId
    await waitFor('the founder to count refused handshakes', async () => {
      const s = await peers[0]!.status<{ security: { rejectedInbound: number } }>()
      return s.security.rejectedInbound > before ? true : undefined
    })
    // Give the intruder several of its join retries before looking.
    await new Promise((r) => setTimeout(r, 3000))
    for (const p of peers.slice(0, 3)) {
      expect((await p.peers()).map((m) => m.peerId)).not.toContain(intruderId)
    }
    expect((await intruder.peers()).length).toBe(1)
  })
})
