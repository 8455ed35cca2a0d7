// The run's trace: every event of the run is mixed into a 64-bit digest, and
// when asked, the notable ones are kept as readable lines (who led when, which
// messages were lost, which writes were acknowledged, every fault). The digest
// covers every message delivery and every loss too, payload included (entries'
// bytes, snapshots, gossip updates), and run.ts mixes in the state each node
// ended in, so two runs with equal digests took the same path to the same
// place; the readable timeline leaves deliveries out, or it would drown.

/** Most readable lines kept; a longer timeline is cut (the digest still covers everything). */
export const TRACE_LINES_MAX = 200_000

/** What a trace line is about. */
export type TraceKind =
  | 'fault'
  | 'role'
  | 'lost'
  | 'dup'
  | 'client'
  | 'disk'
  | 'member'
  | 'lease'
  | 'docker'
  | 'check'
  | 'phase'

/** An incremental 64-bit digest (two 32-bit multiply-xor lanes; not cryptographic). */
export class Digest {
  private a = 0x811c9dc5
  private b = 0x6a09e667

  /** Mixes in a 32-bit integer (larger numbers are mixed as two words). */
  number(n: number): void {
    const lo = n >>> 0
    const hi = Math.floor(n / 0x1_0000_0000) >>> 0
    this.word(lo)
    if (hi !== 0) this.word(hi)
  }

  /** Mixes in a string. */
  text(s: string): void {
    for (let i = 0; i < s.length; i++) this.word(s.charCodeAt(i))
    this.word(s.length)
  }

  /**
   * Mixes in a whole structured value (a message's payload): its shape and every field, bytes
   * included. Objects are walked in key order, which is insertion order and so the same for
   * the same code path; a number is mixed exactly (a fraction by its IEEE bits).
   */
  value(v: unknown): void {
    switch (typeof v) {
      case 'undefined':
        this.word(TAG_UNDEFINED)
        return
      case 'boolean':
        this.word(v ? TAG_TRUE : TAG_FALSE)
        return
      case 'number':
        if (Number.isSafeInteger(v) && v >= 0) {
          this.word(TAG_NUMBER)
          this.number(v)
        } else {
          // Negative numbers, fractions, NaN and infinities by their exact bits.
          FLOAT[0] = v
          this.word(TAG_FLOAT)
          this.word(FLOAT_WORDS[0] as number)
          this.word(FLOAT_WORDS[1] as number)
        }
        return
      case 'string':
        this.word(TAG_STRING)
        this.text(v)
        return
      case 'bigint':
        this.word(TAG_BIGINT)
        this.text(v.toString())
        return
      case 'object':
        break
      default:
        // Functions and symbols carry no data a peer could receive.
        this.word(TAG_OTHER)
        return
    }
    if (v === null) {
      this.word(TAG_NULL)
      return
    }
    if (ArrayBuffer.isView(v)) {
      this.word(TAG_BYTES)
      this.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
      return
    }
    if (Array.isArray(v)) {
      this.word(TAG_ARRAY)
      for (const item of v) this.value(item)
      this.word(v.length)
      return
    }
    if (v instanceof Map) {
      this.word(TAG_MAP)
      for (const [k, item] of v) {
        this.value(k)
        this.value(item)
      }
      this.word(v.size)
      return
    }
    this.word(TAG_OBJECT)
    const keys = Object.keys(v)
    for (const k of keys) {
      this.text(k)
      this.value((v as Record<string, unknown>)[k])
    }
    this.word(keys.length)
  }

  /** Mixes in bytes, four at a time. */
  bytes(b: Uint8Array): void {
    const n = b.byteLength
    let i = 0
    for (; i + 4 <= n; i += 4) this.word(((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24)) >>> 0)
    let tail = 0
    for (let shift = 0; i < n; i++, shift += 8) tail |= (b[i] as number) << shift
    this.word(tail >>> 0)
    this.word(n)
  }

  /** The digest so far, as 16 hex digits. */
  hex(): string {
    const a = fmix(this.a ^ this.b)
    const b = fmix(this.b ^ Math.imul(this.a, 0x9e3779b1))
    return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0')
  }

  private word(w: number): void {
    this.a = Math.imul(this.a ^ w, 0x01000193)
    this.b = Math.imul(this.b ^ (w + 0x7f4a7c15), 0x5bd1e995)
    this.b ^= this.b >>> 15
  }
}

// Type tags, so that values of different shapes never mix the same words.
const TAG_UNDEFINED = 0x7a000001
const TAG_NULL = 0x7a000002
const TAG_TRUE = 0x7a000003
const TAG_FALSE = 0x7a000004
const TAG_NUMBER = 0x7a000005
const TAG_FLOAT = 0x7a000006
const TAG_STRING = 0x7a000007
const TAG_BIGINT = 0x7a000008
const TAG_BYTES = 0x7a000009
const TAG_ARRAY = 0x7a00000a
const TAG_MAP = 0x7a00000b
const TAG_OBJECT = 0x7a00000c
const TAG_OTHER = 0x7a00000d
/** Scratch for a number's IEEE bits (read in the platform's byte order: little-endian wherever Node runs in practice). */
const FLOAT = new Float64Array(1)
const FLOAT_WORDS = new Uint32Array(FLOAT.buffer)

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** The digest of a list of digests, in order (how per-seed digests combine into one). */
export function combineDigests(digests: readonly string[]): string {
  const d = new Digest()
  for (const hex of digests) d.text(hex)
  d.number(digests.length)
  return d.hex()
}

/** Formats simulated µs as seconds with millisecond precision, e.g. "12.345s". */
export function formatTime(us: number): string {
  return `${(us / 1_000_000).toFixed(3)}s`
}

/** The trace of one run. */
export class Trace {
  /** The running digest of every event. */
  readonly digest = new Digest()
  /** Readable lines, when kept. */
  readonly lines: string[] = []
  /** Whether readable lines are kept. */
  readonly keepLines: boolean

  constructor(keepLines: boolean) {
    this.keepLines = keepLines
  }

  /** A notable event: mixed into the digest, and kept as a line when tracing. */
  note(nowUs: number, kind: TraceKind, text: string): void {
    this.digest.number(nowUs)
    this.digest.text(kind)
    this.digest.text(text)
    if (this.keepLines && this.lines.length < TRACE_LINES_MAX) this.lines.push(`${formatTime(nowUs).padStart(9)}  ${kind.padEnd(6)} ${text}`)
  }

  /** A routine event: digest only, never a line. */
  mix(nowUs: number, a: number, b: number, c: number, d: number): void {
    const digest = this.digest
    digest.number(nowUs)
    digest.number(a)
    digest.number(b)
    digest.number(c)
    digest.number(d)
  }

  /**
   * A message's fate, with everything it carried: `fate` 0 for a delivery, or the reason it
   * was lost (see cluster.ts). Headers alone would let two runs whose messages carried
   * different entries, snapshots or gossip look the same.
   */
  message(nowUs: number, from: number, to: number, code: number, fate: number, payload: unknown): void {
    this.mix(nowUs, from, to, code, fate)
    this.digest.value(payload)
  }
}
