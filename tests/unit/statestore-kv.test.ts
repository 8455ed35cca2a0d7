// Keyspace semantics of the StateStore, after etcd's MVCC store: revisions,
// versions, deletes, ranges, limits and typed refusals.
import { describe, it, expect } from 'vitest'
import { StateStore } from '../../storage/statestore/store.ts'
import { StoreDriver, text, readText } from '../../storage/statestore/testing.ts'
import { KEY_MAX_BYTES, VALUE_MAX_BYTES } from '../../storage/statestore/limits.ts'
import type { ApplyResult, Response } from '../../storage/statestore/results.ts'

function response(result: ApplyResult): Response {
  if (!result.ok) throw new Error(`expected success, got ${result.code}: ${result.message}`)
  return result.response
}

function code(result: ApplyResult): string {
  if (result.ok) throw new Error('expected a refusal')
  return result.code
}

describe('put and get', () => {
  it('a new key gets createRevision = modRevision = the new revision and version 1', () => {
    const d = new StoreDriver()
    expect(response(d.put('kv/a', 'one'))).toEqual({ type: 'put', revision: 1 })
    expect(d.store.get('kv/a')).toEqual({ key: 'kv/a', value: text('one'), createRevision: 1, modRevision: 1, version: 1, lease: 0 })
    expect(d.store.revision).toBe(1)
    d.store.assertInvariants()
  })

  it('overwriting keeps createRevision, bumps modRevision and version', () => {
    const d = new StoreDriver()
    d.put('kv/a', 'one')
    d.put('kv/b', 'x')
    d.put('kv/a', 'two')
    expect(d.store.get('kv/a')).toMatchObject({ createRevision: 1, modRevision: 3, version: 2 })
    expect(d.value('kv/a')).toBe('two')
  })

  it('every put bumps the revision, even with an identical value (etcd)', () => {
    const d = new StoreDriver()
    d.put('kv/a', 'same')
    d.put('kv/a', 'same')
    expect(d.store.revision).toBe(2)
    expect(d.store.get('kv/a')?.version).toBe(2)
  })

  it('returns prevKv only when asked', () => {
    const d = new StoreDriver()
    d.put('kv/a', 'one')
    expect(response(d.run({ type: 'put', key: 'kv/a', value: text('two') }))).toEqual({ type: 'put', revision: 2 })
    const r = response(d.run({ type: 'put', key: 'kv/a', value: text('three'), prevKv: true }))
    expect(r).toMatchObject({ type: 'put', revision: 3, prevKv: { value: text('two'), version: 2, modRevision: 2 } })
  })

  it('ifAbsent creates a missing key and refuses an existing one without using a revision', () => {
    const d = new StoreDriver()
    expect(d.run({ type: 'put', key: 'kv/a', value: text('1'), ifAbsent: true }).ok).toBe(true)
    expect(code(d.run({ type: 'put', key: 'kv/a', value: text('2'), ifAbsent: true }))).toBe('key-exists')
    expect(d.value('kv/a')).toBe('1')
    expect(d.store.revision).toBe(1)
  })

  it('copies values: mutating the caller\'s bytes later does not change the store', () => {
    const d = new StoreDriver()
    const bytes = text('abc')
    d.run({ type: 'put', key: 'kv/a', value: bytes })
    bytes[0] = 0x7a
    expect(d.value('kv/a')).toBe('abc')
  })

  it('get of a missing key is null', () => {
    expect(new StateStore().get('kv/none')).toBeNull()
  })
})

describe('delete', () => {
  it('deletes at a new revision; deleting a missing key uses no revision', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    expect(response(d.del('kv/a'))).toEqual({ type: 'delete', revision: 2, deleted: 1 })
    expect(d.store.get('kv/a')).toBeNull()
    expect(response(d.del('kv/a'))).toEqual({ type: 'delete', revision: 2, deleted: 0 })
    expect(d.store.revision).toBe(2)
  })

  it('delete then re-put resets version and createRevision', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    d.put('kv/a', '2')
    d.del('kv/a')
    d.put('kv/a', '3')
    expect(d.store.get('kv/a')).toMatchObject({ createRevision: 4, modRevision: 4, version: 1 })
  })

  it('returns the deleted pair with prevKv', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    expect(response(d.run({ type: 'delete', key: 'kv/a', prevKv: true }))).toMatchObject({ deleted: 1, prevKv: { key: 'kv/a', value: text('1') } })
  })

  it('deletePrefix removes exactly the keys with the prefix, at one revision', () => {
    const d = new StoreDriver()
    for (const k of ['kv/a/1', 'kv/a/2', 'kv/ab', 'kv/b']) d.put(k, k)
    const r = response(d.run({ type: 'deletePrefix', prefix: 'kv/a/', prevKv: true }))
    expect(r).toMatchObject({ type: 'deletePrefix', revision: 5, deleted: 2 })
    expect(r.type === 'deletePrefix' ? r.prevKvs?.map((kv) => kv.key) : []).toEqual(['kv/a/1', 'kv/a/2'])
    expect(d.store.range('').kvs.map((kv) => kv.key)).toEqual(['kv/ab', 'kv/b'])
    const events = d.store.eventsSince(4)
    expect(events.ok && events.events.map((e) => [e.type, e.kv.key, e.kv.modRevision])).toEqual([['delete', 'kv/a/1', 5], ['delete', 'kv/a/2', 5]])
    d.store.assertInvariants()
  })

  it('deletePrefix matching nothing uses no revision', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    expect(response(d.run({ type: 'deletePrefix', prefix: 'kv/zzz' }))).toEqual({ type: 'deletePrefix', revision: 1, deleted: 0 })
  })

  it('deletePrefix with many keys keeps the store consistent', () => {
    const d = new StoreDriver()
    for (let i = 0; i < 300; i++) d.put(`kv/${String(i).padStart(3, '0')}`, 'v')
    d.run({ type: 'deletePrefix', prefix: 'kv/1' })
    expect(d.store.keyCount).toBe(200)
    d.store.assertInvariants()
  })
})

describe('range', () => {
  it('lists keys with the prefix in UTF-8 byte order', () => {
    const d = new StoreDriver()
    // U+FFFD sorts before U+1F600 in UTF-8 although its UTF-16 unit is larger.
    for (const k of ['kv/\u{1F600}', 'kv/\uFFFD', 'kv/b', 'kv/a', 'kw/x', 'kv']) d.put(k, '1')
    expect(d.store.range('kv/').kvs.map((kv) => kv.key)).toEqual(['kv/a', 'kv/b', 'kv/\uFFFD', 'kv/\u{1F600}'])
    expect(d.store.range('').kvs.map((kv) => kv.key)).toEqual(['kv', 'kv/a', 'kv/b', 'kv/\uFFFD', 'kv/\u{1F600}', 'kw/x'])
  })

  it('honours limit and startAfter for paging', () => {
    const d = new StoreDriver()
    for (const k of ['kv/1', 'kv/2', 'kv/3', 'kv/4', 'kv/5']) d.put(k, '1')
    const first = d.store.range('kv/', { limit: 2 })
    expect(first.kvs.map((kv) => kv.key)).toEqual(['kv/1', 'kv/2'])
    expect(first.more).toBe(true)
    const next = d.store.range('kv/', { limit: 2, startAfter: 'kv/2' })
    expect(next.kvs.map((kv) => kv.key)).toEqual(['kv/3', 'kv/4'])
    const last = d.store.range('kv/', { limit: 2, startAfter: 'kv/4' })
    expect(last).toMatchObject({ more: false })
    expect(last.kvs.map((kv) => kv.key)).toEqual(['kv/5'])
    expect(d.store.range('kv/', { limit: 5 }).more).toBe(false)
    expect(d.store.range('kv/', { startAfter: 'kv/25' }).kvs.map((kv) => kv.key)).toEqual(['kv/3', 'kv/4', 'kv/5'])
  })

  it('refuses a negative limit (a caller bug)', () => {
    expect(() => new StateStore().range('', { limit: -1 })).toThrow(RangeError)
  })
})

describe('limits and typed refusals', () => {
  const longKey = 'kv/' + 'a'.repeat(KEY_MAX_BYTES - 3)
  const cases: Array<[string, string, string]> = [
    ['empty key', '', 'key-invalid'],
    ['key with NUL', 'kv/a\0b', 'key-invalid'],
    ['key starting with /', '/kv/a', 'key-invalid'],
    ['key with a lone surrogate', 'kv/\uD800', 'key-invalid'],
    ['key of KEY_MAX_BYTES + 1 bytes', longKey + 'a', 'key-too-long'],
    ['key over the limit in UTF-8 only', 'kv/' + '\u20AC'.repeat(170), 'key-too-long'],
  ]
  it.each(cases)('%s is refused as %s', (_name, key, expected) => {
    const d = new StoreDriver()
    expect(code(d.run({ type: 'put', key, value: text('x') }))).toBe(expected)
    expect(d.store.revision).toBe(0)
    expect(d.store.appliedIndex).toBe(1)
  })

  it('accepts a key of exactly KEY_MAX_BYTES bytes, multibyte included', () => {
    const d = new StoreDriver()
    expect(d.put(longKey, 'x').ok).toBe(true)
    expect(d.put('kv/' + '\u20AC'.repeat(169) + 'ab', 'x').ok).toBe(true) // 3 + 507 + 2 = 512
  })

  it('refuses a value over VALUE_MAX_BYTES and accepts one at it', () => {
    const d = new StoreDriver()
    expect(code(d.run({ type: 'put', key: 'kv/a', value: new Uint8Array(VALUE_MAX_BYTES + 1) }))).toBe('value-too-large')
    expect(d.run({ type: 'put', key: 'kv/a', value: new Uint8Array(VALUE_MAX_BYTES) }).ok).toBe(true)
  })

  it('refuses bad origins and request ids', () => {
    const d = new StoreDriver()
    expect(code(d.run({ type: 'delete', key: 'kv/a' }, { origin: '' }))).toBe('invalid-origin')
    expect(code(d.run({ type: 'delete', key: 'kv/a' }, { origin: 'has space' }))).toBe('invalid-origin')
    expect(code(d.run({ type: 'delete', key: 'kv/a' }, { requestId: '' }))).toBe('invalid-request-id')
    expect(code(d.run({ type: 'delete', key: 'kv/a' }, { requestId: 'x'.repeat(129) }))).toBe('invalid-request-id')
    expect(code(d.run({ type: 'delete', key: 'kv/a' }, { requestId: 'caf\u00e9' }))).toBe('invalid-request-id')
  })

  it('a refused command still consumes its log index', () => {
    const d = new StoreDriver()
    d.run({ type: 'put', key: '', value: text('x') })
    d.run({ type: 'put', key: '', value: text('x') })
    expect(d.store.appliedIndex).toBe(2)
  })
})

describe('applied index', () => {
  it('entries must be applied in increasing index order; gaps are allowed', () => {
    const s = new StateStore()
    const cmd = { origin: 'p', requestId: 'r1', request: { type: 'delete', key: 'kv/a' } } as const
    s.apply(3, cmd)
    expect(s.appliedIndex).toBe(3)
    expect(() => s.apply(3, { ...cmd, requestId: 'r2' })).toThrow(/not above the applied index/)
    expect(() => s.apply(2, { ...cmd, requestId: 'r2' })).toThrow()
    s.applyNoop(4)
    expect(s.appliedIndex).toBe(4)
    expect(() => s.applyNoop(4)).toThrow()
  })

  it('applyEntry refuses undecodable bytes as malformed-command and consumes the index', () => {
    const s = new StateStore()
    const r = s.applyEntry(1, new Uint8Array([0xc1]))
    expect(r).toMatchObject({ ok: false, code: 'malformed-command' })
    expect(s.appliedIndex).toBe(1)
  })
})

describe('compact', () => {
  it('compacts history up to a revision; refuses at or below the compact revision and above the store revision', () => {
    const d = new StoreDriver()
    for (let i = 0; i < 5; i++) d.put('kv/a', String(i))
    expect(response(d.run({ type: 'compact', revision: 3 }))).toEqual({ type: 'compact', revision: 5, compactRevision: 3 })
    expect(d.store.compactRevision).toBe(3)
    expect(code(d.run({ type: 'compact', revision: 3 }))).toBe('compacted')
    expect(code(d.run({ type: 'compact', revision: 2 }))).toBe('compacted')
    expect(code(d.run({ type: 'compact', revision: 6 }))).toBe('future-revision')
    expect(response(d.run({ type: 'compact', revision: 5 }))).toMatchObject({ compactRevision: 5 })
    // Compaction drops history, never current keys.
    expect(readText(d.store.get('kv/a')?.value ?? new Uint8Array())).toBe('4')
    d.store.assertInvariants()
  })
})

describe('options', () => {
  it('refuses non-positive bounds', () => {
    expect(() => new StateStore({ historyMaxRevisions: 0 })).toThrow(RangeError)
    expect(() => new StateStore({ dedupMaxBytes: 1.5 })).toThrow(RangeError)
  })
})
