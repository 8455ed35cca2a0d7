// Snapshots: restore reproduces the state exactly (same digest, same answers,
// same future), corrupt input is a typed error, and a property test drives
// random command sequences through an original and a mid-way restored copy.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { decode, encode } from '@msgpack/msgpack'
import { StateStore } from '../../storage/statestore/store.ts'
import { StoreDriver, text } from '../../storage/statestore/testing.ts'
import { encodeCommand } from '../../storage/statestore/codec.ts'
import { containerKey, encodeRecord, type Container } from '../../storage/statestore/records.ts'
import type { Command, Compare, Request, TxnOp } from '../../storage/statestore/commands.ts'

function restore(bytes: Uint8Array): StateStore {
  const r = StateStore.restore(bytes)
  if (!r.ok) throw new Error(r.message)
  return r.store
}

function busyStore(): StoreDriver {
  const d = new StoreDriver(new StateStore({ historyMaxRevisions: 50, dedupMaxEntries: 20 }))
  d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
  for (let i = 0; i < 40; i++) {
    d.put(`kv/${i % 9}`, `v${i}`, { lease: i % 4 === 0 ? 1 : undefined })
    if (i % 6 === 0) d.del(`kv/${(i + 3) % 9}`)
  }
  d.run({ type: 'compact', revision: 10 })
  d.run({ type: 'leaseGrant', id: 2, ttlMs: 9_000 }, { origin: 'peerB' })
  d.store.applyNoop(d.store.appliedIndex + 3)
  return d
}

describe('snapshot and restore', () => {
  it('restores the same state: digest, keys, leases, history, counters and options', () => {
    const d = busyStore()
    const s = d.store
    const copy = restore(s.snapshot())
    expect(copy.digest()).toBe(s.digest())
    expect(copy.snapshot()).toEqual(s.snapshot())
    expect(copy.range('')).toEqual(s.range(''))
    expect(copy.leases()).toEqual(s.leases())
    expect(copy.eventsSince(s.compactRevision, '', 1_000_000)).toEqual(s.eventsSince(s.compactRevision, '', 1_000_000))
    expect([copy.revision, copy.compactRevision, copy.appliedIndex]).toEqual([s.revision, s.compactRevision, s.appliedIndex])
    expect(copy.options).toEqual(s.options)
    copy.assertInvariants()
  })

  it('a restored store has no pending events: its first batch starts at the snapshot revision', () => {
    const d = busyStore()
    const copy = restore(d.store.snapshot())
    expect(copy.drainEvents()).toEqual({ fromRevision: d.store.revision, toRevision: d.store.revision, events: [], complete: true })
  })

  it('restoring then applying the same commands gives an identical state', () => {
    const d = busyStore()
    const copy = new StoreDriver(restore(d.store.snapshot()))
    const more: Request[] = [
      { type: 'put', key: 'kv/new', value: text('1'), lease: 2 },
      { type: 'leaseRevoke', id: 1 },
      { type: 'txn', compare: [{ target: 'exists', key: 'kv/new', exists: true }], success: [{ type: 'deletePrefix', prefix: 'kv/' }], failure: [] },
      { type: 'compact', revision: 30 },
    ]
    for (const request of more) {
      const cmd = d.command(request, { origin: 'peerB' })
      expect(copy.apply(cmd)).toEqual(d.apply(cmd))
    }
    expect(copy.store.digest()).toBe(d.store.digest())
  })

  it('digest tells different states apart and ignores how a state was reached in memory', () => {
    const a = new StoreDriver()
    const b = new StoreDriver()
    a.put('kv/a', '1')
    b.put('kv/a', '2')
    expect(a.store.digest()).not.toBe(b.store.digest())
    const c = new StoreDriver()
    c.put('kv/a', '1')
    expect(c.store.digest()).toBe(a.store.digest())
    expect(a.store.digest()).toMatch(/^[0-9a-f]{16}$/)
  })
})

describe('corrupt snapshots', () => {
  it('garbage, truncation and another format are typed errors', () => {
    const good = busyStore().store.snapshot()
    for (const bytes of [new Uint8Array(0), text('hello'), good.subarray(0, good.length - 1), good.subarray(0, 10), encode(['shoal-statestore', 99])]) {
      expect(StateStore.restore(bytes)).toMatchObject({ ok: false, code: 'corrupt-snapshot' })
    }
  })

  // Edits the decoded snapshot array and re-encodes it.
  function tamper(edit: (parts: unknown[]) => void): Uint8Array {
    const parts = decode(busyStore().store.snapshot()) as unknown[]
    edit(parts)
    return encode(parts)
  }
  const at = (value: unknown, ...path: number[]): unknown[] => {
    let v = value
    for (const i of path) v = (v as unknown[])[i]
    return v as unknown[]
  }
  const edits: Array<[string, (parts: unknown[]) => void]> = [
    ['a revision below a key\'s modRevision', (p) => { p[3] = 5 }],
    ['a compact revision above the revision', (p) => { p[4] = 1_000 }],
    ['keys out of order', (p) => { at(p, 6).reverse() }],
    ['a key naming a missing lease', (p) => { at(p, 6, 0)[5] = 999 }],
    ['a duplicated lease', (p) => { const l = at(p, 7); l.push(l[0]) }],
    ['a gap in the history', (p) => { at(p, 8).splice(3, 1) }],
    ['an event at the wrong revision', (p) => { at(p, 8, 0, 1, 0, 1)[3] = 9_999 }],
    ['a duplicated request id', (p) => { const l = at(p, 9); l.push(l[0]) }],
    ['an undecodable remembered result', (p) => { at(p, 9, 0)[2] = new Uint8Array([0xc1]) }],
    ['a remembered request applied after the snapshot', (p) => { at(p, 9, 0)[3] = 1_000_000 }],
    ['a dedup horizon after the snapshot', (p) => { p[10] = 1_000_000 }],
    ['a missing dedup horizon', (p) => { p.pop() }],
    ['an invalid key', (p) => { at(p, 6, 0)[0] = '/bad' }],
    ['a zero option', (p) => { at(p, 2)[0] = 0 }],
    ['a history longer than its bound', (p) => { at(p, 2)[0] = 3 }],
    ['a version that no revision could have made', (p) => { at(p, 6, 0)[4] = 1_000 }],
  ]
  it.each(edits)('%s is refused', (_name, edit) => {
    expect(StateStore.restore(tamper(edit))).toMatchObject({ ok: false, code: 'corrupt-snapshot' })
  })

  it('a version 1 snapshot (no dedup horizon) restores, its requests taken as applied at the snapshot index', () => {
    const d = busyStore()
    const parts = decode(d.store.snapshot()) as unknown[]
    const appliedIndex = parts[5] as number
    const v1 = [...parts.slice(0, 9), at(parts, 9).map((e) => (e as unknown[]).slice(0, 3))]
    v1[1] = 1
    const restored = StateStore.restore(encode(v1))
    if (!restored.ok) throw new Error(restored.message)
    expect(restored.store.revision).toBe(d.store.revision)
    // A remembered request still replays; forgetting one moves the horizon to the snapshot index.
    const parts2 = decode(restored.store.snapshot()) as unknown[]
    expect(parts2[1]).toBe(2)
    expect(at(parts2, 9).every((e) => (e as unknown[])[3] === appliedIndex)).toBe(true)
  })

  it('never throws on mutated snapshots; whatever restores is consistent', () => {
    const good = busyStore().store.snapshot()
    let seed = 9
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed / 4294967296
    }
    for (let i = 0; i < 1_000; i++) {
      const bytes = good.slice()
      for (let e = 0; e < 1 + Math.floor(next() * 3); e++) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256)
      const r = StateStore.restore(bytes)
      if (r.ok) r.store.assertInvariants()
    }
  })
})

// Random workloads over a small keyspace, two origins, a few leases and a
// small pool of request ids, so collisions, dedup hits, conflicts, ownership
// refusals, ring eviction and compaction all happen often.
const ORIGINS = ['h1', 'h2'] as const
const keyArb = fc.constantFrom('kv/a', 'kv/b', 'kv/c', 'kv/d/1', 'kv/d/2', 'cfg/x', 'locks/job/1')
const valueArb = fc.constantFrom('', 'x', 'y', 'longer value').map(text)
const leaseArb = fc.integer({ min: 1, max: 4 })
const container = (host: string, state: Container['state']): Container => ({
  id: 'c1', name: 'web', image: 'app:1', host, hostName: host, ips: [], ports: [], labels: {}, state,
})
const opArb: fc.Arbitrary<TxnOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ key: keyArb, value: valueArb, lease: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: leaseArb }), prevKv: fc.boolean(), ifAbsent: fc.boolean() }).map((o): TxnOp => ({
    type: 'put', key: o.key, value: o.value, ...(o.lease !== undefined ? { lease: o.lease } : {}), ...(o.prevKv ? { prevKv: true } : {}), ...(o.ifAbsent ? { ifAbsent: true } : {}),
  })) },
  { weight: 2, arbitrary: fc.record({ key: keyArb, prevKv: fc.boolean() }).map((o): TxnOp => ({ type: 'delete', key: o.key, ...(o.prevKv ? { prevKv: true } : {}) })) },
  { weight: 1, arbitrary: fc.constantFrom('kv/', 'kv/d/', 'cfg/', 'containers/h1/', 'nothing/').map((prefix): TxnOp => ({ type: 'deletePrefix', prefix, prevKv: true })) },
  { weight: 1, arbitrary: fc.record({ host: fc.constantFrom(...ORIGINS), state: fc.constantFrom('running' as const, 'lost' as const) }).map((o): TxnOp => ({
    type: 'put', key: containerKey(o.host, 'c1'), value: encodeRecord(container(o.host, o.state)),
  })) },
)
const compareArb: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ key: keyArb, value: valueArb, op: fc.constantFrom('=' as const, '!=' as const, '<' as const, '>' as const) }).map((c): Compare => ({ target: 'value', ...c })),
  fc.record({ target: fc.constantFrom('version' as const, 'createRevision' as const, 'modRevision' as const, 'lease' as const), key: keyArb, op: fc.constantFrom('=' as const, '!=' as const, '<' as const, '>' as const), value: fc.integer({ min: 0, max: 12 }) }),
  fc.record({ key: keyArb, exists: fc.boolean() }).map((c): Compare => ({ target: 'exists', ...c })),
)
const requestArb: fc.Arbitrary<Request> = fc.oneof(
  { weight: 6, arbitrary: opArb },
  { weight: 3, arbitrary: fc.record({ compare: fc.array(compareArb, { maxLength: 2 }), success: fc.array(opArb, { maxLength: 3 }), failure: fc.array(opArb, { maxLength: 2 }) }).map((t): Request => ({ type: 'txn', ...t })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }).map((revision): Request => ({ type: 'compact', revision })) },
  { weight: 3, arbitrary: fc.record({ id: leaseArb, ttlMs: fc.constantFrom(999, 1_000, 5_000, 5_000, 5_000) }).map((g): Request => ({ type: 'leaseGrant', ...g })) },
  { weight: 2, arbitrary: leaseArb.map((id): Request => ({ type: 'leaseRevoke', id })) },
)
// A retry re-proposes an earlier command verbatim (same requestId), as a
// client does after a leader change; it resolves to that command.
type Step =
  | { readonly kind: 'command'; readonly cmd: Command; readonly viaBytes: boolean }
  | { readonly kind: 'retry'; readonly back: number }
  | { readonly kind: 'noop' }
  | { readonly kind: 'garbage'; readonly bytes: Uint8Array }
type Entry = Exclude<Step, { kind: 'retry' }>
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 20, arbitrary: fc.record({
    // Mostly fresh ids; a few collide, to exercise request-id-conflict.
    origin: fc.constantFrom(...ORIGINS), asLeader: fc.boolean(), requestId: fc.integer({ min: 1, max: 2_000 }), request: requestArb, viaBytes: fc.boolean(),
  }).map(({ origin, asLeader, requestId, request, viaBytes }): Step => ({
    kind: 'command', viaBytes, cmd: { origin, requestId: `r${requestId}`, ...(asLeader ? { asLeader: true } : {}), request },
  })) },
  { weight: 4, arbitrary: fc.nat({ max: 30 }).map((back): Step => ({ kind: 'retry', back })) },
  { weight: 1, arbitrary: fc.constant<Step>({ kind: 'noop' }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }).map((bytes): Step => ({ kind: 'garbage', bytes })) },
)
const stepsArb = (maxLength: number): fc.Arbitrary<Entry[]> => fc.array(stepArb, { minLength: 1, maxLength, size: 'max' }).map((steps) => {
  const entries: Entry[] = []
  for (const s of steps) {
    if (s.kind !== 'retry') entries.push(s)
    else {
      const earlier = entries.filter((e) => e.kind === 'command')
      const target = earlier[earlier.length - 1 - (s.back % Math.max(1, earlier.length))]
      if (target) entries.push(target)
    }
  }
  return entries
})

function step(store: StateStore, s: Entry): unknown {
  const index = store.appliedIndex + 1
  switch (s.kind) {
    case 'noop':
      store.applyNoop(index)
      return null
    case 'garbage':
      return store.applyEntry(index, s.bytes)
    case 'command': {
      if (!s.viaBytes) return store.apply(index, s.cmd)
      let bytes: Uint8Array
      try {
        bytes = encodeCommand(s.cmd)
      } catch {
        return store.apply(index, s.cmd) // invalid commands cannot be encoded; apply the object
      }
      return store.applyEntry(index, bytes)
    }
  }
}

describe('property: a replica restored mid-way ends identical', () => {
  it('random command sequences give the same results and digest; invariants hold after every apply', () => {
    fc.assert(fc.property(stepsArb(150), fc.nat(), (steps, splitSeed) => {
      const split = splitSeed % (steps.length + 1)
      // Small bounds so ring eviction and dedup eviction happen within a run.
      const original = new StateStore({ historyMaxRevisions: 12, historyMaxBytes: 600, dedupMaxEntries: 10, pendingEventsMax: 20 })
      for (const s of steps.slice(0, split)) {
        step(original, s)
        original.assertInvariants()
        if (original.appliedIndex % 7 === 0) original.drainEvents()
      }
      const replica = restore(original.snapshot())
      expect(replica.digest()).toBe(original.digest())
      for (const s of steps.slice(split)) {
        expect(step(replica, s)).toEqual(step(original, s))
        original.assertInvariants()
        replica.assertInvariants()
      }
      expect(replica.digest()).toBe(original.digest())
      expect(replica.range('')).toEqual(original.range(''))
      expect(replica.eventsSince(original.compactRevision, '', 1_000_000)).toEqual(original.eventsSince(original.compactRevision, '', 1_000_000))
      // And a snapshot of the end state restores to the same digest again.
      expect(restore(replica.snapshot()).digest()).toBe(original.digest())
    }), { numRuns: 300 })
  })

  it('two replicas applying the same log from scratch agree at every index', () => {
    fc.assert(fc.property(stepsArb(60), (steps) => {
      const a = new StateStore({ historyMaxRevisions: 8 })
      const b = new StateStore({ historyMaxRevisions: 8 })
      for (const s of steps) {
        expect(step(b, s)).toEqual(step(a, s))
        expect(b.digest()).toBe(a.digest())
      }
    }), { numRuns: 100 })
  })
})
