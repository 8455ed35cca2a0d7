// Typed outcomes of client-facing calls. Expected refusals (no leader, a
// transfer in progress, a bound reached) are values, never exceptions.

import type { ConfChangeRejection } from './conf-change.ts'
import type { NodeId } from './types.ts'

/** Why a proposal was not accepted. */
export type ProposalRejection =
  /** No leader is known (election in progress or partitioned). */
  | 'no-leader'
  /** A leader is known but forwarding is disabled, and this node is not it. */
  | 'not-leader'
  /** The leader is handing over leadership (thesis §3.10) and takes no new entries. */
  | 'transfer-in-progress'
  /** The uncommitted tail would exceed maxUncommittedEntriesBytes. */
  | 'uncommitted-limit'
  /** This leader was removed from the configuration. */
  | 'not-member'
  /** A previous conf change is not applied yet (one at a time, thesis §4.1). */
  | 'conf-change-pending'
  /** A conf-change entry whose payload does not decode. */
  | 'malformed-conf-change'
  /** The conf change is a no-op or would be unsafe (see ConfChangeRejection). */
  | ConfChangeRejection

/** Outcome of propose() / proposeConfChange(). */
export type ProposeResult =
  /** Appended to this leader's log; committed later, or lost if leadership is lost first. */
  | { readonly ok: true; readonly kind: 'appended'; readonly index: number; readonly term: number }
  /** Sent to the known leader; the outcome is observed through the log. */
  | { readonly ok: true; readonly kind: 'forwarded'; readonly to: NodeId }
  | { readonly ok: false; readonly reason: ProposalRejection }

/** Why a ReadIndex request was not accepted. */
export type ReadIndexRejection = 'no-leader' | 'not-leader' | 'too-many-pending-reads'

/** Outcome of readIndex(); a confirmed read shows up later in Ready.readStates. */
export type ReadIndexResult =
  /** The leader registered the read (confirmed after a heartbeat quorum). */
  | { readonly ok: true; readonly kind: 'pending' }
  /** Sent to the known leader, whose answer arrives as a ReadState. */
  | { readonly ok: true; readonly kind: 'forwarded'; readonly to: NodeId }
  | { readonly ok: false; readonly reason: ReadIndexRejection }

/** Why a leadership transfer was not started. */
export type TransferRejection =
  | 'no-leader'
  | 'not-leader'
  /** The target is not a member. */
  | 'unknown-node'
  /** The target is a learner, which cannot lead. */
  | 'learner'
  /** The target already leads. */
  | 'already-leader'
  /** No target was named and no other voter exists. */
  | 'no-candidate'

/** Outcome of transferLeadership(). */
export type TransferResult =
  /** Transfer started (or was already under way) toward `to`. */
  | { readonly ok: true; readonly kind: 'started'; readonly to: NodeId }
  /** Request sent to the known leader. */
  | { readonly ok: true; readonly kind: 'forwarded'; readonly to: NodeId }
  | { readonly ok: false; readonly reason: TransferRejection }

/** Outcome of step(): messages not meant for this node are refused. */
export type StepResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'misaddressed' | 'response-from-unknown-peer' }
