// Pages bounded by bytes as well as by count (issue 17 §5): range() for listings and
// eventsSince() for watch catch-up, so no single read encodes tens of MB at once.
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'

const VALUE = 'v'.repeat(1000)

describe('range with maxBytes', () => {
  const d = new StoreDriver()
  for (let i = 0; i < 50; i++) d.put(`kv/${String(i).padStart(2, '0')}`, VALUE)

  it('stops before the pair that would pass the bound, and pages on from the last key', () => {
    // Each pair is 5 key bytes + 1000 value bytes: three fit in 3100, a fourth does not.
    const first = d.store.range('kv/', { maxBytes: 3100 })
    expect(first.kvs.map((kv) => kv.key)).toEqual(['kv/00', 'kv/01', 'kv/02'])
    expect(first.more).toBe(true)
    const keys: string[] = []
    let after: string | undefined
    for (;;) {
      const page = d.store.range('kv/', { maxBytes: 3100, limit: 1000, ...(after === undefined ? {} : { startAfter: after }) })
      keys.push(...page.kvs.map((kv) => kv.key))
      if (!page.more) break
      after = page.kvs.at(-1)?.key
    }
    expect(keys).toHaveLength(50)
    expect(new Set(keys).size).toBe(50)
  })

  it('always returns at least one pair, so paging makes progress', () => {
    expect(d.store.range('kv/', { maxBytes: 1 }).kvs).toHaveLength(1)
  })

  it('the count bound still applies under the byte bound', () => {
    expect(d.store.range('kv/', { maxBytes: 1 << 20, limit: 4 })).toMatchObject({ more: true })
    expect(d.store.range('kv/', { maxBytes: 1 << 20, limit: 4 }).kvs).toHaveLength(4)
  })

  it('refuses a negative maxBytes (a caller bug)', () => {
    expect(() => d.store.range('kv/', { maxBytes: -1 })).toThrow(RangeError)
  })
})

describe('eventsSince with maxBytes', () => {
  it('stops at a revision boundary once the bound is reached, and resumes from there', () => {
    const d = new StoreDriver()
    for (let i = 0; i < 20; i++) d.put(`w/${String(i).padStart(2, '0')}`, VALUE)
    const first = d.store.eventsSince(0, 'w/', 1000, 2500)
    if (!first.ok) throw new Error('compacted')
    expect(first.events).toHaveLength(3)
    expect(first.revision).toBe(3)
    let cursor = first.revision
    let seen = first.events.length
    while (cursor < d.store.revision) {
      const r = d.store.eventsSince(cursor, 'w/', 1000, 2500)
      if (!r.ok) throw new Error('compacted')
      seen += r.events.length
      cursor = r.revision
    }
    expect(seen).toBe(20)
    // No byte bound: everything at once, as before.
    const all = d.store.eventsSince(0, 'w/')
    expect(all.ok && all.events.length).toBe(20)
  })
})
