/**
 * Values at the documented maximum (512 KiB, VALUE_MAX_BYTES) through real `shoal start`
 * processes: several clients write them concurrently through every peer, a follower is stopped
 * while writes go on and then catches up from a snapshot, no peer dies, and every value reads
 * back byte-equal from every peer. Issue 17 §1: the private network's old cipher (the `xsalsa20`
 * package's shared WebAssembly memory) crashed the leader with `Memory.grow()` within seconds
 * of such writes (and in this test within ~7 s). One writer goes through `shoal kv put KEY` with
 * the value on stdin, the only way a value over 128 KiB fits through the CLI, the others through
 * the API socket; this file also covers what the stdin path refuses.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { TestCluster, apiGet, apiRequest, waitFor, NODE, MAIN, type PeerProcess, type CliResult } from '../helpers/processes.ts'
import { VALUE_MAX_BYTES } from '../../storage/statestore/limits.ts'

interface RaftStatus { peerId: string; role: string; leader: string | null; voters: string[]; learners: string[]; commitIndex: number; appliedIndex: number }

const CLIENTS = 4
/** Writes per client in each of the three phases (all up, one follower down, all up again). */
const WRITES_PER_CLIENT_PER_PHASE = [2, 4, 2]

/** `shoal kv put ARGS --api SOCKET` with `stdin` written to its standard input (null: none). */
function putWithStdin(peer: PeerProcess, args: string[], stdin: string | Uint8Array | null, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(NODE, [MAIN, 'kv', 'put', ...args, '--api', peer.api], { stdio: [stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    // The CLI may refuse and exit before reading everything (over the limit): not our error.
    child.stdin?.on('error', () => {})
    child.stdin?.end(stdin)
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`shoal kv put ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolveRun({ code: code ?? (signal === null ? -1 : 128), stdout, stderr })
    })
  })
}

/** A value of exactly VALUE_MAX_BYTES, different for every key (so a mix-up shows), ASCII only. */
function bigValue(key: string): string {
  let x = 0x9e3779b9
  for (const c of key) x = Math.imul(x ^ c.charCodeAt(0), 0x01000193) >>> 0
  const head = `${key}|`
  const chars = new Array<string>(VALUE_MAX_BYTES - head.length)
  for (let i = 0; i < chars.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    chars[i] = String.fromCharCode(33 + (x % 94))
  }
  return head + chars.join('')
}

describe('maximum-size values on a three-peer cluster', () => {
  const cluster = new TestCluster()
  let peers: PeerProcess[] = []
  /** Peers stopped on purpose, whose exit is not a crash. */
  const stopped = new Set<PeerProcess>()
  const acked = new Map<string, string>()

  const statusOf = (p: PeerProcess) => p.status<RaftStatus>()
  /** Fails at once, with the log's end, if a peer died that the test did not stop. */
  const assertNoCrash = (): void => {
    for (const p of peers) {
      if (p.exitCode !== null && !stopped.has(p)) throw new Error(`${p.name} exited with ${p.exitCode}:\n${p.log().slice(-3000)}`)
    }
  }

  /**
   * Puts through `peer`, retrying while an election or a catch-up runs. `viaCli`: as a user
   * would, `shoal kv put KEY` with the value on stdin; otherwise straight to the API socket, as
   * a program would (a CLI process costs about a second of CPU to start, and two cores are
   * shared by the three peers and the writers).
   */
  const put = async (peer: PeerProcess, key: string, viaCli: boolean): Promise<void> => {
    const value = bigValue(key)
    // Generous: on two shared cores, 512 KiB entries and 16 MiB snapshots cost elections.
    const deadline = Date.now() + 90_000
    for (;;) {
      assertNoCrash()
      let failure: string | null = null
      if (viaCli) {
        const r = await putWithStdin(peer, [key], value)
        if (r.code !== 0) failure = `exit ${r.code}: ${r.stderr}`
        if (r.code === 2) throw new Error(`put ${key} through ${peer.name}: ${failure}`)
      } else {
        const r = await apiRequest(peer.api, 'PUT', '/v1/kv', { key, value }).catch((err: unknown) => ({ status: 0, body: String(err) }))
        if (r.status !== 200) failure = `HTTP ${r.status}: ${JSON.stringify(r.body)}`
        if (r.status === 400 || r.status === 413) throw new Error(`put ${key} through ${peer.name}: ${failure}`)
      }
      if (failure === null) break
      assertNoCrash()
      if (Date.now() > deadline) throw new Error(`put ${key} through ${peer.name} kept failing; last: ${failure}`)
      await new Promise((wake) => setTimeout(wake, 200))
    }
    acked.set(key, value)
  }

  /**
   * CLIENTS concurrent writers, each putting `count` values, writer c's j-th through
   * targets[(c + j) % n]; writer 0 uses the CLI, the others the API.
   */
  const writeConcurrently = async (phase: string, targets: PeerProcess[], count: number): Promise<void> => {
    await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
      for (let j = 0; j < count; j++) await put(targets[(c + j) % targets.length]!, `big/${phase}/c${c}/${j}`, c === 0)
    }))
  }

  beforeAll(async () => {
    // Snapshots every 10 entries, keeping 5: a follower that misses 15 or more entries (the
    // 16 writes of the second phase) is behind the leader's log and needs a snapshot.
    const extraArgs = ['--snapshot-entries', '10']
    const founder = await cluster.add({ name: 'big0', extraArgs })
    const seed = await cluster.addrOf(founder)
    const secretFile = join(founder.dataDir, 'cluster.key')
    peers = [founder, ...(await Promise.all([1, 2].map((i) => cluster.add({ name: `big${i}`, bootstrap: [seed], secretFile, extraArgs }))))]
    await waitFor('three voters on every peer', async () => {
      const st = await Promise.all(peers.map(statusOf))
      return st.every((s) => s.voters.length === 3 && s.learners.length === 0 && s.leader !== null) ? true : undefined
    }, 45_000)
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('takes concurrent maximum-size writes through every peer, a follower stopped and caught up, without a crash', async () => {
    await writeConcurrently('all-up', peers, WRITES_PER_CLIENT_PER_PHASE[0]!)

    // Kill a follower (it stays a voter); the others go on taking writes, and snapshot and
    // compact past it.
    const st = await Promise.all(peers.map(statusOf))
    const follower = peers[st.findIndex((s) => s.role === 'follower')]!
    stopped.add(follower)
    follower.signal('SIGKILL')
    await follower.exited
    await writeConcurrently('one-down', peers.filter((p) => p !== follower), WRITES_PER_CLIENT_PER_PHASE[1]!)

    // Restart it and let it catch up, then write through every peer again, it included.
    const logBefore = follower.log().length
    await follower.start()
    stopped.delete(follower)
    await waitFor(`${follower.name} to catch up`, async () => {
      assertNoCrash()
      const s = await Promise.all(peers.map(statusOf))
      return s.every((x) => x.appliedIndex >= Math.max(...s.map((y) => y.commitIndex))) ? true : undefined
    }, 90_000, 250)
    await writeConcurrently('caught-up', peers, WRITES_PER_CLIENT_PER_PHASE[2]!)

    const expectedWrites = WRITES_PER_CLIENT_PER_PHASE.reduce((a, b) => a + b, 0) * CLIENTS
    expect(acked.size).toBe(expectedWrites)
    await waitFor('every peer to apply everything the leader committed', async () => {
      assertNoCrash()
      const s = await Promise.all(peers.map(statusOf))
      const commit = Math.max(...s.map((x) => x.commitIndex))
      return s.every((x) => x.appliedIndex >= commit) ? true : undefined
    }, 45_000)
    // It was too far behind for the log: the leader sent it a snapshot of ~12 MiB of values.
    expect(follower.log().slice(logBefore)).toMatch(/installed snapshot \d+ from the leader/)
    assertNoCrash()
    for (const p of peers) expect(p.exitCode).toBeNull()
  }, 300_000)

  it('every value reads back byte-equal from every peer', async () => {
    const mismatches: string[] = []
    for (const p of peers) {
      for (const [key, value] of acked) {
        const r = await apiGet<{ kv?: { value: string } }>(p.api, `/v1/kv?key=${encodeURIComponent(key)}`)
        const got = r.kv?.value
        if (got === value) continue
        const at = got === undefined ? -1 : [...value].findIndex((c, i) => got[i] !== c)
        mismatches.push(`${p.name} ${key}: ${got === undefined ? 'missing' : `${got.length} chars, first difference at ${at}`}`)
      }
    }
    expect(mismatches).toEqual([])
  })

  it('kv put with no VALUE: an empty stdin, a value over the limit, non-UTF-8 text and a terminal are refused, the key untouched', async () => {
    const peer = peers[0]!
    const key = [...acked.keys()][0]!
    const before = acked.get(key)!

    const none = await putWithStdin(peer, [key], null)
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('stdin is empty')
    const empty = await putWithStdin(peer, [key], '')
    expect(empty.code).toBe(2)
    expect(empty.stderr).toContain('stdin is empty')
    const over = await putWithStdin(peer, [key], 'x'.repeat(VALUE_MAX_BYTES + 1))
    expect(over.code).toBe(1)
    expect(over.stderr).toContain(`over ${VALUE_MAX_BYTES} bytes`)
    const latin1 = await putWithStdin(peer, [key], Uint8Array.of(0x63, 0x61, 0x66, 0xe9))
    expect(latin1.code).toBe(1)
    expect(latin1.stderr).toContain('not valid UTF-8')
    expect((await apiGet<{ kv: { value: string } }>(peer.api, `/v1/kv?key=${encodeURIComponent(key)}`)).kv.value === before).toBe(true)

    // A terminal on stdin (script(1) gives the command one) is refused rather than waited on.
    const tty = await new Promise<CliResult>((resolveRun) => {
      const child = spawn('script', ['-qec', `${NODE} ${MAIN} kv put stdin/tty --api ${peer.api}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (out += d.toString()))
      child.on('exit', (code) => resolveRun({ code: code ?? -1, stdout: out, stderr: out }))
    })
    expect(tty.code).toBe(2)
    expect(tty.stdout).toContain('kv put needs a VALUE')

    // Bytes as they are: a trailing newline stays, as `etcdctl put` keeps it.
    const piped = await putWithStdin(peer, ['stdin/line'], 'one line\n')
    expect(piped.code).toBe(0)
    expect((await apiGet<{ kv: { value: string } }>(peer.api, '/v1/kv?key=stdin%2Fline')).kv.value).toBe('one line\n')
    // An empty value is still possible, as an argument.
    expect((await putWithStdin(peer, ['stdin/empty', ''], null)).code).toBe(0)
    expect((await apiGet<{ kv: { value: string } }>(peer.api, '/v1/kv?key=stdin%2Fempty')).kv.value).toBe('')
  })
})
