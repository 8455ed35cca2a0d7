// A large snapshot is saved in several LevelDB batches with its meta last (issue 17 §5: one
// batch of the whole state held the event loop for seconds). A save cut short must leave no
// snapshot behind, nor chunks that are never cleaned up.
import { describe, it, expect } from 'vitest'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { CHUNK_BYTES, DatastoreSnapshotStore } from '../../storage/snapshots/snapshot-store.ts'
import type { Snapshot } from '../../protocols/raft/index.ts'

function snap(index: number, bytes: number): Snapshot {
  const data = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + index) % 256
  return { metadata: { index, term: 2, confState: { voters: ['a'], learners: [] } }, data }
}

/** A datastore whose writes fail from the n-th batch on, as a crash would cut a save short. */
class FailingDatastore extends MemoryDatastore {
  batchesLeft = Number.POSITIVE_INFINITY
  override batch(): ReturnType<MemoryDatastore['batch']> {
    const inner = super.batch()
    return {
      put: (key, value) => inner.put(key, value),
      delete: (key) => inner.delete(key),
      commit: async () => {
        if (this.batchesLeft-- <= 0) throw new Error('crash')
        await inner.commit()
      },
    }
  }
}

async function keysUnder(store: MemoryDatastore, index: number): Promise<string[]> {
  const keys: string[] = []
  for await (const key of store.queryKeys({ prefix: `/snapshot/${String(index).padStart(20, '0')}/` })) keys.push(key.toString())
  return keys
}

describe('snapshot store: saves in batches', () => {
  it('a save cut short after some chunks leaves no snapshot, and its chunks go at the next prune', async () => {
    const ds = new FailingDatastore()
    const store = new DatastoreSnapshotStore(ds)
    await store.save(snap(5, 100))
    // The deletes' batch and two chunk batches land; the third fails.
    ds.batchesLeft = 3
    await expect(store.save(snap(9, 20 * CHUNK_BYTES + 3))).rejects.toThrow('crash')
    expect((await keysUnder(ds, 9)).length).toBeGreaterThan(0)
    expect((await store.newest()).snapshot?.metadata.index).toBe(5) // never half a snapshot
    ds.batchesLeft = Number.POSITIVE_INFINITY
    await store.save(snap(12, 10))
    await store.prune(1)
    expect(await keysUnder(ds, 9)).toEqual([])
    expect(await keysUnder(ds, 5)).toEqual([])
    const newest = (await store.newest()).snapshot
    expect(newest?.metadata.index).toBe(12)
    expect(newest?.data).toEqual(snap(12, 10).data)
  })

  it('saving again at an index first unlists the old copy, so a mix of old and new chunks is never read', async () => {
    const ds = new FailingDatastore()
    const store = new DatastoreSnapshotStore(ds)
    await store.save(snap(7, 3 * CHUNK_BYTES))
    ds.batchesLeft = 1 // the deletes land, then the first chunk batch fails
    await expect(store.save({ ...snap(7, 2 * CHUNK_BYTES), data: new Uint8Array(2 * CHUNK_BYTES).fill(1) })).rejects.toThrow('crash')
    expect(await ds.has(new Key('/snapshot/00000000000000000007/meta'))).toBe(false)
    expect((await store.newest()).snapshot).toBeNull()
  })
})
