// Shared msgpack plumbing: a hardened decoder and total readers for decoded
// values. Every reader returns undefined on a mismatch instead of throwing,
// because the bytes come from the log, a snapshot or the network.

import { Decoder, Encoder } from '@msgpack/msgpack'
import type { KeyValue } from './kv.ts'
import { isNonNegativeSafeInteger } from './validate.ts'

const encoder = new Encoder()

/** Encodes a plain value (arrays, strings, numbers, booleans, null, Uint8Array) to msgpack. */
export function encodeWire(value: unknown): Uint8Array {
  return encoder.encode(value)
}

/**
 * Decodes msgpack, or returns an error string. Maps and extensions are refused
 * (our formats use neither, and msgpack's timestamp extension would build a
 * Date); no array can claim more elements than there are bytes, so a forged
 * length cannot make the decoder allocate more than the input.
 */
export function decodeWire(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; error: string } {
  const decoder = new Decoder({
    maxArrayLength: bytes.length,
    maxMapLength: 0,
    maxExtLength: 0,
    maxStrLength: bytes.length,
    maxBinLength: bytes.length,
  })
  try {
    return { ok: true, value: decoder.decode(bytes) }
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : 'undecodable' }
  }
}

/** The value as an array of exactly `length` elements, else undefined. */
export function tuple(value: unknown, length: number): readonly unknown[] | undefined {
  return Array.isArray(value) && value.length === length ? value : undefined
}

/** The value as an array, else undefined. */
export function list(value: unknown): readonly unknown[] | undefined {
  return Array.isArray(value) ? value : undefined
}

/** The value as a string, else undefined. */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

/** The value as a non-negative safe integer, else undefined. */
export function uint(value: unknown): number | undefined {
  return isNonNegativeSafeInteger(value) ? value : undefined
}

/** The value as a boolean, else undefined. */
export function bool(value: unknown): boolean | undefined {
  return typeof value === 'boolean' ? value : undefined
}

/** A copy of the value as bytes, else undefined (copied: decoded bins are views into the input). */
export function bin(value: unknown): Uint8Array | undefined {
  return value instanceof Uint8Array ? value.slice() : undefined
}

/** A KeyValue as a positional tuple. */
export function kvToWire(kv: KeyValue): unknown[] {
  return [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease]
}

/** Reads a KeyValue tuple (shape only; the caller checks semantics). */
export function kvFromWire(value: unknown): KeyValue | undefined {
  const t = tuple(value, 6)
  if (!t) return undefined
  const key = str(t[0])
  const bytes = bin(t[1])
  const createRevision = uint(t[2])
  const modRevision = uint(t[3])
  const version = uint(t[4])
  const lease = uint(t[5])
  if (key === undefined || bytes === undefined || createRevision === undefined || modRevision === undefined || version === undefined || lease === undefined) {
    return undefined
  }
  return { key, value: bytes, createRevision, modRevision, version, lease }
}

/** Reads an optional KeyValue (null on the wire means absent). */
export function optionalKvFromWire(value: unknown): { kv: KeyValue | null } | undefined {
  if (value === null) return { kv: null }
  const kv = kvFromWire(value)
  return kv ? { kv } : undefined
}
