/**
 * `shoal lock` across real peers: mutual exclusion with fencing tokens; a holder whose peer is
 * frozen (SIGSTOP, as a long GC pause or a hung VM) stops its command before the next holder
 * starts, whether that peer follows or leads; every held lease stays renewed however many;
 * fenced writes refuse a stale holder; lock errors are HTTP statuses; release after kill -9.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { TestCluster, runCli, waitFor, apiRequest, NODE, MAIN, type PeerProcess } from '../helpers/processes.ts'

/** The shell command line that runs the CLI under test, for commands run under a lock. */
const SHOAL = `${NODE} ${MAIN}`

/** Lines of `file`, or none yet. */
function linesOf(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '') : []
}

/** Opens a raw lock stream on the API; `lines` collects what the peer reports. */
function openLockStream(socket: string, name: string, ttlSeconds: number): Promise<{ res: IncomingMessage; status: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'POST', path: `/v1/locks?name=${name}&ttl=${ttlSeconds}` }, (res) => {
      const lines: string[] = []
      const rl = createInterface({ input: res })
      rl.on('line', (l) => lines.push(l))
      res.on('error', () => undefined)
      resolve({ res, status: res.statusCode ?? 0, lines })
    })
    req.on('error', reject)
    req.end()
  })
}

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

  it('two holders through different peers never overlap, and later holders get larger tokens', { timeout: 120_000 }, async () => {
    const log = join(cluster.root, 'critical.log')
    const script = `echo "start $SHOAL_LOCK_TOKEN" >> ${log}; sleep 1; echo "end $SHOAL_LOCK_TOKEN" >> ${log}`
    // Generous timeouts: on a loaded machine a CLI alone can take seconds to start.
    const results = await Promise.all([peers[1]!, peers[2]!, peers[0]!].map((p) => runCli(['lock', 'job', '--api', p.api, '--', 'sh', '-c', script], {}, 90_000)))
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

  /** The peer with `role`, and another one. */
  async function pick(role: 'leader' | 'follower'): Promise<[PeerProcess, PeerProcess]> {
    const statuses = await Promise.all(peers.map((p) => p.status<{ role: string }>()))
    const victim = peers[statuses.findIndex((s) => s.role === role)]
    if (victim === undefined) throw new Error(`no ${role} among ${statuses.map((s) => s.role).join(', ')}`)
    return [victim, peers.find((p) => p !== victim)!]
  }

  /** Waits until every peer answers again and they agree on one leader of three voters. */
  async function healthy(): Promise<void> {
    await waitFor('one leader and three voters again', async () => {
      const st = await Promise.all(peers.map((p) => p.status<{ role: string; voters: string[]; leader: string | null }>()))
      const leaders = new Set(st.map((s) => s.leader))
      return st.filter((s) => s.role === 'leader').length === 1 && leaders.size === 1 && st.every((s) => s.voters.length === 3) ? true : undefined
    }, 30_000)
  }

  // The repro of issue 11: the first holder's peer is frozen. Its command appends "A" lines to a
  // file in a loop; the second holder's command appends one "B" line. Lines appended to one file
  // are ordered in real time, so an "A" line after the "B" line means two holders ran at once.
  for (const role of ['follower', 'leader'] as const) {
    it(`a holder whose peer (the ${role}) is frozen stops its command before the next holder starts`, async () => {
      const [victim, other] = await pick(role)
      const lock = `frozen-${role}`
      const file = join(cluster.root, `${lock}.log`)
      const loop = `trap 'echo "A stop" >> ${file}; exit 143' TERM; while :; do echo "A $SHOAL_LOCK_TOKEN" >> ${file}; sleep 0.05; done`
      // Its own process group, so that a failure here can kill the CLI and its command together.
      const first = spawn(NODE, [MAIN, 'lock', lock, '--ttl', '3', '--api', victim.api, '--', 'sh', '-c', loop], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
      let firstErr = ''
      first.stderr.on('data', (d: Buffer) => (firstErr += d.toString()))
      const firstExit = new Promise<number>((r) => first.on('exit', (code, signal) => r(code ?? (signal === null ? -1 : 128))))
      try {
        await waitFor('the first holder to run its command', () => linesOf(file).length >= 3, 60_000)
        victim.signal('SIGSTOP')
        const second = await runCli(['lock', lock, '--ttl', '3', '--api', other.api, '--', 'sh', '-c', `echo "B $SHOAL_LOCK_TOKEN" >> ${file}`], {}, 90_000)
        expect(second.code).toBe(0)
        const lines = linesOf(file)
        const b = lines.findIndex((l) => l.startsWith('B '))
        expect(b).toBeGreaterThan(0)
        // Nothing of the first holder after the second one started.
        expect(lines.slice(b + 1)).toEqual([])
        const tokenA = Number(lines[0]!.split(' ')[1])
        expect(Number(lines[b]!.split(' ')[1])).toBeGreaterThan(tokenA)
        // The first command already stopped: the first `shoal lock` says why and fails.
        expect(await firstExit).not.toBe(0)
        expect(firstErr).toContain(`lost lock ${lock}`)
        expect(firstErr).toContain('no renewal was confirmed')
      } finally {
        victim.signal('SIGCONT')
        try {
          process.kill(-first.pid!, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      await healthy()
    }, 180_000)
  }

  it('keeps every held lease alive, beyond the 1,024 one renewal request carries', async () => {
    const [follower] = await pick('follower')
    const count = 1100
    const ttlSeconds = 3
    const streams: Awaited<ReturnType<typeof openLockStream>>[] = []
    try {
      for (let i = 0; i < count; i += 100) {
        streams.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => openLockStream(follower.api, `many-${i + j}`, ttlSeconds)))))
      }
      expect(streams.map((s) => s.status).filter((s) => s !== 200)).toEqual([])
      await waitFor('every lock to be acquired', () => streams.every((s) => s.lines.some((l) => l.includes('"acquired"'))), 120_000)
      // Several TTLs: any lease left unrenewed expires, its lock is revoked and its stream says "lost".
      await new Promise((r) => setTimeout(r, 4 * ttlSeconds * 1000))
      const lost = streams.filter((s) => s.lines.some((l) => l.includes('"lost"')) || s.res.closed)
      // On failure, show how many and why (the peer's "lost" lines).
      expect({ lost: lost.length, why: lost.slice(0, 3).map((s) => s.lines.slice(-1)[0] ?? 'stream closed') }).toEqual({ lost: 0, why: [] })
    } finally {
      for (const s of streams) s.res.destroy()
    }
  }, 300_000)

  it('a fenced write is refused once a newer holder has the lock, or nobody holds it', async () => {
    const first = await runCli(['lock', 'fence', '--api', peers[1]!.api, '--', 'sh', '-c', `${SHOAL} kv put fenced one --api ${peers[1]!.api} --fence fence:$SHOAL_LOCK_TOKEN && echo $SHOAL_LOCK_TOKEN`], {}, 90_000)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    const stale = Number(first.stdout.trim().split('\n').pop())
    // The next holder writes with its token; a write with the first holder's token is refused.
    const script = `${SHOAL} kv put fenced two --api ${peers[2]!.api} --fence fence:${stale}; echo "stale=$?"; ${SHOAL} kv put fenced three --api ${peers[2]!.api} --fence fence:$SHOAL_LOCK_TOKEN && echo "token=$SHOAL_LOCK_TOKEN"`
    const second = await runCli(['lock', 'fence', '--api', peers[2]!.api, '--', 'sh', '-c', script], {}, 90_000)
    expect(second.code).toBe(0)
    expect(second.stdout).toContain('stale=1')
    expect(second.stderr).toContain(`a newer holder has lock fence`)
    const current = Number(/token=(\d+)/.exec(second.stdout)?.[1])
    expect(current).toBeGreaterThan(stale)
    expect((await runCli(['kv', 'get', 'fenced', '--api', peers[0]!.api, '--consistent'])).stdout.trim()).toBe('three')
    // Released: even the last holder's token is refused now.
    const after = await runCli(['kv', 'put', 'fenced', 'four', '--api', peers[0]!.api, '--fence', `fence:${current}`])
    expect(after.code).toBe(1)
    expect(after.stderr).toContain('lock fence is not held')
    // The API: 409 with the reason; a malformed fence is a 400; a malformed flag a usage error.
    const api = await apiRequest<{ error: string }>(peers[0]!.api, 'PUT', '/v1/kv', { key: 'fenced', value: 'five', fence: { lock: 'fence', token: stale } })
    expect(api.status).toBe(409)
    expect(api.body.error).toContain('lock fence is not held')
    expect((await apiRequest(peers[0]!.api, 'PUT', '/v1/kv', { key: 'fenced', value: 'six', fence: { lock: 'a/b', token: 1 } })).status).toBe(400)
    expect((await runCli(['kv', 'put', 'fenced', 'seven', '--api', peers[0]!.api, '--fence', 'fence'])).code).toBe(2)
    expect((await runCli(['kv', 'get', 'fenced', '--api', peers[0]!.api, '--consistent'])).stdout.trim()).toBe('three')
  }, 180_000)

  it('lock errors are HTTP error statuses, and the CLI prints them', async () => {
    const badName = await apiRequest<{ error: string }>(peers[0]!.api, 'POST', '/v1/locks?name=a%2Fb&ttl=3')
    expect(badName.status).toBe(400)
    expect(badName.body.error).toContain('lock name')
    const badTtl = await apiRequest<{ error: string }>(peers[0]!.api, 'POST', '/v1/locks?name=ok&ttl=0.2')
    expect(badTtl.status).toBe(400)
    expect(badTtl.body.error).toContain('ttl must be')
    const cli = await runCli(['lock', 'a/b', '--api', peers[0]!.api, '--', 'true'])
    expect(cli.code).toBe(1)
    expect(cli.stderr).toContain("lock name \"a/b\"")
    const renew = await apiRequest<{ error: string }>(peers[0]!.api, 'POST', '/v1/leases/keepalive?id=12345')
    expect(renew.status).toBe(404)
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
