/**
 * CRC-32 (IEEE 802.3, the polynomial zlib and Node's zlib.crc32 use), in plain TypeScript so
 * the log's codecs stay pure and run unchanged in the simulator. Same values as zlib.crc32,
 * so files written with either read back with the other. Slicing-by-8 (eight bytes per step
 * through eight tables) because entries are checksummed on every write and every recovery.
 */

const TABLES = ((): Uint32Array[] => {
  const t = Array.from({ length: 8 }, () => new Uint32Array(256))
  const t0 = t[0] as Uint32Array
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t0[n] = c >>> 0
  }
  for (let n = 0; n < 256; n++) {
    let c = t0[n] as number
    for (let k = 1; k < 8; k++) {
      c = (t0[c & 0xff] as number) ^ (c >>> 8)
      ;(t[k] as Uint32Array)[n] = c >>> 0
    }
  }
  return t
})()
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array]

/** The CRC-32 of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  let i = 0
  const n = bytes.length
  for (; i + 8 <= n; i += 8) {
    const a = (c ^ ((bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24))) >>> 0
    c = (T7[a & 0xff] as number) ^ (T6[(a >>> 8) & 0xff] as number) ^ (T5[(a >>> 16) & 0xff] as number) ^ (T4[a >>> 24] as number) ^
      (T3[bytes[i + 4] as number] as number) ^ (T2[bytes[i + 5] as number] as number) ^ (T1[bytes[i + 6] as number] as number) ^ (T0[bytes[i + 7] as number] as number)
  }
  for (; i < n; i++) c = (T0[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
