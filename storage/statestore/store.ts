// The StateStore state machine: etcd's MVCC keyspace semantics (one revision
// per write, createRevision/modRevision/version per key), leases, a bounded
// watch history and a request-id dedup window. Pure and synchronous: the same
// object runs in the daemon and in the simulator.

import type { Command, Compare, CompareOp, LeaseGrantRequest, TxnOp } from './commands.ts'
import { commandFingerprint, decodeCommand } from './codec.ts'
import { DedupWindow } from './dedup.ts'
import { fnv1a64 } from './hash.ts'
import { EventHistory } from './history.ts'
import { compareBytes, compareKeys, lowerBound, utf8ByteLength } from './keys.ts'
import { NO_LEASE, tombstone, type KeyValue, type WatchEvent } from './kv.ts'
import { LEASE_TTL_MAX_MS, LEASE_TTL_MIN_MS, STORE_MAX_KEYS, STORE_MAX_LEASES, WATCH_BATCH_MAX_EVENTS } from './limits.ts'
import { DEFAULT_STATE_STORE_OPTIONS, optionsFromList, optionsToList, type StateStoreOptions } from './options.ts'
import { PendingEvents, type EventBatch } from './pending.ts'
import { checkAccess } from './records.ts'
import { fenceRefusal } from './locks.ts'
import { decodeResult, encodeResult } from './result-codec.ts'
import {
  assertNever, commandError, type ApplyErrorCode, type ApplyResult, type CommandError, type OpResponse, type Response,
} from './results.ts'
import { decodeImage, encodeImage, ImageEncoder, type StoreImage } from './snapshot.ts'
import { envelopeError, isNonNegativeSafeInteger, isValidOrigin, keyError, validateCommand } from './validate.ts'

/** A lease as the store holds it; `keys` are sorted. */
export interface LeaseInfo {
  readonly id: number
  readonly ttlMs: number
  readonly owner: string
  readonly keys: readonly string[]
}

/**
 * Options of range(): `limit` 0 or absent means all; `startAfter` pages on from a key;
 * `maxBytes` (0 or absent: no bound) stops the page before the pair that would take its key
 * and value bytes over the bound, though a page always holds at least one pair so paging
 * makes progress. A page is O(log n + page size): the start is a binary search.
 */
export interface RangeOptions {
  readonly limit?: number
  readonly startAfter?: string
  readonly maxBytes?: number
}

/** Keys of a range in key order; `more` when the limit cut it short. */
export interface RangeResult {
  readonly kvs: readonly KeyValue[]
  readonly more: boolean
}

/**
 * Outcome of eventsSince(). On success, every event with a revision in
 * (from, revision] whose key has the prefix is in `events`, so a watcher
 * resumes with eventsSince(revision). 'compacted': the history no longer
 * reaches back; the watcher must re-read current state (range) and resume
 * from the store's `revision`.
 */
export type WatchResult =
  | { readonly ok: true; readonly events: readonly WatchEvent[]; readonly revision: number }
  | { readonly ok: false; readonly code: 'compacted'; readonly compactRevision: number; readonly revision: number }

/** Outcome of StateStore.restore(). */
export type RestoreResult =
  | { readonly ok: true; readonly store: StateStore }
  | { readonly ok: false; readonly code: 'corrupt-snapshot'; readonly message: string }

/** The read side of a store, all that helpers such as locks.ts need. */
export interface StoreReader {
  get(key: string): KeyValue | null
  range(prefix: string, options?: RangeOptions): RangeResult
}

interface LeaseState {
  readonly id: number
  readonly ttlMs: number
  readonly owner: string
  readonly keys: Set<string>
}

type WriteOutcome = { readonly ok: true; readonly responses: OpResponse[] } | { readonly ok: false; readonly error: CommandError }

// Above this many scattered deletions, rebuilding the sorted key list once is
// cheaper than splicing it once per key.
const SPLICE_MAX_DELETES = 32

function failure(error: CommandError): ApplyResult {
  return { ok: false, duplicate: false, code: error.code, message: error.message }
}

function fail(code: ApplyErrorCode, message: string): ApplyResult {
  return failure(commandError(code, message))
}

function success(response: Response): ApplyResult {
  return { ok: true, duplicate: false, response }
}

function holds(a: number, b: number, op: CompareOp): boolean {
  switch (op) {
    case '=':
      return a === b
    case '!=':
      return a !== b
    case '<':
      return a < b
    case '>':
      return a > b
    default:
      return assertNever(op)
  }
}

/**
 * The replicated state machine.
 *
 * Driving order (after etcd-raft's Ready): the driver persists and sends what
 * Raft hands out, then feeds each committed entry, in log order, to
 * applyEntry (commands), or applyNoop (empty and conf-change entries) so that
 * appliedIndex follows Raft's applied index; then calls drainEvents() and fans
 * the batch out to watchers; then Advance. snapshot() may be taken between
 * applies; restore() replaces the store when Raft installs a snapshot.
 *
 * Every replica that applies the same entries ends with the same digest().
 * Nothing here reads a clock: lease expiry is decided by the leader's
 * LeaseClock and arrives as a leaseRevoke command.
 */
export class StateStore implements StoreReader {
  /** The bounds this store was made with (identical on every replica). */
  readonly options: StateStoreOptions
  #kvs = new Map<string, KeyValue>()
  // Keys in compareKeys order, for prefix ranges; same members as #kvs.
  #sorted: string[] = []
  #leases = new Map<number, LeaseState>()
  #revision = 0
  #compactRevision = 0
  #appliedIndex = 0
  #history = new EventHistory()
  #dedup: DedupWindow
  #pending: PendingEvents
  // What the last assertInvariants() saw, to check the counters never go back.
  #checked = { revision: 0, compactRevision: 0, appliedIndex: 0 }

  /** A new, empty store (revision 0); options default to DEFAULT_STATE_STORE_OPTIONS. */
  constructor(options: Partial<StateStoreOptions> = {}) {
    const checked = optionsFromList(optionsToList({ ...DEFAULT_STATE_STORE_OPTIONS, ...options }))
    if (!checked) throw new RangeError('StateStore options must be positive safe integers')
    this.options = checked
    this.#dedup = new DedupWindow(checked.dedupMaxEntries, checked.dedupMaxBytes)
    this.#pending = new PendingEvents(checked.pendingEventsMax, 0)
  }

  /** The store revision: bumped once by every command that changes a key. */
  get revision(): number {
    return this.#revision
  }

  /** Events at or below this revision are gone from the watch history (explicit compact or ring eviction). */
  get compactRevision(): number {
    return this.#compactRevision
  }

  /** The Raft index of the last entry applied. */
  get appliedIndex(): number {
    return this.#appliedIndex
  }

  /** Number of keys. */
  get keyCount(): number {
    return this.#kvs.size
  }

  /** Number of live leases. */
  get leaseCount(): number {
    return this.#leases.size
  }

  /** The pair at `key`, or null. */
  get(key: string): KeyValue | null {
    return this.#kvs.get(key) ?? null
  }

  /** Keys starting with `prefix` ('' for all), in UTF-8 byte order. */
  range(prefix: string, options: RangeOptions = {}): RangeResult {
    const limit = options.limit ?? 0
    const maxBytes = options.maxBytes ?? 0
    if (!isNonNegativeSafeInteger(limit)) throw new RangeError('range: limit must be a non-negative integer')
    if (!isNonNegativeSafeInteger(maxBytes)) throw new RangeError('range: maxBytes must be a non-negative integer')
    let start = lowerBound(this.#sorted, prefix)
    if (options.startAfter !== undefined) {
      const after = lowerBound(this.#sorted, options.startAfter)
      start = Math.max(start, this.#sorted[after] === options.startAfter ? after + 1 : after)
    }
    const kvs: KeyValue[] = []
    let bytes = 0
    for (let i = start; i < this.#sorted.length; i++) {
      const key = this.#sorted[i]
      if (key === undefined || !key.startsWith(prefix)) break
      if (limit > 0 && kvs.length === limit) return { kvs, more: true }
      const kv = this.#kvAt(key)
      bytes += utf8ByteLength(key) + kv.value.length
      if (maxBytes > 0 && bytes > maxBytes && kvs.length > 0) return { kvs, more: true }
      kvs.push(kv)
    }
    return { kvs, more: false }
  }

  /** The lease `id`, or null. */
  lease(id: number): LeaseInfo | null {
    const lease = this.#leases.get(id)
    return lease ? { id: lease.id, ttlMs: lease.ttlMs, owner: lease.owner, keys: [...lease.keys].sort(compareKeys) } : null
  }

  /** Every live lease, by id. */
  leases(): LeaseInfo[] {
    return [...this.#leases.keys()].sort((a, b) => a - b).map((id) => this.lease(id)).filter((l): l is LeaseInfo => l !== null)
  }

  /**
   * Events after `revision` for keys starting with `prefix`, oldest first.
   * Stops once `limit` events, or `maxBytes` (0: no bound) of their keys and
   * values, are collected, but only at a revision boundary
   * (a revision's events are never split, so resuming by revision neither
   * skips nor repeats). A revision ahead of this replica yields no events and
   * the same cursor: the watcher waits until the replica catches up.
   */
  eventsSince(revision: number, prefix = '', limit: number = WATCH_BATCH_MAX_EVENTS, maxBytes = 0): WatchResult {
    if (!isNonNegativeSafeInteger(revision)) throw new RangeError('eventsSince: revision must be a non-negative integer')
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('eventsSince: limit must be a positive integer')
    if (!isNonNegativeSafeInteger(maxBytes)) throw new RangeError('eventsSince: maxBytes must be a non-negative integer')
    if (revision < this.#compactRevision) {
      return { ok: false, code: 'compacted', compactRevision: this.#compactRevision, revision: this.#revision }
    }
    const events: WatchEvent[] = []
    let cursor = revision
    let bytes = 0
    // The history holds exactly (compactRevision, revision], so revision r+1 is at r - compactRevision.
    for (let i = revision - this.#compactRevision; i < this.#history.length && events.length < limit && (maxBytes === 0 || bytes < maxBytes); i++) {
      const entry = this.#history.at(i)
      if (!entry) break
      for (const event of entry.events) {
        if (!event.kv.key.startsWith(prefix)) continue
        events.push(event)
        bytes += utf8ByteLength(event.kv.key) + event.kv.value.length
      }
      cursor = entry.revision
    }
    return { ok: true, events, revision: cursor }
  }

  /**
   * Events applied since the last drain, for watchers that are caught up.
   * A watcher whose cursor equals batch.fromRevision takes the batch's
   * events for its prefix and moves to batch.toRevision; any other watcher
   * (behind, new, or the batch is incomplete) reads from eventsSince(cursor).
   * That is etcd's synced/unsynced watcher split, and it is why no event is
   * missed or repeated across reconnects: every watcher is a revision cursor.
   */
  drainEvents(): EventBatch {
    return this.#pending.drain(this.#revision)
  }

  /** Applies a decoded command committed at Raft `index` (must be above appliedIndex; else a driver bug, thrown). */
  apply(index: number, cmd: Command): ApplyResult {
    this.#advanceTo(index)
    return this.#applyCommand(index, cmd)
  }

  /** Applies a 'normal' entry's payload: decodes it, then applies it; bytes that do not decode are refused but consume the index. */
  applyEntry(index: number, data: Uint8Array): ApplyResult {
    this.#advanceTo(index)
    const decoded = decodeCommand(data)
    return decoded.ok ? this.#applyCommand(index, decoded.command) : failure(decoded.error)
  }

  /** Records that entry `index` carried no command (empty leader entry, conf change). */
  applyNoop(index: number): void {
    this.#advanceTo(index)
  }

  /** The full replicated state as bytes (msgpack); see snapshot.ts. */
  snapshot(): Uint8Array {
    return encodeImage(this.#image())
  }

  /**
   * Captures the replicated state as it is now, cheaply (references to values the store never
   * mutates), for encoding a slice at a time while the store goes on applying: the finished
   * bytes equal what snapshot() returned at the moment of capture. See ImageEncoder.
   */
  snapshotEncoder(): ImageEncoder {
    return new ImageEncoder(this.#image())
  }

  /** A hash of the full replicated state (FNV-1a 64 of the snapshot), for comparing replicas. */
  digest(): string {
    return fnv1a64(this.snapshot())
  }

  /** Rebuilds a store from snapshot bytes; anything malformed or inconsistent is a typed error, never a throw. */
  static restore(bytes: Uint8Array): RestoreResult {
    const decoded = decodeImage(bytes)
    if (!decoded.ok) return { ok: false, code: 'corrupt-snapshot', message: decoded.error }
    const image = decoded.value
    const store = new StateStore(image.options)
    const problem = store.#adopt(image)
    if (problem) return { ok: false, code: 'corrupt-snapshot', message: problem }
    try {
      store.assertInvariants()
    } catch (error) {
      return { ok: false, code: 'corrupt-snapshot', message: error instanceof Error ? error.message : 'inconsistent' }
    }
    return { ok: true, store }
  }

  /**
   * Throws if the store is inconsistent (a bug). The simulator calls it after
   * every step; restore() uses it to vet snapshots.
   */
  assertInvariants(): void {
    const check = (ok: boolean, what: string): void => {
      if (!ok) throw new Error(`StateStore invariant violated: ${what}`)
    }
    const rev = this.#revision
    check(isNonNegativeSafeInteger(rev) && isNonNegativeSafeInteger(this.#compactRevision) && isNonNegativeSafeInteger(this.#appliedIndex), 'counters are non-negative integers')
    check(this.#compactRevision <= rev, 'compactRevision <= revision')
    check(rev >= this.#checked.revision && this.#compactRevision >= this.#checked.compactRevision && this.#appliedIndex >= this.#checked.appliedIndex, 'revision, compactRevision and appliedIndex never decrease')
    check(this.#kvs.size <= STORE_MAX_KEYS && this.#leases.size <= STORE_MAX_LEASES, 'key and lease counts within bounds')

    check(this.#sorted.length === this.#kvs.size, 'sorted key list matches the key map')
    let attached = 0
    for (let i = 0; i < this.#sorted.length; i++) {
      const key = this.#sorted[i] ?? ''
      const kv = this.#kvs.get(key)
      check(kv !== undefined && kv.key === key, `key ${key} is stored under its own name`)
      if (!kv) continue
      check(i === 0 || compareKeys(this.#sorted[i - 1] ?? '', key) < 0, 'keys are strictly sorted')
      check(keyError(key) === null, `key ${key} is valid`)
      check(kv.createRevision >= 1 && kv.createRevision <= kv.modRevision && kv.modRevision <= rev, `${key}: 1 <= createRevision <= modRevision <= revision`)
      check(kv.version >= 1 && kv.version <= kv.modRevision - kv.createRevision + 1, `${key}: 1 <= version <= writes possible since creation`)
      if (kv.lease !== NO_LEASE) {
        attached++
        check(this.#leases.get(kv.lease)?.keys.has(key) === true, `${key}: its lease ${kv.lease} exists and lists it`)
      }
      if (kv.modRevision > this.#compactRevision) {
        const entry = this.#history.at(kv.modRevision - this.#compactRevision - 1)
        const event = entry?.events.find((e) => e.kv.key === key)
        check(event?.type === 'put' && event.kv.modRevision === kv.modRevision && event.kv.version === kv.version, `${key}: its last put is in the history`)
      }
    }
    let listed = 0
    for (const [id, lease] of this.#leases) {
      check(lease.id === id && lease.ttlMs >= LEASE_TTL_MIN_MS && lease.ttlMs <= LEASE_TTL_MAX_MS && isValidOrigin(lease.owner), `lease ${id} is well-formed`)
      for (const key of lease.keys) check(this.#kvs.get(key)?.lease === id, `lease ${id}: attached key ${key} names it`)
      listed += lease.keys.size
    }
    check(listed === attached, 'lease key sets match the keys\' lease fields')

    const history = this.#history
    check(history.length === rev - this.#compactRevision, 'history holds exactly (compactRevision, revision]')
    check(history.length <= this.options.historyMaxRevisions, 'history within historyMaxRevisions')
    check(history.bytes <= this.options.historyMaxBytes || history.length <= 1, 'history within historyMaxBytes')
    for (let i = 0; i < history.length; i++) {
      const entry = history.at(i)
      check(entry !== undefined && entry.revision === this.#compactRevision + 1 + i && entry.events.length > 0, 'history revisions are consecutive and non-empty')
      for (const event of entry?.events ?? []) check(event.kv.modRevision === entry?.revision, 'events carry their revision')
    }
    check(this.#dedup.size <= this.options.dedupMaxEntries, 'dedup within dedupMaxEntries')
    check(this.#dedup.bytes <= this.options.dedupMaxBytes || this.#dedup.size <= 1, 'dedup within dedupMaxBytes')
    check(this.#pending.length <= this.options.pendingEventsMax, 'pending events within pendingEventsMax')
    this.#checked = { revision: rev, compactRevision: this.#compactRevision, appliedIndex: this.#appliedIndex }
  }

  #advanceTo(index: number): void {
    if (!Number.isSafeInteger(index) || index <= this.#appliedIndex) {
      throw new Error(`StateStore: entry ${index} is not above the applied index ${this.#appliedIndex} (entries must be applied once, in order)`)
    }
    this.#appliedIndex = index
  }

  #applyCommand(index: number, cmd: Command): ApplyResult {
    const envelope = envelopeError(cmd)
    if (envelope) return failure(envelope)
    const fingerprint = commandFingerprint(cmd)
    const seen = this.#dedup.get(cmd.requestId)
    if (seen) {
      if (seen.fingerprint !== fingerprint) {
        return fail('request-id-conflict', `requestId ${cmd.requestId} was already used for a different command`)
      }
      if (seen.result === null) {
        return { ok: false, duplicate: true, code: 'outcome-unknown', message: `request ${cmd.requestId} was applied at index ${seen.index}, but its result is no longer kept; read the state to see what it did` }
      }
      const replay = decodeResult(seen.result)
      if (!replay) throw new Error(`StateStore: remembered result of ${cmd.requestId} does not decode`)
      return replay
    }
    // Requests applied at or below the horizon are forgotten: one made before it may be among them.
    const result = cmd.base !== undefined && cmd.base < this.#dedup.horizon
      ? fail('outcome-unknown', `request ${cmd.requestId} was first made at index ${cmd.base}, before the dedup window (which now starts after index ${this.#dedup.horizon}); an earlier attempt may have been applied: read the state before making it again`)
      : this.#execute(cmd)
    this.#dedup.record({ requestId: cmd.requestId, fingerprint, result: encodeResult(result), index })
    return result
  }

  #execute(cmd: Command): ApplyResult {
    const invalid = validateCommand(cmd) ?? checkAccess(cmd)
    if (invalid) return failure(invalid)
    const r = cmd.request
    switch (r.type) {
      case 'put':
      case 'delete':
      case 'deletePrefix': {
        const out = this.#write([r], cmd)
        if (!out.ok) return failure(out.error)
        const first = out.responses[0]
        if (!first) throw new Error('StateStore: a single write produced no response')
        return success({ ...first, revision: this.#revision })
      }
      case 'txn': {
        const succeeded = r.compare.every((c) => this.#holds(c))
        const out = this.#write(succeeded ? r.success : r.failure, cmd)
        if (!out.ok) return failure(out.error)
        return success({ type: 'txn', revision: this.#revision, succeeded, responses: out.responses })
      }
      case 'compact':
        return this.#compact(r.revision)
      case 'leaseGrant':
        return this.#leaseGrant(r, cmd.origin)
      case 'leaseRevoke':
        return this.#leaseRevoke(r.id, cmd)
      default:
        return assertNever(r)
    }
  }

  #holds(c: Compare): boolean {
    const kv = this.#kvs.get(c.key)
    switch (c.target) {
      case 'exists':
        return (kv !== undefined) === c.exists
      case 'value':
        // etcd: a value compare against a missing key always fails.
        return kv !== undefined && holds(compareBytes(kv.value, c.value), 0, c.op)
      case 'version':
      case 'createRevision':
      case 'modRevision':
      case 'lease':
        return holds(kv?.[c.target] ?? 0, c.value, c.op)
      default:
        return assertNever(c)
    }
  }

  // Applies one branch atomically at one revision: every state-dependent
  // refusal is found before the first mutation.
  #write(ops: readonly TxnOp[], cmd: Command): WriteOutcome {
    let newKeys = 0
    for (const op of ops) {
      if (op.type !== 'put') continue
      const lease = op.lease ?? NO_LEASE
      if (lease !== NO_LEASE) {
        const state = this.#leases.get(lease)
        if (!state) return { ok: false, error: commandError('lease-not-found', `lease ${lease} does not exist`) }
        if (state.owner !== cmd.origin && cmd.asLeader !== true) {
          return { ok: false, error: commandError('permission-denied', `lease ${lease} belongs to ${state.owner}`) }
        }
      }
      if (op.fence !== undefined) {
        const refused = fenceRefusal(this, op.fence)
        if (refused !== null) return { ok: false, error: commandError('fence-rejected', refused) }
      }
      const exists = this.#kvs.has(op.key)
      if (op.ifAbsent === true && exists) return { ok: false, error: commandError('key-exists', `key ${JSON.stringify(op.key)} exists`) }
      if (!exists) newKeys++
    }
    if (this.#kvs.size + newKeys > STORE_MAX_KEYS) return { ok: false, error: commandError('too-many-keys', `the store holds at most ${STORE_MAX_KEYS} keys`) }

    const rev = this.#revision + 1
    const events: WatchEvent[] = []
    const responses: OpResponse[] = []
    for (const op of ops) {
      switch (op.type) {
        case 'put': {
          const prev = this.#putKey(op.key, op.value, op.lease ?? NO_LEASE, rev, events)
          responses.push(op.prevKv === true && prev ? { type: 'put', prevKv: prev } : { type: 'put' })
          break
        }
        case 'delete': {
          const prev = this.#kvs.get(op.key)
          if (prev) this.#deleteKeys([op.key], rev, events)
          responses.push(op.prevKv === true && prev ? { type: 'delete', deleted: 1, prevKv: prev } : { type: 'delete', deleted: prev ? 1 : 0 })
          break
        }
        case 'deletePrefix': {
          const prevKvs = this.#deletePrefix(op.prefix, rev, events)
          responses.push(op.prevKv === true ? { type: 'deletePrefix', deleted: prevKvs.length, prevKvs } : { type: 'deletePrefix', deleted: prevKvs.length })
          break
        }
        default:
          return assertNever(op)
      }
    }
    this.#commit(rev, events)
    return { ok: true, responses }
  }

  #putKey(key: string, value: Uint8Array, lease: number, rev: number, events: WatchEvent[]): KeyValue | undefined {
    const prev = this.#kvs.get(key)
    // Copied: the command's bytes belong to the caller (a log buffer, a test).
    const kv: KeyValue = {
      key, value: value.slice(),
      createRevision: prev ? prev.createRevision : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease,
    }
    if (prev) {
      if (prev.lease !== lease) this.#detach(prev)
    } else {
      this.#sorted.splice(lowerBound(this.#sorted, key), 0, key)
    }
    if (lease !== NO_LEASE) this.#leaseState(lease).keys.add(key)
    this.#kvs.set(key, kv)
    events.push(prev ? { type: 'put', kv, prevKv: prev } : { type: 'put', kv })
    return prev
  }

  // Deletes a contiguous run of the sorted list with one splice.
  #deletePrefix(prefix: string, rev: number, events: WatchEvent[]): KeyValue[] {
    const start = lowerBound(this.#sorted, prefix)
    let end = start
    while (end < this.#sorted.length && (this.#sorted[end] ?? '').startsWith(prefix)) end++
    const keys = this.#sorted.splice(start, end - start)
    return keys.map((key) => this.#forget(key, rev, events))
  }

  // Deletes existing keys given in key order.
  #deleteKeys(keys: readonly string[], rev: number, events: WatchEvent[]): KeyValue[] {
    if (keys.length > SPLICE_MAX_DELETES) {
      const doomed = new Set(keys)
      this.#sorted = this.#sorted.filter((k) => !doomed.has(k))
    } else {
      for (const key of keys) {
        const i = lowerBound(this.#sorted, key)
        if (this.#sorted[i] !== key) throw new Error(`StateStore: ${key} missing from the sorted key list`)
        this.#sorted.splice(i, 1)
      }
    }
    return keys.map((key) => this.#forget(key, rev, events))
  }

  // Removes a key (already gone from #sorted) from the map and its lease, emitting the delete.
  #forget(key: string, rev: number, events: WatchEvent[]): KeyValue {
    const prev = this.#kvAt(key)
    this.#kvs.delete(key)
    this.#detach(prev)
    events.push({ type: 'delete', kv: tombstone(key, rev), prevKv: prev })
    return prev
  }

  #detach(kv: KeyValue): void {
    if (kv.lease !== NO_LEASE) this.#leaseState(kv.lease).keys.delete(kv.key)
  }

  #kvAt(key: string): KeyValue {
    const kv = this.#kvs.get(key)
    if (!kv) throw new Error(`StateStore: ${key} is listed but not stored`)
    return kv
  }

  #leaseState(id: number): LeaseState {
    const lease = this.#leases.get(id)
    if (!lease) throw new Error(`StateStore: lease ${id} is referenced but missing`)
    return lease
  }

  // Makes `rev` the store revision if anything changed; no change, no revision (etcd).
  #commit(rev: number, events: readonly WatchEvent[]): void {
    if (events.length === 0) return
    this.#revision = rev
    this.#history.push(rev, events)
    this.#pending.push(events)
    // The ring bound doubles as automatic compaction: dropping revision r from
    // the history is exactly compacting to r, so one counter says how far back
    // watches reach.
    const { historyMaxRevisions, historyMaxBytes } = this.options
    while (this.#history.length > historyMaxRevisions || (this.#history.bytes > historyMaxBytes && this.#history.length > 1)) {
      const dropped = this.#history.dropOldest()
      if (!dropped) break
      this.#compactRevision = dropped.revision
    }
  }

  #compact(revision: number): ApplyResult {
    if (revision <= this.#compactRevision) return fail('compacted', `revision ${revision} is already compacted (compact revision ${this.#compactRevision})`)
    if (revision > this.#revision) return fail('future-revision', `revision ${revision} is ahead of the store revision ${this.#revision}`)
    while ((this.#history.at(0)?.revision ?? Infinity) <= revision) this.#history.dropOldest()
    this.#compactRevision = revision
    return success({ type: 'compact', revision: this.#revision, compactRevision: revision })
  }

  #leaseGrant(r: LeaseGrantRequest, origin: string): ApplyResult {
    if (this.#leases.has(r.id)) return fail('lease-exists', `lease ${r.id} exists`)
    if (this.#leases.size >= STORE_MAX_LEASES) return fail('too-many-leases', `the store holds at most ${STORE_MAX_LEASES} leases`)
    this.#leases.set(r.id, { id: r.id, ttlMs: r.ttlMs, owner: origin, keys: new Set() })
    // Granting changes no key, so no revision (etcd).
    return success({ type: 'leaseGrant', revision: this.#revision, id: r.id, ttlMs: r.ttlMs })
  }

  #leaseRevoke(id: number, cmd: Command): ApplyResult {
    const lease = this.#leases.get(id)
    if (!lease) return fail('lease-not-found', `lease ${id} does not exist`)
    // Only the session's owner ends it early; expiry comes from the leader.
    if (lease.owner !== cmd.origin && cmd.asLeader !== true) return fail('permission-denied', `lease ${id} belongs to ${lease.owner}`)
    const rev = this.#revision + 1
    const events: WatchEvent[] = []
    // Sorted, so every replica emits the deletes in the same order.
    const deleted = this.#deleteKeys([...lease.keys].sort(compareKeys), rev, events)
    this.#leases.delete(id)
    this.#commit(rev, events)
    return success({ type: 'leaseRevoke', revision: this.#revision, id, deleted: deleted.length })
  }

  #image(): StoreImage {
    return {
      options: this.options,
      revision: this.#revision,
      compactRevision: this.#compactRevision,
      appliedIndex: this.#appliedIndex,
      kvs: this.#sorted.map((key) => this.#kvAt(key)),
      leases: [...this.#leases.values()].sort((a, b) => a.id - b.id).map((l) => ({ id: l.id, ttlMs: l.ttlMs, owner: l.owner })),
      history: this.#history.entries().map((h) => ({ revision: h.revision, events: h.events })),
      dedup: this.#dedup.entries(),
      dedupHorizon: this.#dedup.horizon,
    }
  }

  // Loads an image into this fresh store; returns what is wrong with it, if
  // anything assertInvariants() would not catch or that building relies on.
  #adopt(image: StoreImage): string | null {
    if (image.compactRevision > image.revision) return 'compactRevision is above revision'
    for (const l of image.leases) {
      if (this.#leases.has(l.id)) return `lease ${l.id} appears twice`
      this.#leases.set(l.id, { id: l.id, ttlMs: l.ttlMs, owner: l.owner, keys: new Set() })
    }
    let previous: string | null = null
    for (const kv of image.kvs) {
      if (previous !== null && compareKeys(previous, kv.key) >= 0) return 'keys are not strictly sorted'
      previous = kv.key
      if (kv.lease !== NO_LEASE) {
        const lease = this.#leases.get(kv.lease)
        if (!lease) return `key ${kv.key} names missing lease ${kv.lease}`
        lease.keys.add(kv.key)
      }
      this.#kvs.set(kv.key, kv)
      this.#sorted.push(kv.key)
    }
    for (const h of image.history) this.#history.push(h.revision, h.events)
    const seen = new Set<string>()
    this.#dedup.restoreHorizon(image.dedupHorizon)
    for (const d of image.dedup) {
      if (seen.has(d.requestId)) return `request ${d.requestId} appears twice`
      seen.add(d.requestId)
      this.#dedup.record(d)
    }
    if (this.#dedup.size !== image.dedup.length) return 'dedup window exceeds its bounds'
    this.#revision = image.revision
    this.#compactRevision = image.compactRevision
    this.#appliedIndex = image.appliedIndex
    this.#pending = new PendingEvents(this.options.pendingEventsMax, image.revision)
    return null
  }
}
