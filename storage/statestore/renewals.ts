/**
 * Lease renewals between a peer and the leader, one copy for the daemon (node/sessions.ts) and
 * the simulator (simulations/node.ts): the requests a peer has waiting on the leader (answered
 * only by the peer asked, failed past their timeout), and the leader's answer once it has
 * confirmed its leadership. Pure: time comes in, frames go out through the caller.
 */
import type { LeaseKeeper } from './lease-keeper.ts'
import type { StateStore } from './store.ts'

/** A renewal the leader has not answered within this is failed (the holder's deadline decides what that means). */
export const RENEW_TIMEOUT_MS = 2000
/** Renewal requests one peer may have waiting for the leader. */
export const RENEW_PENDING_MAX = 1024

/** The leader's answer to a renewal request. */
export type RenewReply =
  | { readonly ok: true; readonly renewed: number[]; readonly refused: { id: number; code: 'lease-not-found' | 'lease-expired' }[] }
  | { readonly ok: false; readonly reason: string }

interface Pending {
  readonly to: string
  readonly deadlineMs: number
  readonly onReply: (reply: RenewReply) => void
}

/** Renewal requests this peer has waiting on a leader. */
export class RenewalRequests {
  readonly timeoutMs: number
  readonly pendingMax: number
  #pending = new Map<number, Pending>()
  #counter = 0

  constructor(options: { timeoutMs: number; pendingMax: number }) {
    this.timeoutMs = options.timeoutMs
    this.pendingMax = options.pendingMax
  }

  /** Requests waiting for an answer. */
  get size(): number {
    return this.#pending.size
  }

  /**
   * Registers a request to leader `to` and returns the id its frame carries; null when too many
   * wait (then `onReply` has heard the failure already).
   */
  start(to: string, nowMs: number, onReply: (reply: RenewReply) => void): number | null {
    if (this.#pending.size >= this.pendingMax) {
      onReply({ ok: false, reason: 'too many renewals in flight on this peer' })
      return null
    }
    const id = ++this.#counter
    this.#pending.set(id, { to, deadlineMs: nowMs + this.timeoutMs, onReply })
    return id
  }

  /** `from` answered request `id`. Only the peer asked may: anyone else's answer would be a forged confirmation (false: ignored). */
  answer(from: string, id: number, reply: RenewReply): boolean {
    const p = this.#pending.get(id)
    if (p === undefined || p.to !== from) return false
    this.#pending.delete(id)
    p.onReply(reply)
    return true
  }

  /** Fails every request the leader left unanswered past the timeout. */
  tick(nowMs: number): void {
    for (const [id, p] of [...this.#pending]) {
      if (nowMs < p.deadlineMs) continue
      this.#pending.delete(id)
      p.onReply({ ok: false, reason: `the leader did not answer within ${this.timeoutMs} ms` })
    }
  }

  /** This peer stops or crashed: every waiting request fails. */
  dropAll(reason: string): void {
    const pending = [...this.#pending.values()]
    this.#pending = new Map()
    for (const p of pending) p.onReply({ ok: false, reason })
  }
}

/**
 * The leader's answer to `from`'s renewal of `ids`, once a ReadIndex round after the request
 * arrived confirmed its leadership (`confirmed`; false: not confirmed, `why`). A deposed leader
 * cannot confirm, so it cannot stretch a session past what its successor grants.
 */
export function renewAsLeader(keeper: LeaseKeeper, store: StateStore, from: string, ids: readonly number[], confirmed: boolean, isLeader: boolean, nowMs: number, why = 'leadership not confirmed'): RenewReply {
  if (!confirmed) return { ok: false, reason: why }
  // The clock follows the role at once, so a leader just in office renews too.
  if (!keeper.followRole(isLeader, nowMs)) return { ok: false, reason: 'leadership moved during the renewal' }
  const out = keeper.renew(store, from, ids, nowMs)
  return out === null ? { ok: false, reason: 'the leader is taking office' } : { ok: true, renewed: [...out.renewed], refused: [...out.refused] }
}
