// Txn semantics after etcd: compares against the state before the txn, one
// branch applied atomically at one revision, key-overlap rules.
import { describe, it, expect } from 'vitest'
import { StoreDriver, text } from '../../storage/statestore/testing.ts'
import { TXN_MAX_OPS } from '../../storage/statestore/limits.ts'
import type { Compare, TxnOp } from '../../storage/statestore/commands.ts'
import type { ApplyResult } from '../../storage/statestore/results.ts'

// kv/k: value 'm', createRevision 2, modRevision 4, version 2, lease 7. kv/none is missing.
function fixture(): StoreDriver {
  const d = new StoreDriver()
  d.put('kv/other', 'x') // rev 1
  d.put('kv/k', 'a') // rev 2
  d.put('kv/other', 'y') // rev 3
  d.run({ type: 'leaseGrant', id: 7, ttlMs: 10_000 })
  d.put('kv/k', 'm', { lease: 7 }) // rev 4
  return d
}

function succeeded(result: ApplyResult): boolean {
  if (!result.ok || result.response.type !== 'txn') throw new Error(`expected a txn response, got ${JSON.stringify(result)}`)
  return result.response.succeeded
}

const K = 'kv/k'
const NONE = 'kv/none'
const table: Array<[string, Compare, boolean]> = [
  ['value = m', { target: 'value', key: K, op: '=', value: text('m') }, true],
  ['value = n', { target: 'value', key: K, op: '=', value: text('n') }, false],
  ['value != n', { target: 'value', key: K, op: '!=', value: text('n') }, true],
  ['value < n', { target: 'value', key: K, op: '<', value: text('n') }, true],
  ['value < m', { target: 'value', key: K, op: '<', value: text('m') }, false],
  ['value > l', { target: 'value', key: K, op: '>', value: text('l') }, true],
  ['value > mm (longer sorts after)', { target: 'value', key: K, op: '>', value: text('mm') }, false],
  ['value < mm', { target: 'value', key: K, op: '<', value: text('mm') }, true],
  ['missing value = anything', { target: 'value', key: NONE, op: '=', value: text('') }, false],
  ['missing value != anything (etcd: value compares on missing keys fail)', { target: 'value', key: NONE, op: '!=', value: text('x') }, false],
  ['version = 2', { target: 'version', key: K, op: '=', value: 2 }, true],
  ['version > 1', { target: 'version', key: K, op: '>', value: 1 }, true],
  ['version < 2', { target: 'version', key: K, op: '<', value: 2 }, false],
  ['version != 2', { target: 'version', key: K, op: '!=', value: 2 }, false],
  ['createRevision = 2', { target: 'createRevision', key: K, op: '=', value: 2 }, true],
  ['createRevision < 3', { target: 'createRevision', key: K, op: '<', value: 3 }, true],
  ['modRevision = 4', { target: 'modRevision', key: K, op: '=', value: 4 }, true],
  ['modRevision > 4', { target: 'modRevision', key: K, op: '>', value: 4 }, false],
  ['modRevision != 3', { target: 'modRevision', key: K, op: '!=', value: 3 }, true],
  ['lease = 7', { target: 'lease', key: K, op: '=', value: 7 }, true],
  ['lease = 0', { target: 'lease', key: K, op: '=', value: 0 }, false],
  ['missing createRevision = 0 (does not exist)', { target: 'createRevision', key: NONE, op: '=', value: 0 }, true],
  ['missing version = 0', { target: 'version', key: NONE, op: '=', value: 0 }, true],
  ['missing modRevision > 0', { target: 'modRevision', key: NONE, op: '>', value: 0 }, false],
  ['missing lease = 0', { target: 'lease', key: NONE, op: '=', value: 0 }, true],
  ['exists', { target: 'exists', key: K, exists: true }, true],
  ['not exists on existing', { target: 'exists', key: K, exists: false }, false],
  ['exists on missing', { target: 'exists', key: NONE, exists: true }, false],
  ['not exists on missing', { target: 'exists', key: NONE, exists: false }, true],
]

describe('txn compare semantics', () => {
  it.each(table)('%s -> %s', (_name, compare, expected) => {
    const d = fixture()
    const r = d.run({ type: 'txn', compare: [compare], success: [], failure: [] })
    expect(succeeded(r)).toBe(expected)
  })

  it('all compares must hold (conjunction); no compares means success', () => {
    const d = fixture()
    const yes: Compare = { target: 'version', key: K, op: '=', value: 2 }
    const no: Compare = { target: 'version', key: K, op: '=', value: 3 }
    expect(succeeded(d.run({ type: 'txn', compare: [yes, yes], success: [], failure: [] }))).toBe(true)
    expect(succeeded(d.run({ type: 'txn', compare: [yes, no], success: [], failure: [] }))).toBe(false)
    expect(succeeded(d.run({ type: 'txn', compare: [], success: [], failure: [] }))).toBe(true)
  })
})

describe('txn branches', () => {
  it('applies success when the compares hold, failure otherwise', () => {
    const d = fixture()
    const txn = (v: number) => d.run({
      type: 'txn',
      compare: [{ target: 'version', key: K, op: '=', value: v }],
      success: [{ type: 'put', key: 'kv/s', value: text('success') }],
      failure: [{ type: 'put', key: 'kv/f', value: text('failure') }],
    })
    txn(2)
    expect(d.value('kv/s')).toBe('success')
    expect(d.value('kv/f')).toBeNull()
    txn(99)
    expect(d.value('kv/f')).toBe('failure')
  })

  it('uses one revision for every write of the branch', () => {
    const d = fixture()
    const r = d.run({
      type: 'txn', compare: [],
      success: [
        { type: 'put', key: 'kv/x', value: text('1') },
        { type: 'put', key: 'kv/y', value: text('2'), prevKv: true },
        { type: 'delete', key: 'kv/other', prevKv: true },
        { type: 'deletePrefix', prefix: 'kv/nothing/' },
      ],
      failure: [],
    })
    expect(r).toMatchObject({ ok: true, response: { type: 'txn', revision: 5, succeeded: true } })
    if (r.ok && r.response.type === 'txn') {
      expect(r.response.responses).toEqual([
        { type: 'put' },
        { type: 'put' },
        { type: 'delete', deleted: 1, prevKv: expect.objectContaining({ key: 'kv/other' }) },
        { type: 'deletePrefix', deleted: 0 },
      ])
    }
    expect(d.store.get('kv/x')?.modRevision).toBe(5)
    expect(d.store.get('kv/y')?.modRevision).toBe(5)
    const events = d.store.eventsSince(4)
    expect(events.ok && events.events.map((e) => e.kv.modRevision)).toEqual([5, 5, 5])
    d.store.assertInvariants()
  })

  it('a txn that writes nothing uses no revision', () => {
    const d = fixture()
    d.run({ type: 'txn', compare: [], success: [{ type: 'delete', key: NONE }], failure: [] })
    expect(d.store.revision).toBe(4)
  })

  it('evaluates compares against the state before the txn', () => {
    const d = fixture()
    const r = d.run({
      type: 'txn',
      compare: [{ target: 'value', key: K, op: '=', value: text('m') }],
      success: [{ type: 'put', key: K, value: text('n') }],
      failure: [],
    })
    expect(succeeded(r)).toBe(true)
    expect(d.value(K)).toBe('n')
  })

  it('compare-and-swap: only the first of two racing writers with the same expected version wins', () => {
    const d = fixture()
    const cas = (value: string) => d.run({
      type: 'txn',
      compare: [{ target: 'modRevision', key: K, op: '=', value: 4 }],
      success: [{ type: 'put', key: K, value: text(value) }],
      failure: [],
    })
    expect(succeeded(cas('first'))).toBe(true)
    expect(succeeded(cas('second'))).toBe(false)
    expect(d.value(K)).toBe('first')
  })

  it('is atomic: a state-dependent refusal in the chosen branch applies nothing', () => {
    const d = fixture()
    const r = d.run({
      type: 'txn', compare: [],
      success: [
        { type: 'put', key: 'kv/x', value: text('1') },
        { type: 'put', key: 'kv/y', value: text('2'), lease: 999 },
      ],
      failure: [],
    })
    expect(r).toMatchObject({ ok: false, code: 'lease-not-found' })
    expect(d.store.get('kv/x')).toBeNull()
    expect(d.store.revision).toBe(4)
    const ifAbsent = d.run({
      type: 'txn', compare: [],
      success: [{ type: 'delete', key: 'kv/other' }, { type: 'put', key: K, value: text('z'), ifAbsent: true }],
      failure: [],
    })
    expect(ifAbsent).toMatchObject({ ok: false, code: 'key-exists' })
    expect(d.value('kv/other')).toBe('y')
  })

  it('state-dependent problems in the branch not taken do not matter', () => {
    const d = fixture()
    const r = d.run({
      type: 'txn', compare: [],
      success: [{ type: 'put', key: 'kv/x', value: text('1') }],
      failure: [{ type: 'put', key: 'kv/y', value: text('2'), lease: 999 }],
    })
    expect(succeeded(r)).toBe(true)
  })
})

describe('txn validation', () => {
  const put = (key: string): TxnOp => ({ type: 'put', key, value: text('v') })
  const cases: Array<[string, TxnOp[]]> = [
    ['a key put twice', [put('kv/a'), put('kv/a')]],
    ['a key put and deleted', [put('kv/a'), { type: 'delete', key: 'kv/a' }]],
    ['a key deleted then put', [{ type: 'delete', key: 'kv/a' }, put('kv/a')]],
    ['a key put under a deleted prefix', [{ type: 'deletePrefix', prefix: 'kv/' }, put('kv/a')]],
  ]
  it.each(cases)('refuses %s as txn-duplicate-key', (_name, ops) => {
    const d = new StoreDriver()
    expect(d.run({ type: 'txn', compare: [], success: ops, failure: [] })).toMatchObject({ ok: false, code: 'txn-duplicate-key' })
    expect(d.run({ type: 'txn', compare: [], success: [], failure: ops })).toMatchObject({ ok: false, code: 'txn-duplicate-key' })
  })

  it('allows overlapping deletes, and the same key in different branches', () => {
    const d = new StoreDriver()
    d.put('kv/a', '1')
    const r = d.run({
      type: 'txn', compare: [],
      success: [{ type: 'delete', key: 'kv/a' }, { type: 'deletePrefix', prefix: 'kv/' }, put('other/b')],
      failure: [put('kv/a')],
    })
    expect(r).toMatchObject({ ok: true, response: { responses: [{ deleted: 1 }, { deleted: 0 }, { type: 'put' }] } })
  })

  it(`allows ${TXN_MAX_OPS} entries per list and refuses one more`, () => {
    const d = new StoreDriver()
    const ops = (n: number) => Array.from({ length: n }, (_, i) => put(`kv/${i}`))
    const compares = (n: number): Compare[] => Array.from({ length: n }, (_, i) => ({ target: 'version', key: `kv/${i}`, op: '=', value: 0 }))
    expect(d.run({ type: 'txn', compare: compares(TXN_MAX_OPS), success: ops(TXN_MAX_OPS), failure: ops(TXN_MAX_OPS) }).ok).toBe(true)
    expect(d.store.keyCount).toBe(TXN_MAX_OPS)
    for (const shape of [
      { compare: compares(TXN_MAX_OPS + 1), success: [], failure: [] },
      { compare: [], success: ops(TXN_MAX_OPS + 1), failure: [] },
      { compare: [], success: [], failure: ops(TXN_MAX_OPS + 1) },
    ]) {
      expect(d.run({ type: 'txn', ...shape })).toMatchObject({ ok: false, code: 'txn-too-many-ops' })
    }
  })

  it('refuses a txn whose payload exceeds the command bound', () => {
    const d = new StoreDriver()
    const big = new Uint8Array(400 * 1024)
    const ops: TxnOp[] = [0, 1, 2, 3].map((i) => ({ type: 'put', key: `kv/${i}`, value: big }))
    expect(d.run({ type: 'txn', compare: [], success: ops, failure: [] })).toMatchObject({ ok: false, code: 'command-too-large' })
  })

  it('validates keys inside compares and ops', () => {
    const d = new StoreDriver()
    expect(d.run({ type: 'txn', compare: [{ target: 'exists', key: '/bad', exists: true }], success: [], failure: [] })).toMatchObject({ ok: false, code: 'key-invalid' })
    expect(d.run({ type: 'txn', compare: [], success: [], failure: [{ type: 'delete', key: '' }] })).toMatchObject({ ok: false, code: 'key-invalid' })
    expect(d.run({ type: 'txn', compare: [{ target: 'version', key: 'kv/a', op: '=', value: -1 }], success: [], failure: [] })).toMatchObject({ ok: false, code: 'revision-invalid' })
  })
})
