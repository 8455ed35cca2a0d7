// The private network's XSalsa20 stream against libsodium's published vector and against the
// `xsalsa20` package that @libp2p/pnet (and so every js-libp2p peer) uses: the same bytes for any
// chunking, or peers of the two kinds could not talk.
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { XSalsa20Stream, KeystreamExhaustedError, KEYSTREAM_BLOCKS_MAX, decodePskV1 } from '../../protocols/pnet/keystream.ts'
import { newClusterSecret } from '../../node/data-dir.ts'

interface Xor { update(input: Uint8Array): Uint8Array }
type XorFactory = (nonce: Uint8Array, key: Uint8Array) => Xor

const require = createRequire(import.meta.url)

/**
 * The package's pure-JS path (its `Fallback`), which it takes when WebAssembly is missing: the
 * module is evaluated with `WebAssembly` shadowed. The WASM path shares one memory among all
 * instances and is the bug this replaces, so it is no reference.
 */
function loadXsalsa20Fallback(): XorFactory {
  const path = require.resolve('xsalsa20')
  const module = { exports: {} as unknown }
  const load = new Function('module', 'exports', 'require', 'WebAssembly', readFileSync(path, 'utf8')) as
    (m: typeof module, e: unknown, r: NodeJS.Require, w: undefined) => void
  load(module, module.exports, createRequire(path), undefined)
  return module.exports as XorFactory
}
const reference = loadXsalsa20Fallback()

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

// libsodium test/default/xsalsa20 (NaCl's "firstkey"/"nonce"): the first 32 keystream bytes.
const SODIUM_KEY = Buffer.from('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389', 'hex')
const SODIUM_NONCE = Buffer.from('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37', 'hex')
const SODIUM_STREAM_32 = 'eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880'

/** Cuts `bytes` at the given lengths (cycled), the last piece taking what is left. */
function split(bytes: Uint8Array, lengths: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let at = 0
  for (let i = 0; at < bytes.byteLength; i++) {
    const n = lengths[i % lengths.length]!
    out.push(bytes.subarray(at, at + n))
    at += n
  }
  return out
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts))
}

describe('XSalsa20Stream', () => {
  it('gives libsodium\'s keystream for its published vector', () => {
    expect(hex(new XSalsa20Stream(SODIUM_KEY, SODIUM_NONCE).update(new Uint8Array(32)))).toBe(SODIUM_STREAM_32)
    expect(hex(reference(SODIUM_NONCE, SODIUM_KEY).update(new Uint8Array(32)))).toBe(SODIUM_STREAM_32)
  })

  it('gives the xsalsa20 package\'s bytes for any split of the stream, on both sides', () => {
    // Chunks from 0 bytes to well past the 16 KiB batch, so every path (computed-ahead
    // keystream, whole blocks in bulk, both in one chunk) meets every other at every offset.
    const chunkLength = fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0, max: 200 }) },
      { weight: 1, arbitrary: fc.integer({ min: 16_000, max: 40_000 }) },
    )
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 24, maxLength: 24 }),
      fc.integer({ min: 0, max: 120_000 }),
      fc.array(chunkLength, { minLength: 1, maxLength: 20 }).filter((l) => l.some((n) => n > 0)),
      fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 5 }),
      (key, nonce, length, ours, theirs) => {
        const plain = Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff)
        const mine = new XSalsa20Stream(key, nonce)
        const sealed = concat(split(plain, ours).map((c) => mine.update(c)))
        expect(mine.position).toBe(length)
        const other = reference(nonce, key)
        const expected = concat(split(plain, theirs).map((c) => other.update(c)))
        expect(hex(sealed)).toBe(hex(expected))
        // And it is its own inverse: a receiver cutting the stream elsewhere gets the bytes back.
        const opener = new XSalsa20Stream(key, nonce)
        expect(hex(concat(split(sealed, theirs).map((c) => opener.update(c))))).toBe(hex(plain))
      },
    ), { numRuns: 60 })
  })

  it('leaves its input alone and hands back fresh arrays', () => {
    const input = new Uint8Array(100).fill(9)
    const stream = new XSalsa20Stream(SODIUM_KEY, SODIUM_NONCE)
    const a = stream.update(input)
    const b = stream.update(input)
    expect(input.every((x) => x === 9)).toBe(true)
    expect(a.buffer).not.toBe(b.buffer)
  })

  it('can start at a later block, and stops with a typed error when the keystream is used up', () => {
    const whole = new XSalsa20Stream(SODIUM_KEY, SODIUM_NONCE).update(new Uint8Array(1000))
    expect(hex(new XSalsa20Stream(SODIUM_KEY, SODIUM_NONCE, 3).update(new Uint8Array(1000 - 192)))).toBe(hex(whole.subarray(192)))
    // The last two blocks noble can compute (its 32-bit counter stops short of 2^32 - 1), then none.
    const end = new XSalsa20Stream(SODIUM_KEY, SODIUM_NONCE, KEYSTREAM_BLOCKS_MAX - 2)
    expect(end.update(new Uint8Array(100)).byteLength).toBe(100)
    expect(end.update(new Uint8Array(28)).byteLength).toBe(28)
    expect(end.position).toBe(KEYSTREAM_BLOCKS_MAX * 64)
    expect(() => end.update(new Uint8Array(1))).toThrow(KeystreamExhaustedError)
    const bulk = new XSalsa20Stream(SODIUM_KEY, SODIUM_NONCE, KEYSTREAM_BLOCKS_MAX - 10)
    expect(() => bulk.update(new Uint8Array(20_000))).toThrow(KeystreamExhaustedError)
  })

  it('refuses keys and nonces of the wrong size', () => {
    expect(() => new XSalsa20Stream(new Uint8Array(16), SODIUM_NONCE)).toThrow(/key must be 32 bytes/)
    expect(() => new XSalsa20Stream(SODIUM_KEY, new Uint8Array(8))).toThrow(/nonce must be 24 bytes/)
  })
})

describe('decodePskV1', () => {
  it('reads the key of a Shoal cluster secret', () => {
    const file = newClusterSecret()
    const line = new TextDecoder().decode(file).split('\n')[2]!
    expect(hex(decodePskV1(file))).toBe(line)
  })

  it('says what is wrong with a malformed key file', () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
    expect(() => decodePskV1(enc('secret'))).toThrow(/first line must be \/key\/swarm\/psk\/1\.0\.0\//)
    expect(() => decodePskV1(enc('/key/swarm/psk/1.0.0/\n/base64/\nAAAA'))).toThrow(/base16/)
    expect(() => decodePskV1(enc('/key/swarm/psk/1.0.0/\n/base16/\nabcd'))).toThrow(/64 hex digits/)
  })
})
