// Idempotent retries: a requestId already applied within the window returns
// the original result instead of applying again.
import { describe, it, expect } from 'vitest'
import { StateStore } from '../../storage/statestore/store.ts'
import { StoreDriver, text } from '../../storage/statestore/testing.ts'
import { encodeCommand } from '../../storage/statestore/codec.ts'
import { lockAcquireRequest } from '../../storage/statestore/locks.ts'

describe('request-id dedup', () => {
  it('a retried put returns the original result and does not write again', () => {
    const d = new StoreDriver()
    const cmd = d.command({ type: 'put', key: 'kv/a', value: text('1'), prevKv: true })
    const first = d.apply(cmd)
    d.put('kv/b', 'x')
    const retry = d.apply(cmd)
    expect(first).toEqual({ ok: true, duplicate: false, response: { type: 'put', revision: 1 } })
    expect(retry).toEqual({ ...first, duplicate: true })
    expect(d.store.get('kv/a')?.version).toBe(1)
    expect(d.store.revision).toBe(2)
  })

  it('a retried lock acquire still reports success (a second apply would report failure)', () => {
    // The proposal was appended by a leader that then lost leadership; it
    // committed anyway, and the proposer retries through the new leader.
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 10_000 })
    const acquire = d.command(lockAcquireRequest('job', 1))
    expect(d.apply(acquire)).toMatchObject({ ok: true, response: { succeeded: true } })
    expect(d.apply(acquire)).toMatchObject({ ok: true, duplicate: true, response: { succeeded: true } })
  })

  it('a retried deletePrefix does not delete keys written in between', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    const wipe = d.command({ type: 'deletePrefix', prefix: 'kv/' })
    d.apply(wipe)
    d.put('kv/b', '2')
    expect(d.apply(wipe)).toMatchObject({ duplicate: true, response: { deleted: 1 } })
    expect(d.value('kv/b')).toBe('2')
  })

  it('a retried refusal returns the same refusal', () => {
    const d = new StoreDriver()
    const cmd = d.command({ type: 'put', key: 'kv/a', value: text('1'), lease: 5 })
    expect(d.apply(cmd)).toMatchObject({ ok: false, code: 'lease-not-found', duplicate: false })
    d.run({ type: 'leaseGrant', id: 5, ttlMs: 10_000 })
    expect(d.apply(cmd)).toMatchObject({ ok: false, code: 'lease-not-found', duplicate: true })
  })

  it('refuses a requestId reused for a different payload, origin or role, changing nothing', () => {
    const d = new StoreDriver()
    // A retry is the same command: the same base too.
    d.put('kv/a', '1', { requestId: 'r-1', base: 0 })
    expect(d.put('kv/a', '2', { requestId: 'r-1', base: 0 })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.put('kv/a', '1', { requestId: 'r-1', base: 0, origin: 'peerB' })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.put('kv/a', '1', { requestId: 'r-1', base: 0, asLeader: true })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.put('kv/a', '1', { requestId: 'r-1', base: 1 })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.value('kv/a')).toBe('1')
    // The conflict is not remembered: the original still replays.
    expect(d.put('kv/a', '1', { requestId: 'r-1', base: 0 })).toMatchObject({ ok: true, duplicate: true })
  })

  it('dedups the same command arriving twice as log entries (applyEntry)', () => {
    const s = new StateStore()
    const bytes = encodeCommand({ origin: 'p', requestId: 'once', request: { type: 'put', key: 'kv/a', value: text('1') } })
    s.applyEntry(1, bytes)
    expect(s.applyEntry(2, bytes)).toMatchObject({ ok: true, duplicate: true })
    expect(s.revision).toBe(1)
  })

  it('a late duplicate the window forgot is refused as outcome-unknown, never applied twice', () => {
    // The window holds 3 requests; the first put's retry arrives after 3 more (a forwarded
    // proposal replayed late, or a retry at a write rate above the window). Before the horizon
    // existed it applied again: version 2.
    const d = new StoreDriver(new StateStore({ dedupMaxEntries: 3 }))
    const first = d.command({ type: 'put', key: 'kv/a', value: text('1') })
    d.apply(first)
    for (let i = 0; i < 3; i++) d.put(`kv/${i}`, 'x')
    d.store.assertInvariants()
    expect(d.apply(first)).toMatchObject({ ok: false, code: 'outcome-unknown', duplicate: false })
    expect(d.store.get('kv/a')?.version).toBe(1)
    // Remembered like any refusal: a further copy gets the same answer.
    expect(d.apply(first)).toMatchObject({ ok: false, code: 'outcome-unknown', duplicate: true })
    expect(d.store.get('kv/a')?.version).toBe(1)
  })

  it('a request first made after the horizon applies, whatever the window forgot before it', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxEntries: 2 }))
    for (let i = 0; i < 5; i++) d.put(`kv/${i}`, 'x') // indexes 1..5; forgotten 1..3
    const fresh = d.command({ type: 'put', key: 'kv/a', value: text('1') }, { base: 3 })
    expect(d.apply(fresh)).toMatchObject({ ok: true, duplicate: false })
    const stale = d.command({ type: 'put', key: 'kv/b', value: text('1') }, { base: 3 })
    d.put('kv/c', 'x')
    d.put('kv/d', 'x') // forgets index 6 (fresh): horizon 6 > base 3
    expect(d.apply(stale)).toMatchObject({ ok: false, code: 'outcome-unknown' })
    expect(d.store.get('kv/b')).toBeNull()
  })

  it('entries from before the base field keep the count-only window (they were written by older peers)', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxEntries: 3 }))
    const legacy = d.command({ type: 'put', key: 'kv/a', value: text('1') }, { base: null })
    d.apply(legacy)
    for (let i = 0; i < 3; i++) d.put(`kv/${i}`, 'x')
    expect(d.apply(legacy)).toMatchObject({ ok: true, duplicate: false })
  })

  it('past dedupMaxBytes drops the oldest results but still knows the requests; the newest keeps its result even if alone too big', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxBytes: 200 }))
    const small = d.command({ type: 'put', key: 'kv/x', value: text('0') })
    d.apply(small)
    const big = d.command({ type: 'put', key: 'kv/a', value: text('1'), prevKv: true })
    d.run({ type: 'put', key: 'kv/a', value: new Uint8Array(1_000) })
    d.apply(big) // its result holds a 1,000-byte prevKv
    d.store.assertInvariants()
    expect(d.apply(big)).toMatchObject({ duplicate: true, ok: true })
    // small's result is gone, and even its stub is past the byte bound: a copy is refused, not applied.
    expect(d.apply(small)).toMatchObject({ ok: false, code: 'outcome-unknown' })
    expect(d.store.get('kv/x')?.version).toBe(1)
  })

  it('a request whose result was dropped is answered as applied-but-unknown, not applied again', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxBytes: 580 }))
    const first = d.command({ type: 'put', key: 'kv/x', value: text('0') })
    d.apply(first)
    d.run({ type: 'put', key: 'kv/a', value: new Uint8Array(300) })
    d.run({ type: 'put', key: 'kv/a', value: text('1'), prevKv: true }) // a 300-byte result: first's result is dropped
    const replay = d.apply(first)
    expect(replay).toMatchObject({ ok: false, code: 'outcome-unknown', duplicate: true })
    expect(replay.ok ? '' : replay.message).toMatch(/applied at index 1/)
    expect(d.store.get('kv/x')?.version).toBe(1)
  })

  it('the horizon and dropped results survive a snapshot', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxEntries: 3, dedupMaxBytes: 580 }))
    const forgotten = d.command({ type: 'put', key: 'kv/f', value: text('0') })
    d.apply(forgotten)
    const stubbed = d.command({ type: 'put', key: 'kv/s', value: text('0') })
    d.apply(stubbed)
    d.run({ type: 'put', key: 'kv/a', value: new Uint8Array(300) })
    d.run({ type: 'put', key: 'kv/a', value: text('1'), prevKv: true })
    const restored = StateStore.restore(d.store.snapshot())
    if (!restored.ok) throw new Error(restored.message)
    const s = restored.store
    expect(s.digest()).toBe(d.store.digest())
    // (The stub first: the refusal of `forgotten` is recorded and pushes the stub out of a 3-entry window.)
    expect(s.apply(s.appliedIndex + 1, stubbed)).toMatchObject({ ok: false, code: 'outcome-unknown', duplicate: true })
    expect(s.apply(s.appliedIndex + 1, forgotten)).toMatchObject({ ok: false, code: 'outcome-unknown', duplicate: false })
    expect(s.get('kv/f')?.version).toBe(1)
    expect(s.get('kv/s')?.version).toBe(1)
  })

  it('the window survives a snapshot', () => {
    const d = new StoreDriver()
    const cmd = d.command({ type: 'put', key: 'kv/a', value: text('1') })
    d.apply(cmd)
    const restored = StateStore.restore(d.store.snapshot())
    if (!restored.ok) throw new Error(restored.message)
    const r = restored.store.apply(restored.store.appliedIndex + 1, cmd)
    expect(r).toMatchObject({ ok: true, duplicate: true })
    expect(restored.store.get('kv/a')?.version).toBe(1)
  })
})
