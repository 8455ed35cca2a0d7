/**
 * The snapshot store's decisions (layout, write order, what reads as damage, what a prune
 * deletes) as jobs over a key-value store, pure, so the daemon (DatastoreSnapshotStore, over
 * LevelDB) and the simulator (over a store that loses a batch in flight at a crash) run the
 * same code. The layout, one snapshot per index:
 *   /snapshot/<index, 20 digits>/meta        msgpack {term, voters, learners, bytes, chunks, crc}
 *   /snapshot/<index, 20 digits>/chunk/<n>   the state, in pieces of CHUNK_BYTES
 * A snapshot is found only through its meta, written last, once every chunk is durable, so it is
 * whole or absent; the CRC over the reassembled state still guards against damage at rest, and a
 * damaged snapshot is skipped for an older one.
 */
import { encode, decode } from '@msgpack/msgpack'
import type { Snapshot } from '../raft-log/log-types.ts'
import { crc32 } from '../raft-log/crc32.ts'

/** Pieces a snapshot is stored in: LevelDB handles values of this size well, and a huge state needs no huge value. */
export const CHUNK_BYTES = 1024 * 1024
/** Chunks written per batch: small enough that LevelDB taking a batch in barely holds the event loop. */
const SAVE_BATCH_CHUNKS = 4

/** One request to the key-value store under the snapshots. */
export type SnapshotIo =
  /** Keys under `prefix`, in any order. → string[] */
  | { readonly op: 'kv-keys'; readonly prefix: string }
  /** A value, or null when the key is absent. → Uint8Array | null */
  | { readonly op: 'kv-get'; readonly key: string }
  /** An atomic batch, durable when it completes: all of it survives a crash, or none. → void */
  | { readonly op: 'kv-batch'; readonly puts: ReadonlyArray<readonly [string, Uint8Array]>; readonly deletes: readonly string[] }

/** A piece of the snapshot store's work. */
export type SnapshotJob<T> = Generator<SnapshotIo, T, unknown>

interface Meta {
  term: number
  voters: string[]
  learners: string[]
  bytes: number
  chunks: number
  crc: number
}

const ROOT = '/snapshot'
const pad = (n: number, width: number): string => String(n).padStart(width, '0')
const indexPrefix = (index: number): string => `${ROOT}/${pad(index, 20)}/`
const metaKey = (index: number): string => `${indexPrefix(index)}meta`
const chunkKey = (index: number, n: number): string => `${indexPrefix(index)}chunk/${pad(n, 8)}`
const META_PATTERN = /^\/snapshot\/(\d{20})\/meta$/
const ANY_PATTERN = /^\/snapshot\/(\d{20})\//

function* keys(prefix: string): SnapshotJob<string[]> {
  return (yield { op: 'kv-keys', prefix }) as string[]
}
function* get(key: string): SnapshotJob<Uint8Array | null> {
  return (yield { op: 'kv-get', key }) as Uint8Array | null
}
function* batch(puts: ReadonlyArray<readonly [string, Uint8Array]>, deletes: readonly string[]): SnapshotJob<void> {
  yield { op: 'kv-batch', puts, deletes }
}

function parseMeta(bytes: Uint8Array): Meta | null {
  let v: unknown
  try {
    v = decode(bytes)
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null) return null
  const m = v as Record<string, unknown>
  const ids = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string')
  const count = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
  if (!count(m['term']) || !ids(m['voters']) || !ids(m['learners']) || !count(m['bytes']) || !count(m['chunks']) || !count(m['crc'])) return null
  return { term: m['term'], voters: m['voters'], learners: m['learners'], bytes: m['bytes'], chunks: m['chunks'], crc: m['crc'] }
}

/** Writes the snapshot durably, replacing any snapshot at the same index. */
export function* saveSnapshot(snap: Snapshot): SnapshotJob<void> {
  const { index, term, confState } = snap.metadata
  const data = snap.data
  const chunks = Math.ceil(data.byteLength / CHUNK_BYTES)
  // An older copy at this index stops being a snapshot first (its meta and the chunks not
  // overwritten go), so a crash midway never leaves a meta over a mix of old and new chunks.
  const written = new Set(Array.from({ length: chunks }, (_, n) => chunkKey(index, n)))
  yield* batch([], (yield* keys(indexPrefix(index))).filter((k) => !written.has(k)))
  // The chunks in batches of SAVE_BATCH_CHUNKS: LevelDB takes in a batch on the event loop, and
  // one batch of a 137 MB state held it 1.3 s (issue 17 §5); 8 MiB batches hold it ~45 ms.
  for (let first = 0; first < chunks; first += SAVE_BATCH_CHUNKS) {
    const puts: Array<readonly [string, Uint8Array]> = []
    for (let n = first; n < Math.min(chunks, first + SAVE_BATCH_CHUNKS); n++) puts.push([chunkKey(index, n), data.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES)])
    yield* batch(puts, [])
  }
  const meta: Meta = { term, voters: [...confState.voters], learners: [...confState.learners], bytes: data.byteLength, chunks, crc: crc32(data) }
  yield* batch([[metaKey(index), encode(meta)]], [])
}

/** The newest snapshot that reads back intact, and the indexes of damaged newer ones. */
export function* newestSnapshot(): SnapshotJob<{ snapshot: Snapshot | null; damaged: number[] }> {
  const damaged: number[] = []
  for (const index of yield* indexes()) {
    const snapshot = yield* read(index)
    if (snapshot !== null) return { snapshot, damaged }
    damaged.push(index)
  }
  return { snapshot: null, damaged }
}

/** Deletes every snapshot but the newest `keep`, and chunks of saves cut short below the newest. */
export function* pruneSnapshots(keep: number): SnapshotJob<void> {
  const all = yield* keys(`${ROOT}/`)
  const listed = metaIndexes(all)
  const stale = listed.slice(keep)
  const newest = listed[0] ?? 0
  const withKeys = new Set(all.flatMap((k) => {
    const m = ANY_PATTERN.exec(k)
    return m?.[1] === undefined ? [] : [Number(m[1])]
  }))
  for (const index of withKeys) if (index < newest && !listed.includes(index)) stale.push(index)
  if (stale.length === 0) return
  const prefixes = stale.map(indexPrefix)
  yield* batch([], all.filter((k) => prefixes.some((p) => k.startsWith(p))))
}

/** Snapshot indexes present (with a meta), newest first. */
function* indexes(): SnapshotJob<number[]> {
  return metaIndexes(yield* keys(`${ROOT}/`))
}

function metaIndexes(all: readonly string[]): number[] {
  const found: number[] = []
  for (const key of all) {
    const m = META_PATTERN.exec(key)
    if (m?.[1] !== undefined) found.push(Number(m[1]))
  }
  return found.sort((a, b) => b - a)
}

function* read(index: number): SnapshotJob<Snapshot | null> {
  const metaBytes = yield* get(metaKey(index))
  const meta = metaBytes === null ? null : parseMeta(metaBytes)
  if (meta === null) return null
  const data = new Uint8Array(meta.bytes)
  let offset = 0
  for (let n = 0; n < meta.chunks; n++) {
    // A missing chunk reads as damage, like a bad CRC.
    const chunk = yield* get(chunkKey(index, n))
    if (chunk === null || offset + chunk.byteLength > meta.bytes) return null
    data.set(chunk, offset)
    offset += chunk.byteLength
  }
  if (offset !== meta.bytes || crc32(data) !== meta.crc) return null
  return { metadata: { index, term: meta.term, confState: { voters: meta.voters, learners: meta.learners } }, data }
}
