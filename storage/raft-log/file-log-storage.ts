/**
 * The durable Raft log over real files: WalLog's decisions (wal-log.ts) run by an executor
 * that does their I/O with node:fs. What the log is:
 *
 * The durable Raft log: hard state, entries and snapshots on disk, with the synchronous
 * read view the Raft core needs kept in memory (a MemoryLogStorage holding the log since
 * the last compaction).
 *
 * Snapshots — the StateStore's whole state at an index — live in a SnapshotStore (an
 * interface-datastore, LevelDB in the daemon), not in these files; the log records only a
 * marker naming the snapshot's index, written after the snapshot is durable.
 *
 * Why its own append-only segments rather than the key-value datastore: a Raft log is
 * sequential appends, an occasional suffix overwrite and prefix deletion. Appending framed
 * records to a file with one synchronous write per Ready batch gives group commit — every
 * proposal that arrived while the previous batch was being written shares the next one —
 * without an LSM tree's write amplification. (etcd's WAL makes the same choice.)
 *
 * Segments are opened with O_DSYNC, so one write(2) is on stable storage when it returns, as
 * write + fdatasync would be, in one trip through libuv's thread pool instead of two: on a
 * loaded 2-core host each trip costs more than the disk's own sync.
 *
 * Durability contract: `persist` resolves only after the batch's bytes are on stable storage,
 * so the driver may then send votes and append acknowledgements. The one exception is a Ready
 * that only moves the commit index (mustSync false): it is kept in memory and written with the
 * next batch, as losing it is harmless (the leader sends the commit index again) and writing
 * it would put a disk trip between commit and apply on every write. A crash can tear only the
 * last record, which recovery detects by length and CRC and cuts off; damage anywhere else
 * refuses to start rather than serving a log with a hole.
 *
 * A segment cut short by more than its last write (a disk that lost acknowledged writes, a file
 * restored from an old copy) ends just like a torn one; the tail mark (tail-mark.ts), rewritten
 * after every durable write, tells the two apart. Such a loss is reported in `recovery.lostTail`
 * and as `recovery.repairIndex`: the driver must not let this peer vote until its log reaches
 * that index again, and the storage keeps that duty on disk until it does.
 */
import { closeSync, constants, fdatasyncSync, openSync, writeSync } from 'node:fs'
import { mkdir, open, readdir, readFile, unlink, truncate, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { ConfState, Entry, Snapshot } from './log-types.ts'
import type { InitialState, LogStorage } from './log-storage.ts'
import type { SnapshotStore } from '../snapshots/snapshot-store.ts'
import { fsyncDir } from './fs-util.ts'
import { runLogJobNow, type LogIo, type LogIoExecutor, type LogJob } from './log-io.ts'
import { WalLog, type LogStats, type PersistBatch, type RecoveryReport } from './wal-log.ts'

export { DEFAULT_KEEP_SNAPSHOTS, DEFAULT_SEGMENT_MAX_BYTES, LogCorruptionError } from './wal-log.ts'
export type { LogStats, RecoveryReport } from './wal-log.ts'

/** Segments are appended to with synchronous writes (see the header). */
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC

export interface FileLogStorageOptions {
  /** Where snapshots live; the storage owns it from here on and closes it in `close`. */
  snapshots: SnapshotStore
  /** Membership of a new cluster, used only when `dir` holds no log yet (a founding peer). */
  founding?: ConfState
  /** State-machine data of the founding snapshot. */
  bootstrapData?: Uint8Array
  segmentMaxBytes?: number
  keepSnapshots?: number
}

/** Runs a job, awaiting only the requests the executor answers with a promise. */
async function runLogJob<T>(job: LogJob<T>, execute: LogIoExecutor): Promise<T> {
  let step = job.next()
  while (step.done !== true) {
    let result: unknown
    try {
      result = execute(step.value)
      if (result instanceof Promise) result = await result
    } catch (err) {
      step = job.throw(err)
      continue
    }
    step = job.next(result)
  }
  return step.value
}

/**
 * Does the log's I/O in one directory. Appends go through an async O_DSYNC handle (one trip
 * through libuv's thread pool per batch); the tail mark through a synchronous pwrite into the
 * page cache, which costs less than a trip (see tail-mark.ts).
 */
class NodeLogFs {
  private appendFile: FileHandle | null = null
  private readonly fds = new Map<string, number>()

  private readonly dir: string
  private readonly snapshots: SnapshotStore

  constructor(dir: string, snapshots: SnapshotStore) {
    this.dir = dir
    this.snapshots = snapshots
  }

  readonly execute = (io: LogIo): unknown => {
    const path = (name: string): string => join(this.dir, name)
    switch (io.op) {
      case 'mkdir': return mkdir(this.dir, { recursive: true, mode: 0o700 })
      case 'list': return readdir(this.dir)
      case 'read': return readFile(path(io.name)).then(
        // A plain Uint8Array view: entry data sliced from it must not be Buffers.
        (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return null
          throw err
        },
      )
      case 'truncate': return truncate(path(io.name), io.length)
      case 'create': return void this.fd(io.name)
      case 'open-append': return this.openAppend(path(io.name))
      case 'append': return this.append(io.bytes)
      case 'write-at': {
        const fd = this.fd(io.name)
        writeSync(fd, io.bytes, 0, io.bytes.byteLength, io.offset)
        if (io.sync) fdatasyncSync(fd)
        return undefined
      }
      case 'unlink': return unlink(path(io.name))
      case 'sync-dir': return fsyncDir(this.dir)
      case 'close': return this.close()
      case 'kv-keys':
      case 'kv-get':
      case 'kv-batch':
        return this.snapshots.execute(io)
    }
  }

  private fd(name: string): number {
    let fd = this.fds.get(name)
    if (fd === undefined) {
      fd = openSync(join(this.dir, name), constants.O_RDWR | constants.O_CREAT, 0o600)
      this.fds.set(name, fd)
    }
    return fd
  }

  private async openAppend(path: string): Promise<void> {
    const previous = this.appendFile
    this.appendFile = null
    if (previous !== null) await previous.close()
    this.appendFile = await open(path, SEGMENT_FLAGS, 0o600)
  }

  private async append(bytes: Uint8Array): Promise<void> {
    const file = this.appendFile
    if (file === null) throw new Error('FileLogStorage: append before open-append')
    let at = 0
    while (at < bytes.byteLength) at += (await file.write(bytes, at, bytes.byteLength - at)).bytesWritten
  }

  async close(): Promise<void> {
    for (const fd of this.fds.values()) closeSync(fd)
    this.fds.clear()
    const file = this.appendFile
    this.appendFile = null
    if (file !== null) await file.close()
  }
}

/** File-backed LogStorage; open with `FileLogStorage.open`, write with `persist`. */
export class FileLogStorage implements LogStorage {
  private readonly log: WalLog
  private readonly fs: NodeLogFs
  private readonly snapshots: SnapshotStore

  private constructor(log: WalLog, fs: NodeLogFs, snapshots: SnapshotStore) {
    this.log = log
    this.fs = fs
    this.snapshots = snapshots
  }

  /** Opens (recovering) or creates the log in `dir`. */
  static async open(dir: string, options: FileLogStorageOptions): Promise<FileLogStorage> {
    const fs = new NodeLogFs(dir, options.snapshots)
    try {
      const { snapshots: _owned, ...rest } = options
      const log = await runLogJob(WalLog.open({ dir, ...rest }), fs.execute)
      return new FileLogStorage(log, fs, options.snapshots)
    } catch (err) {
      await fs.close().catch(() => undefined)
      await options.snapshots.close()
      throw err
    }
  }

  /** What recovery found, for the start-up log. */
  get recovery(): RecoveryReport {
    return this.log.recovery
  }

  /** Counters for `status` and benchmarks. */
  get stats(): LogStats {
    return this.log.stats
  }

  initialState(): InitialState {
    return this.log.initialState()
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.log.entries(lo, hi, maxBytes)
  }

  term(index: number): number {
    return this.log.term(index)
  }

  firstIndex(): number {
    return this.log.firstIndex()
  }

  lastIndex(): number {
    return this.log.lastIndex()
  }

  snapshot(): Snapshot {
    return this.log.snapshot()
  }

  /** Makes a Ready batch durable (one write, one sync), then exposes it to the core's reads. Calls must not overlap. */
  persist(batch: PersistBatch): Promise<void> {
    return this.run(this.log.persist(batch))
  }

  /** Saves a snapshot of the applied state at `index` durably; entries stay until `compact`. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.run(this.log.createSnapshot(index, confState, data))
  }

  /** The slow half of createSnapshot, which may run while persist does (WalLog.saveSnapshot). */
  saveSnapshot(snap: Snapshot): Promise<void> {
    return this.run(this.log.saveSnapshot(snap))
  }

  /** The quick half (WalLog.adoptSnapshot); false when a leader's snapshot superseded it. */
  adoptSnapshot(snap: Snapshot): Promise<boolean> {
    return this.run(this.log.adoptSnapshot(snap))
  }

  /** Forgets entries up to `index` and deletes segments that hold nothing newer. */
  compact(index: number): Promise<void> {
    return this.run(this.log.compact(index))
  }

  async close(): Promise<void> {
    try {
      await this.run(this.log.close())
    } finally {
      await this.fs.close()
      await this.snapshots.close()
    }
  }

  /** Keeps on disk, synced, that entries through `index` must be copied back before this peer votes. */
  markRepairNeeded(index: number): void {
    runLogJobNow(this.log.markRepairNeeded(index), this.fs.execute)
  }

  /** Index the log must reach before this peer may vote again; 0 when nothing is missing. */
  get repairIndex(): number {
    return this.log.repairIndex
  }

  private run<T>(job: LogJob<T>): Promise<T> {
    return runLogJob(job, this.fs.execute)
  }
}
