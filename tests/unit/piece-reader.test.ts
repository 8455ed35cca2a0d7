// The piece reader against lpStream's own framing: any split of the byte stream gives back the
// same pieces, and a bad prefix is an error, never a wrong piece.
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { PieceFramingError, PieceReader } from '../../protocols/piece-reader.ts'

/** An unsigned LEB128 varint, as lpStream writes lengths. */
const varint = {
  encode(n: number): Uint8Array {
    const out: number[] = []
    do {
      out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0))
      n = Math.floor(n / 0x80)
    } while (n > 0)
    return Uint8Array.from(out)
  },
}

function encode(pieces: readonly Uint8Array[]): Uint8Array {
  const parts = pieces.flatMap((p) => [varint.encode(p.byteLength), p])
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

describe('PieceReader', () => {
  it('gives back the pieces whatever the chunking', () => {
    fc.assert(fc.property(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 400 }), { maxLength: 30 }),
      fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 50 }),
      (pieces, cuts) => {
        const bytes = encode(pieces)
        const reader = new PieceReader(1000)
        const got: Uint8Array[] = []
        let at = 0
        for (let i = 0; at < bytes.byteLength; i++) {
          const n = cuts[i % cuts.length]!
          got.push(...reader.push(bytes.subarray(at, at + n)).map((p) => Uint8Array.from(p)))
          at += n
        }
        expect(got).toEqual(pieces.map((p) => Uint8Array.from(p)))
        expect(reader.pendingBytes).toBe(0)
      },
    ), { numRuns: 300 })
  })

  it('holds a partial piece (and a partial prefix) until the rest arrives', () => {
    const reader = new PieceReader(100_000)
    const big = new Uint8Array(300).fill(7)
    const bytes = encode([big])
    expect(reader.push(bytes.subarray(0, 1))).toEqual([]) // half of a two-byte prefix
    expect(reader.push(bytes.subarray(1, 100))).toEqual([])
    expect(reader.pendingBytes).toBe(98)
    expect(reader.push(bytes.subarray(100))).toEqual([big])
  })

  it('refuses a piece over the bound before reading it, and a prefix that never ends', () => {
    expect(() => new PieceReader(10).push(varint.encode(11))).toThrow(PieceFramingError)
    expect(() => new PieceReader(10).push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toThrow('length prefix too long')
    expect(() => new PieceReader(10).push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80]))).toThrow('length prefix too long')
  })
})
