// Messages exchanged between Raft peers. One discriminated union on `type`;
// handlers switch over it exhaustively.
//
// Every message carries the sender's term (thesis §3.3: a server that sees a
// larger term adopts it; a smaller one marks a stale sender), except the three
// requests a follower forwards to its leader on behalf of a client ('prop',
// 'read-index', 'transfer-leader'), which carry FORWARDED_TERM and skip term
// checks, as in etcd: they are requests, not assertions of authority.

import type { Entry, NodeId, ProposedEntry, Snapshot } from './types.ts'

/** Term carried by forwarded client requests, which bypass term handling. */
export const FORWARDED_TERM = 0

interface MessageBase {
  readonly from: NodeId
  readonly to: NodeId
  readonly term: number
}

/** AppendEntries (thesis §3.5): entries after (prevIndex, prevTerm) plus the leader's commit. */
export interface AppendMessage extends MessageBase {
  readonly type: 'app'
  readonly prevIndex: number
  readonly prevTerm: number
  readonly entries: readonly Entry[]
  readonly commit: number
}

/**
 * Answer to 'app' or 'snap'. Accepted: `index` is the follower's last index known
 * to match the leader. Rejected: `index` is the rejected prevIndex and
 * (rejectHint, hintTerm) is the follower's guess of the last matching entry
 * (fast backtracking, thesis §3.5 note and etcd findConflictByTerm).
 *
 * `logLost` (answering a heartbeat): the leader's heartbeat said entries through
 * `index` are committed here, so this follower once acknowledged them, but its
 * log ends before that — its disk lost them. `rejectHint` is the follower's
 * commit index, all of which it still holds. A leader must take the follower's
 * match back to the hint and probe again; an ordinary rejection at or below the
 * match is stale and ignored, which would leave the follower stuck for good.
 * Absent on the wire from peers that predate it (= false).
 */
export interface AppendResponse extends MessageBase {
  readonly type: 'app-resp'
  readonly index: number
  readonly reject: boolean
  readonly rejectHint: number
  readonly hintTerm: number
  readonly logLost?: boolean
}

/** RequestVote (thesis §3.4); `transfer` marks a leadership transfer, which bypasses leases (§3.10). */
export interface VoteRequest extends MessageBase {
  readonly type: 'vote'
  readonly lastIndex: number
  readonly lastTerm: number
  readonly transfer: boolean
}

/** Answer to 'vote'; a grant echoes the request's term. */
export interface VoteResponse extends MessageBase {
  readonly type: 'vote-resp'
  readonly reject: boolean
}

/** Pre-vote (thesis §9.6): `term` is the term the sender would campaign in; nobody's term changes. */
export interface PreVoteRequest extends MessageBase {
  readonly type: 'pre-vote'
  readonly lastIndex: number
  readonly lastTerm: number
}

/** Answer to 'pre-vote'; a grant echoes the request's (future) term. */
export interface PreVoteResponse extends MessageBase {
  readonly type: 'pre-vote-resp'
  readonly reject: boolean
}

/**
 * Leader heartbeat. `commit` is min(follower match, leader commit) so a follower
 * never commits entries it may not hold; `readSeq` tags ReadIndex rounds (§6.4).
 */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat'
  readonly commit: number
  readonly readSeq: number
}

/** Answer to 'heartbeat', echoing its readSeq. */
export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeat-resp'
  readonly readSeq: number
}

/** InstallSnapshot (thesis §5.1) for a follower that needs compacted entries. */
export interface SnapshotMessage extends MessageBase {
  readonly type: 'snap'
  readonly snapshot: Snapshot
}

/** Tells an up-to-date follower to campaign at once (leadership transfer, thesis §3.10). */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeout-now'
}

/** A ReadIndex request forwarded by a follower to its leader (thesis §6.4). */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'read-index'
  readonly context: Uint8Array
}

/** The leader's answer to a forwarded ReadIndex: serve `context` once applied >= index. */
export interface ReadIndexResponse extends MessageBase {
  readonly type: 'read-index-resp'
  readonly index: number
  readonly context: Uint8Array
}

/** A leadership-transfer request forwarded by a follower to its leader. */
export interface TransferLeaderRequest extends MessageBase {
  readonly type: 'transfer-leader'
  readonly transferee: NodeId
}

/** Client proposals forwarded by a follower to its leader. */
export interface ProposalMessage extends MessageBase {
  readonly type: 'prop'
  readonly entries: readonly ProposedEntry[]
}

/** Every message a Raft peer sends or receives. */
export type Message =
  | AppendMessage
  | AppendResponse
  | VoteRequest
  | VoteResponse
  | PreVoteRequest
  | PreVoteResponse
  | HeartbeatMessage
  | HeartbeatResponse
  | SnapshotMessage
  | TimeoutNowMessage
  | ReadIndexRequest
  | ReadIndexResponse
  | TransferLeaderRequest
  | ProposalMessage

/** The `type` tag of a message. */
export type MessageType = Message['type']

/** Whether a message is a forwarded client request, which carries FORWARDED_TERM. */
export function isForwardedRequest(m: Message): m is ReadIndexRequest | TransferLeaderRequest | ProposalMessage {
  return m.type === 'prop' || m.type === 'read-index' || m.type === 'transfer-leader'
}

/** Whether a message answers one the receiver sent (etcd IsResponseMsg). */
export function isResponse(m: Message): boolean {
  switch (m.type) {
    case 'app-resp':
    case 'vote-resp':
    case 'pre-vote-resp':
    case 'heartbeat-resp':
    case 'read-index-resp':
      return true
    case 'app':
    case 'vote':
    case 'pre-vote':
    case 'heartbeat':
    case 'snap':
    case 'timeout-now':
    case 'read-index':
    case 'transfer-leader':
    case 'prop':
      return false
    default:
      return assertNever(m)
  }
}

/** Compile-time exhaustiveness check for switches over discriminated unions. */
export function assertNever(value: never): never {
  throw new Error(`unhandled variant: ${JSON.stringify(value)}`)
}
