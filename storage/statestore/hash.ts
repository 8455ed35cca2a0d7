// FNV-1a, 64-bit, in 32-bit halves (no BigInt on the hot path). Not a
// cryptographic hash: it only has to tell replicas and requests apart.

const PRIME_LOW = 0x1b3 // FNV-64 prime is 2^40 + 0x1b3
const TWO_32 = 0x1_0000_0000

/** FNV-1a 64 of `bytes`, as 16 lowercase hex digits. */
export function fnv1a64(bytes: Uint8Array): string {
  let hi = 0xcbf29ce4
  let lo = 0x84222325
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ (bytes[i] ?? 0)) >>> 0
    // (hi:lo) * (2^40 + 0x1b3) mod 2^64: the 2^40 term only adds lo << 8 to hi.
    const low = lo * PRIME_LOW // < 2^41, exact in a double
    const lowWord = low >>> 0
    const carry = (low - lowWord) / TWO_32
    hi = (Math.imul(hi, PRIME_LOW) + carry + ((lo << 8) >>> 0)) >>> 0
    lo = lowWord
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0')
}
