import { describe, it, expect } from 'vitest'
import { encode } from '@msgpack/msgpack'
import { decodeMessage, encodeMessage } from '../../protocols/raft/wire.ts'
import type { Message } from '../../protocols/raft/index.ts'

const a = '12D3KooWAAAA'
const b = '12D3KooWBBBB'
const bytes = (n: number): Uint8Array => new Uint8Array([n, n + 1, n + 2])
const entry = { index: 7, term: 3, type: 'normal' as const, data: bytes(1) }

const samples: Message[] = [
  { type: 'app', from: a, to: b, term: 3, prevIndex: 6, prevTerm: 2, entries: [entry, { ...entry, index: 8, type: 'conf-change' }], commit: 5 },
  { type: 'app-resp', from: b, to: a, term: 3, index: 8, reject: true, rejectHint: 4, hintTerm: 2 },
  { type: 'app-resp', from: b, to: a, term: 3, index: 8, reject: true, rejectHint: 4, hintTerm: 0, logLost: true },
  { type: 'vote', from: a, to: b, term: 4, lastIndex: 8, lastTerm: 3, transfer: false },
  { type: 'vote-resp', from: b, to: a, term: 4, reject: false },
  { type: 'pre-vote', from: a, to: b, term: 5, lastIndex: 8, lastTerm: 3 },
  { type: 'pre-vote-resp', from: b, to: a, term: 5, reject: true },
  { type: 'heartbeat', from: a, to: b, term: 3, commit: 8, readSeq: 12 },
  { type: 'heartbeat-resp', from: b, to: a, term: 3, readSeq: 12 },
  { type: 'snap', from: a, to: b, term: 3, snapshot: { metadata: { index: 100, term: 3, confState: { voters: [a, b], learners: ['12D3KooWCCCC'] } }, data: bytes(9) } },
  { type: 'timeout-now', from: a, to: b, term: 3 },
  { type: 'read-index', from: b, to: a, term: 0, context: bytes(4) },
  { type: 'read-index-resp', from: a, to: b, term: 3, index: 9, context: bytes(4) },
  { type: 'transfer-leader', from: b, to: a, term: 0, transferee: b },
  { type: 'prop', from: b, to: a, term: 0, entries: [{ type: 'normal', data: bytes(7) }] },
]

describe('raft wire codec', () => {
  it.each(samples.map((m) => [m.type, m] as const))('round-trips %s', (_type, m) => {
    const decoded = decodeMessage(encodeMessage(m))
    expect(decoded).toEqual({ ok: true, message: m })
  })

  it.each([
    ['unknown type', { type: 'nope', from: a, to: b, term: 1 }],
    ['negative term', { type: 'timeout-now', from: a, to: b, term: -1 }],
    ['bad peer id', { type: 'timeout-now', from: 'a/b', to: b, term: 1 }],
    ['entry data not bytes', { type: 'prop', from: a, to: b, term: 0, entries: [{ type: 'normal', data: 'x' }] }],
    ['missing field', { type: 'vote', from: a, to: b, term: 1, lastIndex: 1 }],
    ['not a map', [1, 2, 3]],
  ])('rejects %s with a reason', (_what, value) => {
    const decoded = decodeMessage(encode(value))
    expect(decoded.ok).toBe(false)
    if (!decoded.ok) expect(decoded.error.length).toBeGreaterThan(0)
  })

  it('an app-resp without logLost (from a peer that predates it) decodes as before; a malformed one is refused', () => {
    const old = { type: 'app-resp', from: b, to: a, term: 3, index: 8, reject: true, rejectHint: 4, hintTerm: 2 }
    const decoded = decodeMessage(encode(old))
    expect(decoded).toEqual({ ok: true, message: old })
    expect(decodeMessage(encode({ ...old, logLost: null }))).toEqual({ ok: true, message: old })
    expect(decodeMessage(encode({ ...old, logLost: 1 })).ok).toBe(false)
  })

  it('never throws on random or mutated frames', () => {
    let seed = 42
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
    const valid = samples.map(encodeMessage)
    for (let i = 0; i < 5000; i++) {
      let frame: Uint8Array
      if (i % 2 === 0) {
        frame = new Uint8Array(Math.floor(rand() * 64)).map(() => Math.floor(rand() * 256))
      } else {
        frame = Uint8Array.from(valid[i % valid.length]!)
        for (let k = 0; k < 3; k++) frame[Math.floor(rand() * frame.length)] = Math.floor(rand() * 256)
      }
      const decoded = decodeMessage(frame)
      if (decoded.ok) expect(decodeMessage(encodeMessage(decoded.message))).toEqual(decoded)
    }
  })
})
