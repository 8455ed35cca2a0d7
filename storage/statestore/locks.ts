// Distributed locks, after etcd's concurrency.Mutex recipe. A lock NAME is a
// queue of waiter keys locks/NAME/<leaseId hex>, each attached to its waiter's
// lease; the waiter whose key has the lowest createRevision holds the lock.
//
//   acquire: txn(createRevision(key) = 0 -> put key with lease), then
//            if not holder, watch the next-lower waiter's key for its delete
//            and re-check (waiting on the predecessor, not the holder, avoids
//            a thundering herd on every release).
//   release: delete the key, or revoke the lease (a crashed holder's lease
//            expires, the leader revokes it, and the key goes with it).
//
// The fencing token is the holder key's createRevision: it only grows from one
// holder to the next, so a resource can refuse a stale holder's writes.

import type { DeleteRequest, TxnRequest } from './commands.ts'
import { compareKeys } from './keys.ts'
import type { KeyValue } from './kv.ts'
import { isValidLeaseId } from './validate.ts'
import type { StoreReader } from './store.ts'

/** Prefix of every lock queue. */
export const LOCKS_PREFIX = 'locks/'
/** Longest lock name. */
export const LOCK_NAME_MAX_CHARS = 128

// No '/': locks/a/ must not be a prefix of lock a/b's queue.
const LOCK_NAME_PATTERN = /^[A-Za-z0-9._-]+$/

/** One queued waiter. */
export interface LockWaiter {
  readonly key: string
  readonly leaseId: number
  readonly createRevision: number
}

/** Where a lease stands in a lock's queue. */
export type LockStatus =
  | { readonly state: 'held'; readonly fencingToken: number; readonly key: string }
  | { readonly state: 'waiting'; readonly waitingOn: LockWaiter; readonly position: number }
  | { readonly state: 'absent' }

/** Whether `name` can name a lock. */
export function isValidLockName(name: string): boolean {
  return name.length >= 1 && name.length <= LOCK_NAME_MAX_CHARS && LOCK_NAME_PATTERN.test(name)
}

/** The queue prefix of lock `name` (throws on an invalid name: check isValidLockName first). */
export function lockPrefix(name: string): string {
  if (!isValidLockName(name)) throw new RangeError(`invalid lock name ${JSON.stringify(name)}`)
  return `${LOCKS_PREFIX}${name}/`
}

/** The waiter key of `leaseId` in lock `name`. */
export function lockKey(name: string, leaseId: number): string {
  if (!isValidLeaseId(leaseId)) throw new RangeError(`invalid lease id ${leaseId}`)
  return `${lockPrefix(name)}${leaseId.toString(16)}`
}

/** The acquire txn: enqueue this lease's waiter key unless it is already queued. */
export function lockAcquireRequest(name: string, leaseId: number): TxnRequest {
  const key = lockKey(name, leaseId)
  return {
    type: 'txn',
    compare: [{ target: 'createRevision', key, op: '=', value: 0 }],
    success: [{ type: 'put', key, value: new Uint8Array(0), lease: leaseId }],
    failure: [],
  }
}

/** The release request: delete this lease's waiter key. */
export function lockReleaseRequest(name: string, leaseId: number): DeleteRequest {
  return { type: 'delete', key: lockKey(name, leaseId) }
}

function asWaiter(name: string, kv: KeyValue): LockWaiter | null {
  // Only keys that are what lockKey would make for their own lease count: a
  // stray key under the prefix cannot block the queue or steal the lock.
  if (!isValidLeaseId(kv.lease) || kv.key !== lockKey(name, kv.lease)) return null
  return { key: kv.key, leaseId: kv.lease, createRevision: kv.createRevision }
}

/**
 * The queue of lock `name`, holder first: by createRevision, ties (keys made in
 * one txn, which the recipe never does) by key. At most one waiter per lease,
 * so the queue is bounded by STORE_MAX_LEASES.
 */
export function lockWaiters(store: StoreReader, name: string): LockWaiter[] {
  const waiters: LockWaiter[] = []
  for (const kv of store.range(lockPrefix(name)).kvs) {
    const waiter = asWaiter(name, kv)
    if (waiter) waiters.push(waiter)
  }
  return waiters.sort((a, b) => a.createRevision - b.createRevision || compareKeys(a.key, b.key))
}

/** The holder of lock `name`, or null when nobody queues. */
export function lockHolder(store: StoreReader, name: string): LockWaiter | null {
  return lockWaiters(store, name)[0] ?? null
}

/** Where `leaseId` stands in lock `name`. */
export function lockStatus(store: StoreReader, name: string, leaseId: number): LockStatus {
  const waiters = lockWaiters(store, name)
  const position = waiters.findIndex((w) => w.leaseId === leaseId)
  const self = waiters[position]
  if (!self) return { state: 'absent' }
  const ahead = waiters[position - 1]
  return ahead ? { state: 'waiting', waitingOn: ahead, position } : { state: 'held', fencingToken: self.createRevision, key: self.key }
}

/** The key `leaseId` must watch for a delete: the next-lower waiter; null when it holds the lock or is not queued. */
export function lockWaitingOn(store: StoreReader, name: string, leaseId: number): LockWaiter | null {
  const status = lockStatus(store, name, leaseId)
  return status.state === 'waiting' ? status.waitingOn : null
}

/** The fencing token of `leaseId` if it holds lock `name`, else null. */
export function fencingToken(store: StoreReader, name: string, leaseId: number): number | null {
  const status = lockStatus(store, name, leaseId)
  return status.state === 'held' ? status.fencingToken : null
}

/**
 * Why a write fenced with `fence` must be refused, or null when lock `fence.lock` is held with
 * exactly `fence.token`. etcd's compare on the holder's key, not "token ≥ the largest seen":
 * a holder whose session ended is refused too, even before anyone else takes the lock, since
 * it can no longer know whether someone did.
 */
export function fenceRefusal(store: StoreReader, fence: { readonly lock: string; readonly token: number }): string | null {
  const holder = lockHolder(store, fence.lock)
  if (holder !== null && holder.createRevision === fence.token) return null
  const what = `the write fenced with lock ${fence.lock} token ${fence.token} was refused`
  if (holder === null) return `${what}: lock ${fence.lock} is not held (its holder released it or its session expired); take the lock again and use its new token`
  if (holder.createRevision > fence.token) return `${what}: a newer holder has lock ${fence.lock} (token ${holder.createRevision}); this holder is stale and must stop`
  return `${what}: lock ${fence.lock} is held with token ${holder.createRevision}, not ${fence.token}; use the SHOAL_LOCK_TOKEN the holder was given`
}
