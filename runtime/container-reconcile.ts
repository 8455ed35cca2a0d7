/**
 * The two decisions that keep container records true, pure so unit tests and the simulator
 * drive them without Docker or Raft:
 * - a host converges its own records (containers/<self>/…, hosts/<self>) on what its runtime
 *   reports: it writes only what differs, so a retry after a failed write or a leader change
 *   repeats nothing and loses nothing;
 * - the leader marks the containers of a host that stayed dead past the grace period `lost`,
 *   guarded by each record's mod revision so it never overwrites a newer write by the host.
 */
import {
  COMMAND_MAX_PAYLOAD_BYTES,
  CONTAINERS_PREFIX,
  TXN_MAX_OPS,
  containerKey,
  encodeRecord,
  hostKey,
  parseContainer,
  type Container,
  type Host,
  type KeyValue,
  type Request,
  type StateStore,
  type TxnOp,
} from '../storage/statestore/index.ts'

/**
 * HostSync's next write toward the truth (the daemon's node/host-sync.ts and the simulator's
 * nodes run it): the host record if it differs, and the container records once the runtime
 * has listed its containers (`containers` null before that: converging would delete every
 * record). One txn at a time, recomputed before each because the store moves while a write is
 * in flight; undefined when the records are the truth.
 */
export function nextHostSyncWrite(selfId: string, host: Host, containers: readonly Container[] | null, store: Pick<StateStore, 'get' | 'range'>): Request | undefined {
  const ops: TxnOp[] = []
  const value = encodeRecord(host)
  const stored = store.get(hostKey(selfId))
  if (stored === null || !sameBytes(stored.value, value)) ops.push({ type: 'put', key: hostKey(selfId), value })
  if (containers !== null) ops.push(...convergeOps(selfId, containers, store.range(`${CONTAINERS_PREFIX}${selfId}/`).kvs))
  return batchOps(ops, COMMAND_MAX_PAYLOAD_BYTES / 2)[0]
}

/** A graceful leave's write: this host's records go, as its containers leave with it; null when none are stored. */
export function removeHostRecords(selfId: string, store: Pick<StateStore, 'get' | 'range'>): Request | null {
  const prefix = `${CONTAINERS_PREFIX}${selfId}/`
  if (store.range(prefix).kvs.length === 0 && store.get(hostKey(selfId)) === null) return null
  return { type: 'txn', compare: [], success: [{ type: 'deletePrefix', prefix }, { type: 'delete', key: hostKey(selfId) }], failure: [] }
}

/** Whether `request` may write this host's own records (the converge loop must look again then). */
export function touchesHostRecords(selfId: string, request: Request): boolean {
  const prefix = `${CONTAINERS_PREFIX}${selfId}/`
  const host = hostKey(selfId)
  const op = (o: TxnOp): boolean =>
    o.type === 'deletePrefix' ? o.prefix.startsWith(prefix) || prefix.startsWith(o.prefix) || host.startsWith(o.prefix) : o.key.startsWith(prefix) || o.key === host
  switch (request.type) {
    case 'put':
    case 'delete':
    case 'deletePrefix':
      return op(request)
    case 'txn':
      return request.success.some(op) || request.failure.some(op)
    default:
      return false
  }
}

/** Writes that make the stored records under `containers/<hostId>/` equal `desired`. */
export function convergeOps(hostId: string, desired: readonly Container[], stored: readonly KeyValue[]): TxnOp[] {
  const want = new Map(desired.map((c) => [containerKey(hostId, c.id), encodeRecord(c)]))
  const ops: TxnOp[] = []
  const have = new Map(stored.map((kv) => [kv.key, kv.value]))
  for (const [key, value] of want) {
    const current = have.get(key)
    if (current === undefined || !sameBytes(current, value)) ops.push({ type: 'put', key, value })
  }
  for (const key of have.keys()) if (!want.has(key)) ops.push({ type: 'delete', key })
  return ops
}

/** Splits writes into txns the StateStore accepts (at most TXN_MAX_OPS each, and under `maxBytes`). */
export function batchOps(ops: readonly TxnOp[], maxBytes: number): Request[] {
  const out: Request[] = []
  let batch: TxnOp[] = []
  let bytes = 0
  for (const op of ops) {
    const size = op.type === 'put' ? op.key.length + op.value.byteLength : op.type === 'delete' ? op.key.length : op.prefix.length
    if (batch.length > 0 && (batch.length >= TXN_MAX_OPS || bytes + size > maxBytes)) {
      out.push({ type: 'txn', compare: [], success: batch, failure: [] })
      batch = []
      bytes = 0
    }
    batch.push(op)
    bytes += size
  }
  if (batch.length > 0) out.push({ type: 'txn', compare: [], success: batch, failure: [] })
  return out
}

/** What the leader knows of a host's liveness. */
export interface HostLiveness {
  state: 'alive' | 'suspect' | 'dead' | 'left'
  sinceMs: number
}

/**
 * Txns that mark `lost` every container whose host has been dead or gone (left, or no longer
 * known at all) for `graceMs`, each guarded by the record's mod revision. Records already lost
 * are left alone; hosts that are alive or suspect keep theirs.
 */
export function lostContainerTxns(nowMs: number, graceMs: number, hosts: ReadonlyMap<string, HostLiveness>, containers: readonly KeyValue[]): Request[] {
  const txns: Request[] = []
  for (const kv of containers) {
    const host = kv.key.slice(CONTAINERS_PREFIX.length).split('/')[0] ?? ''
    const liveness = hosts.get(host)
    if (liveness !== undefined && (liveness.state === 'alive' || liveness.state === 'suspect' || nowMs - liveness.sinceMs < graceMs)) continue
    const parsed = parseContainer(kv.value)
    if (!parsed.ok || parsed.record.state === 'lost') continue
    const lost: Container = { ...parsed.record, state: 'lost' }
    txns.push({
      type: 'txn',
      compare: [{ target: 'modRevision', key: kv.key, op: '=', value: kv.modRevision }],
      success: [{ type: 'put', key: kv.key, value: encodeRecord(lost) }],
      failure: [],
    })
  }
  return txns
}

/** Byte-wise equality of two records. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}
