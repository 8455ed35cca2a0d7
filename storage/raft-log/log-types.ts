// Data types of the Raft log and its persistent state, with the helpers both the Raft core
// (protocols/raft) and the log's storage use. They live below both: the core builds on
// them, and the storage implements the log without importing the core.
//
// Indices and terms are plain numbers: 2^53 log entries or terms is far beyond
// what a cluster produces, and numbers keep the hot paths allocation-free.

/** A peer's identity: its libp2p peer id string. */
export type NodeId = string

/** What an entry carries: application data, or a membership change (see conf-change.ts). */
export type EntryType = 'normal' | 'conf-change'

/** One log entry (thesis §3.5): the term of the leader that created it, its position, and its payload. */
export interface Entry {
  readonly index: number
  readonly term: number
  readonly type: EntryType
  readonly data: Uint8Array
}

/** An entry as proposed, before the leader assigns it a term and an index. */
export interface ProposedEntry {
  readonly type: EntryType
  readonly data: Uint8Array
}

/**
 * The state a server must persist before answering RPCs (thesis §3.8, Figure 3.1):
 * currentTerm and votedFor; commit is persisted too so a restart re-applies less.
 */
export interface HardState {
  readonly term: number
  readonly vote: NodeId | null
  readonly commit: number
}

/** The membership: voters form quorums, learners only receive the log (thesis §4.2.1). */
export interface ConfState {
  readonly voters: readonly NodeId[]
  readonly learners: readonly NodeId[]
}

/** Where a snapshot ends in the log and the membership at that point (thesis §5.1). */
export interface SnapshotMetadata {
  readonly index: number
  readonly term: number
  readonly confState: ConfState
}

/** A state-machine snapshot that replaces the log prefix up to metadata.index. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata
  readonly data: Uint8Array
}

/** The zero hard state of a server that has never voted nor seen a term. */
export const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 }

/** The empty membership of a server that has not joined a cluster yet. */
export const EMPTY_CONF_STATE: ConfState = { voters: [], learners: [] }

/**
 * Fixed per-entry cost counted on top of the payload when sizing batches, so a
 * batch of many empty entries is still bounded (etcd counts the encoded size).
 */
export const ENTRY_OVERHEAD_BYTES = 16

/** Bytes an entry counts for in message and apply batches. */
export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES
}

/** Payload bytes of entries: what counts against the uncommitted-tail bound (etcd payloadSize). */
export function payloadBytes(entries: readonly { readonly data: Uint8Array }[]): number {
  let total = 0
  for (const entry of entries) total += entry.data.byteLength
  return total
}

/**
 * The longest prefix of `entries` within `maxBytes`, but always at least one
 * entry so an oversized entry cannot stall replication (etcd limitSize).
 */
export function limitBytes(entries: readonly Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0) return []
  let size = entryBytes(entries[0] as Entry)
  let count = 1
  while (count < entries.length) {
    size += entryBytes(entries[count] as Entry)
    if (size > maxBytes) break
    count++
  }
  return entries.slice(0, count)
}

/** Whether two hard states are equal field by field. */
export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

/** Whether two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

/** Whether two entries are identical (position, term, type and payload). */
export function entryEqual(a: Entry, b: Entry): boolean {
  return a.index === b.index && a.term === b.term && a.type === b.type && bytesEqual(a.data, b.data)
}

/** Thrown when the core detects a broken invariant: a bug, never an expected outcome. */
export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError'
}

/** Throws RaftInvariantError with `message` unless `condition` holds. */
export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === 'string' ? message : message())
  }
}
