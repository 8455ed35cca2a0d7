import { describe, expect, it } from 'vitest'
import {
  applyAwarenessDelta,
  expectedConfirmations,
  retransmitLimit,
  scaleByAwareness,
  suspicionMaxTimeoutMs,
  suspicionMinTimeoutMs,
  suspicionTimeoutMs,
} from '../../protocols/gossip/suspicion.ts'

describe('suspicionMinTimeoutMs = mult * max(1, log10(max(1, n))) * interval', () => {
  const table: Array<[mult: number, n: number, intervalMs: number, expectedMs: number]> = [
    [3, 0, 400, 1200],
    [3, 1, 400, 1200],
    [3, 5, 400, 1200],
    [3, 10, 400, 1200],
    [3, 20, 400, 1561], // 3 * 1.30103 * 400 = 1561.2, floored
    [3, 100, 400, 2400],
    [3, 1000, 400, 3600],
    [4, 100, 1000, 8000], // memberlist LAN defaults
  ]
  it.each(table)('mult %d, n %d, interval %d -> %d ms', (mult, n, intervalMs, expectedMs) => {
    expect(suspicionMinTimeoutMs(mult, n, intervalMs)).toBe(expectedMs)
  })
})

describe('suspicionMaxTimeoutMs = maxMult * min', () => {
  it.each([
    [6, 1200, 7200],
    [6, 2400, 14400],
    [1, 1200, 1200],
  ])('maxMult %d, min %d -> %d', (mult, minMs, expectedMs) => {
    expect(suspicionMaxTimeoutMs(mult, minMs)).toBe(expectedMs)
  })
})

describe('expectedConfirmations k = max(0, min(indirectChecks, n - 2))', () => {
  it.each([
    [3, 0, 0],
    [3, 1, 0],
    [3, 2, 0],
    [3, 3, 1],
    [3, 4, 2],
    [3, 5, 3],
    [3, 100, 3],
    [0, 10, 0],
  ])('indirectChecks %d, n %d -> k %d', (checks, n, k) => {
    expect(expectedConfirmations(checks, n)).toBe(k)
  })
})

describe('suspicionTimeoutMs = max(min, max - (max-min) * log(c+1) / log(k+1))', () => {
  // Shoal defaults in a 5-member cluster: min 1200, max 7200, k 3.
  it.each([
    [0, 3, 7200],
    [1, 3, 4200], // log 2 / log 4 = 1/2
    [2, 3, 2445], // 7200 - 6000 * 0.79248 = 2445.1
    [3, 3, 1200],
    [4, 3, 1200], // confirmations beyond k do not go below min
    [0, 1, 7200],
    [1, 1, 1200],
  ])('c %d, k %d -> %d ms', (c, k, expectedMs) => {
    expect(suspicionTimeoutMs(c, k, 1200, 7200)).toBe(expectedMs)
  })

  // Cross-check with memberlist TestSuspicion_remainingSuspicionTime (min 2 s,
  // max 30 s, k 3): its remaining times plus elapsed are these totals.
  it.each([
    [0, 30000],
    [1, 16000],
    [2, 7810],
    [3, 2000],
    [4, 2000],
    [5, 2000],
  ])('memberlist table: c %d -> %d ms', (c, expectedMs) => {
    expect(suspicionTimeoutMs(c, 3, 2000, 30000)).toBe(expectedMs)
  })

  it('takes the minimum at once when nobody can confirm (k < 1)', () => {
    for (const c of [0, 1, 5]) expect(suspicionTimeoutMs(c, 0, 1200, 7200)).toBe(1200)
  })

  it('never increases with more confirmations', () => {
    for (let k = 1; k <= 8; k++) {
      let previous = Number.POSITIVE_INFINITY
      for (let c = 0; c <= k + 2; c++) {
        const t = suspicionTimeoutMs(c, k, 1200, 7200)
        expect(t).toBeLessThanOrEqual(previous)
        expect(t).toBeGreaterThanOrEqual(1200)
        expect(t).toBeLessThanOrEqual(7200)
        previous = t
      }
    }
  })
})

describe('retransmitLimit = mult * ceil(log10(n + 1))', () => {
  it.each([
    [3, 0, 0], // memberlist TestRetransmitLimit
    [3, 1, 3],
    [3, 99, 6],
    [4, 1, 4],
    [4, 5, 4],
    [4, 9, 4],
    [4, 10, 8],
    [4, 99, 8],
    [4, 100, 12],
    [4, 4096, 16],
  ])('mult %d, n %d -> %d', (mult, n, limit) => {
    expect(retransmitLimit(mult, n)).toBe(limit)
  })
})

describe('Lifeguard local health multiplier', () => {
  it.each([
    [400, 0, 400],
    [400, 1, 800],
    [200, 7, 1600],
  ])('scaleByAwareness(%d, %d) = %d', (base, awareness, scaled) => {
    expect(scaleByAwareness(base, awareness)).toBe(scaled)
  })

  it.each([
    [0, -1, 8, 0],
    [0, 1, 8, 1],
    [6, 3, 8, 7], // multiplier capped at awarenessMax = 8, so the score at 7
    [7, 1, 8, 7],
    [5, -2, 8, 3],
    [0, 5, 1, 0], // awarenessMax 1 disables Lifeguard probe scaling
  ])('applyAwarenessDelta(%d, %d, max %d) = %d', (score, delta, max, expected) => {
    expect(applyAwarenessDelta(score, delta, max)).toBe(expected)
  })
})
