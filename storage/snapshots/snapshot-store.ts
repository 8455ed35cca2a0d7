/**
 * Where the StateStore's state rests between restarts: Raft snapshots (the whole state at an
 * index, with the membership at that index) kept in an interface-datastore Datastore — LevelDB
 * in the daemon (`SyncedLevelDatastore`), memory in tests. The Raft log replays on top of the
 * newest snapshot. The layout and every decision are in snapshot-jobs.ts, which the simulator
 * runs too; this file only carries their requests to the Datastore.
 */
import { Key, type Datastore } from 'interface-datastore'
import type { Snapshot } from '../raft-log/log-types.ts'
import { SyncedLevelDatastore } from './synced-level-datastore.ts'
import { newestSnapshot, pruneSnapshots, saveSnapshot, type SnapshotIo, type SnapshotJob } from './snapshot-jobs.ts'

export { CHUNK_BYTES } from './snapshot-jobs.ts'

/** Durable home of snapshots: `save` resolves once the snapshot survives a crash. */
export interface SnapshotStore {
  /** Writes the snapshot durably, replacing any snapshot at the same index. */
  save(snap: Snapshot): Promise<void>
  /** The newest snapshot that reads back intact, and the indexes of damaged newer ones. */
  newest(): Promise<{ snapshot: Snapshot | null; damaged: number[] }>
  /** Deletes every snapshot but the newest `keep`. */
  prune(keep: number): Promise<void>
  /** Carries out one request of a snapshot job (snapshot-jobs.ts). */
  execute(io: SnapshotIo): Promise<unknown>
  close(): Promise<void>
}

/** A SnapshotStore over any interface-datastore; it owns (and closes) the datastore. */
export class DatastoreSnapshotStore implements SnapshotStore {
  private readonly store: Datastore
  private readonly closeStore: () => Promise<void>

  constructor(store: Datastore, closeStore: () => Promise<void> = async () => {}) {
    this.store = store
    this.closeStore = closeStore
  }

  save(snap: Snapshot): Promise<void> {
    return this.run(saveSnapshot(snap))
  }

  newest(): Promise<{ snapshot: Snapshot | null; damaged: number[] }> {
    return this.run(newestSnapshot())
  }

  prune(keep: number): Promise<void> {
    return this.run(pruneSnapshots(keep))
  }

  async execute(io: SnapshotIo): Promise<unknown> {
    switch (io.op) {
      case 'kv-keys': {
        const found: string[] = []
        for await (const key of this.store.queryKeys({ prefix: io.prefix })) found.push(key.toString())
        return found
      }
      case 'kv-get':
        try {
          return await this.store.get(new Key(io.key))
        } catch {
          return null
        }
      case 'kv-batch': {
        const b = this.store.batch()
        for (const key of io.deletes) b.delete(new Key(key))
        for (const [key, value] of io.puts) b.put(new Key(key), value)
        await b.commit()
        return undefined
      }
    }
  }

  async close(): Promise<void> {
    await this.closeStore()
  }

  private async run<T>(job: SnapshotJob<T>): Promise<T> {
    let step = job.next()
    while (step.done !== true) step = job.next(await this.execute(step.value))
    return step.value
  }
}

/** Opens the daemon's snapshot store: a synced LevelDB at `path`. */
export async function openSnapshotStore(path: string): Promise<SnapshotStore> {
  const store = new SyncedLevelDatastore(path)
  await store.open()
  return new DatastoreSnapshotStore(store, () => store.close())
}
