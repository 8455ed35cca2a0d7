// Every scenario, on a spread of seeds, against the real cores: no checker may
// report a violation, every scenario must actually do what it claims, and a
// seed must replay to the same digest and timeline. Seeds run on the worker
// pool (two threads) to keep CI fast.

import { describe, expect, it } from 'vitest'
import { runJobs, type Job, type JobResult } from '../../cli/simulate-pool.ts'
import { runSeed } from '../../simulations/run.ts'
import { SCENARIOS } from '../../simulations/scenarios.ts'

/** Seeds per scenario at 5 nodes, and more at 3 and 7 nodes: 170 per scenario, about 40 s on two cores. */
const SEEDS = 100
const ODD_SIZES: ReadonlyArray<readonly [number, number]> = [[3, 60], [7, 10]]

function sum(results: readonly JobResult[], key: string): number {
  return results.reduce((n, r) => n + (r.stats.counts[key] ?? 0), 0)
}

describe('scenarios against the real cores', () => {
  const jobs: Job[] = []
  // The service scenarios run several times longer per seed; tests/unit/simulate-services.test.ts covers them.
  for (const s of SCENARIOS.filter((x) => !x.setup.settings?.services)) {
    for (let seed = 1; seed <= SEEDS; seed++) jobs.push({ index: jobs.length, scenario: s.name, nodes: 5, seed, inject: [] })
    for (const [nodes, seeds] of ODD_SIZES) {
      for (let seed = 1000; seed < 1000 + seeds; seed++) jobs.push({ index: jobs.length, scenario: s.name, nodes, seed, inject: [] })
    }
  }
  let results: JobResult[] = []
  const byScenario = (name: string): JobResult[] => results.filter((r) => r.scenario === name)

  it(`runs ${jobs.length} seeds with no violation`, async () => {
    results = await runJobs(jobs, 2, () => undefined)
    const failures = results.filter((r) => r.violations.length > 0).map((r) => `${r.scenario} seed ${r.seed}: ${r.violations.map((v) => `${v.checker}: ${v.message}`).join('; ')}`)
    expect(failures).toEqual([])
    expect(results).toHaveLength(jobs.length)
    // Liveness held in every run: a leader and a committed write soon after healing.
    for (const r of results) expect(r.stats.commitAfterHealMs).not.toBeNull()
    // Linearizability was decided everywhere, not left to the search's bound.
    expect(results.filter((r) => r.stats.inconclusiveKeys > 0).map((r) => `${r.scenario}/${r.seed}`)).toEqual([])
  }, 300_000)

  it('every scenario does what it says', () => {
    const elections = (name: string): number => byScenario(name).filter((r) => r.stats.leaders >= 2).length
    expect(elections('leader-partition')).toBe(byScenario('leader-partition').length)
    expect(sum(byScenario('minority-partition'), 'partition')).toBeGreaterThan(40)
    expect(sum(byScenario('asymmetric-partition'), 'one-way-cut') + sum(byScenario('asymmetric-partition'), 'bridge')).toBeGreaterThan(40)
    expect(sum(byScenario('slow-links'), 'slow-links')).toBeGreaterThan(40)
    expect(sum(byScenario('flapping-network'), 'partition')).toBeGreaterThan(200)
    expect(sum(byScenario('flapping-network'), 'replayed')).toBeGreaterThan(0)
    const crashes = byScenario('crash-restart')
    expect(sum(crashes, 'crash')).toBeGreaterThan(40)
    expect(sum(crashes, 'restart')).toBe(sum(crashes, 'crash'))
    expect(sum(crashes, 'torn-write')).toBeGreaterThan(0)
    // Crashes during a log write tore segments, and the daemon's recovery cut them off.
    expect(sum(crashes, 'torn-tail-cut')).toBeGreaterThan(0)
    for (const r of byScenario('rolling-restart')) expect(r.stats.counts['leave']).toBeGreaterThanOrEqual(3)
    expect(sum(byScenario('rolling-restart'), 'conf-change')).toBeGreaterThan(byScenario('rolling-restart').length)
    const lossy = byScenario('lossy-network')
    expect(lossy.reduce((n, r) => n + r.stats.dropped, 0)).toBeGreaterThan(1000)
    expect(lossy.reduce((n, r) => n + r.stats.duplicated, 0)).toBeGreaterThan(100)
    // Its 32-request dedup window was outlived by replayed proposals, and the horizon refused them.
    expect(sum(lossy, 'dedup-horizon-refusal')).toBeGreaterThan(0)
    const members = byScenario('membership-change-under-faults')
    expect(sum(members, 'join')).toBeGreaterThan(members.length)
    expect(sum(members, 'conf-change')).toBeGreaterThan(2 * members.length)
    expect(sum(members, 'snapshot-install')).toBeGreaterThan(members.length)
    expect(sum(byScenario('snapshot-install'), 'snapshot-install')).toBeGreaterThan(2 * byScenario('snapshot-install').length)
    expect(sum(byScenario('clock-skew'), 'pause')).toBeGreaterThan(40)
    // Lock holders' peers were cut off and paused, and the leader's clock changed rate and stepped.
    const locks = byScenario('lock-holder-faults')
    expect(sum(locks, 'partition') + sum(locks, 'pause')).toBeGreaterThan(locks.length)
    expect(sum(locks, 'clock-change') + sum(locks, 'wall-clock-step')).toBeGreaterThan(locks.length / 2)
    expect(locks.reduce((n, r) => n + r.stats.lockHolds, 0)).toBeGreaterThan(locks.length * 5)
    // Containers changed on every host's engine, engines restarted, and the leader marked the
    // containers of hosts dead past the grace period lost (membership scenario: 3 s grace).
    expect(sum(results, 'container-run')).toBeGreaterThan(results.length * 5)
    expect(sum(results, 'container-remove')).toBeGreaterThan(results.length * 2)
    expect(sum(results, 'engine-down')).toBeGreaterThan(results.length / 2)
    expect(sum(members, 'containers-marked-lost')).toBeGreaterThan(members.length / 4)
    // ... and the checker held a departed host's records to that (lost or removed) in a fair share of runs.
    expect(sum(members, 'departed-hosts-judged')).toBeGreaterThan(members.length / 5)
    // The workload ran everywhere: writes acknowledged, locks held.
    // (A run whose faults leave no quorum most of the time may ack only a few.)
    for (const r of results) expect(r.stats.acked).toBeGreaterThan(0)
    expect(results.filter((r) => r.stats.acked > 10).length).toBeGreaterThan(results.length * 0.95)
    expect(results.reduce((n, r) => n + r.stats.lockHolds, 0)).toBeGreaterThan(results.length * 3)
  })

  it('a seed replays exactly: same digest, same timeline', () => {
    const a = runSeed({ scenario: 'crash-restart', nodes: 5, seed: 4, trace: true })
    const b = runSeed({ scenario: 'crash-restart', nodes: 5, seed: 4, trace: true })
    const c = runSeed({ scenario: 'crash-restart', nodes: 5, seed: 4 })
    expect(b.digest).toBe(a.digest)
    expect(b.traceLines).toEqual(a.traceLines)
    expect(c.digest).toBe(a.digest)
    expect(a.traceLines.length).toBeGreaterThan(50)
    expect(runSeed({ scenario: 'crash-restart', nodes: 5, seed: 5 }).digest).not.toBe(a.digest)
  })
})
