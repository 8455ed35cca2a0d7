// What a client reaches on a node: the daemon's API over its Unix socket, as
// node/kv-service.ts serves it. Writes are commands proposed through Raft and
// answered once applied on that node; plain reads come from its replica;
// consistent reads wait for a ReadIndex confirmation first. Answers travel
// back after a small local latency, never inside the node's own processing.

import { encodeCommand, lockStatus, type LockStatus, type Request } from '../storage/statestore/index.ts'
import type { SimCluster } from './cluster.ts'
import { proposalKey, type ProposalOutcome } from './node.ts'

/** The bucket user keys live in (kv-service KV_PREFIX). */
export const KV_PREFIX = 'kv/'
/** One way of a client's local call to its node (µs). */
export const CLIENT_RPC_US = 50

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/** Outcome of a read. */
export type ReadOutcome = { readonly ok: true; readonly value: string | null } | { readonly ok: false }

/** The client side of every node's API. */
export class ClientApi {
  private readonly cluster: SimCluster

  constructor(cluster: SimCluster) {
    this.cluster = cluster
  }

  /** Proposes `request` through `nodeId` as that node's command with `requestId` (kv-service write). */
  write(nodeId: string, requestId: string, request: Request, onDone: (outcome: ProposalOutcome) => void): void {
    this.call(() => {
      const node = this.cluster.node(nodeId)
      // As KvService.write: the command is made (its base read) when the call reaches the node.
      const base = node.commandBase()
      const data = encodeCommand({ origin: nodeId, requestId, request, ...(base === undefined ? {} : { base }) })
      node.propose(data, proposalKey(nodeId, requestId), (o) => this.answer(() => onDone(o)))
    })
  }

  /** Grants lease `leaseId` through `nodeId`, which then holds and renews it (Sessions.grant). */
  grantLease(nodeId: string, requestId: string, leaseId: number, ttlMs: number, onDone: (outcome: ProposalOutcome) => void): void {
    this.call(() => {
      const node = this.cluster.node(nodeId)
      const base = node.commandBase()
      const data = encodeCommand({ origin: nodeId, requestId, request: { type: 'leaseGrant', id: leaseId, ttlMs }, ...(base === undefined ? {} : { base }) })
      node.grantLease(leaseId, ttlMs, data, proposalKey(nodeId, requestId), (o) => this.answer(() => onDone(o)))
    })
  }

  /** Releases lease `leaseId` held by `nodeId` (Sessions.release): it stops renewing it, then the revoke is proposed. */
  releaseLease(nodeId: string, requestId: string, leaseId: number, onDone: (outcome: ProposalOutcome) => void): void {
    this.call(() => this.cluster.node(nodeId).releaseLease(leaseId))
    this.write(nodeId, requestId, { type: 'leaseRevoke', id: leaseId }, onDone)
  }

  /** Reads user key `key` from `nodeId`'s replica; `consistent` confirms with the leader first (kv-service get). */
  read(nodeId: string, key: string, consistent: boolean, onDone: (outcome: ReadOutcome) => void): void {
    this.call(() => {
      const node = this.cluster.node(nodeId)
      const serve = (): void => {
        const kv = node.store.get(KV_PREFIX + key)
        const value = kv === null ? null : fromUtf8.decode(kv.value)
        this.answer(() => onDone({ ok: true, value }))
      }
      if (!node.alive) return this.answer(() => onDone({ ok: false }))
      if (!consistent) {
        // A paused node answers only once it runs again.
        if (node.state === 'up') serve()
        else this.whenRunning(nodeId, serve)
        return
      }
      node.linearizableRead((ok) => (ok ? serve() : this.answer(() => onDone({ ok: false }))))
    })
  }

  /** Renews a lease owned by `nodeId` through it. */
  keepAlive(nodeId: string, leaseId: number, onDone: (ok: boolean) => void): void {
    this.call(() => this.cluster.node(nodeId).keepAlive(leaseId, (ok) => this.answer(() => onDone(ok))))
  }

  /** A number that changes whenever `nodeId`'s replica may have changed (applied index, life), so pollers can skip re-reading. */
  replicaVersion(nodeId: string): number {
    const node = this.cluster.node(nodeId)
    return node.state === 'up' ? node.generation * 2 ** 32 + node.appliedIndex : -1
  }

  /** Where `leaseId` stands in lock `name` on `nodeId`'s replica; null when the node does not answer. */
  lockStatus(nodeId: string, name: string, leaseId: number): LockStatus | null {
    const node = this.cluster.node(nodeId)
    if (node.state !== 'up') return null
    return lockStatus(node.store, name, leaseId)
  }

  /** The bytes of a user value. */
  static encodeValue(value: string): Uint8Array {
    return utf8.encode(value)
  }

  private call(fn: () => void): void {
    this.cluster.scheduler.after(CLIENT_RPC_US, fn)
  }

  private answer(fn: () => void): void {
    this.cluster.scheduler.after(CLIENT_RPC_US, fn)
  }

  /** Runs `fn` once `nodeId` is up again (polling each ms), or never if it goes down. */
  private whenRunning(nodeId: string, fn: () => void): void {
    const node = this.cluster.node(nodeId)
    const gen = node.generation
    const poll = (): void => {
      if (node.generation !== gen || !node.alive) return
      if (node.state === 'up') fn()
      else this.cluster.scheduler.after(1000, poll)
    }
    this.cluster.scheduler.after(1000, poll)
  }
}
