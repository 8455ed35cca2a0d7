// Liveness after the faults end (VOPR's liveness phase): once every fault has
// healed, a leader must exist and a write must commit within a bounded
// simulated time. Safety checkers prove nothing bad happened; this proves
// something good still does.

import { formatTime } from '../trace.ts'
import type { Violation } from './violation.ts'

/** What the liveness phase observed (simulated µs). */
export interface LivenessObservation {
  /** When the last fault healed. */
  readonly healedAtUs: number
  /** When a leader (an up node leading the highest term) was first seen after healing, if ever. */
  readonly leaderAtUs: number | null
  /** When a probe write was first acknowledged after healing, if ever. */
  readonly commitAtUs: number | null
  /** The bound both must meet. */
  readonly boundUs: number
}

/** A violation unless a leader appeared and a write committed within the bound. */
export function checkLiveness(o: LivenessObservation): Violation[] {
  const deadline = o.healedAtUs + o.boundUs
  const bound = `${(o.boundUs / 1_000_000).toFixed(1)} s`
  if (o.leaderAtUs === null || o.leaderAtUs > deadline) {
    return [{ checker: 'liveness', atUs: deadline, message: `no leader within ${bound} after the faults healed at ${formatTime(o.healedAtUs)}` }]
  }
  if (o.commitAtUs === null || o.commitAtUs > deadline) {
    return [{ checker: 'liveness', atUs: deadline, message: `a leader appeared at ${formatTime(o.leaderAtUs)}, but no write committed within ${bound} after the faults healed at ${formatTime(o.healedAtUs)}` }]
  }
  return []
}
