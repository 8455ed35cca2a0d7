import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync, readFileSync, statSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { acquireDataDirLock, loadOrCreatePeerKey, loadClusterSecret, newClusterSecret, clusterSecretProblem, DATA_FILES } from '../../node/data-dir.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

const dirs: string[] = []
function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'shoal-dd-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('data dir', () => {
  it('a LOCK file naming another live process is refused (a peer in another network namespace)', async () => {
    const d = dir()
    // A live process other than us: our parent.
    writeFileSync(join(d, DATA_FILES.lock), `${process.ppid}\n`)
    await expect(acquireDataDirLock(d)).rejects.toThrow(`in use by another shoal process (pid ${process.ppid})`)
  })

  it('a lock left by a dead process is taken over', async () => {
    const d = dir()
    writeFileSync(join(d, DATA_FILES.lock), '2147483646\n')
    const release = await acquireDataDirLock(d)
    expect(readFileSync(join(d, DATA_FILES.lock), 'utf8').trim()).toBe(String(process.pid))
    release()
    expect(existsSync(join(d, DATA_FILES.lock))).toBe(false)
  })

  it('the kernel arbitrates: a second acquire is refused while the first holds, even with the LOCK file gone', async () => {
    const d = dir()
    const release = await acquireDataDirLock(d)
    rmSync(join(d, DATA_FILES.lock))
    await expect(acquireDataDirLock(d)).rejects.toThrow('is in use by another shoal process')
    release()
    const again = await acquireDataDirLock(d)
    again()
  })

  it('the peer key is created once (0600) and gives the same peer id on reload', async () => {
    const d = dir()
    const a = await loadOrCreatePeerKey(d)
    const b = await loadOrCreatePeerKey(d)
    expect(peerIdFromPrivateKey(a).toString()).toBe(peerIdFromPrivateKey(b).toString())
    expect(statSync(join(d, DATA_FILES.peerKey)).mode & 0o777).toBe(0o600)
  })

  it('a corrupt peer key is an error that says what to do, not a new identity', async () => {
    const d = dir()
    writeFileSync(join(d, DATA_FILES.peerKey), 'garbage')
    await expect(loadOrCreatePeerKey(d)).rejects.toThrow('is corrupt')
  })

  it('a founder creates the secret; a joiner without one is refused; a given file is copied in', () => {
    const founder = dir()
    const created = loadClusterSecret(founder, undefined, false)
    expect(created.source).toBe('created')
    expect(clusterSecretProblem(created.secret)).toBeNull()
    expect(loadClusterSecret(founder, undefined, false).source).toBe('data-dir')

    const joiner = dir()
    expect(() => loadClusterSecret(joiner, undefined, true)).toThrow('--secret-file')
    const file = join(founder, DATA_FILES.clusterKey)
    const given = loadClusterSecret(joiner, file, true)
    expect(given.source).toBe('file')
    expect(Buffer.from(given.secret).equals(Buffer.from(created.secret))).toBe(true)
    // Restart without the flag uses the copy.
    expect(loadClusterSecret(joiner, undefined, true).source).toBe('data-dir')
  })

  it('rejects malformed secrets', () => {
    expect(clusterSecretProblem(new TextEncoder().encode('secret'))).toContain('not a Shoal cluster key')
    expect(clusterSecretProblem(newClusterSecret())).toBeNull()
  })
})
