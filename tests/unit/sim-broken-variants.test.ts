// Proof that the checkers can fail: each deliberately broken variant must be
// caught, by the checker that guards what it breaks, with a replay command
// that reproduces the same violation. A checker that stays green against a
// broken system proves nothing.

import { describe, expect, it } from 'vitest'
import { replayCommand, runSeed, type Injection, type RunResult } from '../../simulations/run.ts'
import type { CheckerName } from '../../simulations/checkers/violation.ts'

/** Runs seeds from 1 until one reports a violation (at most `maxSeeds`). */
function firstFailing(scenario: string, inject: Injection, maxSeeds: number): RunResult | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSeed({ scenario, nodes: 5, seed, inject: [inject] })
    if (r.violations.length > 0) return r
  }
  return undefined
}

/** The replayed seed reports the same first violation, and the command names the variant. */
function expectReplays(r: RunResult, inject: Injection): void {
  const command = replayCommand(r.scenario, r.nodes, r.seed, r.inject)
  expect(command).toBe(`shoal simulate --scenario ${r.scenario} --nodes 5 --seeds ${r.seed}..${r.seed} --inject ${inject} --trace`)
  const again = runSeed({ scenario: r.scenario, nodes: r.nodes, seed: r.seed, inject: r.inject, trace: true })
  expect(again.digest).toBe(r.digest)
  expect(again.violations[0]).toEqual(r.violations[0])
  expect(again.traceLines.some((l) => l.includes('VIOLATION'))).toBe(true)
}

const RAFT_SAFETY: readonly CheckerName[] = ['election-safety', 'log-matching', 'leader-completeness', 'state-machine-safety', 'commit-agreement', 'core-assertion']

/** A seed of `scenario` in 1..maxSeeds catches `inject` with `checker`, and replays. */
function expectCaughtBy(scenario: string, inject: Injection, maxSeeds: number, checker: CheckerName): void {
  const r = firstFailing(scenario, inject, maxSeeds)
  expect(r, `no ${scenario} seed in 1..${maxSeeds} caught ${inject}`).toBeDefined()
  if (r === undefined) return
  expect(r.violations.map((v) => v.checker)).toContain(checker)
  expectReplays(r, inject)
}

describe('broken variants are caught', () => {
  it('proposals-without-base: a proposal replayed after the dedup window forgot it applies again', () => {
    expectCaughtBy('lossy-network', 'proposals-without-base', 20, 'linearizability')
  })

  it('lock-client-no-deadline: a holder cut off from the leader holds on after its session expired and the lock went on', () => {
    expectCaughtBy('lock-holder-faults', 'lock-client-no-deadline', 30, 'lock-safety')
  })

  it('ack-before-fsync: a follower acknowledges entries it then loses in a crash', () => {
    const r = firstFailing('crash-restart', 'ack-before-fsync', 30)
    expect(r, 'no crash-restart seed in 1..30 caught ack-before-fsync').toBeDefined()
    if (r === undefined) return
    const checkers = r.violations.map((v) => v.checker)
    expect(checkers.some((c) => RAFT_SAFETY.includes(c) || c === 'acknowledged-write-lost')).toBe(true)
    expectReplays(r, 'ack-before-fsync')
  })

  it('local-consistent-reads: a partitioned node serves stale "consistent" reads', () => {
    const r = firstFailing('leader-partition', 'local-consistent-reads', 20)
    expect(r, 'no leader-partition seed in 1..20 caught local-consistent-reads').toBeDefined()
    if (r === undefined) return
    expect(r.violations.map((v) => v.checker)).toContain('linearizability')
    expectReplays(r, 'local-consistent-reads')
  })

  it('count-stale-votes: a candidate wins with a vote from an older election', () => {
    // Pre-vote and check-quorum make this bug rare: it needs a vote to arrive a whole election
    // late, which the slow-links scenario produces in about one seed in a hundred.
    const r = firstFailing('slow-links', 'count-stale-votes', 1500)
    expect(r, 'no slow-links seed in 1..1500 caught count-stale-votes').toBeDefined()
    if (r === undefined) return
    expect(r.violations.some((v) => RAFT_SAFETY.includes(v.checker))).toBe(true)
    expectReplays(r, 'count-stale-votes')
  }, 120_000)

  it('container-events-only: a host that never reconciles keeps records its engine no longer has', () => {
    // Events lost while the peer or its engine was down are only ever repaired by the full list.
    const r = firstFailing('crash-restart', 'container-events-only', 20)
    expect(r, 'no crash-restart seed in 1..20 caught container-events-only').toBeDefined()
    if (r === undefined) return
    expect(r.violations.map((v) => v.checker)).toContain('container-records')
    expectReplays(r, 'container-events-only')
  })

  it('without the variant, the same seeds are clean', () => {
    for (const [scenario, seed] of [['crash-restart', 2], ['leader-partition', 1]] as const) {
      expect(runSeed({ scenario, nodes: 5, seed }).violations).toEqual([])
    }
  })
})
