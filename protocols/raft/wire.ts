// Raft messages on the wire: msgpack, one message per frame, and a total decoder
// that validates every field. A peer inside the cluster is authenticated but may
// still be buggy or of another version; a bad frame must be a counted rejection,
// never a crash or a half-built message reaching the core.

import { encode, decode } from '@msgpack/msgpack'
import type { Message, MessageType } from './messages.ts'
import type { ConfState, Entry, ProposedEntry, Snapshot } from './types.ts'

/** Largest frame accepted: bounds memory per stream; snapshots larger than this cannot be sent. */
export const RAFT_MAX_FRAME_BYTES = 128 * 1024 * 1024
/** Most entries in one append or proposal message. */
export const RAFT_MAX_ENTRIES_PER_MESSAGE = 65_536
const PEER_ID = /^[A-Za-z0-9]{1,128}$/

/** Decoding outcome: a valid message or the reason it is not one. */
export type WireResult = { ok: true; message: Message } | { ok: false; error: string }

/** Encodes a message for one frame. */
export function encodeMessage(message: Message): Uint8Array {
  return encode(message)
}

class Invalid extends Error {}

function rec(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) throw new Invalid(`${what} is not a map`)
  return v as Record<string, unknown>
}
function count(r: Record<string, unknown>, key: string): number {
  const v = r[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Invalid(`${key} is not a non-negative integer`)
  return v
}
function bool(r: Record<string, unknown>, key: string): boolean {
  const v = r[key]
  if (typeof v !== 'boolean') throw new Invalid(`${key} is not a boolean`)
  return v
}
function bytes(r: Record<string, unknown>, key: string): Uint8Array {
  const v = r[key]
  if (!(v instanceof Uint8Array)) throw new Invalid(`${key} is not bytes`)
  return v
}
function peer(r: Record<string, unknown>, key: string): string {
  const v = r[key]
  if (typeof v !== 'string' || !PEER_ID.test(v)) throw new Invalid(`${key} is not a peer id`)
  return v
}
function peers(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length > 4096 || !v.every((x) => typeof x === 'string' && PEER_ID.test(x))) throw new Invalid(`${what} is not a list of peer ids`)
  return v as string[]
}
function entryType(r: Record<string, unknown>): 'normal' | 'conf-change' {
  const t = r['type']
  if (t !== 'normal' && t !== 'conf-change') throw new Invalid('entry type is unknown')
  return t
}
function list(r: Record<string, unknown>, key: string): unknown[] {
  const v = r[key]
  if (!Array.isArray(v) || v.length > RAFT_MAX_ENTRIES_PER_MESSAGE) throw new Invalid(`${key} is not a bounded list`)
  return v
}
function entries(r: Record<string, unknown>): Entry[] {
  return list(r, 'entries').map((x, i) => {
    const e = rec(x, `entry ${i}`)
    return { index: count(e, 'index'), term: count(e, 'term'), type: entryType(e), data: bytes(e, 'data') }
  })
}
function proposed(r: Record<string, unknown>): ProposedEntry[] {
  return list(r, 'entries').map((x, i) => {
    const e = rec(x, `entry ${i}`)
    return { type: entryType(e), data: bytes(e, 'data') }
  })
}
function snapshot(v: unknown): Snapshot {
  const s = rec(v, 'snapshot')
  const meta = rec(s['metadata'], 'snapshot metadata')
  const cs = rec(meta['confState'], 'conf state')
  const confState: ConfState = { voters: peers(cs['voters'], 'voters'), learners: peers(cs['learners'], 'learners') }
  return { metadata: { index: count(meta, 'index'), term: count(meta, 'term'), confState }, data: bytes(s, 'data') }
}

function build(r: Record<string, unknown>): Message {
  const base = { from: peer(r, 'from'), to: peer(r, 'to'), term: count(r, 'term') }
  const type = r['type'] as MessageType
  switch (type) {
    case 'app':
      return { ...base, type, prevIndex: count(r, 'prevIndex'), prevTerm: count(r, 'prevTerm'), entries: entries(r), commit: count(r, 'commit') }
    case 'app-resp': {
      const m = { ...base, type, index: count(r, 'index'), reject: bool(r, 'reject'), rejectHint: count(r, 'rejectHint'), hintTerm: count(r, 'hintTerm') }
      // Optional: peers that predate it send no such key (and ignore it when we send it).
      return r['logLost'] === undefined || r['logLost'] === null ? m : { ...m, logLost: bool(r, 'logLost') }
    }
    case 'vote':
      return { ...base, type, lastIndex: count(r, 'lastIndex'), lastTerm: count(r, 'lastTerm'), transfer: bool(r, 'transfer') }
    case 'vote-resp':
    case 'pre-vote-resp':
      return { ...base, type, reject: bool(r, 'reject') }
    case 'pre-vote':
      return { ...base, type, lastIndex: count(r, 'lastIndex'), lastTerm: count(r, 'lastTerm') }
    case 'heartbeat':
      return { ...base, type, commit: count(r, 'commit'), readSeq: count(r, 'readSeq') }
    case 'heartbeat-resp':
      return { ...base, type, readSeq: count(r, 'readSeq') }
    case 'snap':
      return { ...base, type, snapshot: snapshot(r['snapshot']) }
    case 'timeout-now':
      return { ...base, type }
    case 'read-index':
      return { ...base, type, context: bytes(r, 'context') }
    case 'read-index-resp':
      return { ...base, type, index: count(r, 'index'), context: bytes(r, 'context') }
    case 'transfer-leader':
      return { ...base, type, transferee: peer(r, 'transferee') }
    case 'prop':
      return { ...base, type, entries: proposed(r) }
    default: {
      const unknown: never = type
      throw new Invalid(`unknown message type ${JSON.stringify(unknown)}`)
    }
  }
}

/** Decodes one frame; never throws. */
export function decodeMessage(frame: Uint8Array): WireResult {
  if (frame.byteLength > RAFT_MAX_FRAME_BYTES) return { ok: false, error: `frame of ${frame.byteLength} bytes is over the limit` }
  try {
    return { ok: true, message: build(rec(decode(frame), 'message')) }
  } catch (err) {
    return { ok: false, error: err instanceof Invalid ? err.message : `not msgpack: ${err instanceof Error ? err.message : String(err)}` }
  }
}
