// The command codec: canonical round trips, typed refusals, and totality
// (thousands of random and mutated byte strings never make it throw).
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { encode } from '@msgpack/msgpack'
import { CommandCodecError, decodeCommand, encodeCommand } from '../../storage/statestore/codec.ts'
import { decodeResult, encodeResult } from '../../storage/statestore/result-codec.ts'
import { fnv1a64 } from '../../storage/statestore/hash.ts'
import { StoreDriver, text } from '../../storage/statestore/testing.ts'
import { COMMAND_MAX_BYTES } from '../../storage/statestore/limits.ts'
import type { Command, Compare, Request, TxnOp } from '../../storage/statestore/commands.ts'
import type { ApplyResult } from '../../storage/statestore/results.ts'
import { mulberry32 } from '../../protocols/prng.ts'

const keyArb = fc.string({ minLength: 1, maxLength: 12 }).map((s) => `kv/${s.replace(/\0/g, '')}`)
const bytesArb = fc.uint8Array({ maxLength: 16 })
const leaseArb = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const flag = fc.boolean()

const opArb: fc.Arbitrary<TxnOp> = fc.oneof(
  fc.record({ key: keyArb, value: bytesArb, lease: fc.option(leaseArb, { nil: undefined }), ifAbsent: flag, prevKv: flag }).map(({ key, value, lease, ifAbsent, prevKv }): TxnOp => ({
    type: 'put', key, value, ...(lease !== undefined ? { lease } : {}), ...(ifAbsent ? { ifAbsent } : {}), ...(prevKv ? { prevKv } : {}),
  })),
  fc.record({ key: keyArb, prevKv: flag }).map(({ key, prevKv }): TxnOp => ({ type: 'delete', key, ...(prevKv ? { prevKv } : {}) })),
  fc.record({ prefix: fc.constantFrom('kv/', 'kv/a', 'other/'), prevKv: flag }).map(({ prefix, prevKv }): TxnOp => ({ type: 'deletePrefix', prefix, ...(prevKv ? { prevKv } : {}) })),
)
const compareOp = fc.constantFrom('=' as const, '!=' as const, '<' as const, '>' as const)
const compareArb: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ key: keyArb, op: compareOp, value: bytesArb }).map((c): Compare => ({ target: 'value', ...c })),
  fc.record({ target: fc.constantFrom('version' as const, 'createRevision' as const, 'modRevision' as const, 'lease' as const), key: keyArb, op: compareOp, value: fc.nat() }),
  fc.record({ key: keyArb, exists: flag }).map((c): Compare => ({ target: 'exists', ...c })),
)
// Keep each branch within the txn-duplicate-key rule, so most samples are valid.
const branchArb = fc.array(opArb, { maxLength: 4 }).map((ops) => {
  const puts = new Set(ops.flatMap((op) => (op.type === 'put' ? [op.key] : [])))
  const seen = new Set<string>()
  return ops.filter((op) => {
    switch (op.type) {
      case 'put':
        if (seen.has(op.key)) return false
        seen.add(op.key)
        return true
      case 'delete':
        return !puts.has(op.key)
      case 'deletePrefix':
        return ![...puts].some((k) => k.startsWith(op.prefix))
    }
  })
})
const requestArb: fc.Arbitrary<Request> = fc.oneof(
  opArb,
  fc.record({ compare: fc.array(compareArb, { maxLength: 3 }), success: branchArb, failure: branchArb }).map((t): Request => ({ type: 'txn', ...t })),
  fc.nat().map((revision): Request => ({ type: 'compact', revision })),
  fc.record({ id: leaseArb, ttlMs: fc.integer({ min: 1_000, max: 3_600_000 }) }).map((g): Request => ({ type: 'leaseGrant', ...g })),
  leaseArb.map((id): Request => ({ type: 'leaseRevoke', id })),
)
const commandArb: fc.Arbitrary<Command> = fc.record({
  origin: fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
  requestId: fc.stringMatching(/^[\x21-\x7e]{1,20}$/),
  asLeader: flag,
  request: requestArb,
  base: fc.option(fc.oneof(fc.nat(300), fc.maxSafeNat()), { nil: undefined }),
}).map(({ asLeader, base, ...rest }) => ({ ...rest, ...(asLeader ? { asLeader } : {}), ...(base === undefined ? {} : { base }) }))

// A deterministic byte source for the fuzz loops (reproducible failures).
const prng = mulberry32

describe('command codec', () => {
  it('round-trips every command canonically', () => {
    fc.assert(fc.property(commandArb, (cmd) => {
      const bytes = encodeCommand(cmd)
      const decoded = decodeCommand(bytes)
      expect(decoded).toEqual({ ok: true, command: cmd })
      if (decoded.ok) expect(encodeCommand(decoded.command)).toEqual(bytes)
    }), { numRuns: 500 })
  })

  it('decodes byte fields as copies, not views of the entry', () => {
    const bytes = encodeCommand({ origin: 'p', requestId: 'r', request: { type: 'put', key: 'kv/a', value: text('hello') } })
    const decoded = decodeCommand(bytes)
    bytes.fill(0)
    expect(decoded.ok && decoded.command.request.type === 'put' && decoded.command.request.value).toEqual(text('hello'))
  })

  it('refuses to encode an invalid command (a caller bug)', () => {
    expect(() => encodeCommand({ origin: 'p', requestId: 'r', request: { type: 'put', key: '', value: text('x') } })).toThrow(CommandCodecError)
  })

  const wire = (parts: unknown[]): Uint8Array => encode(parts)
  const refusals: Array<[string, Uint8Array, string]> = [
    ['empty input', new Uint8Array(0), 'malformed-command'],
    ['a bare number', wire([1]).subarray(1), 'malformed-command'],
    ['an unknown format version', wire([2, 'p', 'r', false, ['delete', 'kv/a', false]]), 'malformed-command'],
    ['an unknown request type', wire([1, 'p', 'r', false, ['frobnicate', 'kv/a']]), 'malformed-command'],
    ['an extra field', wire([1, 'p', 'r', false, ['delete', 'kv/a', false, 'extra']]), 'malformed-command'],
    ['a missing field', wire([1, 'p', 'r', false, ['put', 'kv/a', new Uint8Array(1), 0, false]]), 'malformed-command'],
    ['a string where bytes belong', wire([1, 'p', 'r', false, ['put', 'kv/a', 'text', 0, false, false]]), 'malformed-command'],
    ['a float lease', wire([1, 'p', 'r', false, ['put', 'kv/a', new Uint8Array(1), 1.5, false, false]]), 'malformed-command'],
    ['a map instead of a tuple', encode({ origin: 'p' }), 'malformed-command'],
    ['a bad origin', wire([1, 'p p', 'r', false, ['delete', 'kv/a', false]]), 'invalid-origin'],
    ['a too-long key', wire([1, 'p', 'r', false, ['delete', 'kv/' + 'x'.repeat(600), false]]), 'key-too-long'],
    ['a too-long txn', wire([1, 'p', 'r', false, ['txn', [], Array.from({ length: 129 }, (_, i) => ['delete', `kv/${i}`, false]), []]]), 'txn-too-many-ops'],
    ['a short ttl', wire([1, 'p', 'r', false, ['leaseGrant', 1, 10]]), 'ttl-out-of-range'],
    ['trailing bytes', new Uint8Array([...wire([1, 'p', 'r', false, ['delete', 'kv/a', false]]), 0]), 'malformed-command'],
    ['a timestamp extension', encode([1, 'p', 'r', false, ['compact', new Date(0)]]), 'malformed-command'],
    ['an oversized entry', new Uint8Array(COMMAND_MAX_BYTES + 1), 'command-too-large'],
    ['a negative base', wire([1, 'p', 'r', false, ['delete', 'kv/a', false], -1]), 'malformed-command'],
    ['a float base', wire([1, 'p', 'r', false, ['delete', 'kv/a', false], 1.5]), 'malformed-command'],
    ['a string base', wire([1, 'p', 'r', false, ['delete', 'kv/a', false], '7']), 'malformed-command'],
    ['a field after the base', wire([1, 'p', 'r', false, ['delete', 'kv/a', false], 7, 0]), 'malformed-command'],
  ]

  it('decodes entries written before the base field as commands without one, and keeps their bytes', () => {
    const legacy = wire([1, 'p', 'r', false, ['delete', 'kv/a', false]])
    const decoded = decodeCommand(legacy)
    expect(decoded).toEqual({ ok: true, command: { origin: 'p', requestId: 'r', request: { type: 'delete', key: 'kv/a' } } })
    if (decoded.ok) expect(encodeCommand(decoded.command)).toEqual(legacy)
    expect(decodeCommand(wire([1, 'p', 'r', false, ['delete', 'kv/a', false], 42]))).toMatchObject({ ok: true, command: { base: 42 } })
  })
  it.each(refusals)('refuses %s as %s', (_name, bytes, code) => {
    expect(decodeCommand(bytes)).toMatchObject({ ok: false, error: { code } })
  })

  it('never throws on random bytes', () => {
    const next = prng(1)
    let decodedOk = 0
    for (let i = 0; i < 5_000; i++) {
      const bytes = new Uint8Array(Math.floor(next() * 64))
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(next() * 256)
      // Bias the first byte toward a 5-element array so the fuzz reaches the field checks.
      if (i % 2 === 0 && bytes.length > 0) bytes[0] = 0x95
      const r = decodeCommand(bytes)
      if (r.ok) decodedOk++
    }
    expect(decodedOk).toBeLessThan(5_000)
  })

  it('never throws on mutated valid entries, and whatever decodes re-encodes to a valid command', () => {
    const next = prng(2)
    const samples = fc.sample(commandArb, { numRuns: 200, seed: 42 }).map((cmd) => encodeCommand(cmd))
    for (let i = 0; i < 5_000; i++) {
      const source = samples[i % samples.length] ?? new Uint8Array(0)
      const bytes = source.slice()
      const edits = 1 + Math.floor(next() * 4)
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(next() * bytes.length)
        const kind = next()
        if (kind < 0.6) bytes[at] = Math.floor(next() * 256)
        else if (kind < 0.8) bytes[at] = (bytes[at] ?? 0) ^ (1 << Math.floor(next() * 8))
        else bytes[at] = [0x00, 0x7f, 0x80, 0xc0, 0xc3, 0xcc, 0xcf, 0xd3, 0xdc, 0xdd, 0xff][Math.floor(next() * 11)] ?? 0
      }
      const cut = next() < 0.2 ? bytes.subarray(0, Math.floor(next() * bytes.length)) : bytes
      const r = decodeCommand(cut)
      if (r.ok) {
        const again = decodeCommand(encodeCommand(r.command))
        expect(again).toEqual(r)
      }
    }
  })

  it('applying random and mutated entries never throws and keeps the store consistent', () => {
    const next = prng(3)
    const d = new StoreDriver()
    const samples = fc.sample(commandArb, { numRuns: 100, seed: 7 }).map((cmd) => encodeCommand(cmd))
    for (let i = 0; i < 1_000; i++) {
      const bytes = (samples[i % samples.length] ?? new Uint8Array(0)).slice()
      if (i % 2 === 1) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256)
      d.store.applyEntry(d.store.appliedIndex + 1, bytes)
    }
    d.store.assertInvariants()
  })
})

describe('result codec', () => {
  it('round-trips results, marking them duplicates', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 3, ttlMs: 5_000 })
    const results: ApplyResult[] = [
      d.put('kv/a', '1'),
      d.run({ type: 'put', key: 'kv/a', value: text('2'), prevKv: true, lease: 3 }),
      d.run({ type: 'delete', key: 'kv/a', prevKv: true }),
      d.put('kv/b', '1'),
      d.run({ type: 'deletePrefix', prefix: 'kv/', prevKv: true }),
      d.run({ type: 'txn', compare: [], success: [{ type: 'put', key: 'kv/c', value: text('x') }, { type: 'delete', key: 'kv/z', prevKv: true }, { type: 'deletePrefix', prefix: 'q/' }], failure: [] }),
      d.run({ type: 'compact', revision: 2 }),
      d.run({ type: 'leaseGrant', id: 4, ttlMs: 5_000 }),
      d.run({ type: 'leaseRevoke', id: 4 }),
      d.run({ type: 'leaseRevoke', id: 4 }),
    ]
    for (const r of results) expect(decodeResult(encodeResult(r))).toEqual({ ...r, duplicate: true })
  })

  it('never throws on garbage', () => {
    const next = prng(4)
    for (let i = 0; i < 2_000; i++) {
      const bytes = new Uint8Array(Math.floor(next() * 32))
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(next() * 256)
      decodeResult(bytes)
    }
  })
})

describe('fnv1a64', () => {
  it('matches the reference vectors', () => {
    expect(fnv1a64(new Uint8Array(0))).toBe('cbf29ce484222325')
    expect(fnv1a64(text('a'))).toBe('af63dc4c8601ec8c')
    expect(fnv1a64(text('foobar'))).toBe('85944171f73967e8')
  })
})
