// The lease holder's side of the session discipline of Chubby (§2.8, "the
// client's local lease timeout") and etcd's clientv3 KeepAlive: the holder
// counts on its session only until its own deadline, computed from the last
// renewal the leader confirmed, on the holder's own monotonic clock:
//
//   deadline = (send time of the last confirmed renewal) + TTL × (1 − margin)
//
// Why the send time: the leader renews only after the request arrived and after
// it confirmed its leadership with a quorum (ReadIndex), so its new expiry is at
// least send time + TTL on the leader's clock; a later leader gives every lease
// a full TTL from its own promotion, which comes after that quorum round. The
// margin covers the rate difference between the two clocks (`clockDriftMax`)
// plus slack; the leader may revoke the lease only after its expiry, so a
// holder that stops by its deadline never overlaps the next holder.
//
// A holder running a command must have it gone by the deadline: it asks it to
// stop (SIGTERM) `stopGraceMs` before, and kills it (SIGKILL) `killSlackMs`
// before, leaving the kernel time to reap it.
//
// Pure: every instant comes in as a number of milliseconds on one monotonic
// clock (performance.now() in the CLI and the daemon, the simulated clock in
// simulations/). Used by `shoal lock`, the daemon's sessions and the simulator's
// lock clients alike.

/** Slack added to the clock-drift margin, as a fraction of the TTL. */
export const LEASE_MARGIN_SLACK_FRACTION = 0.02
/** Largest clock rate error the daemon assumes between two peers (1 %: NTP-disciplined clocks stay within 0.05 %). */
export const LEASE_CLOCK_DRIFT_MAX = 0.01
/** Renewals per TTL: a TTL spans several, so one lost or slow renewal costs nothing. */
export const LEASE_RENEWALS_PER_TTL = 3
/** Most leases one renewal request carries; more are sent in several requests. */
export const LEASE_RENEW_BATCH_MAX = 1024

/** Fraction of a TTL a holder does not count on, for clocks whose rates differ by up to `clockDriftMax`. */
export function leaseMarginFraction(clockDriftMax: number): number {
  if (!(clockDriftMax >= 0 && clockDriftMax < 1)) throw new RangeError(`clock drift ${clockDriftMax} must be in [0, 1)`)
  // A leader clock running slow by d measures TTL while the holder measures TTL / (1 + d).
  return clockDriftMax / (1 + clockDriftMax) + LEASE_MARGIN_SLACK_FRACTION
}

/** Splits lease ids into renewal requests of at most `max` each (every lease is renewed, however many). */
export function renewalBatches(ids: Iterable<number>, max: number = LEASE_RENEW_BATCH_MAX): number[][] {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`batch size ${max} must be a positive integer`)
  const out: number[][] = []
  let batch: number[] = []
  for (const id of ids) {
    batch.push(id)
    if (batch.length === max) {
      out.push(batch)
      batch = []
    }
  }
  if (batch.length > 0) out.push(batch)
  return out
}

export interface LeaseHolderOptions {
  readonly ttlMs: number
  /** Largest clock rate error between holder and leader (sets the margin). */
  readonly clockDriftMax: number
  /** Time a command gets between the request to stop and the kill (0: stop at once). */
  readonly stopGraceMs?: number
  /** The kill lands this long before the deadline (process teardown). */
  readonly killSlackMs?: number
}

/** What the holder must do now. */
export type HolderAction =
  /** Keep going; look again at `untilMs` at the latest. */
  | { readonly action: 'hold'; readonly untilMs: number }
  /** Ask the command to stop (SIGTERM); kill it at `killAtMs`. */
  | { readonly action: 'stop'; readonly killAtMs: number }
  /** Kill the command (SIGKILL): the session may be gone. */
  | { readonly action: 'kill' }

/** One holder's deadline. */
export class LeaseHolder {
  readonly ttlMs: number
  readonly marginFraction: number
  readonly stopGraceMs: number
  readonly killSlackMs: number
  #deadlineMs = Number.NEGATIVE_INFINITY
  #lastConfirmedSendMs = Number.NEGATIVE_INFINITY

  constructor(options: LeaseHolderOptions) {
    const { ttlMs, clockDriftMax } = options
    const stopGraceMs = options.stopGraceMs ?? 0
    const killSlackMs = options.killSlackMs ?? 0
    if (!(ttlMs > 0)) throw new RangeError(`ttl ${ttlMs} must be positive`)
    this.marginFraction = leaseMarginFraction(clockDriftMax)
    if (!(stopGraceMs >= 0 && killSlackMs >= 0) || stopGraceMs + killSlackMs >= ttlMs * (1 - this.marginFraction)) {
      throw new RangeError(`stop grace ${stopGraceMs} ms + kill slack ${killSlackMs} ms must be non-negative and fit in the ttl of ${ttlMs} ms`)
    }
    this.ttlMs = ttlMs
    this.stopGraceMs = stopGraceMs
    this.killSlackMs = killSlackMs
  }

  /** The last instant the session can be counted on (-Infinity before any confirmation). */
  get deadlineMs(): number {
    return this.#deadlineMs
  }

  /** The instant the command must be asked to stop. */
  get stopAtMs(): number {
    return this.#deadlineMs - this.killSlackMs - this.stopGraceMs
  }

  /** The instant the command must be killed. */
  get killAtMs(): number {
    return this.#deadlineMs - this.killSlackMs
  }

  /** How often to send renewals. */
  get renewIntervalMs(): number {
    return this.ttlMs / LEASE_RENEWALS_PER_TTL
  }

  /**
   * The leader confirmed the grant or a renewal of a request this holder sent at
   * `sentAtMs`. Confirmations may arrive out of order; the deadline only grows.
   */
  onConfirmed(sentAtMs: number): void {
    if (sentAtMs <= this.#lastConfirmedSendMs) return
    this.#lastConfirmedSendMs = sentAtMs
    this.#deadlineMs = sentAtMs + this.ttlMs * (1 - this.marginFraction)
  }

  /** Whether the session can still be counted on at `nowMs` (with the whole stop grace ahead). */
  holds(nowMs: number): boolean {
    return nowMs < this.stopAtMs
  }

  /** What to do at `nowMs`. */
  decide(nowMs: number): HolderAction {
    if (nowMs < this.stopAtMs) return { action: 'hold', untilMs: this.stopAtMs }
    if (nowMs < this.killAtMs) return { action: 'stop', killAtMs: this.killAtMs }
    return { action: 'kill' }
  }
}
