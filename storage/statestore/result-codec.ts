// Encoding of apply results, for the dedup window: a retried request gets the
// very result the first apply produced, and the window travels in snapshots,
// so results need a canonical, validated byte form.
//
//   failure       ['error', code, message]
//   put           ['put', revision, prevKv|null]
//   delete        ['delete', revision, deleted, prevKv|null]
//   deletePrefix  ['deletePrefix', revision, deleted, [kv...]|null]
//   txn           ['txn', revision, succeeded, [opResponse...]]   opResponse: as above without revision
//   compact       ['compact', revision, compactRevision]
//   leaseGrant    ['leaseGrant', revision, id, ttlMs]
//   leaseRevoke   ['leaseRevoke', revision, id, deleted]

import type { KeyValue } from './kv.ts'
import { assertNever, type ApplyErrorCode, type ApplyResult, type OpResponse, type Response } from './results.ts'
import { bool, decodeWire, encodeWire, kvFromWire, kvToWire, list, optionalKvFromWire, str, tuple, uint } from './wire.ts'

const ERROR_CODES: ReadonlySet<string> = new Set<ApplyErrorCode>([
  'malformed-command', 'invalid-origin', 'invalid-request-id', 'key-invalid', 'key-too-long', 'value-too-large',
  'command-too-large', 'txn-too-many-ops', 'txn-duplicate-key', 'ttl-out-of-range', 'lease-id-invalid',
  'revision-invalid', 'permission-denied', 'invalid-record', 'lease-not-found', 'lease-exists', 'too-many-leases',
  'too-many-keys', 'key-exists', 'compacted', 'future-revision', 'request-id-conflict', 'fence-rejected', 'outcome-unknown',
])

function isErrorCode(value: unknown): value is ApplyErrorCode {
  return typeof value === 'string' && ERROR_CODES.has(value)
}

function opBody(r: OpResponse): unknown[] {
  switch (r.type) {
    case 'put':
      return [r.prevKv ? kvToWire(r.prevKv) : null]
    case 'delete':
      return [r.deleted, r.prevKv ? kvToWire(r.prevKv) : null]
    case 'deletePrefix':
      return [r.deleted, r.prevKvs ? r.prevKvs.map(kvToWire) : null]
    default:
      return assertNever(r)
  }
}

function responseToWire(r: Response): unknown[] {
  switch (r.type) {
    case 'put':
    case 'delete':
    case 'deletePrefix':
      return [r.type, r.revision, ...opBody(r)]
    case 'txn':
      return ['txn', r.revision, r.succeeded, r.responses.map((op) => [op.type, ...opBody(op)])]
    case 'compact':
      return ['compact', r.revision, r.compactRevision]
    case 'leaseGrant':
      return ['leaseGrant', r.revision, r.id, r.ttlMs]
    case 'leaseRevoke':
      return ['leaseRevoke', r.revision, r.id, r.deleted]
    default:
      return assertNever(r)
  }
}

/** Encodes a result (its `duplicate` flag is not stored: replays set it). */
export function encodeResult(result: ApplyResult): Uint8Array {
  return encodeWire(result.ok ? responseToWire(result.response) : ['error', result.code, result.message])
}

// Reads an op response body starting at parts[first].
function opFromParts(type: unknown, parts: readonly unknown[], first: number): OpResponse | undefined {
  switch (type) {
    case 'put': {
      if (parts.length !== first + 1) return undefined
      const prev = optionalKvFromWire(parts[first])
      if (!prev) return undefined
      return prev.kv ? { type: 'put', prevKv: prev.kv } : { type: 'put' }
    }
    case 'delete': {
      if (parts.length !== first + 2) return undefined
      const deleted = uint(parts[first])
      const prev = optionalKvFromWire(parts[first + 1])
      if (deleted === undefined || !prev) return undefined
      return prev.kv ? { type: 'delete', deleted, prevKv: prev.kv } : { type: 'delete', deleted }
    }
    case 'deletePrefix': {
      if (parts.length !== first + 2) return undefined
      const deleted = uint(parts[first])
      if (deleted === undefined) return undefined
      if (parts[first + 1] === null) return { type: 'deletePrefix', deleted }
      const items = list(parts[first + 1])
      if (!items) return undefined
      const prevKvs: KeyValue[] = []
      for (const item of items) {
        const kv = kvFromWire(item)
        if (!kv) return undefined
        prevKvs.push(kv)
      }
      return { type: 'deletePrefix', deleted, prevKvs }
    }
    default:
      return undefined
  }
}

function responseFromWire(parts: readonly unknown[]): Response | undefined {
  const type = parts[0]
  const revision = uint(parts[1])
  if (revision === undefined) return undefined
  switch (type) {
    case 'put':
    case 'delete':
    case 'deletePrefix': {
      const op = opFromParts(type, parts, 2)
      return op ? { ...op, revision } : undefined
    }
    case 'txn': {
      if (parts.length !== 4) return undefined
      const succeeded = bool(parts[2])
      const items = list(parts[3])
      if (succeeded === undefined || !items) return undefined
      const responses: OpResponse[] = []
      for (const item of items) {
        const op = list(item)
        const parsed = op ? opFromParts(op[0], op, 1) : undefined
        if (!parsed) return undefined
        responses.push(parsed)
      }
      return { type: 'txn', revision, succeeded, responses }
    }
    case 'compact': {
      const compactRevision = uint(tuple(parts, 3)?.[2])
      return compactRevision === undefined ? undefined : { type: 'compact', revision, compactRevision }
    }
    case 'leaseGrant': {
      const t = tuple(parts, 4)
      const id = uint(t?.[2])
      const ttlMs = uint(t?.[3])
      return id === undefined || ttlMs === undefined ? undefined : { type: 'leaseGrant', revision, id, ttlMs }
    }
    case 'leaseRevoke': {
      const t = tuple(parts, 4)
      const id = uint(t?.[2])
      const deleted = uint(t?.[3])
      return id === undefined || deleted === undefined ? undefined : { type: 'leaseRevoke', revision, id, deleted }
    }
    default:
      return undefined
  }
}

/** Decodes a stored result, marked as a duplicate; undefined when the bytes are not one (never throws). */
export function decodeResult(bytes: Uint8Array): ApplyResult | undefined {
  const decoded = decodeWire(bytes)
  if (!decoded.ok) return undefined
  const parts = list(decoded.value)
  if (!parts) return undefined
  if (parts[0] === 'error') {
    const t = tuple(parts, 3)
    const code = t?.[1]
    const message = str(t?.[2])
    return isErrorCode(code) && message !== undefined ? { ok: false, duplicate: true, code, message } : undefined
  }
  const response = responseFromWire(parts)
  return response ? { ok: true, duplicate: true, response } : undefined
}
