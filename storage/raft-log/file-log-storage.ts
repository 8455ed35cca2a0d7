/**
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
import { constants } from 'node:fs'
import { mkdir, open, readdir, readFile, unlink, truncate, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import {
  MemoryLogStorage,
  bootstrapSnapshot,
  bootstrapHardState,
  EMPTY_HARD_STATE,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type LogStorage,
  type Snapshot,
} from '../../protocols/raft/index.ts'
import { encodeRecords, scanRecords, type WalRecord } from './wal-record.ts'
import type { SnapshotStore } from '../snapshots/snapshot-store.ts'
import { fsyncDir } from './fs-util.ts'
import { TAIL_MARK_FILE, TailMarkWriter, readTailMark } from './tail-mark.ts'

/** Segments are appended to with synchronous writes (see the header). */
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC

/** A new segment starts once the active one passes this size, so compaction can delete whole files. */
export const DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024
/** Snapshots kept; the previous one is a fallback if the newest is damaged. */
export const DEFAULT_KEEP_SNAPSHOTS = 2
const SEGMENT_PATTERN = /^wal-(\d{10})\.log$/

/** Raised when the on-disk log cannot be trusted; the message says what to do. */
export class LogCorruptionError extends Error {
  override readonly name = 'LogCorruptionError'
}

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

/** What recovery found, for the start-up log. */
export interface RecoveryReport {
  snapshotIndex: number
  firstIndex: number
  lastIndex: number
  segments: number
  /** Where a torn last record was cut off, if one was. */
  tornTail: { segment: string; offset: number } | null
  /**
   * The log is shorter than it was after its last durable write: acknowledged entries are
   * gone, not just an interrupted last write. Null when the tail is whole (or cannot be
   * checked: see `tailMarkDamaged`, and logs written before the tail mark existed).
   */
  lostTail: { segment: string; expectedBytes: number; foundBytes: number; expectedLastIndex: number; lastIndex: number } | null
  /**
   * Entries through this index may have been acknowledged and are not in the log any more:
   * the peer must not vote or campaign until its log reaches it (0: nothing to repair).
   */
  repairIndex: number
  /** The tail mark exists but neither of its copies is readable: the tail could not be checked. */
  tailMarkDamaged: boolean
  /** Newer snapshots that failed their checksum and were passed over for an older one. */
  damagedSnapshots: number[]
}

/** Counters for `status` and benchmarks. */
export interface LogStats {
  syncs: number
  bytesWritten: number
  entriesWritten: number
}

interface Segment {
  seq: number
  path: string
  bytes: number
  /** Highest entry index written to it; 0 when it holds none. */
  maxIndex: number
}

function segmentName(seq: number): string {
  return `wal-${String(seq).padStart(10, '0')}.log`
}

/** File-backed LogStorage; open with `FileLogStorage.open`, write with `persist`. */
export class FileLogStorage implements LogStorage {
  readonly recovery: RecoveryReport
  readonly stats: LogStats = { syncs: 0, bytesWritten: 0, entriesWritten: 0 }
  private readonly dir: string
  private readonly snapshots: SnapshotStore
  private readonly memory: MemoryLogStorage
  private readonly segments: Segment[]
  private active: FileHandle
  private readonly segmentMaxBytes: number
  private readonly keepSnapshots: number
  private hardState: HardState
  /** The hard state moved (commit only) since it was last written. */
  private hardStateUnwritten = false
  /** The hard state as last written to a segment (what the tail mark may vouch for). */
  private durableHardState: HardState
  private readonly tailMark: TailMarkWriter
  /** See RecoveryReport.repairIndex; cleared once the log reaches it. */
  private repairIndexValue: number
  private writing = false

  private constructor(dir: string, memory: MemoryLogStorage, segments: Segment[], active: FileHandle, hardState: HardState, tailMark: TailMarkWriter, recovery: RecoveryReport, options: FileLogStorageOptions) {
    this.dir = dir
    this.tailMark = tailMark
    this.durableHardState = hardState
    this.repairIndexValue = recovery.repairIndex
    this.snapshots = options.snapshots
    this.memory = memory
    this.segments = segments
    this.active = active
    this.hardState = hardState
    this.recovery = recovery
    this.segmentMaxBytes = options.segmentMaxBytes ?? DEFAULT_SEGMENT_MAX_BYTES
    this.keepSnapshots = options.keepSnapshots ?? DEFAULT_KEEP_SNAPSHOTS
  }

  /** Opens (recovering) or creates the log in `dir`. */
  static async open(dir: string, options: FileLogStorageOptions): Promise<FileLogStorage> {
    try {
      return await FileLogStorage.recover(dir, options)
    } catch (err) {
      await options.snapshots.close()
      throw err
    }
  }

  private static async recover(dir: string, options: FileLogStorageOptions): Promise<FileLogStorage> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const names = await readdir(dir)
    const segmentSeqs = names.flatMap((n) => {
      const m = SEGMENT_PATTERN.exec(n)
      return m?.[1] === undefined ? [] : [Number(m[1])]
    }).sort((a, b) => a - b)

    // The newest readable snapshot is the base; the log is replayed on top of it.
    const found = await options.snapshots.newest()
    let snapshot: Snapshot | null = found.snapshot
    const fresh = segmentSeqs.length === 0 && snapshot === null
    const markPath = join(dir, TAIL_MARK_FILE)
    const { mark, damaged: tailMarkDamaged } = readTailMark(markPath)
    if (fresh && options.founding !== undefined && mark !== null && mark.lastIndex > 1) {
      throw new LogCorruptionError(
        `the Raft log in ${dir} is gone (its tail mark says it reached index ${mark.lastIndex}), so this peer cannot found a new cluster there: ` +
        'restore the data dir from a backup, or start with an empty --data-dir and --bootstrap to join an existing cluster.',
      )
    }
    let memory: MemoryLogStorage
    let hardState: HardState = EMPTY_HARD_STATE
    if (fresh && options.founding !== undefined) {
      memory = new MemoryLogStorage({ confState: options.founding, bootstrapData: options.bootstrapData ?? new Uint8Array(0) })
      snapshot = bootstrapSnapshot(options.founding, options.bootstrapData ?? new Uint8Array(0))
      await options.snapshots.save(snapshot)
      hardState = bootstrapHardState()
    } else {
      memory = new MemoryLogStorage()
      if (snapshot !== null) {
        memory.applySnapshot(snapshot)
        hardState = { ...EMPTY_HARD_STATE, commit: snapshot.metadata.index }
      }
    }

    const segments: Segment[] = []
    let tornTail: RecoveryReport['tornTail'] = null
    let pending: Entry[] = []
    const flush = (): void => {
      if (pending.length > 0) memory.append(pending)
      pending = []
    }
    for (let i = 0; i < segmentSeqs.length; i++) {
      const seq = segmentSeqs[i] as number
      const path = join(dir, segmentName(seq))
      const file = await readFile(path)
      // A plain Uint8Array view: entry data sliced from it must not be Buffers.
      const bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength)
      const { records, end } = scanRecords(bytes)
      const last = i === segmentSeqs.length - 1
      if (end.kind === 'corrupt' || (end.kind === 'torn' && !last)) {
        const offset = end.offset
        throw new LogCorruptionError(
          `Raft log segment ${path} is damaged at byte ${offset} (${end.kind === 'corrupt' ? end.reason : 'incomplete record before later segments'}); ` +
          'acknowledged data may be lost, so this peer will not start on it. Restore the data dir from a backup, ' +
          'or move it aside and start this peer with an empty --data-dir to re-join as a new member.',
        )
      }
      let size = bytes.byteLength
      if (end.kind === 'torn') {
        // Only the unsynced tail of the last write can be torn: cut it so appends continue on a clean record boundary.
        await truncate(path, end.offset)
        tornTail = { segment: path, offset: end.offset }
        size = end.offset
      }
      let maxIndex = 0
      for (const record of records) {
        if (record.kind === 'hard-state') {
          hardState = record.hardState
        } else if (record.kind === 'snapshot') {
          flush()
          const base = memory.snapshot().metadata.index
          if (record.replacesLog && record.index === base && snapshot !== null) {
            // The leader's snapshot superseded everything logged before this point, stale
            // uncommitted entries included: rebuild from it, as persist() did at run time.
            memory = new MemoryLogStorage()
            memory.applySnapshot(snapshot)
          } else if (record.index > base && record.index > memory.lastIndex()) {
            throw new LogCorruptionError(`the Raft log refers to snapshot ${record.index}, but no readable snapshot reaches it in the snapshot store beside ${dir}; restore the data dir from a backup, or re-join this peer with an empty --data-dir`)
          }
        } else {
          const e = record.entry
          maxIndex = Math.max(maxIndex, e.index)
          if (e.index <= memory.firstIndex() - 1) continue // covered by the snapshot
          const prev = pending.length > 0 ? (pending[pending.length - 1] as Entry).index : memory.lastIndex()
          if (e.index !== prev + 1) {
            flush()
            if (e.index > memory.lastIndex() + 1) {
              // With no snapshot at all, what is missing is the snapshot store, not log records.
              const cause = snapshot === null
                ? `starts at index ${e.index}, but the snapshot store beside ${dir} holds no snapshot (was its directory removed?) to cover the entries before it`
                : `skips from index ${memory.lastIndex()} to ${e.index}`
              throw new LogCorruptionError(`Raft log ${path} ${cause}; restore the data dir from a backup, or re-join this peer with an empty --data-dir`)
            }
          }
          pending.push(e)
        }
      }
      flush()
      segments.push({ seq, path, bytes: size, maxIndex })
    }
    if (hardState.commit < memory.firstIndex() - 1) hardState = { ...hardState, commit: memory.firstIndex() - 1 }

    // A torn tail is at most the last write, which the tail mark (written after each durable
    // write returned) never covers; a segment shorter than the mark lost writes that were done.
    let lostTail: RecoveryReport['lostTail'] = null
    let repairIndex = mark?.repairIndex ?? 0
    if (mark !== null) {
      const seg = segments.find((s) => s.seq === mark.segmentSeq)
      const newest = segments[segments.length - 1]
      // A segment older than the oldest left was compacted away: nothing to compare.
      const foundBytes = seg !== undefined ? seg.bytes : newest === undefined || mark.segmentSeq > newest.seq ? 0 : null
      if (foundBytes !== null && foundBytes < mark.segmentBytes) {
        lostTail = {
          segment: seg?.path ?? join(dir, segmentName(mark.segmentSeq)),
          expectedBytes: mark.segmentBytes,
          foundBytes,
          expectedLastIndex: mark.lastIndex,
          lastIndex: memory.lastIndex(),
        }
        repairIndex = Math.max(repairIndex, mark.lastIndex)
      }
      // The term and vote must never go back: a vote cast again in the same term could elect
      // two leaders. The mark holds them if the records that did were lost.
      const mh = mark.hardState
      if (mh.term > hardState.term || (mh.term === hardState.term && hardState.vote === null && mh.vote !== null)) {
        hardState = { ...hardState, term: mh.term, vote: mh.vote }
      }
    }
    if (repairIndex <= memory.lastIndex()) repairIndex = 0
    memory.setHardState(hardState)

    if (segments.length === 0) {
      const seq = 1
      segments.push({ seq, path: join(dir, segmentName(seq)), bytes: 0, maxIndex: 0 })
    }
    const activeSegment = segments[segments.length - 1] as Segment
    const active = await open(activeSegment.path, SEGMENT_FLAGS, 0o600)
    let tailMark: TailMarkWriter
    try {
      tailMark = TailMarkWriter.open(markPath)
    } catch (err) {
      await active.close()
      throw err
    }
    await fsyncDir(dir)
    const storage = new FileLogStorage(dir, memory, segments, active, hardState, tailMark, {
      snapshotIndex: memory.snapshot().metadata.index,
      firstIndex: memory.firstIndex(),
      lastIndex: memory.lastIndex(),
      segments: segments.length,
      tornTail,
      lostTail,
      repairIndex,
      tailMarkDamaged,
      damagedSnapshots: found.damaged,
    }, options)
    if (fresh && options.founding !== undefined) {
      await storage.persist({ hardState, entries: [] })
    } else if (repairIndex > 0) {
      // The duty to repair must outlive a power cut: the segment now regrows from a shorter
      // length, and a mark that fell back to an older copy could no longer see the loss.
      storage.markDurably()
    } else {
      storage.mark()
    }
    return storage
  }

  initialState(): InitialState {
    return this.memory.initialState()
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.memory.entries(lo, hi, maxBytes)
  }

  term(index: number): number {
    return this.memory.term(index)
  }

  firstIndex(): number {
    return this.memory.firstIndex()
  }

  lastIndex(): number {
    return this.memory.lastIndex()
  }

  snapshot(): Snapshot {
    return this.memory.snapshot()
  }

  /**
   * Makes a Ready batch durable — a received snapshot, new entries, the hard state — with one
   * write and one fdatasync, then exposes it to the core's reads. Calls must not overlap.
   */
  async persist(batch: { hardState?: HardState | undefined; entries: readonly Entry[]; snapshot?: Snapshot | undefined; sync?: boolean }): Promise<void> {
    if (this.writing) throw new Error('FileLogStorage.persist called while a previous persist is in flight')
    this.writing = true
    try {
      const records: WalRecord[] = []
      if (batch.snapshot !== undefined && batch.snapshot.metadata.index > this.memory.snapshot().metadata.index) {
        // The snapshot must be durable before the log says it exists.
        await this.snapshots.save(batch.snapshot)
        records.push({ kind: 'snapshot', index: batch.snapshot.metadata.index, term: batch.snapshot.metadata.term, replacesLog: true })
      }
      for (const entry of batch.entries) records.push({ kind: 'entry', entry })
      if (batch.sync === false && records.length === 0 && batch.hardState !== undefined) {
        // Only the commit index moved (Ready.mustSync false): written with the next batch.
        this.hardState = batch.hardState
        this.memory.setHardState(batch.hardState)
        this.hardStateUnwritten = true
        return
      }
      const hardState = batch.hardState ?? (this.hardStateUnwritten ? this.hardState : undefined)
      if (hardState !== undefined) records.push({ kind: 'hard-state', hardState })
      if (records.length === 0) return
      await this.writeDurably(records)
      this.hardStateUnwritten = false
      if (hardState !== undefined) this.durableHardState = hardState
      const seg = this.segments[this.segments.length - 1] as Segment
      for (const e of batch.entries) seg.maxIndex = Math.max(seg.maxIndex, e.index)
      this.stats.entriesWritten += batch.entries.length
      if (batch.snapshot !== undefined) this.memory.applySnapshot(batch.snapshot)
      this.memory.append(batch.entries)
      if (batch.hardState !== undefined) {
        this.hardState = batch.hardState
        this.memory.setHardState(batch.hardState)
      }
      this.mark()
      if (seg.bytes >= this.segmentMaxBytes) await this.rollSegment()
    } finally {
      this.writing = false
    }
  }

  /** Saves a snapshot of the applied state at `index` durably; entries stay until `compact`. */
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const current = this.memory.snapshot().metadata.index
    if (index <= current) throw new Error(`snapshot at ${index} is not after the log's snapshot at ${current}`)
    const snap: Snapshot = { metadata: { index, term: this.memory.term(index), confState }, data }
    await this.saveSnapshot(snap)
    await this.adoptSnapshot(snap)
    return snap
  }

  /**
   * The slow half of createSnapshot (megabytes into the snapshot store), which may run while
   * persist does, so a peer's Raft loop need not wait for it (issue 17 §5). It touches only the
   * snapshot store, under the snapshot's own index. A crash after it leaves a snapshot no log
   * record names yet; recovery takes it as its base like any other, as it holds applied (so
   * committed) state, exactly as when a crash fell between createSnapshot's two writes.
   */
  async saveSnapshot(snap: Snapshot): Promise<void> {
    await this.snapshots.save(snap)
  }

  /**
   * The quick half: makes a snapshot that saveSnapshot wrote the log's own (a marker record),
   * then prunes older ones. Must not overlap persist. Returns false, doing nothing, when the log
   * has meanwhile moved past it (a snapshot from the leader was installed).
   */
  async adoptSnapshot(snap: Snapshot): Promise<boolean> {
    if (this.writing) throw new Error('FileLogStorage.adoptSnapshot called while a persist is in flight')
    if (snap.metadata.index <= this.memory.snapshot().metadata.index) return false
    this.memory.createSnapshot(snap.metadata.index, snap.metadata.confState, snap.data)
    await this.writeDurably([{ kind: 'snapshot', index: snap.metadata.index, term: snap.metadata.term, replacesLog: false }])
    this.mark()
    await this.snapshots.prune(this.keepSnapshots)
    return true
  }

  /**
   * Forgets entries up to `index` (≤ the latest snapshot) and deletes the oldest segments that
   * hold nothing newer. Only a prefix of segments goes: a segment holding a snapshot marker
   * must not vanish while an older one, whose entries that marker superseded, remains.
   */
  async compact(index: number): Promise<void> {
    this.memory.compact(index)
    let removable = 0
    while (removable < this.segments.length - 1 && (this.segments[removable] as Segment).maxIndex <= index) removable++
    for (const seg of this.segments.splice(0, removable)) await unlink(seg.path)
    if (removable > 0) await fsyncDir(this.dir)
  }

  async close(): Promise<void> {
    // A clean stop keeps the last commit index, so a restart applies as far as before.
    if (this.hardStateUnwritten && !this.writing) {
      await this.writeDurably([{ kind: 'hard-state', hardState: this.hardState }])
      this.durableHardState = this.hardState
      this.mark()
    }
    this.tailMark.close()
    await this.active.close()
    await this.snapshots.close()
  }

  /** One write of `records`, on stable storage when it resolves (O_DSYNC). */
  private async writeDurably(records: WalRecord[]): Promise<void> {
    const bytes = encodeRecords(records)
    let at = 0
    while (at < bytes.byteLength) at += (await this.active.write(bytes, at, bytes.byteLength - at)).bytesWritten
    const seg = this.segments[this.segments.length - 1] as Segment
    seg.bytes += bytes.byteLength
    this.stats.bytesWritten += bytes.byteLength
    this.stats.syncs++
  }

  /**
   * Starts a new segment that opens with the current hard state and snapshot marker, so an
   * older segment can later be deleted without losing the only copy of either.
   */
  private async rollSegment(): Promise<void> {
    const seq = (this.segments[this.segments.length - 1] as Segment).seq + 1
    const path = join(this.dir, segmentName(seq))
    await this.active.close()
    this.active = await open(path, SEGMENT_FLAGS, 0o600)
    this.segments.push({ seq, path, bytes: 0, maxIndex: 0 })
    await fsyncDir(this.dir)
    const snap = this.memory.snapshot().metadata
    await this.writeDurably([{ kind: 'snapshot', index: snap.index, term: snap.term, replacesLog: false }, { kind: 'hard-state', hardState: this.hardState }])
    this.hardStateUnwritten = false
    this.durableHardState = this.hardState
    this.mark()
  }

  /**
   * Entries through `index` were lost after this peer may have acknowledged them (the Raft
   * core found out at run time): keep that on disk, synced, until the log reaches it again,
   * so a restart in between cannot forget that this peer must not vote yet.
   */
  markRepairNeeded(index: number): void {
    if (index <= this.repairIndexValue || index <= this.memory.lastIndex()) return
    this.repairIndexValue = index
    this.markDurably()
  }

  /** Index the log must reach before this peer may vote again; 0 when nothing is missing. */
  get repairIndex(): number {
    return this.repairIndexValue
  }

  /** Records in the tail mark how far the log reached after the last durable write (see tail-mark.ts). */
  private mark(): void {
    if (this.repairIndexValue > 0 && this.memory.lastIndex() >= this.repairIndexValue) this.repairIndexValue = 0
    const seg = this.segments[this.segments.length - 1] as Segment
    this.tailMark.write({ segmentSeq: seg.seq, segmentBytes: seg.bytes, lastIndex: this.memory.lastIndex(), repairIndex: this.repairIndexValue, hardState: this.durableHardState })
  }

  private markDurably(): void {
    const seg = this.segments[this.segments.length - 1] as Segment
    this.tailMark.writeDurably({ segmentSeq: seg.seq, segmentBytes: seg.bytes, lastIndex: this.memory.lastIndex(), repairIndex: this.repairIndexValue, hardState: this.durableHardState })
  }
}
