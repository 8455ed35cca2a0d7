// The history of what clients did and heard, Jepsen-style: every operation is
// invoked at one instant and completes at a later one with `ok`, `fail`
// (certainly had no effect) or `unknown` (may or may not have taken effect:
// a timeout, a crash with the request in flight). Checkers read only this,
// never the nodes' internals, except the durability checker, which also
// needs where an acknowledged write was applied.

/** KV operations a client issues. 'get' reads the node's replica; 'cget' is a linearizable read (ReadIndex). */
export type KvKind = 'put' | 'get' | 'cget' | 'cas' | 'delete'

/** Where an operation stands. */
export type Outcome = 'pending' | 'ok' | 'fail' | 'unknown'

/** One KV operation. */
export interface KvOp {
  readonly id: number
  readonly client: string
  readonly node: string
  readonly kind: KvKind
  /** The user key (without the kv/ bucket prefix). */
  readonly key: string
  /** put: the value written; cas: the value swapped in. */
  readonly value: string | null
  /** cas: the value compared against. */
  readonly expected: string | null
  readonly invokeUs: number
  /** When the client heard back; Infinity while pending or when unknown. */
  returnUs: number
  outcome: Outcome
  /** get/cget: the value read (null: no such key). */
  read: string | null
  /** cas: whether the swap happened. */
  succeeded: boolean | null
  /** delete: keys deleted (0 or 1). */
  deleted: number | null
  /** Writes: the log index at which the answering node applied it. */
  index: number | null
}

/** One span during which a client believed it held a lock. */
export interface LockHold {
  readonly client: string
  readonly node: string
  readonly lock: string
  readonly leaseId: number
  /** The fencing token: the holder key's create revision. */
  readonly token: number
  readonly fromUs: number
  toUs: number
  endedBy: string
}

/** Fields of an operation known when it is invoked. */
export type Invocation = Pick<KvOp, 'client' | 'node' | 'kind' | 'key' | 'value' | 'expected' | 'invokeUs'>

/** Everything clients did in one run. */
export class History {
  /** Every KV operation, in invocation order. */
  readonly ops: KvOp[] = []
  /** Every lock hold, in start order. */
  readonly holds: LockHold[] = []

  /** Records an invocation; complete it by setting outcome and returnUs. */
  invoke(inv: Invocation): KvOp {
    const op: KvOp = { ...inv, id: this.ops.length, returnUs: Infinity, outcome: 'pending', read: null, succeeded: null, deleted: null, index: null }
    this.ops.push(op)
    return op
  }

  /** Records the start of a lock hold. */
  hold(h: Omit<LockHold, 'toUs' | 'endedBy'>): LockHold {
    const hold: LockHold = { ...h, toUs: Infinity, endedBy: 'run ended' }
    this.holds.push(hold)
    return hold
  }

  /** Operations still pending (clients that never heard back count as unknown). */
  pending(): KvOp[] {
    return this.ops.filter((op) => op.outcome === 'pending')
  }
}

/** "put k1=c1.3"-style text of an operation, for trace lines and reports. */
export function describeOp(op: KvOp): string {
  switch (op.kind) {
    case 'put':
      return `put ${op.key}=${op.value}`
    case 'get':
    case 'cget':
      return `${op.kind} ${op.key}${op.outcome === 'ok' ? ` -> ${op.read ?? 'absent'}` : ''}`
    case 'cas':
      return `cas ${op.key} ${op.expected}->${op.value}${op.succeeded === null ? '' : op.succeeded ? ' (swapped)' : ' (no match)'}`
    case 'delete':
      return `delete ${op.key}${op.deleted === null ? '' : ` (${op.deleted} deleted)`}`
  }
}
