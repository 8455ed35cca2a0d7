/**
 * A peer's lease bookkeeping, one for the daemon (node/sessions.ts) and the simulator
 * (simulations/node.ts): the LeaseClock mirrors applied grants and revokes on every replica;
 * on the leader it is primary (promoted when this peer takes office, which gives every lease a
 * full TTL from then) and says which leases expired, which the leader revokes through the log.
 * Renewals are accepted only from a lease's owner, and only while primary. Pure: time comes in.
 */
import { LeaseClock, renewOwned, type RenewOutcome } from './lease-clock.ts'
import type { Command } from './commands.ts'
import type { ApplyResult } from './results.ts'
import type { StateStore } from './store.ts'

/** How often the leader looks for expired leases (a scan of every lease). */
export const LEASE_EXPIRY_SCAN_MS = 1000

export class LeaseKeeper {
  private readonly clock = new LeaseClock()
  private wasLeader = false

  /** Mirrors an applied command (every replica, so a new leader knows every lease). */
  onCommand(command: Command, result: ApplyResult, nowMs: number): void {
    if (!result.ok || result.duplicate) return
    const r = command.request
    if (r.type === 'leaseGrant') this.clock.grant(r.id, r.ttlMs, nowMs)
    else if (r.type === 'leaseRevoke') this.clock.revoke(r.id)
  }

  /** After a start, a restart or a snapshot install: the clock follows the store's leases. */
  onRestored(store: StateStore, nowMs: number): void {
    this.clock.sync(store.leases(), nowMs)
  }

  /** Promotes the clock when this peer takes office and demotes it when it leaves; returns `isLeader`. */
  followRole(isLeader: boolean, nowMs: number): boolean {
    if (isLeader && !this.wasLeader) this.clock.promote(nowMs)
    if (!isLeader && this.wasLeader) this.clock.demote()
    this.wasLeader = isLeader
    return isLeader
  }

  /** Leases past their deadline (none unless primary). */
  expired(nowMs: number): number[] {
    return this.clock.expired(nowMs)
  }

  /** Renews leases `ids` for `from`, which must own them; null while not primary. */
  renew(store: StateStore, from: string, ids: readonly number[], nowMs: number): RenewOutcome | null {
    return renewOwned(this.clock, (id) => store.lease(id)?.owner, from, ids, nowMs)
  }
}
