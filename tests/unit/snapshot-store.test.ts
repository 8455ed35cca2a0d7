/** The StateStore's snapshot store over interface-datastore: memory and the daemon's synced LevelDB. */
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { CHUNK_BYTES, DatastoreSnapshotStore, openSnapshotStore, type SnapshotStore } from '../../storage/snapshots/snapshot-store.ts'
import type { Snapshot } from '../../protocols/raft/index.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'shoal-snap-'))
  dirs.push(d)
  return d
}

function snap(index: number, bytes: number, term = 2): Snapshot {
  const data = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + index) % 256
  return { metadata: { index, term, confState: { voters: ['a', 'b'], learners: ['c'] } }, data }
}

const stores: Array<[string, () => Promise<SnapshotStore>]> = [
  ['memory datastore', async () => new DatastoreSnapshotStore(new MemoryDatastore())],
  ['synced LevelDB', () => openSnapshotStore(join(tmp(), 'state'))],
]

describe.each(stores)('SnapshotStore over %s', (_name, make) => {
  it('is empty at first', async () => {
    const store = await make()
    expect(await store.newest()).toEqual({ snapshot: null, damaged: [] })
    await store.close()
  })

  it('returns the newest snapshot byte for byte, also one spanning several chunks', async () => {
    const store = await make()
    await store.save(snap(10, 100))
    const big = snap(20, 2 * CHUNK_BYTES + 12345, 3)
    await store.save(big)
    const { snapshot } = await store.newest()
    expect(snapshot?.metadata).toEqual(big.metadata)
    expect(snapshot?.data).toEqual(big.data)
    await store.close()
  })

  it('keeps an empty state as a snapshot too', async () => {
    const store = await make()
    await store.save(snap(1, 0))
    expect((await store.newest()).snapshot?.data.byteLength).toBe(0)
    await store.close()
  })

  it('prunes all but the newest N, and a save at the same index replaces it whole', async () => {
    const store = await make()
    for (const i of [5, 9, 7, 12]) await store.save(snap(i, CHUNK_BYTES + i))
    await store.prune(2)
    await store.save(snap(12, 10, 4)) // fewer chunks than before: none of the old ones may linger
    expect((await store.newest()).snapshot).toEqual(snap(12, 10, 4))
    await store.prune(1)
    expect((await store.newest()).snapshot?.metadata.index).toBe(12)
    await store.close()
  })
})

describe('damage at rest', () => {
  it('a snapshot with a changed or missing chunk is passed over for the previous one, and named', async () => {
    const ds = new MemoryDatastore()
    const store = new DatastoreSnapshotStore(ds)
    await store.save(snap(5, 3000))
    await store.save(snap(8, CHUNK_BYTES + 10))
    const chunk = new Key(`/snapshot/${String(8).padStart(20, '0')}/chunk/00000001`)
    const original = await ds.get(chunk)
    await ds.put(chunk, original.map((b) => b ^ 1))
    expect(await store.newest()).toEqual({ snapshot: snap(5, 3000), damaged: [8] })
    await ds.delete(chunk)
    expect(await store.newest()).toEqual({ snapshot: snap(5, 3000), damaged: [8] })
    await ds.put(new Key(`/snapshot/${String(5).padStart(20, '0')}/meta`), new Uint8Array([0xc1]))
    expect(await store.newest()).toEqual({ snapshot: null, damaged: [8, 5] })
  })
})

describe('synced LevelDB', () => {
  it('keeps snapshots across a close and reopen', async () => {
    const path = join(tmp(), 'state')
    const a = await openSnapshotStore(path)
    await a.save(snap(3, 5000))
    await a.close()
    const b = await openSnapshotStore(path)
    expect((await b.newest()).snapshot).toEqual(snap(3, 5000))
    await b.close()
  })

  it('refuses a second opener with an error instead of sharing the files', async () => {
    const path = join(tmp(), 'state')
    const a = await openSnapshotStore(path)
    await expect(openSnapshotStore(path)).rejects.toThrow()
    await a.close()
  })
})
