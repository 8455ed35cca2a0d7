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
 * back" — is synced (`writeMarkDurably`), and it happens once per detected loss.
 *
 * Two slots, written alternately, each with a counter and a CRC (a superblock's trick): a
 * write torn by a crash spoils at most one slot, and the other still holds the previous mark.
 */
import { closeSync, fdatasyncSync, openSync, readFileSync, writeSync, constants } from 'node:fs'
import { crc32 } from 'node:zlib'
import type { HardState } from '../../protocols/raft/index.ts'

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
 * Reads the newest valid mark; null when there is none (a log written before marks existed,
 * or both slots damaged — then recovery cannot check the tail and says so).
 */
export function readTailMark(path: string): { mark: TailMark | null; damaged: boolean } {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { mark: null, damaged: false }
    throw err
  }
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const slots = [decodeSlot(u8.subarray(0, SLOT_BYTES)), decodeSlot(u8.subarray(SLOT_BYTES, 2 * SLOT_BYTES))]
  let best: { mark: TailMark; counter: number } | null = null
  for (const s of slots) if (s !== null && (best === null || s.counter > best.counter)) best = s
  return { mark: best?.mark ?? null, damaged: best === null && bytes.byteLength > 0 }
}

/** Writes marks into the two slots alternately (see the header for why no fsync). */
export class TailMarkWriter {
  private readonly fd: number
  private counter: number

  private constructor(fd: number, counter: number) {
    this.fd = fd
    this.counter = counter
  }

  /** Opens (creating) the mark file; the caller fsyncs the directory once the file is new. */
  static open(path: string): TailMarkWriter {
    let counter = 0
    try {
      const bytes = readFileSync(path)
      const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      for (const at of [0, SLOT_BYTES]) counter = Math.max(counter, decodeSlot(u8.subarray(at, at + SLOT_BYTES))?.counter ?? 0)
    } catch {
      // No file yet: counting starts at 0.
    }
    return new TailMarkWriter(openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600), counter)
  }

  /** Records `mark` in the page cache: one pwrite, no sync (the hot path). */
  write(mark: TailMark): void {
    this.counter++
    const slot = encodeSlot(mark, this.counter)
    writeSync(this.fd, slot, 0, SLOT_BYTES, (this.counter % 2) * SLOT_BYTES)
  }

  /** Records `mark` and waits for the disk: for the rare marks that must survive a power cut. */
  writeDurably(mark: TailMark): void {
    this.write(mark)
    fdatasyncSync(this.fd)
  }

  close(): void {
    closeSync(this.fd)
  }
}
