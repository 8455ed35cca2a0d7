// Snapshot format: the whole replicated state as one msgpack array.
//
//   ['shoal-statestore', version, [options...], revision, compactRevision, appliedIndex,
//    [kv...], [[leaseId, ttlMs, owner]...], [[revision, [[type, kv, prevKv|null]...]]...],
//    [[requestId, fingerprint, resultBytes]...]]
//
// Keys are sorted and leases by id, so equal states give equal bytes; digest()
// hashes these bytes. Decoding checks shapes here; StateStore.restore checks
// the cross-references (revisions, lease attachments) before adopting it.

import type { DedupEntry } from './dedup.ts'
import type { KeyValue, WatchEvent } from './kv.ts'
import { SNAPSHOT_FORMAT_VERSION } from './limits.ts'
import { optionsFromList, optionsToList, type StateStoreOptions } from './options.ts'
import { decodeResult } from './result-codec.ts'
import { isValidLeaseId, isValidOrigin, isValidRequestId, keyError } from './validate.ts'
import { bin, decodeWire, encodeWire, kvFromWire, kvToWire, list, optionalKvFromWire, str, tuple, uint } from './wire.ts'

const SNAPSHOT_TAG = 'shoal-statestore'

/** A lease as stored (its keys are the kvs that name it). */
export interface LeaseRecord {
  readonly id: number
  readonly ttlMs: number
  readonly owner: string
}

/** The replicated state of a store, as plain data. */
export interface StoreImage {
  readonly options: StateStoreOptions
  readonly revision: number
  readonly compactRevision: number
  readonly appliedIndex: number
  readonly kvs: readonly KeyValue[]
  readonly leases: readonly LeaseRecord[]
  readonly history: readonly { readonly revision: number; readonly events: readonly WatchEvent[] }[]
  readonly dedup: readonly DedupEntry[]
}

function eventToWire(e: WatchEvent): unknown[] {
  return [e.type, kvToWire(e.kv), e.prevKv ? kvToWire(e.prevKv) : null]
}

/** Encodes an image (the caller supplies kvs sorted and leases by id). */
export function encodeImage(image: StoreImage): Uint8Array {
  return encodeWire([
    SNAPSHOT_TAG,
    SNAPSHOT_FORMAT_VERSION,
    optionsToList(image.options),
    image.revision,
    image.compactRevision,
    image.appliedIndex,
    image.kvs.map(kvToWire),
    image.leases.map((l) => [l.id, l.ttlMs, l.owner]),
    image.history.map((h) => [h.revision, h.events.map(eventToWire)]),
    image.dedup.map((d) => [d.requestId, d.fingerprint, d.result]),
  ])
}

type Decoded<T> = { ok: true; value: T } | { ok: false; error: string }

function each<T>(value: unknown, what: string, read: (item: unknown) => T | string): Decoded<T[]> {
  const items = list(value)
  if (!items) return { ok: false, error: `${what} is not a list` }
  const out: T[] = []
  for (const item of items) {
    const parsed = read(item)
    if (typeof parsed === 'string') return { ok: false, error: `${what}: ${parsed}` }
    out.push(parsed)
  }
  return { ok: true, value: out }
}

function readKv(item: unknown): KeyValue | string {
  const kv = kvFromWire(item)
  if (!kv) return 'malformed key-value'
  const e = keyError(kv.key)
  return e ? e.message : kv
}

function readEvent(item: unknown): WatchEvent | string {
  const t = tuple(item, 3)
  const type = t?.[0]
  const kv = readKv(t?.[1])
  const prev = optionalKvFromWire(t?.[2])
  if ((type !== 'put' && type !== 'delete') || typeof kv === 'string' || !prev) return 'malformed event'
  return prev.kv ? { type, kv, prevKv: prev.kv } : { type, kv }
}

/** Decodes snapshot bytes into an image, checking shapes (never throws). */
export function decodeImage(bytes: Uint8Array): Decoded<StoreImage> {
  const decoded = decodeWire(bytes)
  if (!decoded.ok) return { ok: false, error: `not msgpack: ${decoded.error}` }
  const t = tuple(decoded.value, 10)
  if (!t || t[0] !== SNAPSHOT_TAG) return { ok: false, error: 'not a StateStore snapshot' }
  if (t[1] !== SNAPSHOT_FORMAT_VERSION) return { ok: false, error: `unknown snapshot version ${String(t[1])}` }
  const options = optionsFromList(list(t[2]) ?? [])
  if (!options) return { ok: false, error: 'malformed options' }
  const revision = uint(t[3])
  const compactRevision = uint(t[4])
  const appliedIndex = uint(t[5])
  if (revision === undefined || compactRevision === undefined || appliedIndex === undefined) return { ok: false, error: 'malformed counters' }
  const kvs = each(t[6], 'kvs', readKv)
  if (!kvs.ok) return kvs
  const leases = each(t[7], 'leases', (item): LeaseRecord | string => {
    const l = tuple(item, 3)
    const id = l?.[0]
    const ttlMs = uint(l?.[1])
    const owner = l?.[2]
    return isValidLeaseId(id) && ttlMs !== undefined && isValidOrigin(owner) ? { id, ttlMs, owner } : 'malformed lease'
  })
  if (!leases.ok) return leases
  const history = each(t[8], 'history', (item): StoreImage['history'][number] | string => {
    const h = tuple(item, 2)
    const rev = uint(h?.[0])
    const events = each(h?.[1], 'events', readEvent)
    if (rev === undefined) return 'malformed revision'
    return events.ok ? { revision: rev, events: events.value } : events.error
  })
  if (!history.ok) return history
  const dedup = each(t[9], 'dedup', (item): DedupEntry | string => {
    const d = tuple(item, 3)
    const requestId = d?.[0]
    const fingerprint = str(d?.[1])
    const result = bin(d?.[2])
    if (!isValidRequestId(requestId) || fingerprint === undefined || result === undefined) return 'malformed entry'
    return decodeResult(result) ? { requestId, fingerprint, result } : 'undecodable result'
  })
  if (!dedup.ok) return dedup
  return {
    ok: true,
    value: {
      options,
      revision, compactRevision, appliedIndex,
      kvs: kvs.value, leases: leases.value, history: history.value, dedup: dedup.value,
    },
  }
}
