// Each simulated node's two clocks, as the daemon has them:
//
//  - the monotonic clock (performance.now): every deadline and interval — Raft ticks, SWIM
//    timing, lease expiry, request timeouts — is measured on it. What matters is its rate: a
//    node whose clock runs fast times out early, one that runs slow holds on to a dead leader
//    longer. A rate change (clock-skew faults) changes the rate from then on; the reading never
//    jumps, and never goes backwards.
//  - the wall clock (Date.now): the monotonic reading plus an offset that NTP or an operator
//    can step, forwards or backwards. Only what the daemon reads from Date.now sees it:
//    timestamps in records, the container engine's own clock, membership's stateSince.
//
// Timers also fire late by a random jitter, as a busy event loop makes them.

import type { Rng } from './random.ts'

/** How one node's clock departs from simulated time. */
export interface ClockProfile {
  /** Rate error: local time advances (1 + driftRatio) ms per simulated ms. */
  readonly driftRatio: number
  /** Local reading at simulated time 0, in ms (a skew between nodes' wall clocks). */
  readonly offsetMs: number
  /** Timers fire up to this many µs late, uniformly. */
  readonly timerJitterUs: number
}

/** Wall-clock reading at simulated time 0 (plus the profile's offset): a date in 2025, as real clocks read, never near 0. */
export const WALL_EPOCH_MS = 1_750_000_000_000

/** A perfect clock. */
export const EXACT_CLOCK: ClockProfile = { driftRatio: 0, offsetMs: 0, timerJitterUs: 0 }

/** One node's clocks. */
export class NodeClock {
  #profile: ClockProfile
  /** The last rate change: simulated µs and the monotonic reading then. */
  #anchorUs = 0
  #anchorMs: number
  /** What steps of the wall clock added up to (ms). */
  #wallStepMs = 0

  constructor(profile: ClockProfile) {
    this.#profile = profile
    this.#anchorMs = profile.offsetMs
  }

  /** The profile this clock follows now. */
  get profile(): ClockProfile {
    return this.#profile
  }

  /** The node's monotonic reading, in ms, at simulated time `nowUs` (never earlier than `anchor`). */
  localMs(nowUs: number): number {
    return this.#anchorMs + ((nowUs - this.#anchorUs) * (1 + this.#profile.driftRatio)) / 1000
  }

  /** The node's wall-clock reading: the epoch plus the monotonic one plus every step so far. */
  wallMs(nowUs: number): number {
    return WALL_EPOCH_MS + this.localMs(nowUs) + this.#wallStepMs
  }

  /** Changes rate and jitter from simulated time `nowUs` on; the reading goes on from where it is (offsetMs is ignored). */
  setProfile(profile: ClockProfile, nowUs: number): void {
    this.#anchorMs = this.localMs(nowUs)
    this.#anchorUs = nowUs
    this.#profile = profile
  }

  /** Steps the wall clock by `deltaMs` (either way); the monotonic clock does not move. */
  stepWall(deltaMs: number): void {
    this.#wallStepMs += deltaMs
  }

  /** Simulated µs until a timer with local period `periodMs` set now fires (drift plus jitter). */
  timerDelayUs(periodMs: number, rng: Rng): number {
    const base = Math.round((periodMs * 1000) / (1 + this.#profile.driftRatio))
    const jitter = this.#profile.timerJitterUs
    return Math.max(1, base + (jitter > 0 ? rng.int(jitter + 1) : 0))
  }
}
