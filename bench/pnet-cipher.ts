/**
 * `node bench/pnet-cipher.ts`: throughput of the private-network cipher, Shoal's XSalsa20Stream
 * (@noble/ciphers, pure JS) against the `xsalsa20` package @libp2p/pnet used (WebAssembly),
 * at the chunk sizes a connection sees: small Raft/SWIM frames and whole TCP reads.
 * The WASM column runs one instance only, so its memory-growth bug (issue 17 §1) stays asleep.
 */
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { XSalsa20Stream } from '../protocols/pnet/keystream.ts'

interface Xor { update(input: Uint8Array): Uint8Array }
const require = createRequire(import.meta.url)
const wasmXsalsa20 = require('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => Xor

const TOTAL_BYTES = 256 * 1024 * 1024
const key = randomBytes(32)
const nonce = randomBytes(24)

function mbPerSecond(make: () => Xor, chunkBytes: number): number {
  const chunk = randomBytes(chunkBytes)
  const xor = make()
  for (let i = 0; i < 200; i++) xor.update(chunk) // warm up the JIT
  const rounds = Math.max(1, Math.floor(TOTAL_BYTES / chunkBytes / (chunkBytes < 4096 ? 8 : 1)))
  const started = process.hrtime.bigint()
  for (let i = 0; i < rounds; i++) xor.update(chunk)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return (rounds * chunkBytes) / seconds / 1e6
}

console.log('chunk bytes | noble XSalsa20Stream MB/s | xsalsa20 (WASM) MB/s')
for (const chunkBytes of [100, 1000, 16 * 1024 + 7, 64 * 1024, 1024 * 1024]) {
  const noble = mbPerSecond(() => new XSalsa20Stream(key, nonce), chunkBytes)
  const wasm = mbPerSecond(() => wasmXsalsa20(nonce, key), chunkBytes)
  console.log(`${String(chunkBytes).padStart(11)} | ${noble.toFixed(0).padStart(25)} | ${wasm.toFixed(0).padStart(20)}`)
}
