// Lease expiry, decided by the leader alone and carried out through the log.
//
// The state machine stores leases but never expires them: apply() has no
// clock, and replicas reading their own clocks would disagree. Instead every
// peer mirrors the applied leases here (grant/revoke as entries apply), and
// only the leader (after promote) answers keep-alives and reports expired
// leases, for which it proposes leaseRevoke with asLeader. Expiry is thus
// decided once, in log order, as etcd's lessor does.

import { LEASE_TTL_MAX_MS, LEASE_TTL_MIN_MS, STORE_MAX_LEASES } from './limits.ts'

/** How long the leader waits before proposing a revoke again for a lease still not revoked (etcd's expiredLeaseRetryInterval). */
export const LEASE_REVOKE_RETRY_MS = 3_000
/** Most expired leases reported per expired() call, bounding revoke proposals per tick (etcd's leaseRevokeRate). */
export const LEASE_EXPIRED_BATCH_MAX = 1_000

/** Outcome of keepAlive(). */
export type KeepAliveResult =
  | { readonly ok: true; readonly ttlMs: number; readonly expiresAtMs: number }
  /** not-leader: forward to the leader; lease-not-found: never granted or revoked; lease-expired: revocation is under way. */
  | { readonly ok: false; readonly code: 'not-leader' | 'lease-not-found' | 'lease-expired' }

interface ClockLease {
  readonly ttlMs: number
  expiresAtMs: number
  revokeProposedAtMs: number | null
}

/** Outcome of renewing a batch of leases for one owner (renewOwned). */
export interface RenewOutcome {
  /** Leases renewed for their full TTL from the renewal instant. */
  readonly renewed: number[]
  /** Leases refused: never granted, revoked, expired, or owned by another peer. */
  readonly refused: { readonly id: number; readonly code: 'lease-not-found' | 'lease-expired' }[]
}

/**
 * Leader side of a renewal request from peer `from`, after the leader confirmed
 * its leadership for this request (ReadIndex, as etcd's LeaseRenew does with
 * ensureLeadership): renews each lease `from` owns. `ownerOf` reads the store.
 * Returns null when this clock is not primary (not leading, or not yet promoted):
 * the caller answers "not leader" and the holder retries.
 */
export function renewOwned(clock: LeaseClock, ownerOf: (id: number) => string | undefined, from: string, ids: readonly number[], nowMs: number): RenewOutcome | null {
  if (!clock.isPrimary) return null
  const renewed: number[] = []
  const refused: { id: number; code: 'lease-not-found' | 'lease-expired' }[] = []
  for (const id of ids) {
    // Only the owner renews: a peer cannot keep another peer's dead client's lock.
    if (ownerOf(id) !== from) {
      refused.push({ id, code: 'lease-not-found' })
      continue
    }
    const r = clock.keepAlive(id, nowMs)
    if (r.ok) renewed.push(id)
    else refused.push({ id, code: r.code === 'lease-expired' ? 'lease-expired' : 'lease-not-found' })
  }
  return { renewed, refused }
}

/** The leader's view of lease deadlines. Pure: time comes in as `nowMs`. */
export class LeaseClock {
  #leases = new Map<number, ClockLease>()
  #primary = false

  /** Whether this clock decides expiry (its peer leads). */
  get isPrimary(): boolean {
    return this.#primary
  }

  /** Leases tracked. */
  get size(): number {
    return this.#leases.size
  }

  /** Mirrors an applied leaseGrant: the deadline starts at `nowMs`. Re-granting an id resets it. */
  grant(id: number, ttlMs: number, nowMs: number): void {
    if (ttlMs < LEASE_TTL_MIN_MS || ttlMs > LEASE_TTL_MAX_MS) throw new RangeError(`LeaseClock: ttl ${ttlMs} out of range`)
    if (!this.#leases.has(id) && this.#leases.size >= STORE_MAX_LEASES) throw new Error('LeaseClock: more leases than the store can hold')
    this.#leases.set(id, { ttlMs, expiresAtMs: nowMs + ttlMs, revokeProposedAtMs: null })
  }

  /** Mirrors an applied leaseRevoke (or expiry): forgets the lease. */
  revoke(id: number): void {
    this.#leases.delete(id)
  }

  /** Renews a lease for its full TTL from `nowMs` (leader only). */
  keepAlive(id: number, nowMs: number): KeepAliveResult {
    if (!this.#primary) return { ok: false, code: 'not-leader' }
    const lease = this.#leases.get(id)
    if (!lease) return { ok: false, code: 'lease-not-found' }
    // Once past its deadline a lease is being revoked; renewing it now would
    // race the revoke already in the log (etcd refuses the same way).
    if (lease.expiresAtMs <= nowMs) return { ok: false, code: 'lease-expired' }
    lease.expiresAtMs = nowMs + lease.ttlMs
    return { ok: true, ttlMs: lease.ttlMs, expiresAtMs: lease.expiresAtMs }
  }

  /** Milliseconds left before `id` expires (negative when overdue), or null if unknown. */
  remainingMs(id: number, nowMs: number): number | null {
    const lease = this.#leases.get(id)
    return lease ? lease.expiresAtMs - nowMs : null
  }

  /**
   * Leases past their deadline for which no revoke was proposed within
   * LEASE_REVOKE_RETRY_MS, earliest deadline first, at most `limit`. Each one
   * returned is marked as proposed at `nowMs`. Empty unless primary.
   */
  expired(nowMs: number, limit: number = LEASE_EXPIRED_BATCH_MAX): number[] {
    if (!this.#primary) return []
    const due: [number, ClockLease][] = []
    for (const [id, lease] of this.#leases) {
      if (lease.expiresAtMs > nowMs) continue
      if (lease.revokeProposedAtMs !== null && nowMs - lease.revokeProposedAtMs < LEASE_REVOKE_RETRY_MS) continue
      due.push([id, lease])
    }
    due.sort(([a, x], [b, y]) => x.expiresAtMs - y.expiresAtMs || a - b)
    return due.slice(0, Math.max(0, limit)).map(([id, lease]) => {
      lease.revokeProposedAtMs = nowMs
      return id
    })
  }

  /**
   * Makes this clock decide expiry, extending every lease by its full TTL from
   * `nowMs`: the old leader's deadlines died with it, and a session must not
   * expire just because leadership moved (etcd's lessor.Promote).
   */
  promote(nowMs: number): void {
    this.#primary = true
    for (const lease of this.#leases.values()) {
      lease.expiresAtMs = nowMs + lease.ttlMs
      lease.revokeProposedAtMs = null
    }
  }

  /** Stops deciding expiry (leadership lost). */
  demote(): void {
    this.#primary = false
  }

  /**
   * Reconciles with the store's leases (after a restart or a snapshot install):
   * adds missing ones with a full TTL from `nowMs`, forgets ones the store no
   * longer has, keeps deadlines of the rest.
   */
  sync(leases: Iterable<{ readonly id: number; readonly ttlMs: number }>, nowMs: number): void {
    const live = new Set<number>()
    for (const { id, ttlMs } of leases) {
      live.add(id)
      if (!this.#leases.has(id)) this.grant(id, ttlMs, nowMs)
    }
    for (const id of [...this.#leases.keys()]) if (!live.has(id)) this.#leases.delete(id)
  }
}
