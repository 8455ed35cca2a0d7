/**
 * Splits a byte stream into varint-length-prefixed pieces, the framing `lpStream` writes, as
 * chunks arrive. `lpStream`'s reader takes one await per byte of each length and throws to
 * find where a varint ends; a peer reading thousands of small Raft frames a second spent a
 * tenth of its CPU there. This one parses whole chunks at once and copies only a piece that
 * spans chunks. Pure: bytes in, pieces out.
 */

/** A stream that breaks the framing: the connection it came on must be closed. */
export class PieceFramingError extends Error {
  override readonly name = 'PieceFramingError'
}

/** Longest varint a 32-bit length needs. */
const VARINT_MAX_BYTES = 5

/** Reassembles pieces of at most `maxPieceBytes` from chunks in arrival order. */
export class PieceReader {
  private readonly maxPieceBytes: number
  private chunks: Uint8Array[] = []
  private buffered = 0
  /** Length of the piece being read, once its prefix was parsed. */
  private need: number | null = null

  constructor(maxPieceBytes: number) {
    this.maxPieceBytes = maxPieceBytes
  }

  /** Bytes received and not yet returned as a piece. */
  get pendingBytes(): number {
    return this.buffered
  }

  /** Adds a chunk; returns every piece it completed, in order. Throws PieceFramingError on a bad prefix. */
  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk)
      this.buffered += chunk.byteLength
    }
    const out: Uint8Array[] = []
    for (;;) {
      if (this.need === null) {
        const prefix = this.readPrefix()
        if (prefix === null) break
        this.need = prefix
      }
      if (this.buffered < this.need) break
      out.push(this.take(this.need))
      this.need = null
    }
    return out
  }

  /** Parses and consumes a length prefix, or returns null when it is not complete yet. */
  private readPrefix(): number | null {
    let value = 0
    let i = 0
    for (const chunk of this.chunks) {
      for (const byte of chunk) {
        if (i === VARINT_MAX_BYTES) throw new PieceFramingError('length prefix too long')
        value += (byte & 0x7f) * 2 ** (7 * i)
        i++
        if ((byte & 0x80) === 0) {
          if (value > this.maxPieceBytes) throw new PieceFramingError(`piece of ${value} bytes, over ${this.maxPieceBytes}`)
          this.take(i)
          return value
        }
      }
    }
    if (i >= VARINT_MAX_BYTES) throw new PieceFramingError('length prefix too long')
    return null
  }

  /** Removes the first `n` buffered bytes (n <= buffered); copies only when they span chunks. */
  private take(n: number): Uint8Array {
    this.buffered -= n
    const first = this.chunks[0]
    if (first !== undefined && first.byteLength >= n) {
      if (first.byteLength === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const chunk = this.chunks[0] as Uint8Array
      const part = Math.min(chunk.byteLength, n - at)
      out.set(chunk.subarray(0, part), at)
      at += part
      if (part === chunk.byteLength) this.chunks.shift()
      else this.chunks[0] = chunk.subarray(part)
    }
    return out
  }
}
