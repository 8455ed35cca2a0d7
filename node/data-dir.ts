/**
 * The peer's data directory: exclusive lock, persistent peer identity and the cluster secret.
 * Everything here runs once at start-up, before any socket is opened.
 */
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, unlinkSync, renameSync, fsyncSync, chmodSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { UserError, errorMessage, environmentError } from './errors.ts'

/** File names inside the data dir. */
export const DATA_FILES = { lock: 'LOCK', peerKey: 'peer.key', clusterKey: 'cluster.key' } as const

/** Creates the data dir (0700: it holds private keys) or fails with a message naming it. */
export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw new UserError(`cannot create data dir ${dir}: ${errorMessage(err)}; pass a writable --data-dir`)
  }
}

/**
 * Takes the data dir's lock for this process. Two peers on one data dir would interleave
 * writes to the same Raft log and corrupt it, so the second one is refused.
 *
 * The kernel arbitrates: on Linux the lock is an abstract Unix socket named after the data
 * dir's device and inode. bind(2) is atomic, so of two peers starting together exactly one
 * wins, and the kernel frees the name when its holder dies, kill -9 included: there is no
 * stale lock to detect and take over (a pid file alone races on both). Node has no flock(2);
 * this is the lock it does have. The LOCK file beside it names the holder's pid for people and
 * for peers in another network namespace (where the abstract name is not shared); it is
 * written whole to a temporary file and renamed into place, so it is never read half-written.
 * Returns a release function.
 */
export async function acquireDataDirLock(dir: string): Promise<() => void> {
  const path = join(dir, DATA_FILES.lock)
  const holderPid = (): number | null => {
    try {
      const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10)
      return Number.isInteger(pid) && pid > 0 ? pid : null
    } catch {
      return null
    }
  }
  const inUse = (pid: number | null): UserError =>
    new UserError(`data dir ${dir} is in use by another shoal process${pid === null ? '' : ` (pid ${pid})`}; stop it first, or start this peer with another --data-dir`)

  let server: Server | null = null
  if (process.platform === 'linux') {
    let dev: number, ino: number
    try {
      ({ dev, ino } = statSync(dir))
    } catch (err) {
      throw new UserError(`cannot lock data dir ${dir}: ${errorMessage(err)}; pass an existing, writable --data-dir`)
    }
    const name = `\0shoal/data-dir/${dev}/${ino}`
    server = createServer()
    const bound = server
    try {
      await new Promise<void>((resolve, reject) => {
        bound.once('error', reject)
        bound.listen(name, () => resolve())
      })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw inUse(holderPid())
      throw new UserError(`cannot lock data dir ${dir}: ${errorMessage(err)}`)
    }
    bound.unref()
    bound.on('connection', (socket) => socket.destroy())
  }
  // Holding the kernel's lock, a live pid in the file can only be a peer in another network
  // namespace (or another OS without abstract sockets): still refuse it.
  const previous = holderPid()
  if (previous !== null && previous !== process.pid && processAlive(previous)) {
    server?.close()
    throw inUse(previous)
  }
  try {
    writeFileAtomic(path, `${process.pid}\n`, 0o600)
  } catch (err) {
    server?.close()
    throw environmentError(err, `cannot lock data dir ${dir}`) ?? new UserError(`cannot lock data dir ${dir}: ${errorMessage(err)}; pass a writable --data-dir`)
  }
  return () => {
    try {
      if (holderPid() === process.pid) unlinkSync(path)
    } catch {
      // Already gone: nothing to release.
    }
    server?.close()
    server = null
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Writes a file atomically (temp file, fsync, rename) so a crash never leaves half a key. */
export function writeFileAtomic(path: string, data: Uint8Array | string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeFileSync(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

/** Loads the peer's Ed25519 key, creating it on first start: the peer id survives restarts. */
export async function loadOrCreatePeerKey(dir: string): Promise<PrivateKey> {
  const path = join(dir, DATA_FILES.peerKey)
  let bytes: Uint8Array | undefined
  try {
    bytes = readFileSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read peer key ${path}: ${errorMessage(err)}`)
  }
  if (bytes !== undefined) {
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new UserError(`peer key ${path} is corrupt (${errorMessage(err)}); restore it from a backup, or delete it to start as a new peer`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  writeFileAtomic(path, privateKeyToProtobuf(key), 0o600)
  return key
}

const PSK_PATTERN = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n([0-9a-f]{64})\s*$/

/** A fresh cluster secret in libp2p's private-network (PSK v1) format. */
export function newClusterSecret(): Uint8Array {
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`)
}

/** Checks a cluster secret's format; returns an error message, or null when valid. */
export function clusterSecretProblem(bytes: Uint8Array): string | null {
  return PSK_PATTERN.test(new TextDecoder().decode(bytes)) ? null : 'it is not a Shoal cluster key (expected the 3-line /key/swarm/psk/1.0.0/ format)'
}

export type SecretSource = 'file' | 'data-dir' | 'created'

/**
 * Resolves the cluster secret. An explicit --secret-file wins and is copied into the data dir
 * (so a restart needs no flag). Otherwise `<data-dir>/cluster.key` is used; a founding peer
 * creates it, a joining peer without one is refused — it could never connect anyway.
 */
export function loadClusterSecret(dir: string, secretFile: string | undefined, joining: boolean): { secret: Uint8Array; source: SecretSource } {
  const inDataDir = join(dir, DATA_FILES.clusterKey)
  if (secretFile !== undefined) {
    let bytes: Uint8Array
    try {
      if (!statSync(secretFile).isFile()) throw new Error('not a regular file')
      bytes = readFileSync(secretFile)
    } catch (err) {
      throw new UserError(`cannot read secret file ${secretFile}: ${errorMessage(err)}; copy cluster.key from a running peer's data dir and pass its path`)
    }
    const problem = clusterSecretProblem(bytes)
    if (problem !== null) throw new UserError(`secret file ${secretFile}: ${problem}; copy cluster.key from a running peer's data dir`)
    writeFileAtomic(inDataDir, bytes, 0o600)
    return { secret: bytes, source: 'file' }
  }
  try {
    const bytes = readFileSync(inDataDir)
    const problem = clusterSecretProblem(bytes)
    if (problem !== null) throw new UserError(`${inDataDir}: ${problem}; replace it with a copy of cluster.key from a running peer`)
    return { secret: bytes, source: 'data-dir' }
  } catch (err) {
    if (err instanceof UserError) throw err
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read ${inDataDir}: ${errorMessage(err)}`)
  }
  if (joining) {
    throw new UserError(
      'joining a cluster needs its secret: copy cluster.key from the data dir of a running peer and start with --secret-file PATH',
    )
  }
  const secret = newClusterSecret()
  writeFileAtomic(inDataDir, secret, 0o600)
  chmodSync(inDataDir, 0o600)
  return { secret, source: 'created' }
}
