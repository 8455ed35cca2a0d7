// Stateless validation of commands: shapes, limits and txn key rules. The same
// checks run in decodeCommand (bytes from the log), in StateStore.apply (objects
// from the simulator) and in the node layer before proposing, so a bad request
// is refused early with the same code a replica would give.

import type { Command, Compare, Fence, Request, TxnOp } from './commands.ts'
import { isValidLockName } from './locks.ts'
import { utf8ByteLength } from './keys.ts'
import {
  COMMAND_MAX_PAYLOAD_BYTES, KEY_MAX_BYTES, LEASE_ID_MAX, LEASE_TTL_MAX_MS, LEASE_TTL_MIN_MS,
  ORIGIN_MAX_CHARS, REQUEST_ID_MAX_CHARS, TXN_MAX_OPS, VALUE_MAX_BYTES,
} from './limits.ts'
import { assertNever, commandError, type CommandError } from './results.ts'

const ORIGIN_PATTERN = /^[A-Za-z0-9._-]+$/
const REQUEST_ID_PATTERN = /^[\x21-\x7e]+$/

/** Whether `value` is an integer in 0..2^53-1. */
export function isNonNegativeSafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** Whether `origin` is a valid peer id (it doubles as a key segment in hosts/ and containers/). */
export function isValidOrigin(origin: unknown): origin is string {
  return typeof origin === 'string' && origin.length >= 1 && origin.length <= ORIGIN_MAX_CHARS && ORIGIN_PATTERN.test(origin)
}

/** Whether `requestId` is 1..REQUEST_ID_MAX_CHARS printable ASCII characters. */
export function isValidRequestId(requestId: unknown): requestId is string {
  return typeof requestId === 'string' && requestId.length >= 1 && requestId.length <= REQUEST_ID_MAX_CHARS && REQUEST_ID_PATTERN.test(requestId)
}

/** Whether `id` can name a lease. */
export function isValidLeaseId(id: unknown): id is number {
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 1 && id <= LEASE_ID_MAX
}

function pathError(text: string, what: 'key' | 'prefix'): CommandError | null {
  if (what === 'key' && text.length === 0) return commandError('key-invalid', 'key is empty')
  // Every UTF-16 unit is at least one UTF-8 byte: cheap reject before counting.
  if (text.length > KEY_MAX_BYTES || utf8ByteLength(text) > KEY_MAX_BYTES) {
    return commandError('key-too-long', `${what} is longer than ${KEY_MAX_BYTES} bytes`)
  }
  if (!text.isWellFormed()) return commandError('key-invalid', `${what} is not well-formed Unicode`)
  if (text.includes('\0')) return commandError('key-invalid', `${what} contains NUL`)
  if (text.startsWith('/')) return commandError('key-invalid', `${what} starts with '/'`)
  return null
}

/** Checks a key: 1..KEY_MAX_BYTES UTF-8 bytes, well-formed, no NUL, not starting with '/'. */
export function keyError(key: string): CommandError | null {
  return pathError(key, 'key')
}

/** Checks a deletePrefix/range prefix: as a key, but may be empty. */
export function prefixError(prefix: string): CommandError | null {
  return pathError(prefix, 'prefix')
}

function valueError(value: Uint8Array): CommandError | null {
  if (!(value instanceof Uint8Array)) return commandError('malformed-command', 'value is not bytes')
  if (value.length > VALUE_MAX_BYTES) return commandError('value-too-large', `value is larger than ${VALUE_MAX_BYTES} bytes`)
  return null
}

function flagError(flag: boolean | undefined, name: string): CommandError | null {
  return flag === undefined || typeof flag === 'boolean' ? null : commandError('malformed-command', `${name} is not a boolean`)
}

function opError(op: TxnOp): CommandError | null {
  switch (op.type) {
    case 'put': {
      const lease = op.lease
      if (lease !== undefined && lease !== 0 && !isValidLeaseId(lease)) return commandError('lease-id-invalid', 'lease is not a positive safe integer')
      return keyError(op.key) ?? valueError(op.value) ?? flagError(op.ifAbsent, 'ifAbsent') ?? flagError(op.prevKv, 'prevKv') ?? fenceError(op.fence)
    }
    case 'delete':
      return keyError(op.key) ?? flagError(op.prevKv, 'prevKv')
    case 'deletePrefix':
      return prefixError(op.prefix) ?? flagError(op.prevKv, 'prevKv')
    default:
      return assertNever(op)
  }
}

function fenceError(fence: Fence | undefined): CommandError | null {
  if (fence === undefined) return null
  if (typeof fence !== 'object' || fence === null) return commandError('malformed-command', 'fence is not an object')
  if (typeof fence.lock !== 'string' || !isValidLockName(fence.lock)) return commandError('malformed-command', `fence lock ${JSON.stringify(fence.lock)} is not a lock name`)
  if (!Number.isSafeInteger(fence.token) || fence.token < 1) return commandError('revision-invalid', 'fence token is not a positive safe integer (use the SHOAL_LOCK_TOKEN the holder was given)')
  return null
}

const COMPARE_OPS: ReadonlySet<string> = new Set(['=', '!=', '<', '>'])

function compareError(compare: Compare): CommandError | null {
  const keyProblem = keyError(compare.key)
  if (keyProblem) return keyProblem
  switch (compare.target) {
    case 'value':
      if (!COMPARE_OPS.has(compare.op)) return commandError('malformed-command', 'unknown compare op')
      return valueError(compare.value)
    case 'version':
    case 'createRevision':
    case 'modRevision':
    case 'lease':
      if (!COMPARE_OPS.has(compare.op)) return commandError('malformed-command', 'unknown compare op')
      return isNonNegativeSafeInteger(compare.value) ? null : commandError('revision-invalid', `${compare.target} compare value is not a non-negative safe integer`)
    case 'exists':
      return typeof compare.exists === 'boolean' ? null : commandError('malformed-command', 'exists is not a boolean')
    default:
      return assertNever(compare)
  }
}

// etcd's checkIntervals, for prefixes instead of ranges: a branch may not put a
// key twice, nor put a key it also deletes; the outcome would depend on op order
// within one revision, which watchers cannot see.
function branchKeyError(ops: readonly TxnOp[]): CommandError | null {
  const puts = new Set<string>()
  const deletes = new Set<string>()
  const prefixes: string[] = []
  for (const op of ops) {
    switch (op.type) {
      case 'put':
        if (puts.has(op.key)) return commandError('txn-duplicate-key', `key ${JSON.stringify(op.key)} is put twice`)
        puts.add(op.key)
        break
      case 'delete':
        deletes.add(op.key)
        break
      case 'deletePrefix':
        prefixes.push(op.prefix)
        break
      default:
        return assertNever(op)
    }
  }
  for (const key of puts) {
    if (deletes.has(key) || prefixes.some((p) => key.startsWith(p))) {
      return commandError('txn-duplicate-key', `key ${JSON.stringify(key)} is both put and deleted`)
    }
  }
  return null
}

function listError(name: string, length: number): CommandError | null {
  return length > TXN_MAX_OPS ? commandError('txn-too-many-ops', `txn ${name} has ${length} entries, more than ${TXN_MAX_OPS}`) : null
}

function opPayloadBytes(op: TxnOp): number {
  switch (op.type) {
    case 'put':
      return utf8ByteLength(op.key) + op.value.length
    case 'delete':
      return utf8ByteLength(op.key)
    case 'deletePrefix':
      return utf8ByteLength(op.prefix)
    default:
      return assertNever(op)
  }
}

function comparePayloadBytes(compare: Compare): number {
  return utf8ByteLength(compare.key) + (compare.target === 'value' ? compare.value.length : 0)
}

function requestError(request: Request): CommandError | null {
  switch (request.type) {
    case 'put':
    case 'delete':
    case 'deletePrefix':
      return opError(request)
    case 'txn': {
      const sizes = listError('compare', request.compare.length) ?? listError('success', request.success.length) ?? listError('failure', request.failure.length)
      if (sizes) return sizes
      for (const c of request.compare) {
        const e = compareError(c)
        if (e) return e
      }
      for (const op of [...request.success, ...request.failure]) {
        const e = opError(op)
        if (e) return e
      }
      const payload = request.compare.reduce((n, c) => n + comparePayloadBytes(c), 0) +
        request.success.reduce((n, op) => n + opPayloadBytes(op), 0) +
        request.failure.reduce((n, op) => n + opPayloadBytes(op), 0)
      if (payload > COMMAND_MAX_PAYLOAD_BYTES) return commandError('command-too-large', `txn carries ${payload} bytes, more than ${COMMAND_MAX_PAYLOAD_BYTES}`)
      return branchKeyError(request.success) ?? branchKeyError(request.failure)
    }
    case 'compact':
      return isNonNegativeSafeInteger(request.revision) ? null : commandError('revision-invalid', 'compact revision is not a non-negative safe integer')
    case 'leaseGrant':
      if (!isValidLeaseId(request.id)) return commandError('lease-id-invalid', 'lease id is not a positive safe integer')
      if (typeof request.ttlMs !== 'number' || !Number.isSafeInteger(request.ttlMs) || request.ttlMs < LEASE_TTL_MIN_MS || request.ttlMs > LEASE_TTL_MAX_MS) {
        return commandError('ttl-out-of-range', `ttl must be ${LEASE_TTL_MIN_MS}..${LEASE_TTL_MAX_MS} ms`)
      }
      return null
    case 'leaseRevoke':
      return isValidLeaseId(request.id) ? null : commandError('lease-id-invalid', 'lease id is not a positive safe integer')
    default:
      return assertNever(request)
  }
}

/** Checks origin and requestId, the part of a command needed before dedup. */
export function envelopeError(cmd: Command): CommandError | null {
  if (!isValidOrigin(cmd.origin)) return commandError('invalid-origin', 'origin is not a valid peer id')
  if (!isValidRequestId(cmd.requestId)) return commandError('invalid-request-id', `requestId must be 1..${REQUEST_ID_MAX_CHARS} printable ASCII characters`)
  if (cmd.asLeader !== undefined && typeof cmd.asLeader !== 'boolean') return commandError('malformed-command', 'asLeader is not a boolean')
  if (cmd.base !== undefined && (typeof cmd.base !== 'number' || !Number.isSafeInteger(cmd.base) || cmd.base < 0)) return commandError('malformed-command', 'base is not a log index')
  return null
}

/**
 * Every stateless check of a command except ownership and record contents
 * (those are in records.ts, checkAccess); null when it is valid.
 */
export function validateCommand(cmd: Command): CommandError | null {
  return envelopeError(cmd) ?? requestError(cmd.request)
}
