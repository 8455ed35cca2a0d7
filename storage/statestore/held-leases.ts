// The leases a peer holds for its clients, and when each is renewed: the peer's half of the
// session discipline (lease-holder.ts is one holder's deadline). Every held lease is renewed
// every TTL / LEASE_RENEWALS_PER_TTL, however many, in requests of at most
// LEASE_RENEW_BATCH_MAX; a lease the leader says is gone stops being held; a lease whose
// deadline passed without a confirmed renewal cannot be counted on.
//
// Pure: instants are milliseconds on the peer's monotonic clock, passed in. The daemon
// (node/sessions.ts) and the simulator's node run this same table.

import { LEASE_RENEW_BATCH_MAX, LeaseHolder, renewalBatches } from './lease-holder.ts'
import type { RenewReply } from './renewals.ts'

/** How often a peer looks for renewals due (and its leader for expired leases): the session timer. */
export const SESSION_TICK_MS = 250

interface Held {
  readonly ttlMs: number
  /** When a renewal was last sent for it. */
  lastSentMs: number
  readonly holder: LeaseHolder
}

/** A lease the leader refused to renew, and why. */
export interface DroppedLease {
  readonly id: number
  readonly code: 'lease-not-found' | 'lease-expired'
}

/** The held leases of one peer. */
export class HeldLeases {
  private readonly held = new Map<number, Held>()
  private readonly clockDriftMax: number
  private readonly batchMax: number

  constructor(options: { clockDriftMax: number; batchMax?: number }) {
    this.clockDriftMax = options.clockDriftMax
    this.batchMax = options.batchMax ?? LEASE_RENEW_BATCH_MAX
  }

  /** Leases held. */
  get size(): number {
    return this.held.size
  }

  /** Whether lease `id` is held here. */
  has(id: number): boolean {
    return this.held.has(id)
  }

  /** The TTL of held lease `id`, or null. */
  ttlOf(id: number): number | null {
    return this.held.get(id)?.ttlMs ?? null
  }

  /** Lease `id` was granted by a request sent at `sentMs`: it is held, counted on from then. */
  add(id: number, ttlMs: number, sentMs: number): void {
    const holder = new LeaseHolder({ ttlMs, clockDriftMax: this.clockDriftMax })
    holder.onConfirmed(sentMs)
    this.held.set(id, { ttlMs, lastSentMs: sentMs, holder })
  }

  /** Stops holding `id` (released, or gone); false when it was not held. */
  delete(id: number): boolean {
    return this.held.delete(id)
  }

  /** Leases whose renewal is due at `nowMs`, marked as sent, in requests of at most batchMax. */
  due(nowMs: number): number[][] {
    const due: number[] = []
    for (const [id, entry] of this.held) {
      if (nowMs - entry.lastSentMs >= entry.holder.renewIntervalMs) {
        entry.lastSentMs = nowMs
        due.push(id)
      }
    }
    return renewalBatches(due, this.batchMax)
  }

  /**
   * The leader answered a renewal sent at `sentMs`: renewed leases are counted on from then,
   * refused ones stop being held (returned, for the log). A failed request changes nothing:
   * the next one is due soon, and the deadline decides meanwhile.
   */
  onReply(sentMs: number, reply: RenewReply): DroppedLease[] {
    if (!reply.ok) return []
    for (const id of reply.renewed) this.held.get(id)?.holder.onConfirmed(sentMs)
    return reply.refused.filter((r) => this.held.delete(r.id))
  }

  /** Why this peer can no longer count on `id` at `nowMs`, or null while it can. */
  lostReason(id: number, nowMs: number): string | null {
    const entry = this.held.get(id)
    if (entry === undefined) return 'the session is gone (expired or revoked)'
    if (!entry.holder.holds(nowMs)) return `no renewal was confirmed by the leader within the session's ${entry.ttlMs / 1000} s TTL (is a quorum reachable?)`
    return null
  }
}
