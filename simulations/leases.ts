// One node's lease bookkeeping, as node/sessions.ts does it in the daemon: the
// pure LeaseClock mirrors applied grants and revokes on every replica; on the
// leader it is primary (promoted on the lease timer, which gives every lease a
// full TTL) and reports expired leases, which the leader revokes through the
// log. Keep-alives are accepted only from a lease's owner.

import { LeaseClock, renewOwned, type ApplyResult, type Command, type RenewOutcome, type StateStore } from '../storage/statestore/index.ts'

/** How often the lease timer runs (sessions.ts RENEW_INTERVAL_MS). */
export const LEASE_TIMER_MS = 1000

/** A node's view of lease deadlines. */
export class NodeLeases {
  private readonly clock = new LeaseClock()
  private wasLeader = false

  /** Mirrors an applied command (sessions.ts onCommand). */
  onCommand(command: Command, result: ApplyResult, nowMs: number): void {
    if (!result.ok || result.duplicate) return
    const r = command.request
    if (r.type === 'leaseGrant') this.clock.grant(r.id, r.ttlMs, nowMs)
    else if (r.type === 'leaseRevoke') this.clock.revoke(r.id)
  }

  /** After a restart or a snapshot install: the clock follows the store's leases. */
  onRestored(store: StateStore, nowMs: number): void {
    this.clock.sync(store.leases(), nowMs)
  }

  /**
   * The lease timer (sessions.ts onTimer): promote on gaining leadership,
   * demote on losing it; returns the leases to revoke.
   */
  onTimer(isLeader: boolean, nowMs: number): number[] {
    if (isLeader && !this.wasLeader) this.clock.promote(nowMs)
    if (!isLeader && this.wasLeader) this.clock.demote()
    this.wasLeader = isLeader
    return this.clock.expired(nowMs)
  }

  /** Renews leases `ids` for `from`, which must own them (sessions.ts renewAsLeader); null when not primary. */
  renew(store: StateStore, from: string, ids: readonly number[], nowMs: number): RenewOutcome | null {
    return renewOwned(this.clock, (id) => store.lease(id)?.owner, from, ids, nowMs)
  }
}
