/**
 * A peer that cannot start exits, says why and what to do, releases its data dir, and never
 * shows up alive to the cluster: a corrupt Raft log, a snapshot store gone missing and a
 * full disk, each with a real `shoal start` process. Before, start-up failed with a message
 * but the process stayed up (libp2p and gossip kept it alive), holding its lock, looking
 * alive and a voter to the others, so autopilot never replaced it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync, rmSync, statSync, mkdirSync, openSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, runCli, waitFor, apiRequest, type PeerProcess, type CliResult } from '../helpers/processes.ts'

/** A start that has not exited by then never would: the old code stayed up for good. */
const FAILED_START_EXIT_MS = 45_000

/** Puts through the API (not the CLI: a process per write is slow on a loaded machine). */
async function put(peer: PeerProcess, key: string, value: string): Promise<void> {
  const r = await apiRequest(peer.api, 'PUT', '/v1/kv', { key, value })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
}

/** Runs `shoal start` with a peer's own arguments to its end; fails if it does not exit. */
function startToExit(peer: PeerProcess, extraArgs: string[] = []): Promise<CliResult> {
  return runCli([
    'start', '--data-dir', peer.dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--name', peer.name,
    '--dns', 'off', '--docker', 'none',
    ...(peer.options.bootstrap ?? []).flatMap((b) => ['--bootstrap', b]),
    ...(peer.options.extraArgs ?? []), ...extraArgs,
  ], {}, FAILED_START_EXIT_MS)
}

/** What every failed start must look like: a non-zero exit, one clear reason, no "bug". */
function expectCleanFailure(r: CliResult, reason: string | RegExp): void {
  expect(r.code, r.stderr).not.toBe(0)
  expect(r.code, r.stderr).not.toBe(70)
  expect(r.stderr).toMatch(reason)
  expect(r.stderr).not.toContain('This is a bug')
  expect(r.stderr).not.toMatch(/^\s+at /m) // no stack trace
}

describe('a peer that fails to start', () => {
  const cluster = new TestCluster()
  let founder: PeerProcess
  let joiner: PeerProcess

  beforeAll(async () => {
    founder = await cluster.add({ name: 'f0' })
    const seed = await cluster.addrOf(founder)
    joiner = await cluster.add({ name: 'f1', bootstrap: [seed], secretFile: join(founder.dataDir, 'cluster.key') })
    for (let i = 0; i < 40; i++) await put(founder, `k/${i}`, `value-${i}`)
    const commit = (await founder.status<{ peerId: string; addrs: string[]; commitIndex: number }>()).commitIndex
    await waitFor('the joiner to apply every write', async () => (await joiner.status<{ peerId: string; addrs: string[]; appliedIndex: number }>()).appliedIndex >= commit)
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('with a corrupt Raft log exits, releases its lock, and is never seen alive', async () => {
    const joinerId = (await joiner.status()).peerId
    joiner.signal('SIGTERM')
    await joiner.exited
    await waitFor('the founder to see the joiner leave', async () => (await founder.stateOf(joinerId)) === 'left')
    const founderLogBefore = founder.log().length

    // Damage a record in the middle of the log: not a torn tail a crash could leave.
    const raftDir = join(joiner.dataDir, 'raft')
    const segment = join(raftDir, readdirSync(raftDir).filter((f) => f.startsWith('wal-')).sort()[0]!)
    const bytes = readFileSync(segment)
    expect(bytes.byteLength).toBeGreaterThan(1000)
    const at = Math.floor(bytes.byteLength / 2)
    bytes[at] = bytes[at]! ^ 0xff
    writeFileSync(segment, bytes)

    const first = await startToExit(joiner)
    expectCleanFailure(first, /Raft log|restore the data dir/)
    // The lock was released: a second attempt fails the same way, not as "in use".
    const second = await startToExit(joiner)
    expectCleanFailure(second, /Raft log|restore the data dir/)
    expect(second.stderr).not.toContain('in use by another shoal process')
    expect(statSync(joiner.dataDir).isDirectory()).toBe(true)

    // It never joined: the founder still has it as left and never logged it alive again.
    expect(await founder.stateOf(joinerId)).toBe('left')
    expect(founder.log().slice(founderLogBefore)).not.toMatch(/is alive \(was left\)/)
  })

  it('with its snapshot store gone exits and says what to do', async () => {
    const solo = await cluster.add({ name: 'f2', extraArgs: ['--snapshot-entries', '10'] })
    for (let i = 0; i < 30; i++) await put(solo, `s/${i}`, 'x')
    await waitFor('a snapshot to be taken', () => solo.log().includes('snapshot'))
    solo.signal('SIGTERM')
    await solo.exited
    rmSync(join(solo.dataDir, 'state'), { recursive: true, force: true })
    expectCleanFailure(await startToExit(solo), /snapshot/)
  })

  it('on a full disk exits with what to do, and starts with nothing lost once there is room', async () => {
    const mount = join(cluster.root, 'small-disk')
    mkdirSync(mount)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mount])
    try {
      const dataDir = join(mount, 'data')
      const peer = await cluster.add({ name: 'f3', dataDir })
      for (let i = 0; i < 20; i++) await put(peer, `d/${i}`, `v${i}`)
      peer.signal('SIGTERM')
      await peer.exited

      // Fill the disk to the last byte.
      const filler = join(mount, 'filler')
      const fd = openSync(filler, 'w')
      const chunk = Buffer.alloc(64 * 1024, 1)
      try {
        for (;;) writeSync(fd, chunk)
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC')
      }
      try {
        for (;;) writeSync(fd, chunk, 0, 1)
      } catch {
        // Full to the byte.
      } finally {
        closeSync(fd)
      }

      expectCleanFailure(await startToExit(peer), /disk is full/)

      rmSync(filler)
      await peer.start()
      for (let i = 0; i < 20; i++) {
        const r = await apiRequest<{ kv: { value: string } }>(peer.api, 'GET', `/v1/kv?key=d/${i}`)
        expect(r.body.kv.value).toBe(`v${i}`)
      }
      expect((await runCli(['kv', 'get', 'd/7', '--api', peer.api])).stdout).toBe('v7\n')
      peer.signal('SIGTERM')
      await peer.exited
    } finally {
      execFileSync('umount', ['-l', mount])
    }
  })
})
