// Key-value pairs and the watch events they produce, shaped like etcd's mvccpb.

/** Lease id meaning "not attached to a lease" (etcd's NoLease). */
export const NO_LEASE = 0

/**
 * One key as stored (etcd semantics): createRevision is the revision that created
 * the key since it last did not exist, modRevision the revision of its last write,
 * version the number of writes since creation (a delete resets all three).
 * Values are shared with the store: callers must not mutate them.
 */
export interface KeyValue {
  readonly key: string
  readonly value: Uint8Array
  readonly createRevision: number
  readonly modRevision: number
  readonly version: number
  readonly lease: number
}

/** What happened to a key. */
export type EventType = 'put' | 'delete'

/**
 * One change, as watchers see it. For a delete, `kv` is a tombstone (empty value,
 * createRevision/version/lease 0, modRevision = the delete's revision) and
 * `prevKv` holds what was deleted.
 */
export interface WatchEvent {
  readonly type: EventType
  readonly kv: KeyValue
  readonly prevKv?: KeyValue
}

/** The empty value of tombstones. */
export const EMPTY_VALUE: Uint8Array = new Uint8Array(0)

/** The tombstone kv of a delete at `revision`. */
export function tombstone(key: string, revision: number): KeyValue {
  return { key, value: EMPTY_VALUE, createRevision: 0, modRevision: revision, version: 0, lease: NO_LEASE }
}
