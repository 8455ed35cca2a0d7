// Wire codec for SWIM messages: JSON in UTF-8, one message per frame.
//
// Pure (no `node:*`, no I/O): the failure detector core uses the same size
// helpers to keep every message it emits inside a frame, and the adapter runs
// `decodeSwimMessage` on every frame it receives. Decoding is total: any byte
// string yields a typed result, never an exception, because the bytes come from
// the network and a throw there would be a remote crash.

import type { MemberState, MemberUpdate, SwimMessage } from './failure-detector.ts'

/** Largest frame either side accepts; a sync carrying full state is split to fit. */
export const SWIM_MAX_FRAME_BYTES = 65536
/** Most updates (piggybacked or sync members) in one message. */
export const SWIM_MAX_UPDATES = 64
/** Largest `meta` (the opaque host record) in UTF-8 bytes. */
export const SWIM_MAX_META_BYTES = 2048
/** Peer ids are base58 libp2p ids in practice; 128 leaves room without allowing junk. */
export const SWIM_MAX_PEER_ID_CHARS = 128
export const SWIM_MAX_SEQ = 0xffff_ffff
/**
 * Bytes of a frame kept for everything except the updates list (type, seq,
 * target, brackets). The longest envelope, a ping-req with a 128-char target and
 * a 10-digit seq, is under 100 bytes; the rest is headroom.
 */
export const SWIM_ENVELOPE_RESERVE_BYTES = 512

const MEMBER_STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left']
const PEER_ID_PATTERN = /^[A-Za-z0-9]+$/

/** Thrown by `encodeSwimMessage` only: encoding something invalid is a bug in the caller. */
export class SwimCodecError extends Error {
  override name = 'SwimCodecError'
}

export type DecodeResult = { ok: true; message: SwimMessage } | { ok: false; error: string }

const utf8Encoder = new TextEncoder()
// fatal: malformed UTF-8 is rejected instead of silently becoming U+FFFD, so a
// corrupted frame cannot decode to a different but valid message.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/** UTF-8 length of a string without allocating; lone surrogates count 3 (TextEncoder writes U+FFFD). */
export function utf8ByteLength(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

export function isValidPeerId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= SWIM_MAX_PEER_ID_CHARS && PEER_ID_PATTERN.test(value)
}

export function isValidMeta(value: unknown): value is string {
  // Cheap reject first: every UTF-16 unit is at least one UTF-8 byte.
  return typeof value === 'string' && value.length <= SWIM_MAX_META_BYTES && utf8ByteLength(value) <= SWIM_MAX_META_BYTES
}

export function isValidIncarnation(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isValidSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= SWIM_MAX_SEQ
}

function isMemberState(value: unknown): value is MemberState {
  return typeof value === 'string' && (MEMBER_STATES as readonly string[]).includes(value)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function canonicalUpdate(u: MemberUpdate): MemberUpdate {
  return { peerId: u.peerId, incarnation: u.incarnation, state: u.state, meta: u.meta }
}

/**
 * Encoded size of one update inside a frame, plus the separating comma. The
 * core sums these to split piggybacks and syncs so no frame exceeds the limit.
 */
export function memberUpdateEncodedBytes(u: MemberUpdate): number {
  return utf8ByteLength(JSON.stringify(canonicalUpdate(u))) + 1
}

/** Validates one update; returns an error string or the canonical copy. */
export function validateMemberUpdate(value: unknown): MemberUpdate | string {
  if (!isRecord(value)) return 'update: expected object'
  const { peerId, incarnation, state, meta } = value
  if (!isValidPeerId(peerId)) return 'update.peerId: expected 1..128 chars of [A-Za-z0-9]'
  if (!isValidIncarnation(incarnation)) return 'update.incarnation: expected non-negative safe integer'
  if (!isMemberState(state)) return 'update.state: expected alive|suspect|dead|left'
  if (!isValidMeta(meta)) return `update.meta: expected string of at most ${SWIM_MAX_META_BYTES} UTF-8 bytes`
  // `+ 0` turns a JSON "-0" into 0, so a decoded message equals its re-encoding.
  return { peerId, incarnation: incarnation + 0, state, meta }
}

function validateUpdates(value: unknown, field: string): MemberUpdate[] | string {
  if (!Array.isArray(value)) return `${field}: expected array`
  if (value.length > SWIM_MAX_UPDATES) return `${field}: more than ${SWIM_MAX_UPDATES} entries`
  const updates: MemberUpdate[] = []
  for (const item of value as unknown[]) {
    const u = validateMemberUpdate(item)
    if (typeof u === 'string') return `${field}: ${u}`
    updates.push(u)
  }
  return updates
}

/**
 * Structural validation of a parsed value. Unknown extra keys are ignored (and
 * not copied): a newer peer may add fields during a rolling upgrade, and SWIM
 * must keep working across versions.
 */
export function validateSwimMessage(value: unknown): DecodeResult {
  if (!isRecord(value)) return { ok: false, error: 'message: expected object' }
  const type = value['type']
  switch (type) {
    case 'ping':
    case 'ping-req': {
      if (!isValidSeq(value['seq'])) return { ok: false, error: 'seq: expected uint32' }
      if (!isValidPeerId(value['target'])) return { ok: false, error: 'target: expected peer id' }
      const updates = validateUpdates(value['updates'], 'updates')
      if (typeof updates === 'string') return { ok: false, error: updates }
      return { ok: true, message: { type, seq: value['seq'] + 0, target: value['target'], updates } }
    }
    case 'ack':
    case 'nack': {
      if (!isValidSeq(value['seq'])) return { ok: false, error: 'seq: expected uint32' }
      const updates = validateUpdates(value['updates'], 'updates')
      if (typeof updates === 'string') return { ok: false, error: updates }
      return { ok: true, message: { type, seq: value['seq'] + 0, updates } }
    }
    case 'sync': {
      if (typeof value['reply'] !== 'boolean') return { ok: false, error: 'reply: expected boolean' }
      const members = validateUpdates(value['members'], 'members')
      if (typeof members === 'string') return { ok: false, error: members }
      return { ok: true, message: { type, reply: value['reply'], members } }
    }
    default:
      return { ok: false, error: 'type: expected ping|ping-req|ack|nack|sync' }
  }
}

/**
 * Encodes one message. Throws SwimCodecError when the message is invalid or does
 * not fit a frame: the core never produces such a message, so this is a bug to
 * surface, not a condition to handle.
 */
export function encodeSwimMessage(m: SwimMessage): Uint8Array {
  const checked = validateSwimMessage(m)
  if (!checked.ok) throw new SwimCodecError(`cannot encode invalid SWIM message: ${checked.error}`)
  const bytes = utf8Encoder.encode(JSON.stringify(checked.message))
  if (bytes.length > SWIM_MAX_FRAME_BYTES) {
    throw new SwimCodecError(`SWIM message of ${bytes.length} bytes exceeds ${SWIM_MAX_FRAME_BYTES}`)
  }
  return bytes
}

export function decodeSwimMessage(bytes: Uint8Array): DecodeResult {
  try {
    if (!(bytes instanceof Uint8Array)) return { ok: false, error: 'frame: expected bytes' }
    if (bytes.length === 0) return { ok: false, error: 'frame: empty' }
    if (bytes.length > SWIM_MAX_FRAME_BYTES) return { ok: false, error: `frame: larger than ${SWIM_MAX_FRAME_BYTES} bytes` }
    let text: string
    try {
      text = utf8Decoder.decode(bytes)
    } catch {
      return { ok: false, error: 'frame: invalid UTF-8' }
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return { ok: false, error: 'frame: invalid JSON' }
    }
    return validateSwimMessage(parsed)
  } catch {
    // Defence in depth: nothing above should throw, but a frame from the network
    // must never take the process down.
    return { ok: false, error: 'frame: undecodable' }
  }
}
