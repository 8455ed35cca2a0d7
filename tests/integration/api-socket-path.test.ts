/**
 * `--api PATH` is checked before the peer opens its log or joins anyone, and only a stale
 * socket is ever removed there. Before, a path that refused a connection was unlinked
 * whatever it was (a typo as root could delete a system file), and a directory failed only
 * after the peer had joined, reported as a bug.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { writeFileSync, readFileSync, mkdirSync, existsSync, rmSync, lstatSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, tempDir, TestCluster } from '../helpers/processes.ts'

const root = tempDir('shoal-apipath-')
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** `shoal start` with the given --api on a fresh data dir; it must refuse and exit. */
async function startWithApi(name: string, api: string): Promise<{ code: number; stderr: string; dataDir: string }> {
  const dataDir = join(root, name)
  const r = await runCli(['start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--dns', 'off', '--docker', 'none', '--api', api], {}, 45_000)
  return { code: r.code, stderr: r.stderr, dataDir }
}

function expectRefusedEarly(r: { code: number; stderr: string; dataDir: string }, reason: string): void {
  expect(r.code, r.stderr).toBe(1)
  expect(r.stderr).toContain(reason)
  expect(r.stderr).not.toContain('This is a bug')
  // Refused before the Raft log was opened (and so before libp2p listened or anyone was joined).
  expect(existsSync(join(r.dataDir, 'raft'))).toBe(false)
}

describe('--api PATH', () => {
  it('a regular file there is refused and left untouched', async () => {
    const file = join(root, 'precious.conf')
    writeFileSync(file, 'do not delete\n')
    expectRefusedEarly(await startWithApi('a', file), 'is a regular file, not a socket')
    expect(readFileSync(file, 'utf8')).toBe('do not delete\n')
  })

  it('a directory there is refused before the peer joins, not reported as a bug', async () => {
    const dir = join(root, 'a-directory')
    mkdirSync(dir)
    expectRefusedEarly(await startWithApi('b', dir), 'is a directory, not a socket')
    expect(lstatSync(dir).isDirectory()).toBe(true)
  })

  it('a path in a directory that does not exist is refused with what to do', async () => {
    expectRefusedEarly(await startWithApi('c', join(root, 'no', 'such', 'dir', 'shoal.sock')), 'create it or pass another --api')
  })

  it('a stale socket nobody serves is replaced, and the peer serves there', async () => {
    const cluster = new TestCluster()
    try {
      const api = join(cluster.root, 'stale.sock')
      // A socket bound and never served: what a peer killed with kill -9 leaves.
      execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', api])
      expect(lstatSync(api).isSocket()).toBe(true)
      const peer = await cluster.add({ name: 'd', extraArgs: ['--api', api] })
      expect((await runCli(['status', '--json', '--api', api])).code).toBe(0)
      expect(peer.exitCode).toBeNull()
    } finally {
      await cluster.cleanup()
    }
  })
})
