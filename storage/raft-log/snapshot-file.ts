/** Snapshot files: `snap-<index>.snap`, one framed, checksummed msgpack record each, written atomically. */
import { open, readFile, readdir, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { encode, decode } from '@msgpack/msgpack'
import { crc32 } from 'node:zlib'
import type { Snapshot } from '../../protocols/raft/index.ts'
import { fsyncDir } from './fs-util.ts'

const SNAP_PATTERN = /^snap-(\d{20})\.snap$/

/** The file name of the snapshot at `index`; zero-padded so names sort by index. */
export function snapshotFileName(index: number): string {
  return `snap-${String(index).padStart(20, '0')}.snap`
}

/** Writes a snapshot durably: temp file, fsync, rename, directory fsync. */
export async function writeSnapshotFile(dir: string, snap: Snapshot): Promise<void> {
  const body = encode({
    index: snap.metadata.index,
    term: snap.metadata.term,
    voters: [...snap.metadata.confState.voters],
    learners: [...snap.metadata.confState.learners],
    data: snap.data,
  })
  const frame = new Uint8Array(8 + body.byteLength)
  const view = new DataView(frame.buffer)
  view.setUint32(0, body.byteLength)
  view.setUint32(4, crc32(body))
  frame.set(body, 8)
  const path = join(dir, snapshotFileName(snap.metadata.index))
  const tmp = `${path}.tmp`
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(frame)
    await fh.datasync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  await fsyncDir(dir)
}

function decodeSnapshot(bytes: Uint8Array): Snapshot | null {
  if (bytes.byteLength < 8) return null
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const length = view.getUint32(0)
  if (length !== bytes.byteLength - 8) return null
  const body = bytes.subarray(8)
  if (crc32(body) !== view.getUint32(4)) return null
  let value: unknown
  try {
    value = decode(body)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const v = value as Record<string, unknown>
  const ids = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string')
  if (!Number.isSafeInteger(v['index']) || !Number.isSafeInteger(v['term']) || !ids(v['voters']) || !ids(v['learners']) || !(v['data'] instanceof Uint8Array)) return null
  return { metadata: { index: v['index'] as number, term: v['term'] as number, confState: { voters: v['voters'], learners: v['learners'] } }, data: new Uint8Array(v['data']) }
}

/** Snapshot indexes present in `dir`, newest first. */
export async function listSnapshots(dir: string): Promise<number[]> {
  const names = await readdir(dir)
  return names.flatMap((n) => {
    const m = SNAP_PATTERN.exec(n)
    return m?.[1] === undefined ? [] : [Number(m[1])]
  }).sort((a, b) => b - a)
}

/** Reads the snapshot at `index`; null when the file is damaged. */
export async function readSnapshotFile(dir: string, index: number): Promise<Snapshot | null> {
  const file = await readFile(join(dir, snapshotFileName(index)))
  return decodeSnapshot(new Uint8Array(file.buffer, file.byteOffset, file.byteLength))
}

/** Deletes all snapshot files but the newest `keep`. */
export async function pruneSnapshots(dir: string, keep: number): Promise<void> {
  for (const index of (await listSnapshots(dir)).slice(keep)) await unlink(join(dir, snapshotFileName(index)))
}
