/**
 * The WAL's tail mark: a small side file saying how far the log reached after its last durable
 * write — which segment, how many bytes of it, the last index, the hard state — so that
 * recovery can tell a torn tail from a lost one.
 *
 * Why it is needed: a crash can tear only the last write, and recovery cuts that record off.
 * But a segment cut short in the middle (a disk whose write-back cache lost acknowledged
 * writes, a file restored from an old copy) also ends on a clean or torn record, and looks
 * the same from inside the segment: nothing in the surviving prefix tells that hundreds of
 * acknowledged entries followed it. Only something written after them, outside the segment,
 * can. A peer that takes such a log for healthy votes and acknowledges as if it still held
 * entries that a quorum was counted on — the case protocol-aware recovery (Alagappan et al.,
 * FAST'18) shows breaks Raft's safety.
 *
 * Cost: the mark is rewritten after every durable segment write with one small synchronous
 * pwrite(2) into the page cache — no fsync, no extra trip through libuv's thread pool, so the
 * write path keeps one synced write per batch. Without its own fsync the mark may lag the log
 * after a power failure (it then reports less than was written, never more, because it is
 * written only after the segment write returned), which errs on the side of "nothing lost".
 * A lost write-back cache that swallows the segment's last writes may swallow the mark's too;
 * what the mark guarantees is that a segment shorter than a write the page cache already
 * saw is caught, e.g. a file truncated or replaced while the peer was down. The one write
 * that must survive — "this log lost entries through index N; do not vote until they are
 * back" — is synced (a `write-at` with `sync`), and it happens once per detected loss.
 *
 * Two slots, written alternately, each with a counter and a CRC (a superblock's trick): a
 * write torn by a crash spoils at most one slot, and the other still holds the previous mark.
 */
import { crc32 } from './crc32.ts'
import type { HardState } from './log-types.ts'

/** The file's name inside the log directory. */
export const TAIL_MARK_FILE = 'tail.mark'
const SLOT_BYTES = 256
const MAGIC = 0x5348544d // 'SHTM'
const VERSION = 1
/** Offset of the vote's length byte; fixed fields before it. */
const VOTE_AT = 8 + 8 * 8
const VOTE_MAX_BYTES = SLOT_BYTES - VOTE_AT - 1 - 4
const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/** What the log held after its last durable write. */
export interface TailMark {
  /** Segment sequence number being appended to. */
  segmentSeq: number
  /** That segment's length in bytes right after the write. */
  segmentBytes: number
  /** Last log index after the write. */
  lastIndex: number
  /**
   * Entries through this index were lost after they may have been acknowledged, and have not
   * been copied back yet: the peer must not vote until its log reaches it. 0 when healthy.
   */
  repairIndex: number
  /** The durable hard state (term and vote are what matter: a vote must never be cast twice). */
  hardState: HardState
}

function encodeSlot(mark: TailMark, counter: number): Uint8Array {
  const out = new Uint8Array(SLOT_BYTES)
  const view = new DataView(out.buffer)
  view.setUint32(0, MAGIC)
  view.setUint32(4, VERSION)
  const fields = [counter, mark.segmentSeq, mark.segmentBytes, mark.lastIndex, mark.repairIndex, mark.hardState.term, mark.hardState.commit, 0]
  fields.forEach((v, i) => view.setFloat64(8 + i * 8, v))
  const vote = utf8.encode(mark.hardState.vote ?? '')
  if (vote.byteLength > VOTE_MAX_BYTES) throw new Error(`vote ${mark.hardState.vote ?? ''} is too long for the tail mark`)
  out[VOTE_AT] = vote.byteLength
  out.set(vote, VOTE_AT + 1)
  view.setUint32(SLOT_BYTES - 4, crc32(out.subarray(0, SLOT_BYTES - 4)))
  return out
}

function decodeSlot(bytes: Uint8Array): { mark: TailMark; counter: number } | null {
  if (bytes.byteLength < SLOT_BYTES) return null
  const view = new DataView(bytes.buffer, bytes.byteOffset, SLOT_BYTES)
  if (view.getUint32(0) !== MAGIC || view.getUint32(4) !== VERSION) return null
  if (crc32(bytes.subarray(0, SLOT_BYTES - 4)) !== view.getUint32(SLOT_BYTES - 4)) return null
  const f = Array.from({ length: 7 }, (_, i) => view.getFloat64(8 + i * 8))
  if (!f.every((v) => Number.isSafeInteger(v) && v >= 0)) return null
  const voteLength = bytes[VOTE_AT] as number
  if (voteLength > VOTE_MAX_BYTES) return null
  let vote: string
  try {
    vote = fromUtf8.decode(bytes.subarray(VOTE_AT + 1, VOTE_AT + 1 + voteLength))
  } catch {
    return null
  }
  const [counter, segmentSeq, segmentBytes, lastIndex, repairIndex, term, commit] = f as [number, number, number, number, number, number, number]
  return { counter, mark: { segmentSeq, segmentBytes, lastIndex, repairIndex, hardState: { term, commit, vote: vote === '' ? null : vote } } }
}

/**
 * The newest valid mark in the file's bytes (null: no file); `mark` is null when there is none
 * (a log written before marks existed, or both slots damaged — then recovery cannot check the
 * tail and says so). `counter` is where the next write counts on from.
 */
export function parseTailMark(bytes: Uint8Array | null): { mark: TailMark | null; damaged: boolean; counter: number } {
  if (bytes === null) return { mark: null, damaged: false, counter: 0 }
  const slots = [decodeSlot(bytes.subarray(0, SLOT_BYTES)), decodeSlot(bytes.subarray(SLOT_BYTES, 2 * SLOT_BYTES))]
  let best: { mark: TailMark; counter: number } | null = null
  for (const s of slots) if (s !== null && (best === null || s.counter > best.counter)) best = s
  return { mark: best?.mark ?? null, damaged: best === null && bytes.byteLength > 0, counter: best?.counter ?? 0 }
}

/** Chooses where each mark goes: the two slots alternately (see the header for why no fsync). */
export class TailMarkSlots {
  private counter: number

  constructor(counter: number) {
    this.counter = counter
  }

  /** The bytes of `mark` and the offset they go to. */
  next(mark: TailMark): { offset: number; bytes: Uint8Array } {
    this.counter++
    return { offset: (this.counter % 2) * SLOT_BYTES, bytes: encodeSlot(mark, this.counter) }
  }
}
