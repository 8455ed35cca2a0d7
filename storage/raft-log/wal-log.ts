/**
 * The durable Raft log's decisions — what to write, when, and what a directory of segments
 * means after a crash — with every read and write requested through LogIo (log-io.ts), so the
 * daemon (FileLogStorage, over real files) and the simulator (over a file system that loses
 * unsynced writes and tears the last one) run this same code.
 *
 * Layout and durability contract are described in file-log-storage.ts. In short: append-only
 * segments of framed records (wal-record.ts), one O_DSYNC write per Ready batch; a snapshot
 * marker written after the snapshot is durable in the snapshot store; a tail mark
 * (tail-mark.ts) rewritten after every durable write so that recovery can tell a torn last
 * write (cut off) from a tail the disk lost after acknowledging it (repairIndex).
 */
import { EMPTY_HARD_STATE, type ConfState, type Entry, type HardState, type Snapshot } from './log-types.ts'
import type { InitialState, LogStorage } from './log-storage.ts'
import { MemoryLogStorage, bootstrapHardState, bootstrapSnapshot } from './memory-log-storage.ts'
import { encodeRecords, scanRecords, type WalRecord } from './wal-record.ts'
import { TAIL_MARK_FILE, TailMarkSlots, parseTailMark, type TailMark } from './tail-mark.ts'
import { ioDo, ioList, ioRead, type LogJob } from './log-io.ts'
import { newestSnapshot, pruneSnapshots, saveSnapshot } from '../snapshots/snapshot-jobs.ts'

/** A new segment starts once the active one passes this size, so compaction can delete whole files. */
export const DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024
/** Snapshots kept; the previous one is a fallback if the newest is damaged. */
export const DEFAULT_KEEP_SNAPSHOTS = 2
const SEGMENT_PATTERN = /^wal-(\d{10})\.log$/

/** Raised when the on-disk log cannot be trusted; the message says what to do. */
export class LogCorruptionError extends Error {
  override readonly name = 'LogCorruptionError'
}

/** How to open a log. */
export interface WalLogOptions {
  /** The directory, as named in reports and error messages (the executor does the I/O). */
  dir: string
  /** Membership of a new cluster, used only when the directory holds no log yet (a founding peer). */
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

/** One Ready's durable part. */
export interface PersistBatch {
  hardState?: HardState | undefined
  entries: readonly Entry[]
  snapshot?: Snapshot | undefined
  /** False for a Ready that only moved the commit index (Ready.mustSync). */
  sync?: boolean
}

interface Segment {
  seq: number
  name: string
  bytes: number
  /** Highest entry index written to it; 0 when it holds none. */
  maxIndex: number
}

function segmentName(seq: number): string {
  return `wal-${String(seq).padStart(10, '0')}.log`
}

/** The log: synchronous reads for the Raft core, writes as LogJobs. Open with `WalLog.open`. */
export class WalLog implements LogStorage {
  readonly recovery: RecoveryReport
  readonly stats: LogStats = { syncs: 0, bytesWritten: 0, entriesWritten: 0 }
  private readonly dir: string
  private readonly memory: MemoryLogStorage
  private readonly segments: Segment[]
  private readonly segmentMaxBytes: number
  private readonly keepSnapshots: number
  private hardState: HardState
  /** The hard state moved (commit only) since it was last written. */
  private hardStateUnwritten = false
  /** The hard state as last written to a segment (what the tail mark may vouch for). */
  private durableHardState: HardState
  private readonly tailMark: TailMarkSlots
  /** See RecoveryReport.repairIndex; cleared once the log reaches it. */
  private repairIndexValue: number
  private writing = false

  private constructor(memory: MemoryLogStorage, segments: Segment[], hardState: HardState, tailMark: TailMarkSlots, recovery: RecoveryReport, options: WalLogOptions) {
    this.dir = options.dir
    this.tailMark = tailMark
    this.durableHardState = hardState
    this.repairIndexValue = recovery.repairIndex
    this.memory = memory
    this.segments = segments
    this.hardState = hardState
    this.recovery = recovery
    this.segmentMaxBytes = options.segmentMaxBytes ?? DEFAULT_SEGMENT_MAX_BYTES
    this.keepSnapshots = options.keepSnapshots ?? DEFAULT_KEEP_SNAPSHOTS
  }

  /** Opens (recovering) or creates the log. */
  static *open(options: WalLogOptions): LogJob<WalLog> {
    const dir = options.dir
    yield* ioDo({ op: 'mkdir' })
    const segmentSeqs = (yield* ioList()).flatMap((n) => {
      const m = SEGMENT_PATTERN.exec(n)
      return m?.[1] === undefined ? [] : [Number(m[1])]
    }).sort((a, b) => a - b)

    // The newest readable snapshot is the base; the log is replayed on top of it.
    const found = yield* newestSnapshot()
    let snapshot: Snapshot | null = found.snapshot
    const fresh = segmentSeqs.length === 0 && snapshot === null
    const markFile = parseTailMark(yield* ioRead(TAIL_MARK_FILE))
    const { mark, damaged: tailMarkDamaged } = markFile
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
      yield* saveSnapshot(snapshot)
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
      const name = segmentName(seq)
      const path = `${dir}/${name}`
      const bytes = (yield* ioRead(name)) ?? new Uint8Array(0)
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
        yield* ioDo({ op: 'truncate', name, length: end.offset })
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
      segments.push({ seq, name, bytes: size, maxIndex })
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
          segment: `${dir}/${seg?.name ?? segmentName(mark.segmentSeq)}`,
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
      segments.push({ seq, name: segmentName(seq), bytes: 0, maxIndex: 0 })
    }
    const activeSegment = segments[segments.length - 1] as Segment
    yield* ioDo({ op: 'open-append', name: activeSegment.name })
    yield* ioDo({ op: 'create', name: TAIL_MARK_FILE })
    yield* ioDo({ op: 'sync-dir' })
    const log = new WalLog(memory, segments, hardState, new TailMarkSlots(markFile.counter), {
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
      yield* log.persist({ hardState, entries: [] })
    } else if (repairIndex > 0) {
      // The duty to repair must outlive a power cut: the segment now regrows from a shorter
      // length, and a mark that fell back to an older copy could no longer see the loss.
      yield* log.mark(true)
    } else {
      yield* log.mark(false)
    }
    return log
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

  /** Whether a persist or adoptSnapshot job is under way (they must not overlap). */
  get busy(): boolean {
    return this.writing
  }

  /**
   * Makes a Ready batch durable — a received snapshot, new entries, the hard state — with one
   * write, then exposes it to the core's reads. Jobs must not overlap.
   */
  *persist(batch: PersistBatch): LogJob<void> {
    if (this.writing) throw new Error('WalLog.persist called while a previous persist is in flight')
    this.writing = true
    try {
      const records: WalRecord[] = []
      if (batch.snapshot !== undefined && batch.snapshot.metadata.index > this.memory.snapshot().metadata.index) {
        // The snapshot must be durable before the log says it exists.
        yield* saveSnapshot(batch.snapshot)
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
      yield* this.writeDurably(records)
      this.hardStateUnwritten = false
      if (hardState !== undefined) this.durableHardState = hardState
      const seg = this.active()
      for (const e of batch.entries) seg.maxIndex = Math.max(seg.maxIndex, e.index)
      this.stats.entriesWritten += batch.entries.length
      if (batch.snapshot !== undefined) this.memory.applySnapshot(batch.snapshot)
      this.memory.append(batch.entries)
      if (batch.hardState !== undefined) {
        this.hardState = batch.hardState
        this.memory.setHardState(batch.hardState)
      }
      yield* this.mark(false)
      if (seg.bytes >= this.segmentMaxBytes) yield* this.rollSegment()
    } finally {
      this.writing = false
    }
  }

  /**
   * The slow half of taking a snapshot (megabytes into the snapshot store); it may run while
   * persist does, touching only the snapshot store under the snapshot's own index. A crash
   * after it leaves a snapshot no log record names yet; recovery takes it as its base like any
   * other, as it holds applied (so committed) state.
   */
  *saveSnapshot(snap: Snapshot): LogJob<void> {
    yield* saveSnapshot(snap)
  }

  /**
   * The quick half: makes a snapshot that saveSnapshot wrote the log's own (a marker record),
   * then prunes older ones. Must not overlap persist. Returns false, doing nothing, when the log
   * has meanwhile moved past it (a snapshot from the leader was installed).
   */
  *adoptSnapshot(snap: Snapshot): LogJob<boolean> {
    if (this.writing) throw new Error('WalLog.adoptSnapshot called while a persist is in flight')
    if (snap.metadata.index <= this.memory.snapshot().metadata.index) return false
    this.writing = true
    try {
      this.memory.createSnapshot(snap.metadata.index, snap.metadata.confState, snap.data)
      yield* this.writeDurably([{ kind: 'snapshot', index: snap.metadata.index, term: snap.metadata.term, replacesLog: false }])
      yield* this.mark(false)
      yield* pruneSnapshots(this.keepSnapshots)
      return true
    } finally {
      this.writing = false
    }
  }

  /** A snapshot of the applied state at `index`, saved and adopted in one job. */
  *createSnapshot(index: number, confState: ConfState, data: Uint8Array): LogJob<Snapshot> {
    const current = this.memory.snapshot().metadata.index
    if (index <= current) throw new Error(`snapshot at ${index} is not after the log's snapshot at ${current}`)
    const snap: Snapshot = { metadata: { index, term: this.memory.term(index), confState }, data }
    yield* this.saveSnapshot(snap)
    yield* this.adoptSnapshot(snap)
    return snap
  }

  /**
   * Forgets entries up to `index` (≤ the latest snapshot) and deletes the oldest segments that
   * hold nothing newer. Only a prefix of segments goes: a segment holding a snapshot marker
   * must not vanish while an older one, whose entries that marker superseded, remains.
   */
  *compact(index: number): LogJob<void> {
    this.memory.compact(index)
    let removable = 0
    while (removable < this.segments.length - 1 && (this.segments[removable] as Segment).maxIndex <= index) removable++
    for (const seg of this.segments.splice(0, removable)) yield* ioDo({ op: 'unlink', name: seg.name })
    if (removable > 0) yield* ioDo({ op: 'sync-dir' })
  }

  /** A clean stop: keeps the last commit index, so a restart applies as far as before; then closes the files. */
  *close(): LogJob<void> {
    if (this.hardStateUnwritten && !this.writing) {
      yield* this.writeDurably([{ kind: 'hard-state', hardState: this.hardState }])
      this.hardStateUnwritten = false
      this.durableHardState = this.hardState
      yield* this.mark(false)
    }
    yield* ioDo({ op: 'close' })
  }

  /**
   * Entries through `index` were lost after this peer may have acknowledged them (the Raft
   * core found out at run time): keep that on disk, synced, until the log reaches it again,
   * so a restart in between cannot forget that this peer must not vote yet.
   */
  *markRepairNeeded(index: number): LogJob<void> {
    if (index <= this.repairIndexValue || index <= this.memory.lastIndex()) return
    this.repairIndexValue = index
    yield* this.mark(true)
  }

  /** Index the log must reach before this peer may vote again; 0 when nothing is missing. */
  get repairIndex(): number {
    return this.repairIndexValue
  }

  private active(): Segment {
    return this.segments[this.segments.length - 1] as Segment
  }

  /** One write of `records`, on stable storage when it completes (O_DSYNC). */
  private *writeDurably(records: WalRecord[]): LogJob<void> {
    const bytes = encodeRecords(records)
    yield* ioDo({ op: 'append', bytes })
    this.active().bytes += bytes.byteLength
    this.stats.bytesWritten += bytes.byteLength
    this.stats.syncs++
  }

  /**
   * Starts a new segment that opens with the current hard state and snapshot marker, so an
   * older segment can later be deleted without losing the only copy of either.
   */
  private *rollSegment(): LogJob<void> {
    const seq = this.active().seq + 1
    const name = segmentName(seq)
    yield* ioDo({ op: 'open-append', name })
    this.segments.push({ seq, name, bytes: 0, maxIndex: 0 })
    yield* ioDo({ op: 'sync-dir' })
    const snap = this.memory.snapshot().metadata
    yield* this.writeDurably([{ kind: 'snapshot', index: snap.index, term: snap.term, replacesLog: false }, { kind: 'hard-state', hardState: this.hardState }])
    this.hardStateUnwritten = false
    this.durableHardState = this.hardState
    yield* this.mark(false)
  }

  /**
   * Records in the tail mark how far the log reached after the last durable write (see
   * tail-mark.ts): into the page cache on the hot path, synced (`durably`) for a repair duty.
   */
  private *mark(durably: boolean): LogJob<void> {
    if (this.repairIndexValue > 0 && this.memory.lastIndex() >= this.repairIndexValue) this.repairIndexValue = 0
    const mark: TailMark = { segmentSeq: this.active().seq, segmentBytes: this.active().bytes, lastIndex: this.memory.lastIndex(), repairIndex: this.repairIndexValue, hardState: this.durableHardState }
    const { offset, bytes } = this.tailMark.next(mark)
    yield* ioDo({ op: 'write-at', name: TAIL_MARK_FILE, offset, bytes, sync: durably })
  }
}
