// The tail of the log that the core holds but the driver has not yet
// persisted: new entries and, on a follower, a snapshot received from the
// leader. Modelled on etcd's `unstable`.
//
// Entries move from "next" (not yet handed out in a Ready) to "in progress"
// (handed out, being written) to stable (advance() confirmed the write, so they
// are dropped here and read from LogStorage instead). A later append may
// truncate in-progress entries; stableTo() then ignores the stale confirmation
// because the (index, term) it names no longer matches (etcd's ABA guard).

import { invariant, type Entry, type Snapshot } from './types.ts'

/** Unpersisted log tail and snapshot. */
export class Unstable {
  /** A snapshot received from the leader and not yet persisted. */
  snapshot: Snapshot | undefined = undefined
  /** Whether `snapshot` was handed out in a Ready. */
  snapshotInProgress = false
  /** Unpersisted entries; entries[i].index === offset + i. */
  entries: Entry[] = []
  /** Index of entries[0] (or where the next entry goes). */
  offset: number
  /** First entry not yet handed out in a Ready; offset <= offsetInProgress <= offset + entries.length. */
  offsetInProgress: number

  /** An empty tail that starts right after the stored last index. */
  constructor(offset: number) {
    this.offset = offset
    this.offsetInProgress = offset
  }

  /** First index of the log if a pending snapshot decides it. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1
  }

  /** Last index of the log if the unstable part decides it. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index
  }

  /** Term at `index` if the unstable part knows it. */
  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) return this.snapshot.metadata.term
      return undefined
    }
    const last = this.maybeLastIndex()
    if (last === undefined || index > last) return undefined
    return (this.entries[index - this.offset] as Entry).term
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    return this.entries.slice(this.offsetInProgress - this.offset)
  }

  /** The snapshot, if it was not yet handed out in a Ready. */
  nextSnapshot(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot
  }

  /** Marks everything currently here as handed out in a Ready. */
  acceptInProgress(): void {
    this.offsetInProgress = this.offset + this.entries.length
    if (this.snapshot !== undefined) this.snapshotInProgress = true
  }

  /** The driver persisted entries through (index, term): drop them unless since replaced. */
  stableTo(index: number, term: number): void {
    if (index < this.offset) return
    const t = this.maybeTerm(index)
    if (t === undefined || t !== term) return
    this.entries = this.entries.slice(index + 1 - this.offset)
    this.offset = index + 1
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset)
  }

  /** The driver persisted the snapshot at `index`. */
  stableSnapTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) {
      this.snapshot = undefined
      this.snapshotInProgress = false
    }
  }

  /** Replaces the whole tail with a snapshot from the leader (thesis §5.1). */
  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1
    this.offsetInProgress = this.offset
    this.entries = []
    this.snapshot = snapshot
    this.snapshotInProgress = false
  }

  /** Appends contiguous entries, first truncating any tail they replace. */
  truncateAndAppend(entries: readonly Entry[]): void {
    if (entries.length === 0) return
    const from = (entries[0] as Entry).index
    const end = this.offset + this.entries.length
    if (from === end) {
      this.entries = this.entries.concat(entries)
    } else if (from <= this.offset) {
      // Replaces everything unstable, and overrides stored entries >= from.
      this.entries = [...entries]
      this.offset = from
      this.offsetInProgress = from
    } else {
      invariant(from < end, () => `unstable append at ${from} leaves a gap after ${end - 1}`)
      this.entries = this.entries.slice(0, from - this.offset).concat(entries)
      this.offsetInProgress = Math.min(this.offsetInProgress, from)
    }
  }

  /** Entries in [lo, hi), which must lie within the unstable entries. */
  slice(lo: number, hi: number): Entry[] {
    invariant(
      lo >= this.offset && lo <= hi && hi <= this.offset + this.entries.length,
      () => `unstable.slice(${lo}, ${hi}) outside [${this.offset}, ${this.offset + this.entries.length})`,
    )
    return this.entries.slice(lo - this.offset, hi - this.offset)
  }
}
