/** `shoal lock` across real peers: mutual exclusion with fencing tokens, and release after kill -9. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, runCli, waitFor, NODE, MAIN, type PeerProcess } from '../helpers/processes.ts'

describe('cluster-wide locks', () => {
  const cluster = new TestCluster()
  let peers: PeerProcess[] = []

  beforeAll(async () => {
    const founder = await cluster.add({ name: 'l0' })
    const seed = await cluster.addrOf(founder)
    const secretFile = join(founder.dataDir, 'cluster.key')
    peers = [founder, ...(await Promise.all([1, 2].map((i) => cluster.add({ name: `l${i}`, bootstrap: [seed], secretFile }))))]
    await waitFor('three voters', async () => {
      const st = await Promise.all(peers.map((p) => p.status<{ voters: string[] }>()))
      return st.every((s) => s.voters.length === 3) ? true : undefined
    }, 30_000)
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('two holders through different peers never overlap, and later holders get larger tokens', async () => {
    const log = join(cluster.root, 'critical.log')
    const script = `echo "start $SHOAL_LOCK_TOKEN" >> ${log}; sleep 1; echo "end $SHOAL_LOCK_TOKEN" >> ${log}`
    const results = await Promise.all([peers[1]!, peers[2]!, peers[0]!].map((p) => runCli(['lock', 'job', '--api', p.api, '--', 'sh', '-c', script])))
    expect(results.map((r) => r.code)).toEqual([0, 0, 0])
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, string])
    expect(lines).toHaveLength(6)
    for (let i = 0; i < 6; i += 2) {
      expect(lines[i]![0]).toBe('start')
      expect(lines[i + 1]).toEqual(['end', lines[i]![1]])
    }
    const tokens = [0, 2, 4].map((i) => Number(lines[i]![1]))
    expect([...tokens].sort((a, b) => a - b)).toEqual(tokens)
    expect(new Set(tokens).size).toBe(3)
  })

  it('a holder whose peer is killed with kill -9 loses the lock once its session expires', async () => {
    const statuses = await Promise.all(peers.map((p) => p.status<{ role: string }>()))
    const victim = peers[statuses.findIndex((s) => s.role === 'follower')]!
    const other = peers.find((p) => p !== victim)!
    const marker = join(cluster.root, 'held')
    const holder = spawn(NODE, [MAIN, 'lock', 'db', '--ttl', '2', '--api', victim.api, '--', 'sh', '-c', `echo $SHOAL_LOCK_TOKEN > ${marker}; exec sleep 60`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let holderErr = ''
    holder.stderr.on('data', (d: Buffer) => (holderErr += d.toString()))
    const holderExit = new Promise<number>((r) => holder.on('exit', (code) => r(code ?? -1)))
    await waitFor('the first holder to run its command', () => existsSync(marker))
    const firstToken = Number(readFileSync(marker, 'utf8'))

    victim.signal('SIGKILL')
    await victim.exited
    // The holder's stream to its peer broke: it stops its command and fails.
    expect(await holderExit).not.toBe(0)
    expect(holderErr).toContain('lost lock db')

    // Nobody renews the session any more; the leader revokes it after its TTL and the lock frees.
    const second = await runCli(['lock', 'db', '--api', other.api, '--', 'sh', '-c', 'echo $SHOAL_LOCK_TOKEN'], {}, 60_000)
    expect(second.code).toBe(0)
    expect(Number(second.stdout.trim())).toBeGreaterThan(firstToken)
  })
})
