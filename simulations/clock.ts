// Each simulated node's own clock. Raft and the failure detector only measure
// intervals on one node, so what matters is the rate: a node whose clock runs
// fast times out early, one that runs slow holds on to a dead leader longer.
// Timers also fire late by a random jitter, as a busy event loop makes them.
// Clocks never step backwards (we model drift and jitter, not NTP steps).

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

/** A perfect clock. */
export const EXACT_CLOCK: ClockProfile = { driftRatio: 0, offsetMs: 0, timerJitterUs: 0 }

/** One node's clock. */
export class NodeClock {
  /** The profile this clock follows (changed by clock-skew faults). */
  profile: ClockProfile

  constructor(profile: ClockProfile) {
    this.profile = profile
  }

  /** The node's wall-clock reading, in ms, at simulated time `nowUs`. */
  localMs(nowUs: number): number {
    return this.profile.offsetMs + (nowUs * (1 + this.profile.driftRatio)) / 1000
  }

  /** Simulated µs until a timer with local period `periodMs` set now fires (drift plus jitter). */
  timerDelayUs(periodMs: number, rng: Rng): number {
    const base = Math.round((periodMs * 1000) / (1 + this.profile.driftRatio))
    const jitter = this.profile.timerJitterUs
    return Math.max(1, base + (jitter > 0 ? rng.int(jitter + 1) : 0))
  }
}
