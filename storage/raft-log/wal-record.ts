/**
 * WAL record framing and payload codecs. A record is
 *   [u32 payload length][u32 CRC-32 of the length][u32 CRC-32 of payload][payload]
 * The length has its own checksum so that a damaged length (which would point past the end
 * of the file and look like a torn write) is told apart from a write the crash cut short.
 */
import { crc32 } from './crc32.ts'
import type { Entry, HardState } from './log-types.ts'

/** One record's frame header: length + CRC. */
export const RECORD_HEADER_BYTES = 12
/** A record larger than this is corruption, not data (entries are bounded far below it). */
export const RECORD_MAX_BYTES = 64 * 1024 * 1024

/** What a WAL record holds. */
export type WalRecord =
  | { kind: 'entry'; entry: Entry }
  | { kind: 'hard-state'; hardState: HardState }
  /**
   * The log below this point lives in the snapshot file of that index (etcd's snapshot record).
   * `replacesLog`: the snapshot came from the leader and superseded every entry logged before
   * it (thesis §5.1); a snapshot the peer took of its own state leaves later entries valid.
   */
  | { kind: 'snapshot'; index: number; term: number; replacesLog: boolean }

const KIND_ENTRY = 1
const KIND_HARD_STATE = 2
const KIND_SNAPSHOT = 3
const TYPE_NORMAL = 0
const TYPE_CONF_CHANGE = 1
const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

function encodePayload(record: WalRecord): Uint8Array {
  switch (record.kind) {
    case 'entry': {
      const { entry } = record
      const out = new Uint8Array(1 + 8 + 8 + 1 + entry.data.byteLength)
      const view = new DataView(out.buffer)
      out[0] = KIND_ENTRY
      view.setFloat64(1, entry.index)
      view.setFloat64(9, entry.term)
      out[17] = entry.type === 'normal' ? TYPE_NORMAL : TYPE_CONF_CHANGE
      out.set(entry.data, 18)
      return out
    }
    case 'hard-state': {
      const vote = utf8.encode(record.hardState.vote ?? '')
      const out = new Uint8Array(1 + 8 + 8 + vote.byteLength)
      const view = new DataView(out.buffer)
      out[0] = KIND_HARD_STATE
      view.setFloat64(1, record.hardState.term)
      view.setFloat64(9, record.hardState.commit)
      out.set(vote, 17)
      return out
    }
    case 'snapshot': {
      const out = new Uint8Array(18)
      const view = new DataView(out.buffer)
      out[0] = KIND_SNAPSHOT
      view.setFloat64(1, record.index)
      view.setFloat64(9, record.term)
      out[17] = record.replacesLog ? 1 : 0
      return out
    }
    default: {
      const never: never = record
      throw new Error(`unknown WAL record ${String(never)}`)
    }
  }
}

/** Frames records into one buffer, ready for a single write. */
export function encodeRecords(records: readonly WalRecord[]): Uint8Array {
  const payloads = records.map(encodePayload)
  const total = payloads.reduce((n, p) => n + RECORD_HEADER_BYTES + p.byteLength, 0)
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  let at = 0
  for (const p of payloads) {
    view.setUint32(at, p.byteLength)
    view.setUint32(at + 4, crc32(out.subarray(at, at + 4)))
    view.setUint32(at + 8, crc32(p))
    out.set(p, at + RECORD_HEADER_BYTES)
    at += RECORD_HEADER_BYTES + p.byteLength
  }
  return out
}

function decodePayload(p: Uint8Array): WalRecord | null {
  if (p.byteLength < 1) return null
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength)
  const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0
  switch (p[0]) {
    case KIND_ENTRY: {
      if (p.byteLength < 18 || (p[17] !== TYPE_NORMAL && p[17] !== TYPE_CONF_CHANGE)) return null
      const index = view.getFloat64(1)
      const term = view.getFloat64(9)
      if (!isCount(index) || !isCount(term)) return null
      return { kind: 'entry', entry: { index, term, type: p[17] === TYPE_NORMAL ? 'normal' : 'conf-change', data: p.slice(18) } }
    }
    case KIND_HARD_STATE: {
      if (p.byteLength < 17) return null
      const term = view.getFloat64(1)
      const commit = view.getFloat64(9)
      if (!isCount(term) || !isCount(commit)) return null
      let vote: string
      try {
        vote = fromUtf8.decode(p.subarray(17))
      } catch {
        return null
      }
      return { kind: 'hard-state', hardState: { term, commit, vote: vote === '' ? null : vote } }
    }
    case KIND_SNAPSHOT: {
      if (p.byteLength !== 18 || (p[17] !== 0 && p[17] !== 1)) return null
      const index = view.getFloat64(1)
      const term = view.getFloat64(9)
      return isCount(index) && isCount(term) ? { kind: 'snapshot', index, term, replacesLog: p[17] === 1 } : null
    }
    default:
      return null
  }
}

/** How reading a segment ended. */
export type ScanEnd =
  | { kind: 'clean' }
  /** The last record is incomplete or fails its CRC: a write the crash interrupted. */
  | { kind: 'torn'; offset: number }
  /** A bad record with more data after it: the disk lost or changed acknowledged data. */
  | { kind: 'corrupt'; offset: number; reason: string }

/** Decodes every record of a segment's bytes, stopping at the first bad one. */
export function scanRecords(bytes: Uint8Array): { records: WalRecord[]; end: ScanEnd } {
  const records: WalRecord[] = []
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = 0
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < RECORD_HEADER_BYTES) return { records, end: { kind: 'torn', offset: at } }
    const length = view.getUint32(at)
    const lengthOk = crc32(bytes.subarray(at, at + 4)) === view.getUint32(at + 4)
    const crc = view.getUint32(at + 8)
    const end = at + RECORD_HEADER_BYTES + length
    if (!lengthOk || length > RECORD_MAX_BYTES) {
      // A torn header would be short (caught above); a complete one with a bad length is damage.
      return { records, end: { kind: 'corrupt', offset: at, reason: 'damaged record header' } }
    }
    if (end > bytes.byteLength) return { records, end: { kind: 'torn', offset: at } }
    const payload = bytes.subarray(at + RECORD_HEADER_BYTES, end)
    const record = crc32(payload) === crc ? decodePayload(payload) : null
    if (record === null) {
      // A bad record that is the file's last is a write cut short (records are written and
      // synced in order); one followed by more data means acknowledged data was damaged.
      return { records, end: end === bytes.byteLength ? { kind: 'torn', offset: at } : { kind: 'corrupt', offset: at, reason: 'checksum mismatch' } }
    }
    records.push(record)
    at = end
  }
  return { records, end: { kind: 'clean' } }
}
