import { describe, expect, it } from 'vitest'
import type { MemberUpdate, SwimMessage } from '../../protocols/gossip/failure-detector.ts'
import {
  SWIM_ENVELOPE_RESERVE_BYTES,
  SWIM_MAX_FRAME_BYTES,
  SWIM_MAX_META_BYTES,
  SWIM_MAX_UPDATES,
  SwimCodecError,
  decodeSwimMessage,
  encodeSwimMessage,
  memberUpdateEncodedBytes,
  utf8ByteLength,
} from '../../protocols/gossip/swim-codec.ts'
import { mulberry32 } from '../../protocols/prng.ts'


const enc = new TextEncoder()
const raw = (value: unknown): Uint8Array => enc.encode(JSON.stringify(value))

const update = (peerId: string, overrides: Partial<MemberUpdate> = {}): MemberUpdate => ({
  peerId,
  incarnation: 3,
  state: 'alive',
  meta: '{"addrs":["/ip4/10.0.0.1/tcp/7946"]}',
  ...overrides,
})

const samples: SwimMessage[] = [
  { type: 'ping', seq: 0, target: 'nodeB', updates: [] },
  { type: 'ping', seq: 4294967295, target: 'B'.repeat(128), updates: [update('a1'), update('a2', { state: 'suspect' })] },
  { type: 'ping-req', seq: 17, target: 'nodeC', updates: [update('x', { state: 'dead', incarnation: Number.MAX_SAFE_INTEGER })] },
  { type: 'ack', seq: 42, updates: [update('y', { state: 'left', meta: '' })] },
  { type: 'nack', seq: 43, updates: [] },
  { type: 'sync', reply: true, members: [update('a'), update('b', { meta: 'ü€😀 "quoted" \\ \u0001' })] },
  { type: 'sync', reply: false, members: [] },
]

function expectRejected(bytes: Uint8Array, pattern?: RegExp): void {
  const result = decodeSwimMessage(bytes)
  expect(result.ok).toBe(false)
  if (!result.ok && pattern !== undefined) expect(result.error).toMatch(pattern)
}

describe('swim codec round trip', () => {
  it.each(samples.map((m) => [m.type, m] as const))('%s decodes to what was encoded', (_type, message) => {
    const bytes = encodeSwimMessage(message)
    expect(bytes.length).toBeLessThanOrEqual(SWIM_MAX_FRAME_BYTES)
    expect(decodeSwimMessage(bytes)).toEqual({ ok: true, message })
  })

  it('drops unknown keys, so a newer peer can add fields, and never copies them', () => {
    const result = decodeSwimMessage(raw({ type: 'ack', seq: 1, updates: [{ ...update('a'), extra: 1 }], future: { x: 1 } }))
    expect(result).toEqual({ ok: true, message: { type: 'ack', seq: 1, updates: [update('a')] } })
  })

  it('accepts the exact limits', () => {
    const maxMeta = 'm'.repeat(SWIM_MAX_META_BYTES)
    const multiByteMeta = '€'.repeat(682) + 'ab' // 682 * 3 + 2 = 2048 bytes
    const updates = Array.from({ length: SWIM_MAX_UPDATES }, (_, i) => update(`p${i}`))
    for (const m of [
      { type: 'ack', seq: 1, updates: [update('a', { meta: maxMeta })] },
      { type: 'ack', seq: 1, updates: [update('a', { meta: multiByteMeta })] },
      { type: 'nack', seq: 1, updates },
      { type: 'sync', reply: false, members: updates },
    ] satisfies SwimMessage[]) {
      expect(decodeSwimMessage(encodeSwimMessage(m))).toEqual({ ok: true, message: m })
    }
    // A frame of exactly the maximum size (padded with JSON whitespace) is accepted.
    const core = JSON.stringify({ type: 'nack', seq: 1, updates: [] })
    const padded = enc.encode(core + ' '.repeat(SWIM_MAX_FRAME_BYTES - core.length))
    expect(padded.length).toBe(SWIM_MAX_FRAME_BYTES)
    expect(decodeSwimMessage(padded).ok).toBe(true)
  })
})

describe('swim codec rejects', () => {
  it('empty, oversized and non-UTF-8 frames', () => {
    expectRejected(new Uint8Array(0), /empty/)
    const core = JSON.stringify({ type: 'nack', seq: 1, updates: [] })
    expectRejected(enc.encode(core + ' '.repeat(SWIM_MAX_FRAME_BYTES + 1 - core.length)), /larger/)
    expectRejected(new Uint8Array([0x7b, 0xff, 0x7d]), /UTF-8/)
    expectRejected(new Uint8Array([0x22, 0xc0, 0xaf, 0x22]), /UTF-8/) // overlong '/'
    expectRejected(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]), /UTF-8/) // encoded surrogate
  })

  it('non-JSON and non-object JSON', () => {
    for (const text of ['{', 'ping', '{"type":"ping",}', 'null', '[]', '7', '"ping"', 'true', '[{"type":"nack","seq":1,"updates":[]}]']) {
      expectRejected(enc.encode(text))
    }
  })

  it('bad type', () => {
    expectRejected(raw({ seq: 1, updates: [] }), /type/)
    expectRejected(raw({ type: 'PING', seq: 1, target: 'a', updates: [] }), /type/)
    expectRejected(raw({ type: 'hello', seq: 1, updates: [] }), /type/)
    expectRejected(raw({ type: 1, seq: 1, updates: [] }), /type/)
  })

  it('seq that is not a uint32', () => {
    for (const seq of [-1, 1.5, 4294967296, '1', null, true, 1e400]) {
      expectRejected(raw({ type: 'ack', seq, updates: [] }), /seq/)
    }
    expectRejected(raw({ type: 'ack', updates: [] }), /seq/)
    expectRejected(enc.encode('{"type":"nack","seq":1e400,"updates":[]}'), /seq/)
  })

  it('bad peer ids as target and in updates', () => {
    for (const target of ['', 'B'.repeat(129), 'a-b', 'a b', 'ü', 'a/b', 12, null]) {
      expectRejected(raw({ type: 'ping', seq: 1, target, updates: [] }), /target/)
      expectRejected(raw({ type: 'ack', seq: 1, updates: [{ ...update('a'), peerId: target }] }), /peerId/)
    }
    expectRejected(raw({ type: 'ping-req', seq: 1, updates: [] }), /target/)
  })

  it('bad states, incarnations and metas', () => {
    for (const state of ['zombie', 'ALIVE', '', 0, null]) {
      expectRejected(raw({ type: 'ack', seq: 1, updates: [{ ...update('a'), state }] }), /state/)
    }
    for (const incarnation of [-1, 0.5, 2 ** 53, '0', null]) {
      expectRejected(raw({ type: 'ack', seq: 1, updates: [{ ...update('a'), incarnation }] }), /incarnation/)
    }
    for (const meta of ['m'.repeat(SWIM_MAX_META_BYTES + 1), '€'.repeat(683), 7, null, { a: 1 }]) {
      expectRejected(raw({ type: 'ack', seq: 1, updates: [{ ...update('a'), meta }] }), /meta/)
    }
    expectRejected(raw({ type: 'ack', seq: 1, updates: [{ peerId: 'a', incarnation: 1, state: 'alive' }] }), /meta/)
    expectRejected(raw({ type: 'ack', seq: 1, updates: ['a'] }), /update/)
    expectRejected(raw({ type: 'ack', seq: 1, updates: [null] }), /update/)
  })

  it('too many updates or members, or not arrays', () => {
    const tooMany = Array.from({ length: SWIM_MAX_UPDATES + 1 }, (_, i) => update(`p${i}`, { meta: '' }))
    expectRejected(raw({ type: 'ping', seq: 1, target: 'a', updates: tooMany }), /more than 64/)
    expectRejected(raw({ type: 'sync', reply: true, members: tooMany }), /more than 64/)
    expectRejected(raw({ type: 'ack', seq: 1, updates: {} }), /array/)
    expectRejected(raw({ type: 'ack', seq: 1 }), /array/)
    expectRejected(raw({ type: 'sync', reply: 'yes', members: [] }), /reply/)
    expectRejected(raw({ type: 'sync', members: [] }), /reply/)
  })

  it('a non-Uint8Array argument without throwing', () => {
    expect(decodeSwimMessage('{}' as unknown as Uint8Array).ok).toBe(false)
    expect(decodeSwimMessage(null as unknown as Uint8Array).ok).toBe(false)
  })
})

describe('encodeSwimMessage', () => {
  it('throws SwimCodecError on an invalid message (a bug in the caller)', () => {
    const bad = { type: 'ping', seq: -1, target: 'a', updates: [] } as SwimMessage
    expect(() => encodeSwimMessage(bad)).toThrow(SwimCodecError)
    try {
      encodeSwimMessage(bad)
    } catch (error) {
      expect((error as Error).name).toBe('SwimCodecError')
    }
  })

  it('throws when the frame would exceed the limit', () => {
    // Control characters escape to six bytes each in JSON.
    const heavy = '\u0001'.repeat(SWIM_MAX_META_BYTES)
    const updates = Array.from({ length: 10 }, (_, i) => update(`p${i}`, { meta: heavy }))
    expect(() => encodeSwimMessage({ type: 'ack', seq: 1, updates })).toThrow(/exceeds/)
  })

  it('memberUpdateEncodedBytes bounds the encoded size the core budgets with', () => {
    const random = mulberry32(7)
    const alphabet = ['a', 'é', '€', '😀', '"', '\\', '\u0001', '\n', '\ud800']
    for (let round = 0; round < 200; round++) {
      const updates: MemberUpdate[] = []
      for (let i = 0; i < 1 + Math.floor(random() * 20); i++) {
        let meta = ''
        for (let j = 0; j < Math.floor(random() * 40); j++) meta += alphabet[Math.floor(random() * alphabet.length)]
        updates.push(update(`p${i}`, { meta, incarnation: Math.floor(random() * 1e9) }))
      }
      const frame = encodeSwimMessage({ type: 'ping-req', seq: 4294967295, target: 'T'.repeat(128), updates })
      const budgeted = updates.reduce((sum, u) => sum + memberUpdateEncodedBytes(u), 0)
      expect(frame.length).toBeLessThanOrEqual(budgeted + SWIM_ENVELOPE_RESERVE_BYTES)
      expect(frame.length).toBeGreaterThan(budgeted - updates.length)
    }
  })

  it('utf8ByteLength agrees with TextEncoder, lone surrogates included', () => {
    const random = mulberry32(11)
    for (let round = 0; round < 500; round++) {
      let s = ''
      for (let i = 0; i < Math.floor(random() * 30); i++) {
        const pick = random()
        s += pick < 0.3 ? String.fromCharCode(Math.floor(random() * 0x80)) : pick < 0.9 ? String.fromCharCode(Math.floor(random() * 0x10000)) : '😀'
      }
      expect(utf8ByteLength(s)).toBe(enc.encode(s).length)
    }
  })
})

describe('swim codec fuzz: never throws, and whatever it accepts round-trips', () => {
  function checkTotal(bytes: Uint8Array): boolean {
    const result = decodeSwimMessage(bytes)
    if (result.ok) {
      const again = decodeSwimMessage(encodeSwimMessage(result.message))
      expect(again).toEqual(result)
    } else {
      expect(typeof result.error).toBe('string')
    }
    return result.ok
  }

  it('random byte strings', () => {
    const random = mulberry32(1)
    for (let i = 0; i < 4000; i++) {
      const length = Math.floor(random() * (i % 10 === 0 ? 2000 : 64))
      const bytes = new Uint8Array(length)
      for (let j = 0; j < length; j++) bytes[j] = Math.floor(random() * 256)
      expect(() => checkTotal(bytes)).not.toThrow()
    }
  })

  it('mutated valid frames', () => {
    const random = mulberry32(2)
    const valid = samples.map((m) => encodeSwimMessage(m))
    const interesting = [...'{}[]",:0123456789-.eE \\tfnul'].map((c) => c.charCodeAt(0))
    let accepted = 0
    for (let i = 0; i < 6000; i++) {
      const base = valid[i % valid.length]
      if (base === undefined) throw new Error('no sample')
      let bytes = Uint8Array.from(base)
      const mutations = 1 + Math.floor(random() * 3)
      for (let k = 0; k < mutations; k++) {
        const at = Math.floor(random() * Math.max(1, bytes.length))
        const kind = Math.floor(random() * 5)
        if (kind === 0) bytes[at] = Math.floor(random() * 256)
        else if (kind === 1) bytes[at] = interesting[Math.floor(random() * interesting.length)] ?? 0
        else if (kind === 2) bytes = bytes.slice(0, at)
        else if (kind === 3) bytes = Uint8Array.from([...bytes.slice(0, at), ...bytes.slice(at + 1)])
        else bytes = Uint8Array.from([...bytes.slice(0, at), interesting[Math.floor(random() * interesting.length)] ?? 0, ...bytes.slice(at)])
      }
      let ok = false
      expect(() => {
        ok = checkTotal(bytes)
      }).not.toThrow()
      if (ok) accepted++
    }
    // Some mutations (a digit in a seq, a letter in a peer id) stay valid; most do not.
    expect(accepted).toBeGreaterThan(0)
    expect(accepted).toBeLessThan(6000)
  })

  it('random JSON shapes near the schema', () => {
    const random = mulberry32(3)
    const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
    const keys = ['type', 'seq', 'target', 'updates', 'members', 'reply', 'peerId', 'incarnation', 'state', 'meta', '__proto__', 'constructor']
    const scalars: unknown[] = ['ping', 'ping-req', 'ack', 'nack', 'sync', 'alive', 'dead', 'nodeA', '', 0, -1, 1.5, 2 ** 32, 2 ** 53, true, false, null]
    const value = (depth: number): unknown => {
      const roll = random()
      if (depth > 3 || roll < 0.5) return pick(scalars)
      if (roll < 0.7) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1))
      const obj: Record<string, unknown> = {}
      for (let i = 0; i < Math.floor(random() * 6); i++) obj[pick(keys)] = value(depth + 1)
      return obj
    }
    for (let i = 0; i < 3000; i++) {
      const base: Record<string, unknown> = { ...(pick(samples) as unknown as Record<string, unknown>) }
      base[pick(keys)] = value(0)
      expect(() => checkTotal(raw(base))).not.toThrow()
      expect(() => checkTotal(raw(value(0)))).not.toThrow()
    }
  })

  it('deeply nested JSON', () => {
    const depth = 30_000
    expect(() => checkTotal(enc.encode('['.repeat(depth) + ']'.repeat(depth)))).not.toThrow()
    expect(() => checkTotal(enc.encode('{"type":"ack","seq":1,"updates":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}'))).not.toThrow()
  })
})
