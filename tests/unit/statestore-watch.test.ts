// Watch history: resume by revision with nothing missed or repeated, bounded
// history with a typed 'compacted' refusal, and the drain batches the node
// layer fans out.
import { describe, it, expect } from 'vitest'
import { StateStore } from '../../storage/statestore/store.ts'
import { StoreDriver, text } from '../../storage/statestore/testing.ts'
import type { WatchEvent } from '../../storage/statestore/kv.ts'

function events(store: StateStore, revision: number, prefix = '', limit?: number): readonly WatchEvent[] {
  const r = store.eventsSince(revision, prefix, limit)
  if (!r.ok) throw new Error(`compacted at ${r.compactRevision}`)
  return r.events
}

const summary = (es: readonly WatchEvent[]): string[] => es.map((e) => `${e.kv.modRevision}:${e.type}:${e.kv.key}`)

// A mixed workload over two prefixes: puts, overwrites, deletes, txns, a lease revoke.
function workload(d: StoreDriver, rounds: number): void {
  d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
  for (let i = 0; i < rounds; i++) {
    d.put(`kv/${i % 7}`, `v${i}`)
    if (i % 3 === 0) d.put(`cfg/${i % 4}`, `c${i}`, { lease: 1 })
    if (i % 5 === 0) d.del(`kv/${(i + 2) % 7}`)
    if (i % 11 === 0) {
      d.run({ type: 'txn', compare: [], success: [{ type: 'put', key: 'kv/t1', value: text(`${i}`) }, { type: 'put', key: 'cfg/t2', value: text(`${i}`) }], failure: [] })
    }
  }
  d.run({ type: 'leaseRevoke', id: 1 })
}

describe('eventsSince', () => {
  it('from any revision returns exactly the events after it, in order', () => {
    const d = new StoreDriver()
    const all: WatchEvent[] = []
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
    for (let i = 0; i < 40; i++) {
      d.put(`kv/${i % 7}`, `v${i}`)
      if (i % 3 === 0) d.put(`cfg/${i % 4}`, `c${i}`, { lease: 1 })
      if (i % 5 === 0) d.del(`kv/${(i + 2) % 7}`)
      all.push(...d.store.drainEvents().events)
    }
    d.run({ type: 'leaseRevoke', id: 1 })
    all.push(...d.store.drainEvents().events)
    const head = d.store.revision
    for (let r = 0; r <= head; r++) {
      const expected = all.filter((e) => e.kv.modRevision > r)
      expect(summary(events(d.store, r, '', 1_000_000))).toEqual(summary(expected))
      expect(summary(events(d.store, r, 'cfg/', 1_000_000))).toEqual(summary(expected.filter((e) => e.kv.key.startsWith('cfg/'))))
    }
  })

  it('a watcher that pages with a small limit sees every event once, and revisions are never split', () => {
    const d = new StoreDriver()
    workload(d, 60)
    const full = events(d.store, 0, '', 1_000_000)
    for (const limit of [1, 2, 3, 10]) {
      const seen: WatchEvent[] = []
      let cursor = 0
      for (let guard = 0; guard < 10_000 && cursor < d.store.revision; guard++) {
        const r = d.store.eventsSince(cursor, '', limit)
        if (!r.ok) throw new Error('compacted')
        // Every revision in a page is complete.
        for (const e of r.events) expect(e.kv.modRevision).toBeLessThanOrEqual(r.revision)
        expect(r.revision).toBeGreaterThan(cursor)
        seen.push(...r.events)
        cursor = r.revision
      }
      expect(summary(seen)).toEqual(summary(full))
    }
  })

  it('stops after the revision in which it reached the limit', () => {
    const d = new StoreDriver()
    d.run({ type: 'txn', compare: [], success: ['kv/a', 'kv/b', 'kv/c'].map((key) => ({ type: 'put', key, value: text('1') })), failure: [] })
    d.put('kv/d', '1')
    const r = d.store.eventsSince(0, '', 1)
    expect(r).toMatchObject({ ok: true, revision: 1 })
    expect(r.ok && r.events.length).toBe(3)
  })

  it('with no matching events, still advances the cursor to the head', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    d.put('kv/b', '1')
    expect(d.store.eventsSince(0, 'cfg/')).toEqual({ ok: true, events: [], revision: 2 })
  })

  it('a cursor ahead of this replica yields nothing and keeps the cursor', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    expect(d.store.eventsSince(5)).toEqual({ ok: true, events: [], revision: 5 })
    expect(d.store.eventsSince(1)).toEqual({ ok: true, events: [], revision: 1 })
  })

  it('delete events carry a tombstone and the deleted pair', () => {
    const d = new StoreDriver()
    d.put('kv/a', 'x')
    d.del('kv/a')
    expect(events(d.store, 1)).toEqual([{
      type: 'delete',
      kv: { key: 'kv/a', value: new Uint8Array(0), createRevision: 0, modRevision: 2, version: 0, lease: 0 },
      prevKv: { key: 'kv/a', value: text('x'), createRevision: 1, modRevision: 1, version: 1, lease: 0 },
    }])
  })

  it('put events carry the previous pair when there was one', () => {
    const d = new StoreDriver()
    d.put('kv/a', 'x')
    d.put('kv/a', 'y')
    const [first, second] = events(d.store, 0)
    expect(first?.prevKv).toBeUndefined()
    expect(second?.prevKv?.value).toEqual(text('x'))
  })

  it('refuses a bad revision or limit as a caller bug', () => {
    const s = new StateStore()
    expect(() => s.eventsSince(-1)).toThrow(RangeError)
    expect(() => s.eventsSince(0, '', 0)).toThrow(RangeError)
  })
})

describe('compaction of the history', () => {
  it('after an explicit compact, older cursors get a typed compacted error', () => {
    const d = new StoreDriver()
    for (let i = 0; i < 10; i++) d.put('kv/a', String(i))
    d.run({ type: 'compact', revision: 6 })
    expect(d.store.eventsSince(5)).toEqual({ ok: false, code: 'compacted', compactRevision: 6, revision: 10 })
    expect(d.store.eventsSince(0)).toMatchObject({ ok: false, code: 'compacted' })
    expect(summary(events(d.store, 6))).toEqual(['7:put:kv/a', '8:put:kv/a', '9:put:kv/a', '10:put:kv/a'])
  })

  it('the history is a ring bounded by historyMaxRevisions', () => {
    const d = new StoreDriver(new StateStore({ historyMaxRevisions: 5 }))
    for (let i = 0; i < 12; i++) {
      d.put(`kv/${i}`, 'v')
      d.store.assertInvariants()
    }
    expect(d.store.compactRevision).toBe(7)
    expect(d.store.eventsSince(6)).toMatchObject({ ok: false, code: 'compacted', compactRevision: 7 })
    expect(summary(events(d.store, 7)).length).toBe(5)
  })

  it('the history is bounded by bytes too, always keeping the newest revision', () => {
    const d = new StoreDriver(new StateStore({ historyMaxBytes: 3_000 }))
    for (let i = 0; i < 10; i++) d.run({ type: 'put', key: `kv/${i}`, value: new Uint8Array(1_000) })
    d.store.assertInvariants()
    expect(d.store.revision - d.store.compactRevision).toBe(2)
    d.run({ type: 'put', key: 'kv/huge', value: new Uint8Array(10_000) })
    d.store.assertInvariants()
    expect(d.store.compactRevision).toBe(d.store.revision - 1)
    expect(events(d.store, d.store.revision - 1).length).toBe(1)
  })

  it('a watcher that fell behind the ring re-lists then resumes from the store revision', () => {
    const d = new StoreDriver(new StateStore({ historyMaxRevisions: 3 }))
    for (let i = 0; i < 10; i++) d.put(`kv/${i % 2}`, String(i))
    const r = d.store.eventsSince(2, 'kv/')
    expect(r.ok).toBe(false)
    if (!r.ok) {
      // The recipe: read current state at r.revision, then watch from there.
      const snapshot = d.store.range('kv/')
      expect(snapshot.kvs.map((kv) => kv.key)).toEqual(['kv/0', 'kv/1'])
      d.put('kv/0', 'next')
      expect(summary(events(d.store, r.revision, 'kv/'))).toEqual(['11:put:kv/0'])
    }
  })
})

describe('drainEvents', () => {
  it('hands out each event exactly once, in contiguous revision ranges', () => {
    const d = new StoreDriver()
    const drained: WatchEvent[] = []
    let expectedFrom = 0
    for (let i = 0; i < 25; i++) {
      d.put(`kv/${i % 3}`, String(i))
      if (i % 4 === 0) d.del(`kv/${(i + 1) % 3}`)
      if (i % 3 === 0) {
        const batch = d.store.drainEvents()
        expect(batch.fromRevision).toBe(expectedFrom)
        expect(batch.toRevision).toBe(d.store.revision)
        expect(batch.complete).toBe(true)
        for (const e of batch.events) {
          expect(e.kv.modRevision).toBeGreaterThan(batch.fromRevision)
          expect(e.kv.modRevision).toBeLessThanOrEqual(batch.toRevision)
        }
        drained.push(...batch.events)
        expectedFrom = batch.toRevision
      }
    }
    drained.push(...d.store.drainEvents().events)
    expect(summary(drained)).toEqual(summary(events(d.store, 0)))
    expect(d.store.drainEvents()).toEqual({ fromRevision: d.store.revision, toRevision: d.store.revision, events: [], complete: true })
  })

  it('is not affected by a compaction applied before the drain', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    d.put('kv/a', '2')
    d.run({ type: 'compact', revision: 2 })
    expect(summary(d.store.drainEvents().events)).toEqual(['1:put:kv/a', '2:put:kv/a'])
  })

  it('marks a batch incomplete on overflow; the range is then read from eventsSince', () => {
    const d = new StoreDriver(new StateStore({ pendingEventsMax: 4 }))
    for (let i = 0; i < 6; i++) d.put(`kv/${i}`, 'v')
    d.store.assertInvariants()
    const batch = d.store.drainEvents()
    expect(batch).toMatchObject({ fromRevision: 0, toRevision: 6, complete: false, events: [] })
    expect(events(d.store, batch.fromRevision).length).toBe(6)
    d.put('kv/x', 'v')
    expect(d.store.drainEvents()).toMatchObject({ fromRevision: 6, toRevision: 7, complete: true })
  })

  it('a watcher that disconnects and reconnects misses and repeats nothing', () => {
    // The node layer's recipe: a synced watcher takes drain batches; one that
    // reconnects resumes from its cursor through eventsSince.
    const d = new StoreDriver()
    const delivered: WatchEvent[] = []
    let cursor = 0
    let connected = true
    for (let i = 0; i < 50; i++) {
      d.put(`kv/${i % 5}`, String(i))
      if (i % 9 === 0) d.del(`kv/${(i + 1) % 5}`)
      const batch = d.store.drainEvents()
      if (i === 10) connected = false
      if (i === 30) {
        connected = true
        const r = d.store.eventsSince(cursor, 'kv/', 1_000_000)
        if (!r.ok) throw new Error('compacted')
        delivered.push(...r.events)
        cursor = r.revision
        continue
      }
      if (connected && batch.fromRevision === cursor) {
        delivered.push(...batch.events.filter((e) => e.kv.key.startsWith('kv/')))
        cursor = batch.toRevision
      }
    }
    expect(cursor).toBe(d.store.revision)
    expect(summary(delivered)).toEqual(summary(events(d.store, 0, 'kv/', 1_000_000)))
  })

  it('events of a lease revoke share one revision, in key order', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 9, ttlMs: 5_000 })
    for (const k of ['kv/c', 'kv/a', 'kv/b']) d.put(k, '1', { lease: 9 })
    d.store.drainEvents()
    d.run({ type: 'leaseRevoke', id: 9 })
    expect(summary(d.store.drainEvents().events)).toEqual(['4:delete:kv/a', '4:delete:kv/b', '4:delete:kv/c'])
  })
})
