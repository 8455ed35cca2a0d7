// Outcomes of applying a command. Expected refusals are values with a stable
// code; exceptions from the store mean a bug (in the store or its driver).

import type { KeyValue } from './kv.ts'

/** Why a command was refused. Stable strings: clients and tests match on them. */
export type ApplyErrorCode =
  /** The entry's bytes do not decode as a command. */
  | 'malformed-command'
  /** origin is not a valid peer id. */
  | 'invalid-origin'
  /** requestId is empty, too long or not printable ASCII. */
  | 'invalid-request-id'
  /** Key or prefix is empty (keys only), has NUL, starts with '/', or is not well-formed Unicode. */
  | 'key-invalid'
  /** Key or prefix is longer than KEY_MAX_BYTES. */
  | 'key-too-long'
  /** Value is larger than VALUE_MAX_BYTES. */
  | 'value-too-large'
  /** All keys and values together exceed COMMAND_MAX_PAYLOAD_BYTES. */
  | 'command-too-large'
  /** A txn list is longer than TXN_MAX_OPS. */
  | 'txn-too-many-ops'
  /** A txn branch puts a key twice or puts a key it also deletes. */
  | 'txn-duplicate-key'
  /** TTL outside LEASE_TTL_MIN_MS..LEASE_TTL_MAX_MS. */
  | 'ttl-out-of-range'
  /** Lease id is not a safe positive integer (or a negative lease on a put). */
  | 'lease-id-invalid'
  /** A revision or number in a compare is not a non-negative safe integer. */
  | 'revision-invalid'
  /** The origin may not write or delete this key, or use or revoke this lease. */
  | 'permission-denied'
  /** The value does not parse as its bucket's record, or the key does not match it. */
  | 'invalid-record'
  /** The lease does not exist (never granted, revoked or expired). */
  | 'lease-not-found'
  /** A lease with this id exists. */
  | 'lease-exists'
  /** STORE_MAX_LEASES reached. */
  | 'too-many-leases'
  /** STORE_MAX_KEYS reached. */
  | 'too-many-keys'
  /** put ifAbsent on an existing key. */
  | 'key-exists'
  /** Compact at or below the current compact revision (etcd ErrCompacted). */
  | 'compacted'
  /** Compact above the current revision (etcd ErrFutureRev). */
  | 'future-revision'
  /** The requestId was already used for a different command (payload, origin or asLeader differ). */
  | 'request-id-conflict'
  /** A fenced write whose lock is not held with its token (a newer holder exists, or none). */
  | 'fence-rejected'
  /**
   * Not applied now, but an earlier attempt of the same request may have been (it is older than
   * the dedup window, or its remembered result was dropped): read before making it again.
   */
  | 'outcome-unknown'

/** A refusal, as returned by validation and the codec. */
export interface CommandError {
  readonly code: ApplyErrorCode
  readonly message: string
}

/** Result of one write inside a txn (or of a single write, plus its revision). */
export type OpResponse =
  | { readonly type: 'put'; readonly prevKv?: KeyValue }
  | { readonly type: 'delete'; readonly deleted: number; readonly prevKv?: KeyValue }
  | { readonly type: 'deletePrefix'; readonly deleted: number; readonly prevKvs?: readonly KeyValue[] }

/**
 * What an applied command produced. `revision` is the store revision after the
 * command (unchanged when nothing was written, as etcd's response header).
 */
export type Response =
  | (OpResponse & { readonly revision: number })
  | { readonly type: 'txn'; readonly revision: number; readonly succeeded: boolean; readonly responses: readonly OpResponse[] }
  | { readonly type: 'compact'; readonly revision: number; readonly compactRevision: number }
  | { readonly type: 'leaseGrant'; readonly revision: number; readonly id: number; readonly ttlMs: number }
  | { readonly type: 'leaseRevoke'; readonly revision: number; readonly id: number; readonly deleted: number }

/** A command that was applied. `duplicate`: this is the remembered result of an earlier apply of the same requestId. */
export interface ApplySuccess {
  readonly ok: true
  readonly duplicate: boolean
  readonly response: Response
}

/** A command that was refused (still consumes its log index; refusals are remembered for dedup too). */
export interface ApplyFailure {
  readonly ok: false
  readonly duplicate: boolean
  readonly code: ApplyErrorCode
  readonly message: string
}

/** Outcome of StateStore.apply. */
export type ApplyResult = ApplySuccess | ApplyFailure

/** Builds a CommandError. */
export function commandError(code: ApplyErrorCode, message: string): CommandError {
  return { code, message }
}

/** Exhaustiveness guard for switches over discriminated unions. */
export function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`)
}
