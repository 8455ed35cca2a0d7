/**
 * Consensus with real `shoal start` processes on loopback: membership grows by autopilot,
 * writes on any peer, linearizable reads, leader failover, and a restarted leader (the
 * founder, which has no --bootstrap) rejoining and catching up.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { TestCluster, runCli, waitFor, NODE, MAIN, type PeerProcess } from '../helpers/processes.ts'

interface RaftStatus { peerId: string; role: string; term: number; leader: string | null; voters: string[]; learners: string[]; commitIndex: number; appliedIndex: number }

describe('a three-peer Raft cluster', () => {
  const cluster = new TestCluster()
  let peers: PeerProcess[] = []
  const acked = new Map<string, string>()

  const kv = (peer: PeerProcess, ...args: string[]) => runCli(['kv', ...args, '--api', peer.api])
  /** Puts through `peer`, retrying while an election runs; records the write once acknowledged. */
  const put = async (peer: PeerProcess, key: string, value: string): Promise<void> => {
    await waitFor(`put ${key} through ${peer.name}`, async () => {
      const r = await kv(peer, 'put', key, value)
      return r.code === 0 ? true : undefined
    }, 30_000, 200)
    acked.set(key, value)
  }
  const statusOf = (p: PeerProcess) => p.status<RaftStatus>()

  beforeAll(async () => {
    const founder = await cluster.add({ name: 'r0' })
    const seed = await cluster.addrOf(founder)
    const secretFile = join(founder.dataDir, 'cluster.key')
    peers = [founder, ...(await Promise.all([1, 2].map((i) => cluster.add({ name: `r${i}`, bootstrap: [seed], secretFile }))))]
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('autopilot makes every joiner a voter; all agree on one leader', async () => {
    const ids = await Promise.all(peers.map(async (p) => (await statusOf(p)).peerId))
    await waitFor('three voters on every peer', async () => {
      const st = await Promise.all(peers.map(statusOf))
      return st.every((s) => s.voters.length === 3 && s.learners.length === 0) ? true : undefined
    }, 30_000)
    const st = await Promise.all(peers.map(statusOf))
    expect([...st[0]!.voters].sort()).toEqual([...ids].sort())
    const leaders = st.filter((s) => s.role === 'leader')
    expect(leaders).toHaveLength(1)
    expect(st.every((s) => s.leader === leaders[0]!.peerId)).toBe(true)
    expect(st.filter((s) => s.role === 'follower')).toHaveLength(2)
  })

  it('a put on a follower is read back with --consistent on another peer', async () => {
    const st = await Promise.all(peers.map(statusOf))
    const followers = peers.filter((_, i) => st[i]!.role === 'follower')
    await put(followers[0]!, 'config/x', 'from-a-follower')
    const r = await kv(followers[1]!, 'get', 'config/x', '--consistent')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('from-a-follower\n')
    const missing = await kv(followers[1]!, 'get', 'config/none')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('not found')
  })

  it('kill -9 of the leader: a new leader is elected and accepts writes; a watch sees every write once', async () => {
    let st = await Promise.all(peers.map(statusOf))
    const watchHost = peers[st.findIndex((s) => s.role === 'follower')]!
    const watcher = spawn(NODE, [MAIN, 'kv', 'watch', '--revision', '0', '--api', watchHost.api], { stdio: ['ignore', 'pipe', 'pipe'] })
    let watched = ''
    watcher.stdout.on('data', (d: Buffer) => (watched += d.toString()))
    for (let i = 0; i < 5; i++) await put(peers[i % 3]!, `before/${i}`, `v${i}`)
    st = await Promise.all(peers.map(statusOf))
    const leaderIndex = st.findIndex((s) => s.role === 'leader')
    const oldLeader = peers[leaderIndex]!
    const oldTerm = st[leaderIndex]!.term
    oldLeader.signal('SIGKILL')
    await oldLeader.exited
    const survivors = peers.filter((p) => p !== oldLeader)
    await waitFor('a new leader among the survivors', async () => {
      const s = await Promise.all(survivors.map(statusOf))
      return s.some((x) => x.role === 'leader' && x.term > oldTerm) ? true : undefined
    }, 30_000)
    await put(survivors[0]!, 'after/failover', 'yes')
    const r = await kv(survivors[1]!, 'get', 'after/failover', '--consistent')
    expect(r.stdout).toBe('yes\n')

    try {
      await waitFor('the watch to print the write made after the failover', () => (watched.includes('"key":"after/failover"') ? true : undefined))
    } finally {
      watcher.kill('SIGTERM')
    }
    const events = watched.trim().split('\n').map((l) => JSON.parse(l) as { type: string; key: string; value: string; revision: number })
    // Every acknowledged kv write exactly once, in revision order (hosts' own records take
    // revisions too, so kv revisions are increasing but not consecutive).
    expect(events.map((e) => e.revision)).toEqual([...new Set(events.map((e) => e.revision))].sort((a, b) => a - b))
    expect(events.map((e) => [e.key, e.value])).toEqual([...acked.entries()])
  })

  it('the old leader restarts, rejoins on its own and holds every acknowledged write', async () => {
    const st = await Promise.all(peers.map((p) => (p.exitCode === null ? statusOf(p) : null)))
    const restarted = peers[st.findIndex((s) => s === null)]!
    await restarted.start()
    await waitFor(`${restarted.name} to apply every acknowledged write`, async () => {
      for (const [key, value] of acked) {
        const r = await kv(restarted, 'get', key)
        if (r.stdout !== `${value}\n`) return undefined
      }
      return true
    }, 30_000, 500)
    const s = await statusOf(restarted)
    expect(s.role).toBe('follower')
    const list = JSON.parse((await kv(restarted, 'list', '', '--json')).stdout) as Array<{ key: string; value: string }>
    expect(Object.fromEntries(list.map((kv) => [kv.key, kv.value]))).toEqual(Object.fromEntries(acked))
  })
})
