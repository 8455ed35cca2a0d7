// Wire format of commands: msgpack positional arrays, one canonical encoding per
// command (defaults are written out), so equal commands give equal bytes and a
// request's fingerprint is a hash of its encoding.
//
//   command  [version, origin, requestId, asLeader, request] + [base] when set
//   put      ['put', key, value, lease, ifAbsent, prevKv] + [[lock, token]] when fenced
//   delete   ['delete', key, prevKv]
//   prefix   ['deletePrefix', prefix, prevKv]
//   txn      ['txn', [compare...], [op...], [op...]]
//   compare  ['value', key, op, bytes] | [numericTarget, key, op, n] | ['exists', key, bool]
//   compact  ['compact', revision]
//   grant    ['leaseGrant', id, ttlMs]
//   revoke   ['leaseRevoke', id]
//
// Decoding is total (never throws): the bytes come from the log and, through
// it, from any peer. Unknown fields are refused rather than ignored: a replica
// that ignored a field a newer proposer relied on would silently diverge.

import type { Command, Compare, CompareOp, NumericTarget, Request, TxnOp } from './commands.ts'
import { fnv1a64 } from './hash.ts'
import { COMMAND_FORMAT_VERSION, COMMAND_MAX_BYTES } from './limits.ts'
import { assertNever, commandError, type CommandError } from './results.ts'
import { validateCommand } from './validate.ts'
import { bin, bool, decodeWire, encodeWire, list, str, tuple, uint } from './wire.ts'

/** Thrown by encodeCommand only: encoding an invalid command is a bug in the caller, who should validate first. */
export class CommandCodecError extends Error {
  override name = 'CommandCodecError'
}

/** Outcome of decodeCommand. */
export type DecodeCommandResult = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly error: CommandError }

function opToWire(op: TxnOp): unknown[] {
  switch (op.type) {
    case 'put':
      // The fence is appended only when present: unfenced puts keep their bytes (and old entries decode).
      return op.fence === undefined
        ? ['put', op.key, op.value, op.lease ?? 0, op.ifAbsent === true, op.prevKv === true]
        : ['put', op.key, op.value, op.lease ?? 0, op.ifAbsent === true, op.prevKv === true, [op.fence.lock, op.fence.token]]
    case 'delete':
      return ['delete', op.key, op.prevKv === true]
    case 'deletePrefix':
      return ['deletePrefix', op.prefix, op.prevKv === true]
    default:
      return assertNever(op)
  }
}

function compareToWire(c: Compare): unknown[] {
  switch (c.target) {
    case 'value':
      return ['value', c.key, c.op, c.value]
    case 'version':
    case 'createRevision':
    case 'modRevision':
    case 'lease':
      return [c.target, c.key, c.op, c.value]
    case 'exists':
      return ['exists', c.key, c.exists]
    default:
      return assertNever(c)
  }
}

function requestToWire(r: Request): unknown[] {
  switch (r.type) {
    case 'put':
    case 'delete':
    case 'deletePrefix':
      return opToWire(r)
    case 'txn':
      return ['txn', r.compare.map(compareToWire), r.success.map(opToWire), r.failure.map(opToWire)]
    case 'compact':
      return ['compact', r.revision]
    case 'leaseGrant':
      return ['leaseGrant', r.id, r.ttlMs]
    case 'leaseRevoke':
      return ['leaseRevoke', r.id]
    default:
      return assertNever(r)
  }
}

function commandToWire(cmd: Command): unknown[] {
  const wire = [COMMAND_FORMAT_VERSION, cmd.origin, cmd.requestId, cmd.asLeader === true, requestToWire(cmd.request)]
  // Appended only when present, so entries from before `base` keep their bytes and decode.
  return cmd.base === undefined ? wire : [...wire, cmd.base]
}

/** Encodes a command for a Raft entry; throws CommandCodecError if it is invalid (validate first). */
export function encodeCommand(cmd: Command): Uint8Array {
  const error = validateCommand(cmd)
  if (error) throw new CommandCodecError(`${error.code}: ${error.message}`)
  return encodeWire(commandToWire(cmd))
}

/**
 * Identity of a command for dedup: a hash of its canonical encoding, so a
 * requestId reused with a different payload, origin or asLeader is detected.
 */
export function commandFingerprint(cmd: Command): string {
  return fnv1a64(encodeWire(commandToWire(cmd)))
}

const COMPARE_OPS: readonly CompareOp[] = ['=', '!=', '<', '>']
const NUMERIC_TARGETS: readonly NumericTarget[] = ['version', 'createRevision', 'modRevision', 'lease']

function compareOp(value: unknown): CompareOp | undefined {
  return COMPARE_OPS.find((op) => op === value)
}

function opFromWire(value: unknown): TxnOp | undefined {
  const parts = list(value)
  switch (parts?.[0]) {
    case 'put': {
      const t = tuple(value, 6) ?? tuple(value, 7)
      const key = str(t?.[1])
      const bytes = bin(t?.[2])
      const lease = uint(t?.[3])
      const ifAbsent = bool(t?.[4])
      const prevKv = bool(t?.[5])
      if (key === undefined || bytes === undefined || lease === undefined || ifAbsent === undefined || prevKv === undefined) return undefined
      let fence: { lock: string; token: number } | undefined
      if (t?.length === 7) {
        const f = tuple(t[6], 2)
        const lock = str(f?.[0])
        const token = uint(f?.[1])
        if (lock === undefined || token === undefined) return undefined
        fence = { lock, token }
      }
      return {
        type: 'put', key, value: bytes,
        ...(lease !== 0 ? { lease } : {}),
        ...(ifAbsent ? { ifAbsent } : {}),
        ...(prevKv ? { prevKv } : {}),
        ...(fence !== undefined ? { fence } : {}),
      }
    }
    case 'delete': {
      const t = tuple(value, 3)
      const key = str(t?.[1])
      const prevKv = bool(t?.[2])
      if (key === undefined || prevKv === undefined) return undefined
      return { type: 'delete', key, ...(prevKv ? { prevKv } : {}) }
    }
    case 'deletePrefix': {
      const t = tuple(value, 3)
      const prefix = str(t?.[1])
      const prevKv = bool(t?.[2])
      if (prefix === undefined || prevKv === undefined) return undefined
      return { type: 'deletePrefix', prefix, ...(prevKv ? { prevKv } : {}) }
    }
    default:
      return undefined
  }
}

function compareFromWire(value: unknown): Compare | undefined {
  const parts = list(value)
  const target = parts?.[0]
  if (target === 'exists') {
    const t = tuple(value, 3)
    const key = str(t?.[1])
    const exists = bool(t?.[2])
    return key === undefined || exists === undefined ? undefined : { target, key, exists }
  }
  const t = tuple(value, 4)
  const key = str(t?.[1])
  const op = compareOp(t?.[2])
  if (key === undefined || op === undefined) return undefined
  if (target === 'value') {
    const bytes = bin(t?.[3])
    return bytes === undefined ? undefined : { target, key, op, value: bytes }
  }
  const numeric = NUMERIC_TARGETS.find((n) => n === target)
  const n = uint(t?.[3])
  return numeric === undefined || n === undefined ? undefined : { target: numeric, key, op, value: n }
}

function listFromWire<T>(value: unknown, read: (item: unknown) => T | undefined): T[] | undefined {
  const items = list(value)
  if (!items) return undefined
  const out: T[] = []
  for (const item of items) {
    const parsed = read(item)
    if (parsed === undefined) return undefined
    out.push(parsed)
  }
  return out
}

function requestFromWire(value: unknown): Request | undefined {
  const parts = list(value)
  switch (parts?.[0]) {
    case 'put':
    case 'delete':
    case 'deletePrefix':
      return opFromWire(value)
    case 'txn': {
      const t = tuple(value, 4)
      const compare = listFromWire(t?.[1], compareFromWire)
      const success = listFromWire(t?.[2], opFromWire)
      const failure = listFromWire(t?.[3], opFromWire)
      return compare && success && failure ? { type: 'txn', compare, success, failure } : undefined
    }
    case 'compact': {
      const revision = uint(tuple(value, 2)?.[1])
      return revision === undefined ? undefined : { type: 'compact', revision }
    }
    case 'leaseGrant': {
      const t = tuple(value, 3)
      const id = uint(t?.[1])
      const ttlMs = uint(t?.[2])
      return id === undefined || ttlMs === undefined ? undefined : { type: 'leaseGrant', id, ttlMs }
    }
    case 'leaseRevoke': {
      const id = uint(tuple(value, 2)?.[1])
      return id === undefined ? undefined : { type: 'leaseRevoke', id }
    }
    default:
      return undefined
  }
}

/**
 * Decodes and validates an entry payload. Never throws; on success the command
 * passes validateCommand and its byte fields are copies (not views of `bytes`).
 */
export function decodeCommand(bytes: Uint8Array): DecodeCommandResult {
  if (!(bytes instanceof Uint8Array)) return { ok: false, error: commandError('malformed-command', 'not bytes') }
  if (bytes.length > COMMAND_MAX_BYTES) {
    return { ok: false, error: commandError('command-too-large', `command is ${bytes.length} bytes, more than ${COMMAND_MAX_BYTES}`) }
  }
  const decoded = decodeWire(bytes)
  if (!decoded.ok) return { ok: false, error: commandError('malformed-command', `not msgpack: ${decoded.error}`) }
  const t = tuple(decoded.value, 5) ?? tuple(decoded.value, 6)
  if (!t) return { ok: false, error: commandError('malformed-command', 'not a command tuple') }
  if (t[0] !== COMMAND_FORMAT_VERSION) return { ok: false, error: commandError('malformed-command', `unknown command format ${String(t[0])}`) }
  const origin = str(t[1])
  const requestId = str(t[2])
  const asLeader = bool(t[3])
  const request = requestFromWire(t[4])
  const base = t.length === 6 ? uint(t[5]) : null
  if (origin === undefined || requestId === undefined || asLeader === undefined || request === undefined || base === undefined) {
    return { ok: false, error: commandError('malformed-command', 'a command field has the wrong shape') }
  }
  const command: Command = { origin, requestId, ...(asLeader ? { asLeader } : {}), request, ...(base === null ? {} : { base }) }
  const error = validateCommand(command)
  return error ? { ok: false, error } : { ok: true, command }
}
