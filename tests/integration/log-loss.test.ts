/**
 * A Raft log cut short in the middle while its peer was down — what a disk whose write-back
 * cache lost synced writes leaves behind — is not a torn last write. Real `shoal start`
 * processes: the peer must say what happened, must not vote until the leader has copied the
 * lost entries back (unit-tested in raft-log-loss.test.ts), and must end with every key. A
 * sole voter has nobody to copy from: it refuses to start and says what to do.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { readdirSync, statSync, truncateSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, apiRequest, waitFor, type PeerProcess } from '../helpers/processes.ts'

interface RaftStatus { peerId: string; role: string; voters: string[]; learners: string[]; commitIndex: number; appliedIndex: number; repairIndex: number }

const KEYS = 400

/** The segment being appended to in a peer's Raft log directory. */
function activeSegment(peer: PeerProcess): string {
  const dir = join(peer.dataDir, 'raft')
  const name = readdirSync(dir).filter((n) => /^wal-\d+\.log$/.test(n)).sort().at(-1)
  if (name === undefined) throw new Error(`no Raft segment in ${dir}`)
  return join(dir, name)
}

/** Writes KEYS keys through `peer`, a few at a time, each retried while an election runs. */
async function writeKeys(peer: PeerProcess, prefix: string): Promise<Map<string, string>> {
  const written = new Map<string, string>()
  const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}/${String(i).padStart(4, '0')}`)
  for (let at = 0; at < keys.length; at += 8) {
    await Promise.all(keys.slice(at, at + 8).map(async (key) => {
      const value = `value of ${key}`
      await waitFor(`put ${key}`, async () => (await apiRequest(peer.api, 'PUT', '/v1/kv', { key, value })).status === 200 || undefined, 30_000, 100)
      written.set(key, value)
    }))
  }
  return written
}

/** Keys of `want` that `peer` does not serve (locally, no --consistent) with the written value. */
async function missingOn(peer: PeerProcess, want: Map<string, string>): Promise<string[]> {
  const missing: string[] = []
  for (const [key, value] of want) {
    const r = await apiRequest<{ kv?: { value: string } }>(peer.api, 'GET', `/v1/kv?key=${encodeURIComponent(key)}`)
    if (r.status !== 200 || r.body.kv?.value !== value) missing.push(key)
  }
  return missing
}

/** Stops `peer` and cuts its active segment to `fraction` of its length: most of it is lost. */
async function stopAndTruncate(peer: PeerProcess, fraction: number): Promise<{ before: number; after: number }> {
  peer.signal('SIGTERM')
  await peer.exited
  const seg = activeSegment(peer)
  const before = statSync(seg).size
  const after = Math.floor(before * fraction) + 5 // + 5: inside a record, as a lost cache leaves it
  truncateSync(seg, after)
  return { before, after }
}

describe('a Raft log truncated in the middle', () => {
  const cluster = new TestCluster()
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('a follower restarted on it says so, is repaired by the leader and ends with every key', async () => {
    const founder = await cluster.add({ name: 'l0' })
    const seed = await cluster.addrOf(founder)
    const secretFile = join(founder.dataDir, 'cluster.key')
    const peers = [founder, ...(await Promise.all([1, 2].map((i) => cluster.add({ name: `l${i}`, bootstrap: [seed], secretFile }))))]
    await waitFor('three voters', async () => {
      const st = await Promise.all(peers.map((p) => p.status<RaftStatus>()))
      return st.every((s) => s.voters.length === 3 && s.learners.length === 0) || undefined
    }, 60_000)

    const written = await writeKeys(founder, 'k')
    const st = await Promise.all(peers.map((p) => p.status<RaftStatus>()))
    const follower = peers[st.findIndex((s) => s.role === 'follower')]!
    const leader = peers[st.findIndex((s) => s.role === 'leader')]!
    const commit = (await leader.status<RaftStatus>()).commitIndex
    // The follower has acknowledged (and applied) everything before its disk loses it.
    await waitFor(`${follower.name} to apply ${commit}`, async () => (await follower.status<RaftStatus>()).appliedIndex >= commit || undefined)

    const cut = await stopAndTruncate(follower, 0.3)
    expect(cut.after).toBeLessThan(cut.before / 2)
    await follower.start()

    await waitFor(`${follower.name} to say its log lost acknowledged entries`, () => follower.log().includes('Raft log lost entries this peer had acknowledged') || undefined, 10_000)
    expect(follower.log()).not.toContain('it was never acknowledged')
    // The leader resends what was lost (it no longer takes the follower's rejections for stale ones).
    await waitFor(`${follower.name} to serve every key again`, async () => {
      const missing = await missingOn(follower, written)
      return missing.length === 0 || undefined
    }, 60_000, 500)
    await waitFor(`${follower.name} to vote again once repaired`, () => follower.log().includes('it votes again') || undefined, 10_000)
    // Its graceful stop took it out of the voters; autopilot promotes it again once caught up.
    const after = await waitFor('three voters again', async () => {
      const st = await follower.status<RaftStatus>()
      return st.voters.length === 3 ? st : undefined
    }, 30_000)
    expect(after.repairIndex).toBe(0)
  }, 240_000)

  it('a sole voter refuses to start on it, says what to do, and starts on what is left once told to', async () => {
    const solo = await cluster.add({ name: 's0' })
    const written = await writeKeys(solo, 's')
    await stopAndTruncate(solo, 0.3)

    await expect(solo.start()).rejects.toThrow(/exited with/)
    expect(solo.exitCode).not.toBe(0)
    const log = solo.log()
    expect(log).toContain('lost committed entries')
    expect(log).toContain('restore the data dir from a backup')
    expect(log).not.toContain('it was never acknowledged')

    // The documented way out when there is no backup: accept the loss explicitly.
    rmSync(join(solo.dataDir, 'raft', 'tail.mark'))
    await solo.start()
    await waitFor('the sole voter to lead again', async () => (await solo.status<RaftStatus>()).role === 'leader' || undefined, 20_000)
    const missing = await missingOn(solo, written)
    expect(missing.length).toBeGreaterThan(0) // what the disk lost is gone: nothing pretends otherwise
    expect(missing.length).toBeLessThan(KEYS)
  }, 180_000)
})
