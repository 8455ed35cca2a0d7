// Types of the Raft core's volatile state and events. The log's data types (entries, hard
// state, snapshots, membership) live with the log's storage, below the core, and are
// re-exported here so the core's files name them in one place.

export * from '../../storage/raft-log/log-types.ts'
import type { NodeId } from '../../storage/raft-log/log-types.ts'

/** A server's role; 'pre-candidate' is the pre-vote phase (thesis §9.6). */
export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

/** Volatile state worth telling the driver about when it changes (not persisted). */
export interface SoftState {
  readonly lead: NodeId | null
  readonly role: Role
}

/**
 * A confirmed linearizable read (thesis §6.4): once the local state machine has
 * applied up to `index`, a read tagged with `context` may be served.
 */
export interface ReadState {
  readonly index: number
  readonly context: Uint8Array
}

/**
 * A log found shorter than what was acknowledged from it (a disk that lost
 * writes), for the driver to report loudly: Raft repairs it, but an operator
 * should know the disk is unreliable.
 *  own-log-lost:      our log ends at `lastIndex`, but `leader` says entries
 *                     through `leaderCommit` are committed here. We will not
 *                     vote until they are copied back.
 *  follower-log-lost: (leader) `follower` reported such a loss; we took its
 *                     match back to `holds` and resend from there.
 */
export type LogLossEvent =
  | { readonly kind: 'own-log-lost'; readonly leader: NodeId; readonly leaderCommit: number; readonly lastIndex: number }
  | { readonly kind: 'follower-log-lost'; readonly follower: NodeId; readonly holds: number }

/** Bound on log-loss events held for one Ready. */
export const LOG_LOSS_EVENTS_MAX = 16

