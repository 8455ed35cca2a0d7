// The simulated disk of one node. It runs the daemon's own Raft log (storage/raft-log/wal-log.ts,
// the decisions FileLogStorage makes) over a simulated file system, so a crash tests the real
// framing, checksums, torn-tail cutting, tail mark and recovery, not a model of them:
//
//  - bytes written but not yet on the platter sit in a per-file list of pending writes; an
//    O_DSYNC append, a synced write and a directory sync take an fsync latency to complete, and
//    only then are their bytes durable;
//  - a crash keeps a random prefix of each file's pending writes and may tear the last one kept
//    at any byte; files created since the last directory sync may vanish, deleted ones may come
//    back; a snapshot whose save had not completed is gone;
//  - `lying` (the ack-before-fsync variant) completes appends at once without making them
//    durable; `writeBack()` later makes everything durable, as a periodic sync would.
//
// The snapshot store is the daemon's too (storage/snapshots/snapshot-jobs.ts, which
// DatastoreSnapshotStore runs over LevelDB), here over a key-value store whose batches are
// atomic and durable once complete; a batch in flight at a crash is lost whole.

import type { ConfState } from '../protocols/raft/index.ts'
import { runLogJobNow, type LogIo, type LogJob } from '../storage/raft-log/log-io.ts'
import { LogCorruptionError, WalLog, type WalLogOptions } from '../storage/raft-log/wal-log.ts'
import type { Rng } from './random.ts'

/** Latency and crash behaviour of a disk. */
export interface DiskProfile {
  /** fdatasync latency, lower bound (µs). */
  readonly fsyncMinUs: number
  /** fdatasync latency, upper bound (µs). */
  readonly fsyncMaxUs: number
  /** Chance that, in a crash, the last pending write that reached the disk is torn. */
  readonly tearChance: number
}

/** An SSD: fsync in 0.3–3 ms. */
export const SSD_PROFILE: DiskProfile = { fsyncMinUs: 300, fsyncMaxUs: 3_000, tearChance: 0.5 }

/** What a crash did to the disk, for the trace. */
export interface CrashReport {
  /** Pending writes lost. */
  readonly lost: number
  /** Pending writes that reached the platter anyway. */
  readonly survived: number
  /** Files whose last surviving write was torn. */
  readonly torn: readonly string[]
}

/** Segments roll at this size in the simulator, so rolling and segment deletion run in every long run. */
export const SIM_SEGMENT_MAX_BYTES = 16 * 1024

type Pending = { readonly offset: number; readonly bytes: Uint8Array } | { readonly truncate: number }

interface SimFile {
  /** What survives a crash. */
  durable: Uint8Array
  /** What reads see: durable with every pending write applied. */
  current: Uint8Array
  pending: Pending[]
}

function applyWrite(base: Uint8Array, w: Pending): Uint8Array {
  if ('truncate' in w) return base.slice(0, Math.min(base.byteLength, w.truncate))
  // Copy on write: entries decoded from a file hold views into its bytes.
  const out = new Uint8Array(Math.max(base.byteLength, w.offset + w.bytes.byteLength))
  out.set(base)
  out.set(w.bytes, w.offset)
  return out
}

/** A directory of files that lose what was not synced when the power goes. */
class SimFs {
  files = new Map<string, SimFile>()
  /** Names whose directory entry is durable (as of the last sync-dir). */
  durableNames = new Set<string>()
  /** Durably named files deleted since the last sync-dir: a crash may bring them back. */
  unlinked = new Map<string, Uint8Array>()

  read(name: string): Uint8Array | null {
    return this.files.get(name)?.current ?? null
  }

  create(name: string): void {
    if (!this.files.has(name)) this.files.set(name, { durable: new Uint8Array(0), current: new Uint8Array(0), pending: [] })
  }

  write(name: string, w: Pending): void {
    this.create(name)
    const f = this.files.get(name) as SimFile
    f.current = applyWrite(f.current, w)
    f.pending.push(w)
  }

  sync(name: string): void {
    const f = this.files.get(name)
    if (f === undefined) return
    f.durable = f.current
    f.pending = []
  }

  syncDir(): void {
    this.durableNames = new Set(this.files.keys())
    this.unlinked.clear()
  }

  unlink(name: string): void {
    const f = this.files.get(name)
    if (f === undefined) return
    this.files.delete(name)
    if (this.durableNames.has(name)) this.unlinked.set(name, f.durable)
  }

  syncAll(): void {
    for (const name of this.files.keys()) this.sync(name)
  }

  /**
   * Power loss; returns what happened to pending writes. Each file keeps a random prefix of
   * its pending writes (the page cache reaches the platter in order within a file, in no
   * order across files), and the last one kept may be torn at any byte.
   */
  crash(rng: Rng, profile: DiskProfile): CrashReport {
    let lost = 0
    let survived = 0
    const torn: string[] = []
    const next = new Map<string, SimFile>()
    for (const [name, f] of this.files) {
      if (!this.durableNames.has(name) && rng.chance(0.5)) {
        lost += f.pending.length
        continue
      }
      const kept = f.pending.length > 0 ? rng.int(f.pending.length + 1) : 0
      let bytes = f.durable
      for (let i = 0; i < kept; i++) {
        const w = f.pending[i] as Pending
        if (i === kept - 1 && !('truncate' in w) && w.bytes.byteLength > 1 && rng.chance(profile.tearChance)) {
          bytes = applyWrite(bytes, { offset: w.offset, bytes: w.bytes.subarray(0, rng.int(w.bytes.byteLength)) })
          torn.push(name)
        } else {
          bytes = applyWrite(bytes, w)
        }
      }
      lost += f.pending.length - kept
      survived += kept
      next.set(name, { durable: bytes, current: bytes, pending: [] })
    }
    for (const [name, durable] of this.unlinked) if (!next.has(name) && rng.chance(0.5)) next.set(name, { durable, current: durable, pending: [] })
    this.files = next
    this.durableNames = new Set(next.keys())
    this.unlinked.clear()
    return { lost, survived, torn }
  }

  /** What a crash that kept nothing pending would leave. */
  durableCopy(): SimFs {
    const copy = new SimFs()
    for (const name of this.durableNames) {
      const f = this.files.get(name)
      const bytes = f?.durable ?? this.unlinked.get(name)
      if (bytes !== undefined) copy.files.set(name, { durable: bytes, current: bytes, pending: [] })
    }
    copy.durableNames = new Set(copy.files.keys())
    return copy
  }
}

/**
 * The key-value store under the snapshot store (LevelDB in the daemon, with synced batches):
 * a batch is atomic and durable once it completes; one in flight at a crash is gone whole.
 */
class SimKv {
  entries = new Map<string, Uint8Array>()

  keys(prefix: string): string[] {
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix))
  }

  apply(puts: ReadonlyArray<readonly [string, Uint8Array]>, deletes: readonly string[]): void {
    for (const key of deletes) this.entries.delete(key)
    for (const [key, value] of puts) this.entries.set(key, value)
  }
}

/** How a job's slow requests take simulated time. */
export interface DiskTiming {
  /** Runs `fn` after `us` simulated microseconds. */
  after(us: number, fn: () => void): void
  /** One fsync's latency (µs). */
  latencyUs(): number
}

/** A request's effect: done at once, or started now and finished by `complete` after an fsync. */
type Begun = { readonly value: unknown } | { readonly complete: () => unknown }

/** One node's simulated disk: the file system, the snapshot store and the log over them. */
export class SimDisk {
  /** The open log (the read view the Raft core uses); set by `open`. */
  log!: WalLog
  /** With `lying`, appends are acknowledged before they are durable (ack-before-fsync). */
  lying = false
  private fs = new SimFs()
  private snapshots = new SimKv()
  private readonly options: WalLogOptions
  private appendTo: string | null = null
  /** Bumped by a crash: continuations of jobs begun before it are dropped. */
  private epoch = 0

  private constructor(options: WalLogOptions) {
    this.options = options
  }

  /** The disk of a founding peer: the first open writes the bootstrap snapshot and hard state. */
  static founding(confState: ConfState, data: Uint8Array): SimDisk {
    return new SimDisk({ dir: '/raft', founding: confState, bootstrapData: data, segmentMaxBytes: SIM_SEGMENT_MAX_BYTES })
  }

  /** The empty disk of a peer that joins an existing cluster. */
  static empty(): SimDisk {
    return new SimDisk({ dir: '/raft', segmentMaxBytes: SIM_SEGMENT_MAX_BYTES })
  }

  /** Recovers the log from what is on disk (FileLogStorage.open), taking no simulated time. */
  open(): WalLog {
    this.appendTo = null
    this.log = this.runNow(WalLog.open(this.options))
    return this.log
  }

  /** Every file's current bytes, by name (for tests that compare with a real directory). */
  fileBytes(): Map<string, Uint8Array> {
    return new Map([...this.fs.files].map(([name, f]) => [name, f.current]))
  }

  /** Keys in the snapshot store (for tests). */
  snapshotKeys(): string[] {
    return [...this.snapshots.entries.keys()]
  }

  /** Writes not yet durable, over all files. */
  get unsyncedCount(): number {
    let n = 0
    for (const f of this.fs.files.values()) n += f.pending.length
    return n
  }

  /** Whether a segment write has begun and not reached the platter yet. */
  get appendInFlight(): boolean {
    const name = this.appendTo
    return name !== null && !this.lying && (this.fs.files.get(name)?.pending.length ?? 0) > 0
  }

  /**
   * Runs a job. Requests that wait for the disk take `timing.latencyUs()` each; when none
   * does, the job finishes now and its result is returned. Otherwise `later` gets the result
   * when it finishes, unless the disk crashed first.
   */
  run<T>(job: LogJob<T>, timing: DiskTiming, later: (result: T) => void): { done: true; value: T } | { done: false } {
    const epoch = this.epoch
    const resume = (input: unknown): { done: true; value: T } | { done: false } => {
      let step = job.next(input)
      while (step.done !== true) {
        const begun = this.begin(step.value)
        if ('complete' in begun) {
          const complete = begun.complete
          timing.after(timing.latencyUs(), () => {
            if (epoch !== this.epoch) return
            const r = resume(complete())
            if (r.done) later(r.value)
          })
          return { done: false }
        }
        step = job.next(begun.value)
      }
      return { done: true, value: step.value }
    }
    return resume(undefined)
  }

  /** Runs a job to its end now, every request completing at once. */
  runNow<T>(job: LogJob<T>): T {
    return runLogJobNow(job, (io) => {
      const begun = this.begin(io)
      return 'complete' in begun ? begun.complete() : begun.value
    })
  }

  /** A periodic sync (the ack-before-fsync variant's "fsync every second"). */
  writeBack(): void {
    this.fs.syncAll()
  }

  /**
   * A clean stop (the daemon's RaftNode.stop): the log is closed after its last write, and the
   * page cache reaches the disk; jobs under way end with it.
   */
  stopCleanly(): void {
    if (!this.log.busy) this.runNow(this.log.close())
    this.fs.syncAll()
    this.epoch++
    this.appendTo = null
  }

  /** Power loss: pending writes are lost or partly kept (maybe torn); jobs under way stop. */
  crash(rng: Rng, profile: DiskProfile): CrashReport {
    this.epoch++
    this.appendTo = null
    return this.fs.crash(rng, profile)
  }

  /**
   * The last log index a restart would find now if nothing pending survived: what is durable,
   * not what was written. The end-of-run durability check reads it.
   */
  durableLastIndex(): number {
    const copy = new SimDisk(this.options)
    copy.fs = this.fs.durableCopy()
    copy.snapshots.entries = new Map(this.snapshots.entries)
    try {
      return copy.open().lastIndex()
    } catch (err) {
      // A log the daemon would refuse to start on holds nothing a restart could use.
      if (err instanceof LogCorruptionError) return 0
      throw err
    }
  }

  private begin(io: LogIo): Begun {
    const fs = this.fs
    switch (io.op) {
      case 'mkdir':
      case 'close':
        return { value: undefined }
      case 'list':
        return { value: [...fs.files.keys()] }
      case 'read':
        return { value: fs.read(io.name) }
      case 'truncate':
        fs.write(io.name, { truncate: io.length })
        return { value: undefined }
      case 'create':
        fs.create(io.name)
        return { value: undefined }
      case 'open-append':
        fs.create(io.name)
        this.appendTo = io.name
        return { value: undefined }
      case 'append': {
        const name = this.appendTo
        if (name === null) throw new Error('SimDisk: append before open-append')
        fs.write(name, { offset: (fs.read(name) as Uint8Array).byteLength, bytes: io.bytes })
        if (this.lying) return { value: undefined }
        return { complete: () => fs.sync(name) }
      }
      case 'write-at':
        fs.write(io.name, { offset: io.offset, bytes: io.bytes })
        return io.sync ? { complete: () => fs.sync(io.name) } : { value: undefined }
      case 'unlink':
        fs.unlink(io.name)
        return { value: undefined }
      case 'sync-dir':
        return { complete: () => fs.syncDir() }
      case 'kv-keys':
        return { value: this.snapshots.keys(io.prefix) }
      case 'kv-get':
        return { value: this.snapshots.entries.get(io.key) ?? null }
      case 'kv-batch': {
        const { puts, deletes } = io
        return { complete: () => this.snapshots.apply(puts, deletes) }
      }
    }
  }
}
