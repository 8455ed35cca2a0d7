// The run's trace: every event of the run is mixed into a 64-bit digest, and
// when asked, the notable ones are kept as readable lines (who led when, which
// messages were lost, which writes were acknowledged, every fault). The digest
// covers every message delivery too, so two runs with equal digests took the
// same path; the readable timeline leaves deliveries out, or it would drown.

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

  /** A routine event (a delivery): digest only, never a line. */
  mix(nowUs: number, a: number, b: number, c: number, d: number): void {
    const digest = this.digest
    digest.number(nowUs)
    digest.number(a)
    digest.number(b)
    digest.number(c)
    digest.number(d)
  }
}
