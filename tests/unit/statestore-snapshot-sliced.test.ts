// The sliced snapshot encoder (issue 17 §5: a large store is encoded a slice at a time so Raft's
// timers keep running) must give exactly the bytes of one msgpack encoding of the whole image:
// the digest, snapshots already on disk and the simulator's determinism all rest on them.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { encode } from '@msgpack/msgpack'
import { StateStore } from '../../storage/statestore/store.ts'
import { ImageEncoder, encodeImage, type LeaseRecord, type StoreImage } from '../../storage/statestore/snapshot.ts'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import { SNAPSHOT_FORMAT_VERSION } from '../../storage/statestore/limits.ts'
import { optionsToList } from '../../storage/statestore/options.ts'
import type { KeyValue, WatchEvent } from '../../storage/statestore/kv.ts'
import type { DedupEntry } from '../../storage/statestore/dedup.ts'

/** The format as one encode of the whole eleven-element array (what snapshots were before slicing). */
function wholeEncoding(image: StoreImage): Uint8Array {
  const kv = (k: KeyValue): unknown[] => [k.key, k.value, k.createRevision, k.modRevision, k.version, k.lease]
  const ev = (e: WatchEvent): unknown[] => [e.type, kv(e.kv), e.prevKv ? kv(e.prevKv) : null]
  return encode([
    'shoal-statestore', SNAPSHOT_FORMAT_VERSION, optionsToList(image.options),
    image.revision, image.compactRevision, image.appliedIndex,
    image.kvs.map(kv),
    image.leases.map((l) => [l.id, l.ttlMs, l.owner]),
    image.history.map((h) => [h.revision, h.events.map(ev)]),
    image.dedup.map((d) => [d.requestId, d.fingerprint, d.result, d.index]),
    image.dedupHorizon,
  ])
}

/** Where two byte strings first differ, -1 if equal (vitest's deep equality is slow on megabytes). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.byteLength === b.byteLength ? -1 : n
}

/** Runs the encoder to the end with the given budgets (cycled), counting the steps. */
function sliced(image: StoreImage, budgets: readonly number[]): { bytes: Uint8Array; steps: number } {
  const encoder = new ImageEncoder(image)
  for (let steps = 0; ; steps++) {
    const out = encoder.step(budgets[steps % budgets.length] ?? 1)
    if (out !== null) return { bytes: out, steps: steps + 1 }
  }
}

const uint = fc.oneof(fc.nat(20), fc.nat(300), fc.nat(70_000), fc.nat(2 ** 32 + 5), fc.maxSafeNat())
const bytes = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 250, maxLength: 2_000 }))
const keyValue = fc.record({ key: fc.string({ maxLength: 40 }), value: bytes, createRevision: uint, modRevision: uint, version: uint, lease: uint })
const event = fc.record({ type: fc.constantFrom('put' as const, 'delete' as const), kv: keyValue, prevKv: fc.option(keyValue, { nil: undefined }) })
  .map((e): WatchEvent => (e.prevKv === undefined ? { type: e.type, kv: e.kv } : { type: e.type, kv: e.kv, prevKv: e.prevKv }))
const lease = fc.record({ id: uint, ttlMs: uint, owner: fc.string({ maxLength: 20 }) })
const dedup = fc.record({ requestId: fc.string({ maxLength: 30 }), fingerprint: fc.string({ maxLength: 30 }), result: fc.option(bytes, { nil: null }), index: uint })
// Lengths either side of msgpack's size classes (fixarray < 16 ≤ array 16).
const many = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T[]> => fc.oneof(fc.array(arb, { maxLength: 3 }), fc.array(arb, { minLength: 14, maxLength: 20 }))
const image: fc.Arbitrary<StoreImage> = fc.record({
  options: fc.constant(new StateStore().options),
  revision: uint, compactRevision: uint, appliedIndex: uint,
  kvs: many(keyValue),
  leases: many(lease),
  history: many(fc.record({ revision: uint, events: many(event) })),
  dedup: many(dedup),
  dedupHorizon: uint,
})

describe('sliced snapshot encoding', () => {
  it('gives exactly the whole-image msgpack bytes, whatever the slice budgets (property)', () => {
    fc.assert(fc.property(image, fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 5 }), (img, budgets) => {
      const expected = wholeEncoding(img)
      expect(firstDifference(sliced(img, budgets).bytes, expected)).toBe(-1)
      expect(firstDifference(encodeImage(img), expected)).toBe(-1)
    }), { numRuns: 200 })
  })

  it('uses the array 32 header past 65,535 elements, and values larger than a chunk, as msgpack does', () => {
    const big: KeyValue = { key: 'big', value: new Uint8Array(3 * 1024 * 1024 + 7).fill(5), createRevision: 1, modRevision: 1, version: 1, lease: 0 }
    // Either side of the array 16 / array 32 boundary.
    for (const count of [65_535, 65_536]) {
      const leases: LeaseRecord[] = Array.from({ length: count }, (_, i) => ({ id: i + 1, ttlMs: 5000, owner: 'p' }))
      const img: StoreImage = { options: new StateStore().options, revision: 1, compactRevision: 0, appliedIndex: 1, kvs: [big], leases, history: [], dedup: [], dedupHorizon: 0 }
      const expected = wholeEncoding(img)
      const { bytes: out, steps } = sliced(img, [64 * 1024])
      expect(firstDifference(out, expected)).toBe(-1)
      expect(steps).toBeGreaterThan(8) // really done in slices
    } // really done in slices
  })

  it('values between half a chunk and a chunk, one after another, as the 512 KiB value limit allows', () => {
    // A half-full staging buffer followed by a large element once overflowed it ("offset is out
    // of bounds"), and every snapshot of a store of maximum-size values failed.
    const kvs: KeyValue[] = Array.from({ length: 7 }, (_, i) => ({ key: `v/${i}`, value: new Uint8Array(512 * 1024 - i * 3).fill(i + 1), createRevision: i + 1, modRevision: i + 1, version: 1, lease: 0 }))
    for (const small of [0, 1, 3]) {
      const img: StoreImage = { options: new StateStore().options, revision: 7, compactRevision: 0, appliedIndex: 7, kvs: [...kvs.slice(0, small).map((k) => ({ ...k, value: k.value.subarray(0, 100) })), ...kvs], leases: [], history: [], dedup: [], dedupHorizon: 0 }
      expect(firstDifference(sliced(img, [256 * 1024]).bytes, wholeEncoding(img))).toBe(-1)
    }
  })

  it('a captured image is the state at capture, however the store changes while it is encoded', () => {
    const d = new StoreDriver(new StateStore({ historyMaxRevisions: 30, dedupMaxEntries: 10 }))
    d.run({ type: 'leaseGrant', id: 7, ttlMs: 5_000 })
    for (let i = 0; i < 200; i++) d.put(`k/${i % 40}`, `value ${i}`.repeat(20), { lease: i % 5 === 0 ? 7 : undefined })
    const before = d.store.snapshot()
    const encoder = d.store.snapshotEncoder()
    expect(encoder.step(2048)).toBeNull()
    // Overwrites, deletes, a lease revoked with its keys, history and dedup windows rolling over.
    for (let i = 0; i < 100; i++) d.put(`k/${i % 40}`, `later ${i}`)
    d.del('k/3')
    d.run({ type: 'leaseRevoke', id: 7 })
    d.run({ type: 'compact', revision: d.store.revision - 2 })
    let out: Uint8Array | null = null
    while (out === null) out = encoder.step(2048)
    expect(out).toEqual(before)
    expect(d.store.snapshot()).not.toEqual(before)
  })
})
