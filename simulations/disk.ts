// The simulated disk of one node, holding to the contract of the real Raft log
// (storage/raft-log/file-log-storage.ts):
//
//  - persist(batch) is one write of WAL records (a received snapshot's marker,
//    entries, the hard state) and, when asked, one fdatasync; the read view the
//    core sees is updated once the write is done, as FileLogStorage does. (The
//    real log keeps a commit-only hard state in memory until its next durable
//    write; an unsynced record that a crash may lose, synced by the next sync,
//    is the same contract.)
//  - a snapshot is saved to the snapshot store (itself synced) before the log
//    names it;
//  - a crash loses every record not yet synced, except that a prefix of them
//    may have reached the platter anyway, and the last of those may be torn;
//    recovery cuts a torn record off, then replays snapshot + log exactly as
//    FileLogStorage.recover does.
//
// Records are kept as values (the WalRecord type of the real log), not bytes:
// a torn record is one that recovery discards, which is all a torn write can
// ever be under the real log's checksums.

import {
  EMPTY_HARD_STATE,
  MemoryLogStorage,
  bootstrapHardState,
  bootstrapSnapshot,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
} from '../protocols/raft/index.ts'
import type { WalRecord } from '../storage/raft-log/wal-record.ts'
import type { Rng } from './random.ts'

/** Latency and crash behaviour of a disk. */
export interface DiskProfile {
  /** fdatasync latency, lower bound (µs). */
  readonly fsyncMinUs: number
  /** fdatasync latency, upper bound (µs). */
  readonly fsyncMaxUs: number
  /** Chance that, in a crash, the last unsynced record that reached the disk is torn. */
  readonly tearChance: number
}

/** An SSD: fsync in 0.3–3 ms. */
export const SSD_PROFILE: DiskProfile = { fsyncMinUs: 300, fsyncMaxUs: 3_000, tearChance: 0.5 }

/** What a crash did to the disk, for the trace. */
export interface CrashReport {
  /** Unsynced records lost. */
  readonly lost: number
  /** Unsynced records that survived anyway. */
  readonly survived: number
  /** Whether the last surviving record was torn (and is cut on recovery). */
  readonly torn: boolean
}

/** A write batch: one Ready's durable part. */
export interface WriteBatch {
  readonly hardState: HardState | undefined
  readonly entries: readonly Entry[]
  readonly snapshot: Snapshot | undefined
}

/** Snapshots kept in the store, as FileLogStorage's DEFAULT_KEEP_SNAPSHOTS. */
const KEEP_SNAPSHOTS = 2

/** One node's simulated disk. */
export class SimDisk {
  /** The synchronous read view the Raft core reads (FileLogStorage keeps the same in memory). */
  storage: MemoryLogStorage
  private records: WalRecord[] = []
  /** records[0, synced) are durable. */
  private synced = 0
  /** The snapshot store, newest last; every save is durable at once. */
  private snapshots: Snapshot[] = []
  /** A write whose read-view update waits for its fsync. */
  private pending: WriteBatch | undefined = undefined

  private constructor(storage: MemoryLogStorage) {
    this.storage = storage
  }

  /** The disk of a founding peer: the bootstrap snapshot and hard state, durable. */
  static founding(confState: ConfState, data: Uint8Array): SimDisk {
    const disk = new SimDisk(new MemoryLogStorage({ confState, bootstrapData: data }))
    disk.snapshots.push(bootstrapSnapshot(confState, data))
    disk.records.push({ kind: 'hard-state', hardState: bootstrapHardState() })
    disk.synced = disk.records.length
    return disk
  }

  /** The empty disk of a peer that joins an existing cluster. */
  static empty(): SimDisk {
    return new SimDisk(new MemoryLogStorage())
  }

  /** WAL records written, synced or not. */
  get recordCount(): number {
    return this.records.length
  }

  /** WAL records written but not yet synced. */
  get unsyncedCount(): number {
    return this.records.length - this.synced
  }

  /** Whether a synced write is waiting for its fsync to finish. */
  get writing(): boolean {
    return this.pending !== undefined
  }

  /**
   * Writes one batch (FileLogStorage.persist up to its fdatasync). Without
   * `sync` it is done at once, unsynced; with it, the read view is updated by
   * sync(), when the fsync completes.
   */
  write(batch: WriteBatch, sync: boolean): void {
    if (this.pending !== undefined) throw new Error('SimDisk.write while a previous write is in flight')
    const snap = batch.snapshot
    if (snap !== undefined && snap.metadata.index > this.storage.snapshot().metadata.index) {
      // The snapshot must be durable before the log says it exists.
      this.saveSnapshot(snap)
      this.records.push({ kind: 'snapshot', index: snap.metadata.index, term: snap.metadata.term, replacesLog: true })
    }
    for (const entry of batch.entries) this.records.push({ kind: 'entry', entry })
    if (batch.hardState !== undefined) this.records.push({ kind: 'hard-state', hardState: batch.hardState })
    if (sync) {
      this.pending = batch
      return
    }
    this.expose(batch)
  }

  /** The fsync finished: everything written so far is durable, and a waiting write becomes visible. */
  sync(): void {
    this.synced = this.records.length
    const batch = this.pending
    this.pending = undefined
    if (batch !== undefined) this.expose(batch)
  }

  /** Saves a snapshot of the applied state at `index` and syncs its marker (FileLogStorage.createSnapshot). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (this.pending !== undefined) throw new Error('SimDisk.createSnapshot while a write is in flight')
    const snap = this.storage.createSnapshot(index, confState, data)
    this.saveSnapshot(snap)
    this.records.push({ kind: 'snapshot', index: snap.metadata.index, term: snap.metadata.term, replacesLog: false })
    this.synced = this.records.length
    return snap
  }

  /**
   * Forgets entries up to `index` (<= the latest snapshot), and drops the WAL
   * prefix that holds nothing newer, as deleting whole segments does; the
   * header a new segment starts with (snapshot marker, hard state) is kept.
   */
  compact(index: number): void {
    this.storage.compact(index)
    let cut = 0
    let lastHardState: HardState | undefined
    while (cut < this.synced) {
      const r = this.records[cut] as WalRecord
      if (r.kind === 'entry' && r.entry.index > index) break
      if (r.kind === 'snapshot' && r.replacesLog && r.index > index) break
      if (r.kind === 'hard-state') lastHardState = r.hardState
      cut++
    }
    if (cut === 0) return
    const newest = this.snapshots[this.snapshots.length - 1]
    const header: WalRecord[] = []
    if (newest !== undefined) header.push({ kind: 'snapshot', index: newest.metadata.index, term: newest.metadata.term, replacesLog: false })
    if (lastHardState !== undefined) header.push({ kind: 'hard-state', hardState: lastHardState })
    this.records = header.concat(this.records.slice(cut))
    this.synced = this.synced - cut + header.length
  }

  /**
   * Power loss: unsynced records are lost, except a random prefix of them that
   * reached the disk; the last of those may be torn, which recovery cuts off.
   */
  crash(rng: Rng, profile: DiskProfile): CrashReport {
    const unsynced = this.records.length - this.synced
    let survived = unsynced > 0 ? rng.int(unsynced + 1) : 0
    const torn = survived > 0 && rng.chance(profile.tearChance)
    if (torn) survived--
    this.records.length = this.synced + survived
    this.synced = this.records.length
    this.pending = undefined
    return { lost: unsynced - survived, survived, torn }
  }

  /** Rebuilds the read view from what is durable (FileLogStorage.recover); call after crash(). */
  recover(): MemoryLogStorage {
    const memory = this.rebuild(this.records)
    this.storage = memory
    return memory
  }

  /**
   * The last log index a restart would find now, in the log or the snapshot: what is
   * durable (synced), not what was written. The end-of-run durability check reads it.
   */
  durableLastIndex(): number {
    return this.rebuild(this.records.slice(0, this.synced)).lastIndex()
  }

  /** The storage a restart builds from `records` (FileLogStorage.recover). */
  private rebuild(records: readonly WalRecord[]): MemoryLogStorage {
    const snapshot = this.snapshots[this.snapshots.length - 1]
    let memory = new MemoryLogStorage()
    let hardState: HardState = EMPTY_HARD_STATE
    if (snapshot !== undefined) {
      memory.applySnapshot(snapshot)
      hardState = { ...EMPTY_HARD_STATE, commit: snapshot.metadata.index }
    }
    let pending: Entry[] = []
    const flush = (): void => {
      if (pending.length > 0) memory.append(pending)
      pending = []
    }
    for (const record of records) {
      switch (record.kind) {
        case 'hard-state':
          hardState = record.hardState
          break
        case 'snapshot': {
          flush()
          const base = memory.snapshot().metadata.index
          if (record.replacesLog && record.index === base && snapshot !== undefined) {
            // The leader's snapshot superseded everything logged before it.
            memory = new MemoryLogStorage()
            memory.applySnapshot(snapshot)
          } else if (record.index > base && record.index > memory.lastIndex()) {
            throw new Error(`SimDisk: the log names snapshot ${record.index}, which the snapshot store does not hold`)
          }
          break
        }
        case 'entry': {
          const e = record.entry
          if (e.index <= memory.firstIndex() - 1) break
          const prev = pending.length > 0 ? (pending[pending.length - 1] as Entry).index : memory.lastIndex()
          if (e.index !== prev + 1) {
            flush()
            if (e.index > memory.lastIndex() + 1) throw new Error(`SimDisk: the log skips from ${memory.lastIndex()} to ${e.index}`)
          }
          pending.push(e)
          break
        }
      }
    }
    flush()
    if (hardState.commit < memory.firstIndex() - 1) hardState = { ...hardState, commit: memory.firstIndex() - 1 }
    memory.setHardState(hardState)
    return memory
  }

  private expose(batch: WriteBatch): void {
    if (batch.snapshot !== undefined) this.storage.applySnapshot(batch.snapshot)
    this.storage.append(batch.entries)
    if (batch.hardState !== undefined) this.storage.setHardState(batch.hardState)
  }

  private saveSnapshot(snap: Snapshot): void {
    this.snapshots.push(snap)
    if (this.snapshots.length > KEEP_SNAPSHOTS) this.snapshots.shift()
  }
}
