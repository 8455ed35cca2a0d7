// Snapshot format: the whole replicated state as one msgpack array.
//
//   ['shoal-statestore', version, [options...], revision, compactRevision, appliedIndex,
//    [kv...], [[leaseId, ttlMs, owner]...], [[revision, [[type, kv, prevKv|null]...]]...],
//    [[requestId, fingerprint, resultBytes|null, index]...], dedupHorizon]
//
// Version 1 (before the dedup horizon) had no horizon and [requestId, fingerprint, resultBytes]
// entries; it still decodes, each entry taken as applied at the snapshot's index (the latest it
// can have been: the horizon it moves to when forgotten is never too low).
//
// Keys are sorted and leases by id, so equal states give equal bytes; digest()
// hashes these bytes. Decoding checks shapes here; StateStore.restore checks
// the cross-references (revisions, lease attachments) before adopting it.

import { Encoder } from '@msgpack/msgpack'
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
  /** The newest index of a request the dedup window forgot. */
  readonly dedupHorizon: number
}

function dedupToWire(d: DedupEntry): unknown[] {
  return [d.requestId, d.fingerprint, d.result, d.index]
}

function eventToWire(e: WatchEvent): unknown[] {
  return [e.type, kvToWire(e.kv), e.prevKv ? kvToWire(e.prevKv) : null]
}

/**
 * Encodes an image (the caller supplies kvs sorted and leases by id) in one go: the fastest way
 * for a small store (the simulator digests one after every step). ImageEncoder gives the same
 * bytes a slice at a time, for a large store on a live peer.
 */
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
    image.dedup.map(dedupToWire),
    image.dedupHorizon,
  ])
}

/** Output bytes gathered into one chunk before it is set aside (and the unit of the final copy). */
const IMAGE_CHUNK_BYTES = 1024 * 1024
/** The first chunk's buffer, grown up to IMAGE_CHUNK_BYTES. */
const IMAGE_STAGING_FIRST_BYTES = 4096

// msgpack's array header, in the size class @msgpack/msgpack picks (fixarray, array 16, array 32):
// the sliced encoding must give exactly the bytes one encodeWire of the whole image gives.
function arrayHeader(length: number): Uint8Array {
  if (length < 16) return Uint8Array.of(0x90 + length)
  if (length < 0x10000) return Uint8Array.of(0xdc, length >>> 8, length & 0xff)
  return Uint8Array.of(0xdd, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff)
}

interface ImageSection {
  readonly count: number
  wire(i: number): unknown
}

/**
 * Encodes an image a slice at a time, so a large store (100 MB and more) is written out while
 * the event loop goes on between slices: one encodeWire of the whole image would hold a Raft
 * peer's loop for seconds, its timers starved and its leadership lost (issue 17 §5). A msgpack
 * array is its header followed by its elements' own encodings, so encoding element by element
 * gives the same bytes as encodeImage; the property test in statestore-snapshot-sliced.test.ts
 * holds the two to that.
 *
 * The image must not change while it is encoded: StoreImage holds references to the store's
 * KeyValue objects, history entries and dedup results, which the store never mutates (a put
 * makes a new KeyValue; history and dedup only append and drop), so a captured image stays the
 * state it was taken at while the store applies further entries.
 */
export class ImageEncoder {
  readonly #sections: readonly ImageSection[]
  readonly #encoder = new Encoder()
  /** Finished chunks, in order. */
  readonly #chunks: Uint8Array[] = []
  #staging = new Uint8Array(IMAGE_STAGING_FIRST_BYTES)
  #staged = 0
  #section = -1
  #item = 0
  #total = 0
  /** Set once every element is encoded: the single output buffer, filled chunk by chunk. */
  #out: Uint8Array | null = null
  #copied = 0
  #copiedChunks = 0
  readonly #horizon: number

  constructor(image: StoreImage) {
    this.#sections = [
      { count: image.kvs.length, wire: (i) => kvToWire(image.kvs[i] as KeyValue) },
      { count: image.leases.length, wire: (i) => { const l = image.leases[i] as LeaseRecord; return [l.id, l.ttlMs, l.owner] } },
      { count: image.history.length, wire: (i) => { const h = image.history[i] as StoreImage['history'][number]; return [h.revision, h.events.map(eventToWire)] } },
      { count: image.dedup.length, wire: (i) => dedupToWire(image.dedup[i] as DedupEntry) },
    ]
    this.#horizon = image.dedupHorizon
    // The eleven-element top-level array and its fixed fields come first; the horizon comes last.
    this.#put(arrayHeader(11))
    for (const field of [SNAPSHOT_TAG, SNAPSHOT_FORMAT_VERSION, optionsToList(image.options), image.revision, image.compactRevision, image.appliedIndex]) {
      this.#put(this.#encoder.encodeSharedRef(field))
    }
  }

  /**
   * Does about `budgetBytes` of work (encoding, then copying into the result; one element may
   * overshoot it) and returns the complete bytes once there are no more steps, else null.
   */
  step(budgetBytes: number): Uint8Array | null {
    let done = 0
    while (this.#out === null) {
      if (done >= budgetBytes) return null
      const section = this.#sections[this.#section]
      if (section === undefined || this.#item >= section.count) {
        this.#section++
        this.#item = 0
        const next = this.#sections[this.#section]
        if (next === undefined) {
          this.#put(this.#encoder.encodeSharedRef(this.#horizon))
          this.#flush()
          this.#out = new Uint8Array(this.#total)
        } else {
          this.#put(arrayHeader(next.count))
        }
        continue
      }
      const bytes = this.#encoder.encodeSharedRef(section.wire(this.#item++))
      this.#put(bytes)
      done += bytes.byteLength
    }
    while (this.#copiedChunks < this.#chunks.length) {
      if (done >= budgetBytes) return null
      const chunk = this.#chunks[this.#copiedChunks] as Uint8Array
      this.#out.set(chunk, this.#copied)
      this.#copied += chunk.byteLength
      // Dropped once copied, so the encoding never holds much more than twice the image.
      this.#chunks[this.#copiedChunks++] = EMPTY
      done += chunk.byteLength
    }
    return this.#out
  }

  // Appends bytes (a view the encoder will overwrite) to the output, copying them now.
  #put(bytes: Uint8Array): void {
    this.#total += bytes.byteLength
    if (bytes.byteLength >= IMAGE_CHUNK_BYTES) {
      this.#flush()
      this.#chunks.push(bytes.slice())
      return
    }
    if (this.#staged + bytes.byteLength > this.#staging.byteLength) {
      // Grow only while the result still fits one chunk; past that, start a new chunk (a grown
      // buffer capped at the chunk size could not hold a large element after a half-full one).
      if (this.#staged + bytes.byteLength <= IMAGE_CHUNK_BYTES) {
        // Grown as needed: a small store (the simulator digests one after every step) stays small.
        const grown = new Uint8Array(Math.min(IMAGE_CHUNK_BYTES, Math.max(2 * this.#staging.byteLength, this.#staged + bytes.byteLength)))
        grown.set(this.#staging.subarray(0, this.#staged))
        this.#staging = grown
      } else {
        this.#flush()
      }
    }
    this.#staging.set(bytes, this.#staged)
    this.#staged += bytes.byteLength
  }

  #flush(): void {
    if (this.#staged === 0) return
    this.#chunks.push(this.#staging.subarray(0, this.#staged))
    this.#staging = new Uint8Array(IMAGE_CHUNK_BYTES)
    this.#staged = 0
  }
}

const EMPTY = new Uint8Array(0)

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
  const t = tuple(decoded.value, 11) ?? tuple(decoded.value, 10)
  if (!t || t[0] !== SNAPSHOT_TAG) return { ok: false, error: 'not a StateStore snapshot' }
  const v1 = t[1] === 1 && t.length === 10
  if (!v1 && !(t[1] === SNAPSHOT_FORMAT_VERSION && t.length === 11)) return { ok: false, error: `unknown snapshot version ${String(t[1])}` }
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
    const d = v1 ? tuple(item, 3) : tuple(item, 4)
    const requestId = d?.[0]
    const fingerprint = str(d?.[1])
    const result = d?.[2] === null && !v1 ? null : bin(d?.[2])
    const index = v1 ? appliedIndex : uint(d?.[3])
    if (!isValidRequestId(requestId) || fingerprint === undefined || result === undefined || index === undefined || index > appliedIndex) return 'malformed entry'
    return result === null || decodeResult(result) ? { requestId, fingerprint, result, index } : 'undecodable result'
  })
  if (!dedup.ok) return dedup
  const dedupHorizon = v1 ? 0 : uint(t[10])
  if (dedupHorizon === undefined || dedupHorizon > appliedIndex) return { ok: false, error: 'malformed dedup horizon' }
  return {
    ok: true,
    value: {
      options,
      revision, compactRevision, appliedIndex,
      kvs: kvs.value, leases: leases.value, history: history.value, dedup: dedup.value, dedupHorizon,
    },
  }
}
