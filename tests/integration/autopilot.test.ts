/**
 * Raft membership under autopilot with real processes: a peer joining after the log was
 * compacted gets a snapshot and then the tail; a voter killed with kill -9 is replaced by
 * that learner and removed after the grace period; voters leaving one by one keep a quorum.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { join } from 'node:path'
import { existsSync } from 'node:fs'
import { TestCluster, runCli, waitFor, apiRequest, type PeerProcess } from '../helpers/processes.ts'

interface St { peerId: string; role: string; voters: string[]; learners: string[] }
const FLAGS = ['--voters', '3', '--dead-grace', '2', '--snapshot-entries', '20']

describe('autopilot and snapshots', () => {
  const cluster = new TestCluster()
  let peers: PeerProcess[] = []
  let seed = ''
  let secretFile = ''

  // Bulk writes go straight to the API; the CLI's own path is tested elsewhere.
  const put = (peer: PeerProcess, key: string, value: string) =>
    waitFor(`put ${key}`, async () => ((await apiRequest(peer.api, 'PUT', '/v1/kv', { key, value })).status === 200 ? true : undefined), 30_000, 200)

  beforeAll(async () => {
    const founder = await cluster.add({ name: 'a0', extraArgs: FLAGS })
    seed = await cluster.addrOf(founder)
    secretFile = join(founder.dataDir, 'cluster.key')
    peers = [founder, ...(await Promise.all([1, 2].map((i) => cluster.add({ name: `a${i}`, bootstrap: [seed], secretFile, extraArgs: FLAGS }))))]
    await waitFor('three voters', async () => {
      const st = await Promise.all(peers.map((p) => p.status<St>()))
      return st.every((s) => s.voters.length === 3) ? true : undefined
    }, 30_000)
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('a peer joining after compaction installs a snapshot, then receives the tail of the log', async () => {
    for (let i = 0; i < 60; i++) await put(peers[i % 3]!, `bulk/${String(i).padStart(2, '0')}`, `v${i}`)
    const late = await cluster.add({ name: 'a3', bootstrap: [seed], secretFile, extraArgs: FLAGS })
    peers.push(late)
    const lateId = (await late.status<St>()).peerId
    await waitFor('the late peer to be a learner', async () => ((await peers[0]!.status<St>()).learners.includes(lateId) ? true : undefined), 30_000)
    for (let i = 60; i < 65; i++) await put(peers[0]!, `bulk/${i}`, `v${i}`)
    await waitFor('the late peer to hold all 65 keys', async () => {
      const r = await runCli(['kv', 'list', 'bulk/', '--json', '--api', late.api])
      return r.code === 0 && (JSON.parse(r.stdout) as unknown[]).length === 65 ? true : undefined
    }, 30_000, 300)
    const installed = /installed snapshot (\d+) from the leader/.exec(late.log())
    expect(installed, 'the late peer installed a snapshot').not.toBeNull()
    // Past the founding snapshot (index 1): the log it needed had been compacted away.
    expect(Number(installed![1])).toBeGreaterThan(20)

    // Restarted, it rebuilds its state from the snapshot in its LevelDB state store plus its log.
    late.signal('SIGKILL')
    await late.exited
    expect(existsSync(join(late.dataDir, 'state', 'CURRENT')), 'a LevelDB state store in <data-dir>/state').toBe(true)
    await late.start()
    const restored = [...late.log().matchAll(/Raft log: snapshot (\d+), entries/g)].at(-1)
    expect(Number(restored?.[1]), 'restart began from a snapshot, not from the founding state').toBeGreaterThan(20)
    const r = await runCli(['kv', 'list', 'bulk/', '--json', '--api', late.api])
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(65)
  })

  it('a voter killed with kill -9 is replaced by the caught-up learner, then removed', async () => {
    const st = await Promise.all(peers.map((p) => p.status<St>()))
    const learner = peers.find((_, i) => st[0]!.learners.includes(st[i]!.peerId))!
    const learnerId = (await learner.status<St>()).peerId
    const victimIndex = st.findIndex((s) => s.role === 'follower' && st[0]!.voters.includes(s.peerId))
    const victim = peers[victimIndex]!
    const victimId = st[victimIndex]!.peerId
    victim.signal('SIGKILL')
    await victim.exited
    const survivors = peers.filter((p) => p !== victim)
    await waitFor('the learner promoted and the dead voter removed', async () => {
      const s = await survivors[0]!.status<St>()
      return s.voters.length === 3 && s.voters.includes(learnerId) && !s.voters.includes(victimId) ? true : undefined
    }, 60_000)
    const s = await survivors[0]!.status<St>()
    expect(s.learners).not.toContain(victimId)
    // The cluster still takes writes with its new voter set.
    await put(survivors[1]!, 'after/replacement', 'ok')
  })

  // With two voters, removing one commits only with both: a voter that stopped before its
  // removal committed would leave the other without a quorum for good (found by the simulator).
  it('voters stopping gracefully one by one, the leader last: the one left still commits alone', async () => {
    const alive = peers.filter((p) => p.exitCode === null)
    const views = await Promise.all(alive.map((p) => p.status<St>()))
    const ids = new Map(alive.map((p, i) => [p, views[i]!.peerId]))
    const voters = () => alive.filter((p) => p.exitCode === null && views[0]!.voters.includes(ids.get(p)!))
    expect(voters()).toHaveLength(3)
    const leaveNext = async (leaving: PeerProcess) => {
      leaving.signal('SIGTERM')
      expect(await leaving.exited).toBe(0)
      expect(leaving.log()).toMatch(/removed from the voters; stopping/)
    }
    const roles = new Map(await Promise.all(voters().map(async (p) => [p, (await p.status<St>()).role] as const)))
    const follower = voters().find((p) => roles.get(p) === 'follower')!
    await leaveNext(follower)
    const rest = voters().filter((p) => p.exitCode === null)
    expect(rest).toHaveLength(2)
    const leader = await waitFor('a leader among the two', async () => {
      const st = await Promise.all(rest.map((p) => p.status<St>()))
      const i = st.findIndex((s) => s.role === 'leader' && s.voters.length === 2)
      return i >= 0 ? rest[i] : undefined
    }, 30_000)
    await leaveNext(leader)
    const last = rest.find((p) => p !== leader)!
    await waitFor('the last voter alone in the configuration', async () => {
      const s = await last.status<St>()
      return s.voters.length === 1 && s.voters[0] === ids.get(last) ? true : undefined
    }, 30_000)
    await put(last, 'after/leaves', 'ok')
    const r = await runCli(['kv', 'get', 'after/leaves', '--consistent', '--api', last.api])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('ok\n')
  })
})
