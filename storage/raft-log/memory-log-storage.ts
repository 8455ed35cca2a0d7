// An in-memory LogStorage with the writes a driver performs. Tests and the
// deterministic simulator use it as the "disk": what is written here survives a
// simulated crash, what sits only in a RaftCore does not.

import type { InitialState, LogStorage } from './log-storage.ts'
import {
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  invariant,
  limitBytes,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
} from './log-types.ts'

/** Options for a fresh MemoryLogStorage. */
export interface MemoryLogStorageInit {
  /**
   * Membership of a founding cluster. The founding state is stored as a
   * snapshot at BOOTSTRAP_INDEX (see bootstrapSnapshot), so that a peer that
   * joins later with an empty log learns the membership from a snapshot.
   * Omit for a peer that joins an existing cluster.
   */
  readonly confState?: ConfState
  /** State-machine data of the founding snapshot (empty by default). */
  readonly bootstrapData?: Uint8Array
}

/** In-memory durable Raft log, hard state and snapshot. */
export class MemoryLogStorage implements LogStorage {
  private hardState: HardState = EMPTY_HARD_STATE
  private snap: Snapshot
  // The entry before entries[0]: (offsetIndex, offsetTerm). It is compacted
  // away but its term is kept so appends right after it can be matched.
  private offsetIndex = 0
  private offsetTerm = 0
  private ents: Entry[] = []

  /** Creates an empty log, or a founding one when init.confState is given. */
  constructor(init: MemoryLogStorageInit = {}) {
    this.snap = { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE }, data: new Uint8Array(0) }
    if (init.confState !== undefined) {
      const boot = bootstrapSnapshot(init.confState, init.bootstrapData ?? new Uint8Array(0))
      this.snap = boot
      this.offsetIndex = boot.metadata.index
      this.offsetTerm = boot.metadata.term
      this.hardState = bootstrapHardState()
    }
  }

  /** Hard state and the snapshot's membership. */
  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.confState }
  }

  /** Entries in [lo, hi) cut to maxBytes (at least one). */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    invariant(lo >= this.firstIndex(), () => `entries(${lo}, ${hi}): compacted below ${this.firstIndex()}`)
    invariant(hi <= this.lastIndex() + 1, () => `entries(${lo}, ${hi}): beyond last index ${this.lastIndex()}`)
    invariant(lo <= hi, () => `entries(${lo}, ${hi}): inverted range`)
    const from = lo - this.offsetIndex - 1
    return limitBytes(this.ents.slice(from, hi - this.offsetIndex - 1), maxBytes)
  }

  /** Term at index (firstIndex() - 1 ..= lastIndex()). */
  term(index: number): number {
    if (index === this.offsetIndex) return this.offsetTerm
    invariant(
      index > this.offsetIndex && index <= this.lastIndex(),
      () => `term(${index}): outside [${this.offsetIndex}, ${this.lastIndex()}]`,
    )
    return (this.ents[index - this.offsetIndex - 1] as Entry).term
  }

  /** First stored index. */
  firstIndex(): number {
    return this.offsetIndex + 1
  }

  /** Last stored index. */
  lastIndex(): number {
    return this.offsetIndex + this.ents.length
  }

  /** The latest snapshot (always available in memory). */
  snapshot(): Snapshot {
    return this.snap
  }

  /** Persists the hard state (Ready.hardState). */
  setHardState(hardState: HardState): void {
    this.hardState = hardState
  }

  /**
   * Appends entries (Ready.entries): an entry at index i replaces the stored
   * entry at i and everything after it (thesis §3.5: a conflicting suffix goes).
   * Entries at or below the compaction point are skipped: they are committed and
   * already covered by the snapshot.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return
    const first = (entries[0] as Entry).index
    invariant(first <= this.lastIndex() + 1, () => `append at ${first} leaves a gap after ${this.lastIndex()}`)
    const fresh = entries.filter((e) => e.index > this.offsetIndex)
    if (fresh.length === 0) return
    const start = (fresh[0] as Entry).index
    for (let i = 0; i < fresh.length; i++) {
      invariant((fresh[i] as Entry).index === start + i, () => `append: entries not contiguous at ${start + i}`)
    }
    const keep = start - this.offsetIndex - 1
    if (keep === this.ents.length) {
      // The common case, a plain append: O(new entries), not O(log), per persisted batch.
      for (const e of fresh) this.ents.push(e)
    } else {
      this.ents = this.ents.slice(0, keep).concat(fresh)
    }
  }

  /**
   * Replaces the whole log with a snapshot received from the leader
   * (Ready.snapshot). Returns false, changing nothing, if it is older than ours.
   */
  applySnapshot(snapshot: Snapshot): boolean {
    if (snapshot.metadata.index <= this.snap.metadata.index) return false
    this.snap = snapshot
    this.offsetIndex = snapshot.metadata.index
    this.offsetTerm = snapshot.metadata.term
    this.ents = []
    if (this.hardState.commit < snapshot.metadata.index) {
      // The snapshot holds only committed state, so it is a commit proof too.
      this.hardState = { ...this.hardState, commit: snapshot.metadata.index }
    }
    return true
  }

  /**
   * Records a snapshot of the applied state machine at `index` (<= lastIndex(),
   * and the caller's applied index) with the membership at that index. Entries are
   * kept until compact(); returns the snapshot.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    invariant(index > this.snap.metadata.index, () => `snapshot at ${index} is not after ${this.snap.metadata.index}`)
    invariant(index <= this.lastIndex(), () => `snapshot at ${index} is beyond last index ${this.lastIndex()}`)
    this.snap = { metadata: { index, term: this.term(index), confState: cloneConfState(confState) }, data }
    return this.snap
  }

  /**
   * Discards entries up to and including `index`, which must not pass the latest
   * snapshot: a follower that needs them is then sent that snapshot instead.
   */
  compact(index: number): void {
    if (index <= this.offsetIndex) return
    invariant(
      index <= this.snap.metadata.index,
      () => `compact(${index}) passes the snapshot at ${this.snap.metadata.index}`,
    )
    const term = this.term(index)
    this.ents = this.ents.slice(index - this.offsetIndex)
    this.offsetIndex = index
    this.offsetTerm = term
  }
}

/** Index of the founding snapshot: the log of a new cluster starts after it. */
export const BOOTSTRAP_INDEX = 1
/** Term of the founding snapshot; the first election is for term BOOTSTRAP_TERM + 1. */
export const BOOTSTRAP_TERM = 1

/**
 * The founding snapshot of a new cluster (etcd's recommended bootstrap: a
 * storage whose first index is > 1 and whose snapshot holds the membership).
 * Any peer that later joins with an empty log needs index 1, which is
 * compacted, so the leader sends it a snapshot: membership always travels
 * with the state, never replayed onto an empty configuration.
 */
export function bootstrapSnapshot(confState: ConfState, data: Uint8Array): Snapshot {
  return { metadata: { index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM, confState: cloneConfState(confState) }, data }
}

/** Hard state that goes with bootstrapSnapshot. */
export function bootstrapHardState(): HardState {
  return { term: BOOTSTRAP_TERM, vote: null, commit: BOOTSTRAP_INDEX }
}

function cloneConfState(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] }
}
