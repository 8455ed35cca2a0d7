/**
 * datastore-level, with every write fsynced before it resolves.
 *
 * LevelDB's default write only reaches the OS: a power loss can drop it even after the promise
 * resolved, and when LevelDB rolls to a new log file it closes the old one without syncing it.
 * A snapshot must be on stable storage before the Raft log records that it exists (the log is
 * then free to forget the entries it covers), so each write here is a synchronous LevelDB
 * write: the batch itself lands in the current log file and that file is fsynced.
 */
import { LevelDatastore } from 'datastore-level'
import type { Batch, Key } from 'interface-datastore'

type LevelOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

/** A LevelDatastore whose put, delete and batch commit are durable when they resolve. */
export class SyncedLevelDatastore extends LevelDatastore {
  override async put(key: Key, value: Uint8Array): Promise<Key> {
    await this.db.put(key.toString(), value, { sync: true })
    return key
  }

  override async delete(key: Key): Promise<void> {
    await this.db.del(key.toString(), { sync: true })
  }

  /** One atomic LevelDB batch, synced: all of it survives a crash or none of it does. */
  override batch(): Batch {
    const ops: LevelOp[] = []
    return {
      put: (key, value) => void ops.push({ type: 'put', key: key.toString(), value }),
      delete: (key) => void ops.push({ type: 'del', key: key.toString() }),
      commit: async () => {
        await this.db.batch(ops, { sync: true })
      },
    }
  }
}
