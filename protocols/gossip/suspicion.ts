// Pure formulas of SWIM dissemination and Lifeguard (Dadgar, Phillips, Currey:
// "Lifeguard: Local Health Awareness for More Accurate Failure Detection", 2018),
// shaped after hashicorp/memberlist `util.go` and `suspicion.go`. No state, no
// clock: the failure detector core feeds them numbers and gets numbers back, and
// the tests pin them with tables.

/**
 * Lower bound of the suspicion timeout (memberlist `suspicionTimeout`).
 * Scaling with log10(n) gives gossip about the suspicion, which needs O(log n)
 * rounds to reach everyone (SWIM §4.1), time to reach the suspect so it can refute.
 * `memberCount` is the number of live (alive or suspect) members, self included.
 */
export function suspicionMinTimeoutMs(suspicionMult: number, memberCount: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, memberCount)))
  return Math.floor(suspicionMult * nodeScale * probeIntervalMs)
}

/** Upper bound: a lone, unconfirmed suspicion waits this long (Lifeguard §IV, Local Health Aware Suspicion). */
export function suspicionMaxTimeoutMs(suspicionMaxMult: number, minTimeoutMs: number): number {
  return Math.floor(suspicionMaxMult * minTimeoutMs)
}

/**
 * k, the number of independent confirmations that drive the timeout down to its
 * minimum. Two members can never confirm: the suspect itself and us, hence n - 2.
 */
export function expectedConfirmations(indirectChecks: number, memberCount: number): number {
  return Math.max(0, Math.min(indirectChecks, memberCount - 2))
}

/**
 * Total suspicion timeout after `confirmations` independent suspicions
 * (Lifeguard §IV, Local Health Aware Suspicion):
 *   max(min, max - (max - min) * log(c + 1) / log(k + 1))
 * The logarithm makes the first confirmations count most: one other member
 * agreeing is strong evidence that the problem is not on our side. With k < 1
 * nobody can confirm, so waiting for confirmations would only delay; memberlist
 * takes the minimum from the start.
 */
export function suspicionTimeoutMs(confirmations: number, expected: number, minTimeoutMs: number, maxTimeoutMs: number): number {
  if (expected < 1) return minTimeoutMs
  const c = Math.max(0, Math.min(confirmations, expected))
  const fraction = Math.log(c + 1) / Math.log(expected + 1)
  const raw = Math.floor(maxTimeoutMs - fraction * (maxTimeoutMs - minTimeoutMs))
  return Math.max(minTimeoutMs, raw)
}

/**
 * How many times one update is piggybacked before it is dropped from the
 * broadcast queue (memberlist `retransmitLimit`). Infection-style dissemination
 * reaches everyone with high probability after O(log n) rounds (SWIM §4.1).
 */
export function retransmitLimit(retransmitMult: number, memberCount: number): number {
  return retransmitMult * Math.ceil(Math.log10(memberCount + 1))
}

/**
 * Lifeguard §IV (Local Health Aware Probe): a member that sees signs of its own
 * slowness (missed nacks, having to refute) stretches its probe interval and
 * timeout, so a slow member stops accusing healthy ones.
 */
export function scaleByAwareness(baseMs: number, awareness: number): number {
  return baseMs * (awareness + 1)
}

/** Applies a Lifeguard health delta, keeping the score in 0..awarenessMax-1 (multiplier 1..awarenessMax). */
export function applyAwarenessDelta(awareness: number, delta: number, awarenessMax: number): number {
  return Math.max(0, Math.min(awarenessMax - 1, awareness + delta))
}
