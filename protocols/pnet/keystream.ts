/**
 * The XSalsa20 keystream of one direction of a libp2p private-network (PSK v1) connection, as
 * a stream: bytes arrive in chunks of any size and each is XORed with the keystream at its
 * position in the connection. The cipher itself is @noble/ciphers' audited pure-JS Salsa20.
 *
 * Why not the `xsalsa20` package @libp2p/pnet uses: all its instances share one WebAssembly
 * memory capped at 1000 pages, and an instance whose view was detached by another instance's
 * growth reads its length as 0 and grows the memory again on nearly every update, until
 * `Memory.grow()` throws and the process dies (issue 17 §1: a few 500 KB values did it).
 *
 * Stream layout, as the `xsalsa20` package (libsodium's crypto_stream_xsalsa20_xor) produces it:
 * subkey = HSalsa20(key, nonce[0..16]); block i of the keystream = Salsa20(subkey,
 * nonce[16..24], counter = i); byte n of the stream is XORed with byte n % 64 of block
 * floor(n / 64). Bytes are the same whatever the chunking, so peers running @libp2p/pnet,
 * go-libp2p-pnet or this stay interoperable.
 */
import { xsalsa20 } from '@noble/ciphers/salsa.js'

export const PSK_KEY_BYTES = 32
export const PSK_NONCE_BYTES = 24
const BLOCK_BYTES = 64
/**
 * noble exposes only the low 32 bits of Salsa20's 64-bit block counter and refuses to reach
 * 2^32 - 1, so one direction of one connection can carry (2^32 - 1) * 64 bytes (~256 GiB).
 * Past that the stream refuses to go on (the connection is reset and libp2p redials with fresh
 * nonces) rather than silently reusing or diverging from the keystream.
 */
export const KEYSTREAM_BLOCKS_MAX = 2 ** 32 - 1

/** Thrown when a connection has used up its keystream; resetting the connection is the cure. */
export class KeystreamExhaustedError extends Error {
  override readonly name = 'KeystreamExhaustedError'
}

/**
 * Keystream computed ahead for small chunks. noble costs a few microseconds per call whatever the
 * length (argument checks, key copies, scratch buffers), which dominated 100-byte Raft and SWIM
 * frames (12 MB/s); one call per this many bytes amortises it. A connection holds two of these.
 */
const KEYSTREAM_BATCH_BYTES = 16384

export class XSalsa20Stream {
  private readonly key: Uint8Array
  private readonly nonce: Uint8Array
  /** Index of the next keystream block not yet computed. */
  private nextBlock = 0
  /** Keystream computed but not yet used; always ends on a block boundary. */
  private ahead: Uint8Array = new Uint8Array(0)

  /** `firstBlock`: start the stream at keystream block N (byte N * 64); a connection starts at 0. */
  constructor(key: Uint8Array, nonce: Uint8Array, firstBlock = 0) {
    if (!Number.isSafeInteger(firstBlock) || firstBlock < 0 || firstBlock > KEYSTREAM_BLOCKS_MAX) throw new RangeError(`XSalsa20 first block must be 0..${KEYSTREAM_BLOCKS_MAX}, got ${firstBlock}`)
    this.nextBlock = firstBlock
    if (key.byteLength !== PSK_KEY_BYTES) throw new RangeError(`XSalsa20 key must be ${PSK_KEY_BYTES} bytes, got ${key.byteLength}`)
    if (nonce.byteLength !== PSK_NONCE_BYTES) throw new RangeError(`XSalsa20 nonce must be ${PSK_NONCE_BYTES} bytes, got ${nonce.byteLength}`)
    this.key = key.slice()
    this.nonce = nonce.slice()
  }

  /** The position in the keystream of the next byte (bytes used so far, from a first block of 0). */
  get position(): number {
    return this.nextBlock * BLOCK_BYTES - this.ahead.byteLength
  }

  /** XORs `input` with the next `input.byteLength` keystream bytes; returns a new array. */
  update(input: Uint8Array): Uint8Array {
    const length = input.byteLength
    // The keystream already computed covers the first `fromAhead` bytes.
    const fromAhead = Math.min(this.ahead.byteLength, length)
    let at = fromAhead
    const wholeBlockBytes = length - at >= KEYSTREAM_BATCH_BYTES ? Math.floor((length - at) / BLOCK_BYTES) * BLOCK_BYTES : 0
    // Place the output so that the part ciphered in bulk starts on a 4-byte boundary: noble XORs
    // word by word only on aligned buffers (about twice as fast as byte by byte).
    const shift = (4 - (at % 4)) % 4
    const out = new Uint8Array(new ArrayBuffer(length + shift), shift, length)
    out.set(input)
    const ahead = this.ahead
    for (let i = 0; i < fromAhead; i++) out[i]! ^= ahead[i]!
    this.ahead = ahead.subarray(fromAhead)
    if (wholeBlockBytes > 0) {
      // Large chunks: cipher whole blocks in place, nothing computed ahead.
      const blocks = wholeBlockBytes / BLOCK_BYTES
      this.claimBlocks(blocks)
      const bulk = out.subarray(at, at + wholeBlockBytes)
      xsalsa20(this.key, this.nonce, bulk, bulk, this.nextBlock)
      this.nextBlock += blocks
      at += wholeBlockBytes
    }
    if (at < length) {
      // What is left is under one batch: compute a batch of keystream ahead and use its start
      // (a shorter one at the very end of the keystream, so no byte of it goes unused).
      const used = length - at
      const blocks = Math.max(Math.ceil(used / BLOCK_BYTES), Math.min(KEYSTREAM_BATCH_BYTES / BLOCK_BYTES, KEYSTREAM_BLOCKS_MAX - this.nextBlock))
      this.claimBlocks(blocks)
      const batch = xsalsa20(this.key, this.nonce, new Uint8Array(blocks * BLOCK_BYTES), undefined, this.nextBlock)
      this.nextBlock += blocks
      for (let i = 0; i < used; i++) out[at + i]! ^= batch[i]!
      this.ahead = batch.subarray(used)
    }
    return out
  }

  private claimBlocks(blocks: number): void {
    if (this.nextBlock + blocks > KEYSTREAM_BLOCKS_MAX) {
      throw new KeystreamExhaustedError(`this connection has used its whole XSalsa20 keystream (${KEYSTREAM_BLOCKS_MAX} blocks); reset it so a new one is negotiated`)
    }
  }
}

/**
 * Reads the 32-byte key from a PSK v1 file: `/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits
 * (the format go-libp2p, js-libp2p and IPFS use). Throws a RangeError naming what is wrong.
 */
export function decodePskV1(file: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(file).split(/\r\n|\r|\n/)
  if (lines[0] !== '/key/swarm/psk/1.0.0/') throw new RangeError('not a PSK v1 key: the first line must be /key/swarm/psk/1.0.0/')
  if (lines[1] !== '/base16/') throw new RangeError('PSK v1 key: only the /base16/ encoding is supported')
  const hex = (lines[2] ?? '').trim()
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new RangeError('PSK v1 key: the third line must be 64 hex digits (32 bytes)')
  const key = new Uint8Array(PSK_KEY_BYTES)
  for (let i = 0; i < PSK_KEY_BYTES; i++) key[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return key
}
