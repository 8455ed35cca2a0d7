/**
 * The peer's data directory: exclusive lock, persistent peer identity and the cluster secret.
 * Everything here runs once at start-up, before any socket is opened.
 */
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, unlinkSync, renameSync, fsyncSync, chmodSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { UserError, errorMessage } from './errors.ts'

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
 * writes to the same Raft log and corrupt it, so the second one is refused. A lock left by a
 * process that died (kill -9, power loss) is detected by its pid and taken over.
 * Returns a release function. (Node has no flock(2); pid liveness is the portable check.)
 */
export function acquireDataDirLock(dir: string): () => void {
  const path = join(dir, DATA_FILES.lock)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600)
      writeFileSync(fd, `${process.pid}\n`)
      fsyncSync(fd)
      closeSync(fd)
      return () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path)
        } catch {
          // Already gone: nothing to release.
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new UserError(`cannot lock data dir ${dir}: ${errorMessage(err)}`)
      }
      const holder = Number.parseInt(readFileSync(path, 'utf8').trim(), 10)
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new UserError(
          `data dir ${dir} is in use by another shoal process (pid ${holder}); stop it first, or start this peer with another --data-dir`,
        )
      }
      unlinkSync(path) // stale lock of a dead process
    }
  }
  throw new UserError(`cannot lock data dir ${dir}: another process keeps re-creating ${path}`)
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
