/**
 * Simulator benchmarks (`npm run bench -- --only simulate`):
 *  - speed: simulated time over wall time for a 5-node cluster under the default workload
 *    (leader-partition seeds, every checker on), in one thread and on every core;
 *  - throughput: 10,000 seeds of leader-partition on every core (--quick: 1,000, extrapolated);
 *  - the failure detector alone: 1,000 simulated peers with 1% message loss, one of which
 *    crashes: how long until every live peer declares it dead, and how many false suspicions.
 */
import { availableParallelism } from 'node:os'
import { runJobs, runJob, type Job } from '../cli/simulate-pool.ts'
import { runSwimAtScale } from '../simulations/swim-scale.ts'
import { printTable } from './stats.ts'

function jobs(count: number, firstSeed: number): Job[] {
  return Array.from({ length: count }, (_, i) => ({ index: i, scenario: 'leader-partition', nodes: 5, seed: firstSeed + i, inject: [] }))
}

export async function simulateBench(quick: boolean): Promise<void> {
  const cores = availableParallelism()

  // Speed, one thread: warm the JIT first, as a long simulation would be.
  for (const job of jobs(20, 1_000_000)) runJob(job)
  const single = jobs(quick ? 50 : 200, 2_000_000)
  let started = performance.now()
  let simulatedMs = 0
  for (const job of single) simulatedMs += runJob(job).simulatedUs / 1000
  const singleWallMs = performance.now() - started
  const singleRatio = simulatedMs / singleWallMs

  // Speed and throughput on every core.
  const seeds = quick ? 1_000 : 10_000
  started = performance.now()
  let violations = 0
  let allSimulatedMs = 0
  await runJobs(jobs(seeds, 1), cores, (r) => {
    allSimulatedMs += r.simulatedUs / 1000
    if (r.violations.length > 0) violations++
  })
  const allWallMs = performance.now() - started
  const tenThousandS = (allWallMs / seeds) * 10_000 / 1000

  printTable(`Simulator speed: 5 nodes, default workload, leader-partition, every checker on (${cores} cores)`, ['threads', 'seeds', 'simulated s', 'wall s', 'speed-up x', 'seeds/min'], [
    [1, single.length, simulatedMs / 1000, singleWallMs / 1000, singleRatio, (single.length / singleWallMs) * 60_000],
    [cores, seeds, allSimulatedMs / 1000, allWallMs / 1000, allSimulatedMs / allWallMs, (seeds / allWallMs) * 60_000],
  ])
  process.stdout.write(`10,000 seeds of leader-partition on ${cores} cores: ${quick ? 'about ' : ''}${tenThousandS.toFixed(0)} s (${violations} with violations)\n`)

  // The failure detector at scale.
  const peers = quick ? 300 : 1_000
  started = performance.now()
  // 1,000 simultaneous joins keep the piggyback queues busy for about a minute; measure the
  // settled cluster a user runs (with 20 s of warm-up, the slowest peer took 50 s instead of 12).
  const warmupMs = 90_000
  const swim = runSwimAtScale({ peers, lossRate: 0.01, seed: 1, warmupMs, watchMs: 120_000 })
  const swimWallMs = performance.now() - started
  const peerMinutes = ((peers - 1) * swim.simulatedMs) / 60_000
  printTable(`Failure detector alone: ${peers} peers, 1% message loss, one crashes after ${warmupMs / 1000} s`, ['peers', 'all detect s', 'suspect p50 s', 'dead p50 s', 'dead p99 s', 'false suspicions', 'per peer-hour', 'per 1k probes', 'false deaths', 'wall s'], [
    [peers, swim.allDeadMs === null ? NaN : swim.allDeadMs / 1000, swim.suspectP50Ms / 1000, swim.deadP50Ms / 1000, swim.deadP99Ms / 1000, swim.falseSuspicions, (swim.falseSuspicions / peerMinutes) * 60, (swim.falseSuspicions / swim.probes) * 1000, swim.falseDeaths, swimWallMs / 1000],
  ])
}
