// The Raft log as the core sees it: the persisted part (LogStorage) followed by
// the unpersisted tail (Unstable), plus the commit and apply cursors.
// Modelled on etcd's raftLog.
//
// Cursors: applied <= applying <= committed <= lastIndex(). `applying` is the
// last entry handed to the driver in a Ready; `applied` the last one the driver
// confirmed through advance().

import type { LogStorage } from './storage.ts'
import { Unstable } from './unstable.ts'
import { entryBytes, invariant, limitBytes, type Entry, type Snapshot } from './types.ts'

/** (index, term) of the entry a rejected append hints at. */
export interface LogPosition {
  readonly index: number
  readonly term: number
}

/** The combined stable + unstable log with commit/apply cursors. */
export class RaftLog {
  /** Persisted entries, hard state and snapshot. */
  readonly storage: LogStorage
  /** Entries and snapshot not yet persisted. */
  readonly unstable: Unstable
  /** Highest index known to be committed (thesis §3.5). */
  committed: number
  /** Highest index handed to the driver for applying. */
  applying: number
  /** Highest index the driver has applied. */
  applied: number
  /** Bound on the bytes of committed entries handed out in one Ready. */
  readonly maxApplyingBytes: number

  /** A log over `storage` with cursors at the last compacted index. */
  constructor(storage: LogStorage, maxApplyingBytes: number) {
    this.storage = storage
    this.maxApplyingBytes = maxApplyingBytes
    const first = storage.firstIndex()
    this.unstable = new Unstable(storage.lastIndex() + 1)
    this.committed = first - 1
    this.applying = first - 1
    this.applied = first - 1
  }

  /** First index still in the log (after a pending snapshot, if any). */
  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex()
  }

  /** Last index in the log. */
  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex()
  }

  /** Term of the entry at `index`, or undefined if compacted or beyond the end. */
  term(index: number): number | undefined {
    const t = this.unstable.maybeTerm(index)
    if (t !== undefined) return t
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined
    // Entries at or past unstable.offset are unstable; maybeTerm answered them.
    invariant(index < this.unstable.offset, () => `term(${index}): unstable gap`)
    return this.storage.term(index)
  }

  /** Term of the last entry. */
  lastTerm(): number {
    const t = this.term(this.lastIndex())
    invariant(t !== undefined, 'last term unknown')
    return t
  }

  /** Whether the log holds an entry at `index` with `term`. */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term
  }

  /**
   * Whether a candidate whose log ends at (lastIndex, lastTerm) is at least as
   * up to date as ours (thesis §3.6.1: compare last terms, then lengths).
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm()
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex())
  }

  /**
   * AppendEntries consistency check and append (thesis §3.5). Returns the index
   * of the last entry the leader sent, now known to match, or undefined if our
   * log has no entry (prevIndex, prevTerm).
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined
    const lastNew = prevIndex + entries.length
    const conflict = this.findConflict(entries)
    if (conflict !== 0) {
      // A conflicting entry below commit would mean two different committed
      // entries at one index: a State Machine Safety violation (thesis §3.6.3).
      invariant(conflict > this.committed, () => `entry ${conflict} conflicts with committed ${this.committed}`)
      this.append(entries.slice(conflict - (prevIndex + 1)))
    }
    // A follower may only commit what it knows matches the leader (thesis §3.5).
    this.commitTo(Math.min(commit, lastNew))
    return lastNew
  }

  /** Appends entries to the unstable tail, truncating what they replace. Returns the new last index. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex()
    const after = (entries[0] as Entry).index - 1
    invariant(after >= this.committed, () => `append after ${after} would rewrite committed ${this.committed}`)
    this.unstable.truncateAndAppend(entries)
    return this.lastIndex()
  }

  /**
   * Index of the first entry that is new or conflicts with ours (same index,
   * different term); 0 if all of them are already in the log.
   */
  findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index
    }
    return 0
  }

  /**
   * The last position at or below `index` whose term is <= `term` (etcd
   * findConflictByTerm). Entries above it cannot match a log whose entry at
   * `index` has `term`, because terms only grow along a log; skipping them turns
   * backtracking into one round trip per term instead of per entry. Stops at the
   * compaction point (term 0 there means "unknown").
   */
  findConflictByTerm(index: number, term: number): LogPosition {
    for (let i = index; i > 0; i--) {
      const t = this.term(i)
      if (t === undefined) return { index: i, term: 0 }
      if (t <= term) return { index: i, term: t }
    }
    return { index: 0, term: 0 }
  }

  /** Entries not yet handed out for persisting. */
  nextUnstableEntries(): Entry[] {
    return this.unstable.nextEntries()
  }

  /** Whether a snapshot is pending or being persisted. */
  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined
  }

  /** Whether committed entries wait to be handed out for applying. */
  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.applying < this.committed
  }

  /**
   * Committed entries not yet handed out for applying, at most maxApplyingBytes
   * (but at least one). None while a snapshot is pending: it must be applied first.
   */
  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return []
    const ents = this.slice(this.applying + 1, this.committed + 1, this.maxApplyingBytes)
    invariant(ents !== undefined, () => `unapplied entries after ${this.applying} were compacted`)
    return ents
  }

  /** The snapshot to send a follower: a pending one, else the stored one. */
  snapshot(): Snapshot | undefined {
    return this.unstable.snapshot ?? this.storage.snapshot()
  }

  /** Raises the commit index (never lowers it). */
  commitTo(index: number): void {
    if (index <= this.committed) return
    invariant(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}: log lost?`)
    this.committed = index
  }

  /**
   * Commits `index` if our entry there has `term` (thesis §3.6.2: a leader
   * commits by counting replicas only entries of its own term).
   */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.matchTerm(index, term)) {
      this.commitTo(index)
      return true
    }
    return false
  }

  /** Records entries through `index` as handed out for applying. */
  acceptApplying(index: number): void {
    invariant(index <= this.committed, () => `applying ${index} beyond commit ${this.committed}`)
    this.applying = Math.max(this.applying, index)
  }

  /** Records entries through `index` as applied by the driver. */
  appliedTo(index: number): void {
    invariant(
      index <= this.committed && index >= this.applied,
      () => `applied ${index} outside [${this.applied}, ${this.committed}]`,
    )
    this.applied = index
    this.applying = Math.max(this.applying, index)
  }

  /** Entries were persisted through (index, term). */
  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term)
  }

  /** The snapshot at `index` was persisted. */
  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index)
  }

  /** Everything unstable was handed out in a Ready. */
  acceptUnstable(): void {
    this.unstable.acceptInProgress()
  }

  /**
   * Highest index known to be on disk, for a log without a pending snapshot
   * (a leader's): the leader counts itself toward a quorum only up to here.
   */
  lastStableIndex(): number {
    invariant(this.unstable.snapshot === undefined, 'lastStableIndex with a pending snapshot')
    return Math.min(this.unstable.offset - 1, this.lastIndex())
  }

  /** Replaces the log with a leader's snapshot; it is committed by definition. */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index
    this.unstable.restore(snapshot)
  }

  /**
   * Entries in [lo, hi) within maxBytes (at least one if lo < hi), or undefined
   * if lo is compacted. Throws if hi passes the end (a caller bug).
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | undefined {
    invariant(lo <= hi, () => `slice(${lo}, ${hi}) inverted`)
    if (lo < this.firstIndex()) return undefined
    invariant(hi <= this.lastIndex() + 1, () => `slice(${lo}, ${hi}) beyond last index ${this.lastIndex()}`)
    if (lo === hi) return []
    const offset = this.unstable.offset
    if (lo >= offset) return limitBytes(this.unstable.slice(lo, hi), maxBytes)
    const cut = Math.min(hi, offset)
    const stored = this.storage.entries(lo, cut, maxBytes)
    if (hi <= offset || stored.length < cut - lo) return stored
    let size = 0
    for (const e of stored) size += entryBytes(e)
    const rest = this.unstable.slice(offset, hi)
    const out = [...stored]
    for (const e of rest) {
      size += entryBytes(e)
      if (size > maxBytes) break
      out.push(e)
    }
    return out
  }

  /** Entries from `index` to the end, within maxBytes; undefined if compacted. */
  entriesFrom(index: number, maxBytes: number): Entry[] | undefined {
    if (index > this.lastIndex()) return []
    return this.slice(index, this.lastIndex() + 1, maxBytes)
  }
}
