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
    d.put('kv/a', '1', { requestId: 'r-1' })
    expect(d.put('kv/a', '2', { requestId: 'r-1' })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.put('kv/a', '1', { requestId: 'r-1', origin: 'peerB' })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.put('kv/a', '1', { requestId: 'r-1', asLeader: true })).toMatchObject({ ok: false, code: 'request-id-conflict' })
    expect(d.value('kv/a')).toBe('1')
    // The conflict is not remembered: the original still replays.
    expect(d.put('kv/a', '1', { requestId: 'r-1' })).toMatchObject({ ok: true, duplicate: true })
  })

  it('dedups the same command arriving twice as log entries (applyEntry)', () => {
    const s = new StateStore()
    const bytes = encodeCommand({ origin: 'p', requestId: 'once', request: { type: 'put', key: 'kv/a', value: text('1') } })
    s.applyEntry(1, bytes)
    expect(s.applyEntry(2, bytes)).toMatchObject({ ok: true, duplicate: true })
    expect(s.revision).toBe(1)
  })

  it('forgets the oldest requests beyond dedupMaxEntries', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxEntries: 3 }))
    const first = d.command({ type: 'put', key: 'kv/a', value: text('1') })
    d.apply(first)
    for (let i = 0; i < 3; i++) d.put(`kv/${i}`, 'x')
    d.store.assertInvariants()
    expect(d.apply(first)).toMatchObject({ ok: true, duplicate: false })
    expect(d.store.get('kv/a')?.version).toBe(2)
  })

  it('forgets the oldest requests beyond dedupMaxBytes, keeping the newest even if alone too big', () => {
    const d = new StoreDriver(new StateStore({ dedupMaxBytes: 200 }))
    const small = d.command({ type: 'put', key: 'kv/x', value: text('0') })
    d.apply(small)
    const big = d.command({ type: 'put', key: 'kv/a', value: text('1'), prevKv: true })
    d.run({ type: 'put', key: 'kv/a', value: new Uint8Array(1_000) })
    d.apply(big) // its result holds a 1,000-byte prevKv
    d.store.assertInvariants()
    expect(d.apply(big)).toMatchObject({ duplicate: true })
    expect(d.apply(small)).toMatchObject({ duplicate: false })
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
