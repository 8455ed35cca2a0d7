/**
 * The scheduler's changes as StateStore transactions. Each transaction is guarded by the
 * modRevision of every key it writes, as read when the changes were decided: a change decided
 * on a state that moved on (a user's update, a host's report, an older leader's proposal
 * committing late) fails its compare and is decided again next round, never applied blindly.
 * Pure: the daemon's leader loop and the simulator propose exactly these.
 */
import { containerKey, encodeRecord, serviceKey, type Compare, type TxnOp, type TxnRequest } from '../../storage/statestore/index.ts'
import type { Change } from './reconcile.ts'
import { encodeServiceRecord } from './spec.ts'
import { decodeTask, encodeServiceStatus, encodeTask, serviceStatusKey } from './task.ts'

/** Most changes in one transaction: enough that a 1,000-replica create is a few proposals, small enough to stay far under the entry limit. */
export const CHANGES_PER_TXN = 64

/**
 * The txns for `changes` (in order), guarded by `revisions` (key → modRevision; absent = must not
 * exist). A task record that would not read back (a bug, or a clock before 1970) is never
 * written: every reader would skip it and the next round place its slot again, round after
 * round. Such a change is left out and handed to `invalid`.
 */
export function changeTxns(changes: readonly Change[], revisions: ReadonlyMap<string, number>, invalid: (change: Change, error: string) => void = () => undefined): TxnRequest[] {
  const txns: TxnRequest[] = []
  let compare: Compare[] = []
  let ops: TxnOp[] = []
  const written = new Set<string>()
  const flush = (): void => {
    if (ops.length === 0) return
    txns.push({ type: 'txn', compare, success: ops, failure: [] })
    compare = []
    ops = []
    written.clear()
  }
  const guard = (key: string): void => {
    compare.push({ target: 'modRevision', key, op: '=', value: revisions.get(key) ?? 0 })
  }
  for (const change of changes) {
    const error = taskError(change)
    if (error !== null) {
      invalid(change, error)
      continue
    }
    const batch = opsOf(change)
    // One txn may not write a key twice; a change that would is carried by the next one.
    if (batch.some((op) => written.has(op.key)) || ops.length + batch.length > CHANGES_PER_TXN) flush()
    for (const op of batch) {
      if (op.guarded) guard(op.key)
      written.add(op.key)
      ops.push(op.op)
    }
  }
  flush()
  return txns
}

/** Why the task record a change writes would not read back, or null. */
function taskError(change: Change): string | null {
  if (change.kind !== 'place' && change.kind !== 'migrate' && change.kind !== 'update' && change.kind !== 'retire') return null
  const read = decodeTask(encodeTask({ ...change.task, observed: null }), change.key)
  return read.ok ? null : `task ${change.key}: ${read.error}`
}

interface GuardedOp {
  readonly key: string
  readonly op: TxnOp
  /** Whether the write depends on the key's value as read (a container marked lost does not). */
  readonly guarded: boolean
}

function opsOf(change: Change): GuardedOp[] {
  switch (change.kind) {
    case 'place':
    case 'migrate':
    case 'update':
    case 'retire':
      return [{ key: change.key, op: { type: 'put', key: change.key, value: encodeTask({ ...change.task, observed: null }) }, guarded: true }]
    case 'stop':
      return [{ key: change.key, op: { type: 'delete', key: change.key }, guarded: true }]
    case 'mark-lost': {
      const key = containerKey(change.container.host, change.container.id)
      return [{ key, op: { type: 'put', key, value: encodeRecord(change.container) }, guarded: false }]
    }
    case 'set-status': {
      const key = serviceStatusKey(change.status.service)
      return [{ key, op: { type: 'put', key, value: encodeServiceStatus(change.status) }, guarded: true }]
    }
    case 'rollback': {
      const key = serviceKey(change.service)
      return [{ key, op: { type: 'put', key, value: encodeServiceRecord(change.record) }, guarded: true }]
    }
  }
}
