/**
 * Where the StateStore's state rests between restarts: Raft snapshots (the whole state at an
 * index, with the membership at that index) kept in an interface-datastore Datastore — LevelDB
 * in the daemon (`SyncedLevelDatastore`), memory in tests. The Raft log replays on top of the
 * newest snapshot.
 *
 * Layout, one snapshot per index:
 *   /snapshot/<index, 20 digits>/meta        msgpack {term, voters, learners, bytes, chunks, crc}
 *   /snapshot/<index, 20 digits>/chunk/<n>   the state, in pieces of CHUNK_BYTES
 * A snapshot is found only through its meta, written last, once every chunk is durable, so it is
 * whole or absent; the CRC over the reassembled state still guards against damage at rest, and a
 * damaged snapshot is skipped for an older one.
 */
import { Key, type Datastore } from 'interface-datastore'
import { encode, decode } from '@msgpack/msgpack'
import { crc32 } from 'node:zlib'
import type { Snapshot } from '../raft-log/log-types.ts'
import { SyncedLevelDatastore } from './synced-level-datastore.ts'

/** Pieces a snapshot is stored in: LevelDB handles values of this size well, and a huge state needs no huge value. */
export const CHUNK_BYTES = 1024 * 1024
/** Chunks written per LevelDB batch: small enough that taking a batch in barely holds the event loop. */
const SAVE_BATCH_CHUNKS = 4

/** Durable home of snapshots: `save` resolves once the snapshot survives a crash. */
export interface SnapshotStore {
  /** Writes the snapshot durably, replacing any snapshot at the same index. */
  save(snap: Snapshot): Promise<void>
  /** The newest snapshot that reads back intact, and the indexes of damaged newer ones. */
  newest(): Promise<{ snapshot: Snapshot | null; damaged: number[] }>
  /** Deletes every snapshot but the newest `keep`. */
  prune(keep: number): Promise<void>
  close(): Promise<void>
}

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
const metaKey = (index: number): Key => new Key(`${ROOT}/${pad(index, 20)}/meta`)
const chunkKey = (index: number, n: number): Key => new Key(`${ROOT}/${pad(index, 20)}/chunk/${pad(n, 8)}`)
const META_PATTERN = /^\/snapshot\/(\d{20})\/meta$/
const ANY_PATTERN = /^\/snapshot\/(\d{20})\//

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

/** A SnapshotStore over any interface-datastore; it owns (and closes) the datastore. */
export class DatastoreSnapshotStore implements SnapshotStore {
  private readonly store: Datastore
  private readonly closeStore: () => Promise<void>

  constructor(store: Datastore, closeStore: () => Promise<void> = async () => {}) {
    this.store = store
    this.closeStore = closeStore
  }

  async save(snap: Snapshot): Promise<void> {
    const { index, term, confState } = snap.metadata
    const data = snap.data
    const chunks = Math.ceil(data.byteLength / CHUNK_BYTES)
    const batch = this.store.batch()
    // An older copy at this index stops being a snapshot first (its meta and the chunks not
    // overwritten go), so a crash midway never leaves a meta over a mix of old and new chunks.
    const written = new Set(Array.from({ length: chunks }, (_, n) => chunkKey(index, n).toString()))
    for (const key of await this.keysOf(index)) if (!written.has(key.toString())) batch.delete(key)
    await batch.commit()
    // The chunks in batches of SAVE_BATCH_CHUNKS: LevelDB takes in a batch on the event loop, and
    // one batch of a 137 MB state held it 1.3 s (issue 17 §5); 8 MiB batches hold it ~45 ms.
    for (let first = 0; first < chunks; first += SAVE_BATCH_CHUNKS) {
      const part = this.store.batch()
      for (let n = first; n < Math.min(chunks, first + SAVE_BATCH_CHUNKS); n++) part.put(chunkKey(index, n), data.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES))
      await part.commit()
    }
    const meta: Meta = { term, voters: [...confState.voters], learners: [...confState.learners], bytes: data.byteLength, chunks, crc: crc32(data) }
    await this.store.put(metaKey(index), encode(meta))
  }

  async newest(): Promise<{ snapshot: Snapshot | null; damaged: number[] }> {
    const damaged: number[] = []
    for (const index of await this.indexes()) {
      const snapshot = await this.read(index)
      if (snapshot !== null) return { snapshot, damaged }
      damaged.push(index)
    }
    return { snapshot: null, damaged }
  }

  async prune(keep: number): Promise<void> {
    const indexes = await this.indexes()
    const stale = indexes.slice(keep)
    // Chunks whose meta never landed (a save cut short by a crash), below the newest snapshot.
    const newest = indexes[0] ?? 0
    for (const index of await this.indexesWithChunks()) if (index < newest && !indexes.includes(index)) stale.push(index)
    if (stale.length === 0) return
    const batch = this.store.batch()
    for (const index of stale) for (const key of await this.keysOf(index)) batch.delete(key)
    await batch.commit()
  }

  async close(): Promise<void> {
    await this.closeStore()
  }

  /** Snapshot indexes present, newest first. */
  private async indexes(): Promise<number[]> {
    const found: number[] = []
    for await (const key of this.store.queryKeys({ prefix: `${ROOT}/` })) {
      const m = META_PATTERN.exec(key.toString())
      if (m?.[1] !== undefined) found.push(Number(m[1]))
    }
    return found.sort((a, b) => b - a)
  }

  /** Indexes that hold any key, with a meta or not. */
  private async indexesWithChunks(): Promise<number[]> {
    const found = new Set<number>()
    for await (const key of this.store.queryKeys({ prefix: `${ROOT}/` })) {
      const m = ANY_PATTERN.exec(key.toString())
      if (m?.[1] !== undefined) found.add(Number(m[1]))
    }
    return [...found]
  }

  private async keysOf(index: number): Promise<Key[]> {
    const keys: Key[] = []
    for await (const key of this.store.queryKeys({ prefix: `${ROOT}/${pad(index, 20)}/` })) keys.push(key)
    return keys
  }

  private async read(index: number): Promise<Snapshot | null> {
    try {
      const meta = parseMeta(await this.store.get(metaKey(index)))
      if (meta === null) return null
      const data = new Uint8Array(meta.bytes)
      let offset = 0
      for (let n = 0; n < meta.chunks; n++) {
        const chunk = await this.store.get(chunkKey(index, n))
        if (offset + chunk.byteLength > meta.bytes) return null
        data.set(chunk, offset)
        offset += chunk.byteLength
      }
      if (offset !== meta.bytes || crc32(data) !== meta.crc) return null
      return { metadata: { index, term: meta.term, confState: { voters: meta.voters, learners: meta.learners } }, data }
    } catch {
      return null // a missing chunk reads as damage, like a bad CRC
    }
  }
}

/** Opens the daemon's snapshot store: a synced LevelDB at `path`. */
export async function openSnapshotStore(path: string): Promise<SnapshotStore> {
  const store = new SyncedLevelDatastore(path)
  await store.open()
  return new DatastoreSnapshotStore(store, () => store.close())
}
