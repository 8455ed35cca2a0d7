// The read-only view of durable Raft state that the core reads from.
//
// The core never writes here: every write is an output (Ready.entries,
// Ready.hardState, Ready.snapshot) that the driver persists before calling
// advance(). Compaction is likewise the driver's decision: after it moves
// firstIndex() forward (having saved a snapshot at or past the new
// firstIndex()-1), the core notices on its next read and sends that snapshot
// to any follower that still needs the discarded entries (thesis §5.1).
//
// Bootstrapping: a founding peer's storage starts with a snapshot at index 1
// holding the founding membership (see bootstrapSnapshot); a joining peer's
// storage starts empty and is filled from the leader's snapshot, so the
// membership is never rebuilt by replaying conf changes onto an empty config.

import type { ConfState, Entry, HardState, Snapshot } from './log-types.ts'

/** What a restarting server recovers from disk. */
export interface InitialState {
  readonly hardState: HardState
  /**
   * The membership as of the `applied` index the core is created with. With the
   * default applied (the snapshot index) that is the snapshot's membership; the
   * core then re-delivers later committed conf changes for the driver to re-apply.
   */
  readonly confState: ConfState
}

/**
 * Synchronous, read-only view of the persisted log. Indices below firstIndex()
 * are compacted into snapshot(); term(firstIndex() - 1) stays known so the entry
 * just before the first stored one can still be matched (thesis §5.1).
 */
export interface LogStorage {
  /** Hard state and membership saved before the last restart. */
  initialState(): InitialState
  /**
   * Entries in [lo, hi), firstIndex() <= lo <= hi <= lastIndex() + 1, cut to
   * `maxBytes` (see limitBytes) but never empty when lo < hi. Throws outside that range.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[]
  /** Term of the entry at `index`, firstIndex() - 1 <= index <= lastIndex(). Throws outside that range. */
  term(index: number): number
  /** Index of the first entry still stored (1 for a log never compacted). */
  firstIndex(): number
  /** Index of the last stored entry (firstIndex() - 1 when there is none). */
  lastIndex(): number
  /**
   * The most recent snapshot, whose index is >= firstIndex() - 1; undefined while
   * one is temporarily unavailable (being created), in which case the leader retries later.
   */
  snapshot(): Snapshot | undefined
}
