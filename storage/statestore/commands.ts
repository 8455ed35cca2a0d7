// Commands: the payload of a Raft 'normal' entry. The node layer builds them,
// encodes them with encodeCommand, proposes the bytes, and every replica applies
// the decoded command to its StateStore in log order.

/** Comparison operators of a txn compare (etcd's Compare.CompareResult). */
export type CompareOp = '=' | '!=' | '<' | '>'

/** Numeric key attributes a compare can test; a missing key reads as 0 for each. */
export type NumericTarget = 'version' | 'createRevision' | 'modRevision' | 'lease'

/**
 * One txn guard, evaluated against the state before the txn (etcd semantics):
 * a 'value' compare on a missing key is false whatever the op; numeric targets
 * of a missing key are 0, so `createRevision = 0` means "does not exist".
 * Values compare as bytes, lexicographically.
 */
export type Compare =
  | { readonly target: 'value'; readonly key: string; readonly op: CompareOp; readonly value: Uint8Array }
  | { readonly target: NumericTarget; readonly key: string; readonly op: CompareOp; readonly value: number }
  | { readonly target: 'exists'; readonly key: string; readonly exists: boolean }

/**
 * A fencing guard on a write: it applies only while lock `lock` is held with fencing token
 * `token` (the holder's createRevision, SHOAL_LOCK_TOKEN). etcd's compare on the holder's key:
 * a stale holder (a newer one exists, or its session ended) is refused with 'fence-rejected'.
 */
export interface Fence {
  readonly lock: string
  readonly token: number
}

/**
 * Writes `value` at `key`; `ifAbsent` refuses (key-exists) when the key exists; `prevKv`
 * returns the old pair; `fence` refuses (fence-rejected) unless that lock is held with that token.
 */
export interface PutRequest {
  readonly type: 'put'
  readonly key: string
  readonly value: Uint8Array
  readonly lease?: number
  readonly ifAbsent?: boolean
  readonly prevKv?: boolean
  readonly fence?: Fence
}

/** Deletes one key (no revision is used when it does not exist). */
export interface DeleteRequest {
  readonly type: 'delete'
  readonly key: string
  readonly prevKv?: boolean
}

/** Deletes every key starting with `prefix` ('' is every key), all at one revision. */
export interface DeletePrefixRequest {
  readonly type: 'deletePrefix'
  readonly prefix: string
  readonly prevKv?: boolean
}

/** The writes a txn branch may hold. */
export type TxnOp = PutRequest | DeleteRequest | DeletePrefixRequest

/**
 * If every compare holds, apply `success`, else `failure`; the chosen branch is
 * atomic and uses one revision (etcd Txn). Within one branch no key may be put
 * twice or put and deleted (etcd's "duplicate key given in txn request").
 */
export interface TxnRequest {
  readonly type: 'txn'
  readonly compare: readonly Compare[]
  readonly success: readonly TxnOp[]
  readonly failure: readonly TxnOp[]
}

/** Drops watch history at and below `revision`. */
export interface CompactRequest {
  readonly type: 'compact'
  readonly revision: number
}

/** Creates lease `id` (chosen by the proposer) owned by the command's origin. */
export interface LeaseGrantRequest {
  readonly type: 'leaseGrant'
  readonly id: number
  readonly ttlMs: number
}

/** Deletes lease `id` and every key attached to it, at one revision. */
export interface LeaseRevokeRequest {
  readonly type: 'leaseRevoke'
  readonly id: number
}

/** Everything a command can ask for. */
export type Request = TxnOp | TxnRequest | CompactRequest | LeaseGrantRequest | LeaseRevokeRequest

/**
 * One replicated command.
 *
 * `origin` is the proposing peer, set by the node layer from the authenticated
 * sender (never from client input); ownership rules in records.ts trust it.
 * `asLeader` is set by the node layer only on commands the leader itself
 * originates (lease expiry, marking a dead host's containers lost).
 *
 * `requestId` makes retries idempotent. A proposal can be appended by a leader
 * that then loses leadership; the entry may still commit under the next leader,
 * yet the proposer never hears back and must retry. Without dedup that retry
 * would apply twice: a put bumps the version twice, a lock-acquire txn reports
 * failure although it succeeded, a deletePrefix deletes keys written in between.
 * So the store remembers recent request ids with their results and answers a
 * retry with the original result (Raft thesis §6.3). Ids must be unique per
 * client call (e.g. 128 random bits) and reused verbatim on every retry of it.
 */
export interface Command {
  readonly origin: string
  readonly requestId: string
  readonly asLeader?: boolean
  readonly request: Request
  /**
   * The proposer's applied index when it first made this request; every entry carrying it lies
   * above. The dedup window forgets old requests; a command whose base is older than the
   * newest index the window forgot may already have applied unseen, so it is refused
   * ('outcome-unknown') instead of applied twice. Absent only in entries written before it
   * existed.
   */
  readonly base?: number
}
