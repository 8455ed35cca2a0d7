/**
 * `shoal simulate`: runs the deterministic simulator (simulations/) over a range of seeds, in
 * parallel on worker threads, and prints a summary with the exact command that replays each
 * failing seed. Exit 1 when any run reports a violation.
 */
import { availableParallelism } from 'node:os'
import { UsageError } from '../../node/errors.ts'
import { boolFlag, listFlag, parseCommandArgs, stringFlag } from '../args.ts'
import { formatTable } from '../table.ts'
import { runJobs, type Job, type JobResult } from '../simulate-pool.ts'
import { INJECTIONS, replayCommand, runSeed, type Injection } from '../../simulations/run.ts'
import { SCENARIOS, expandScenario } from '../../simulations/scenarios.ts'
import { combineDigests } from '../../simulations/trace.ts'

/** Bounds of --nodes: partitions need three; nine keeps a seed fast. */
const NODES_MIN = 3
const NODES_MAX = 9
/** Most runs one invocation accepts (seeds × scenarios). */
const RUNS_MAX = 10_000_000
/** Largest seed: seeds are 32-bit. */
const SEED_MAX = 0xffff_ffff

export const SIMULATE_USAGE = `Usage: shoal simulate --scenario NAME|all --seeds A..B [--nodes N] [--json]
                      [--trace] [--workers N] [--allow-inconclusive] [--inject FAULT]...

Runs the real Raft core, StateStore and failure detector under simulated partitions,
crashes and message faults, one run per seed, and checks Raft safety, durability,
linearizability, lock safety and liveness. The same seed always replays the same run.

  --scenario NAME   one of the scenarios below, or all
  --seeds A..B      seeds to run (inclusive), or a single seed N
  --nodes N         founding voters, ${NODES_MIN}-${NODES_MAX} (default 5)
  --json            print {"scenario","nodes","runs","violations","failures","simulatedMs","wallMs","digest","inconclusive"}
  --trace           print each run's timeline (one seed only; to stderr with --json)
  --workers N       worker threads (default: one per core; 1 runs in this process)
  --allow-inconclusive
                    pass runs whose linearizability search hit its step bound on a key
                    (by default such a run fails; either way it counts as inconclusive)
  --inject FAULT    test-only: run a deliberately broken variant, to see the checkers fail

Scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(31)} ${s.summary}`).join('\n')}

Broken variants (--inject):
${Object.entries(INJECTIONS).map(([name, what]) => `  ${name.padEnd(23)} ${what}`).join('\n')}`

const FLAGS = {
  scenario: { type: 'string' },
  seeds: { type: 'string' },
  nodes: { type: 'string' },
  json: { type: 'boolean' },
  trace: { type: 'boolean' },
  workers: { type: 'string' },
  inject: { type: 'string', multiple: true },
  'allow-inconclusive': { type: 'boolean' },
} as const

/** What `shoal simulate` was asked to do. */
export interface SimulateArgs {
  readonly scenarioArg: string
  readonly scenarios: readonly string[]
  readonly from: number
  readonly to: number
  readonly nodes: number
  readonly workers: number
  readonly inject: readonly Injection[]
  readonly json: boolean
  readonly trace: boolean
  readonly allowInconclusive: boolean
}

/** The inclusive seed range of `--seeds A..B` (or `N`). */
export function parseSeeds(value: string | undefined): { from: number; to: number } {
  if (value === undefined) throw new UsageError('shoal simulate: --seeds is required, e.g. --seeds 1..500')
  const m = /^(\d+)(?:\.\.(\d+))?$/.exec(value)
  const from = m === null ? NaN : Number(m[1])
  const to = m === null ? NaN : Number(m[2] ?? m[1])
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from > SEED_MAX || to > SEED_MAX) {
    throw new UsageError(`shoal simulate: --seeds ${JSON.stringify(value)}: use A..B with whole numbers 0-${SEED_MAX}, e.g. 1..500`)
  }
  if (from > to) throw new UsageError(`shoal simulate: --seeds ${value}: the first seed is after the last`)
  return { from, to }
}

function parseCount(value: string | undefined, flag: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  const n = /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`shoal simulate: ${flag} ${JSON.stringify(value)}: use a whole number from ${min} to ${max}`)
  return n
}

function parseInjections(values: string[]): Injection[] {
  const known = Object.keys(INJECTIONS)
  const out: Injection[] = []
  for (const v of values) {
    const match = known.find((k): k is Injection => k === v)
    if (match === undefined) throw new UsageError(`shoal simulate: --inject ${JSON.stringify(v)}: use one of ${known.join(', ')}`)
    if (!out.includes(match)) out.push(match)
  }
  return out
}

/** "1h 02m", "3m 20s", "12.3s": a simulated or wall duration. */
function duration(ms: number): string {
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

function speedUp(simulatedMs: number, wallMs: number): string {
  return wallMs <= 0 ? '-' : `${Math.round(simulatedMs / wallMs)}x`
}

/** A one-line progress bar on stderr, repainted at most every 100 ms. */
function progressBar(total: number): { update(done: number, violations: number): void; clear(): void } {
  let last = 0
  const started = Date.now()
  const width = 30
  const paint = (done: number, violations: number): void => {
    const filled = Math.round((done / total) * width)
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} runs, ${violations} with violations, ${duration(Date.now() - started)}`
    process.stderr.write(`\r${line}\x1b[K`)
  }
  return {
    update(done, violations) {
      const now = Date.now()
      if (done < total && now - last < 100) return
      last = now
      paint(done, violations)
    },
    clear() {
      process.stderr.write('\r\x1b[K')
    },
  }
}

/** Parses and validates `shoal simulate`'s arguments (UsageError on anything wrong). */
export function parseSimulateArgs(argv: string[]): SimulateArgs {
  const p = parseCommandArgs('simulate', argv, FLAGS, { min: 0, max: 0 })
  const scenarioArg = stringFlag(p, 'scenario')
  if (scenarioArg === undefined) throw new UsageError(`shoal simulate: --scenario is required: one of ${SCENARIOS.map((s) => s.name).join(', ')}, or all`)
  const scenarios = expandScenario(scenarioArg)
  if (scenarios === undefined) throw new UsageError(`shoal simulate: unknown scenario ${JSON.stringify(scenarioArg)}: use one of ${SCENARIOS.map((s) => s.name).join(', ')}, or all`)
  const { from, to } = parseSeeds(stringFlag(p, 'seeds'))
  const nodes = parseCount(stringFlag(p, 'nodes'), '--nodes', NODES_MIN, NODES_MAX, 5)
  const workers = parseCount(stringFlag(p, 'workers'), '--workers', 1, 256, availableParallelism())
  const inject = parseInjections(listFlag(p, 'inject'))
  const json = boolFlag(p, 'json')
  const trace = boolFlag(p, 'trace')
  const allowInconclusive = boolFlag(p, 'allow-inconclusive')
  const seedCount = to - from + 1
  if (seedCount * scenarios.length > RUNS_MAX) throw new UsageError(`shoal simulate: ${seedCount * scenarios.length} runs is more than ${RUNS_MAX}; narrow --seeds`)
  if (trace && seedCount !== 1) throw new UsageError(`shoal simulate: --trace replays one seed; use --seeds ${from}..${from}`)
  return { scenarioArg, scenarios, from, to, nodes, workers, inject, json, trace, allowInconclusive }
}

export async function simulateCommand(argv: string[]): Promise<number> {
  const { scenarioArg, scenarios, from, to, nodes, workers, inject, json, trace, allowInconclusive } = parseSimulateArgs(argv)

  const jobs: Job[] = []
  for (let seed = from; seed <= to; seed++) {
    for (const scenario of scenarios) jobs.push({ index: jobs.length, scenario, nodes, seed, inject, allowInconclusive })
  }

  const started = performance.now()
  let results: JobResult[]
  if (trace) {
    const out = json ? process.stderr : process.stdout
    results = jobs.map((job) => {
      const t = performance.now()
      const r = runSeed({ scenario: job.scenario, nodes: job.nodes, seed: job.seed, inject: job.inject, allowInconclusive: job.allowInconclusive, trace: true })
      out.write(`${r.traceLines.join('\n')}\n\n`)
      return { index: job.index, scenario: r.scenario, seed: r.seed, digest: r.digest, simulatedUs: r.simulatedUs, wallMs: performance.now() - t, violations: r.violations, stats: r.stats }
    })
  } else {
    const bar = process.stderr.isTTY ? progressBar(jobs.length) : null
    let done = 0
    let failing = 0
    results = await runJobs(jobs, workers, (r) => {
      done++
      if (r.violations.length > 0) failing++
      bar?.update(done, failing)
    })
    bar?.clear()
  }
  const wallMs = performance.now() - started
  results.sort((a, b) => a.index - b.index)

  const failures = results.filter((r) => r.violations.length > 0)
  const undecided = (r: JobResult): boolean => r.stats.inconclusiveKeys > 0
  const inconclusive = results.filter(undecided).length
  const simulatedMs = results.reduce((sum, r) => sum + r.simulatedUs / 1000, 0)
  const digest = combineDigests(results.map((r) => r.digest))
  if (json) {
    process.stdout.write(`${JSON.stringify({
      scenario: scenarioArg,
      nodes,
      runs: results.length,
      violations: failures.length,
      failures: failures.map((r) => ({
        seed: r.seed,
        replay: replayCommand(r.scenario, nodes, r.seed, inject, allowInconclusive),
        scenario: r.scenario,
        violations: r.violations.map((v) => ({ checker: v.checker, atMs: Math.round(v.atUs / 1000), message: v.message })),
      })),
      simulatedMs: Math.round(simulatedMs),
      wallMs: Math.round(wallMs),
      digest,
      inconclusive,
    })}\n`)
    return failures.length > 0 ? 1 : 0
  }

  // The inconclusive column appears only when some run had an undecided key, so the usual table keeps its shape.
  const showInconclusive = inconclusive > 0
  const rows = scenarios.map((name) => {
    const mine = results.filter((r) => r.scenario === name)
    const sim = mine.reduce((sum, r) => sum + r.simulatedUs / 1000, 0)
    const cpu = mine.reduce((sum, r) => sum + r.wallMs, 0)
    const row = [name, String(mine.length), String(mine.filter((r) => r.violations.length > 0).length), duration(sim), duration(cpu), speedUp(sim, cpu)]
    return showInconclusive ? [...row, String(mine.filter(undecided).length)] : row
  })
  if (scenarios.length > 1) {
    const total = ['total', String(results.length), String(failures.length), duration(simulatedMs), duration(wallMs), speedUp(simulatedMs, wallMs)]
    rows.push(showInconclusive ? [...total, String(inconclusive)] : total)
  }
  const headers = ['scenario', 'runs', 'violations', 'simulated', 'wall', 'speed-up']
  process.stdout.write(formatTable(showInconclusive ? [...headers, 'inconclusive'] : headers, rows))
  const threads = trace ? 1 : Math.min(workers, jobs.length)
  process.stdout.write(`${nodes} nodes, seeds ${from}..${to}, ${threads} worker${threads === 1 ? '' : 's'}, ${duration(wallMs)} wall (${speedUp(simulatedMs, wallMs)} simulated/wall); digest ${digest}\n`)
  if (showInconclusive) {
    process.stdout.write(`${inconclusive} run${inconclusive === 1 ? '' : 's'} left a key's linearizability undecided (the search hit its step bound)${allowInconclusive ? '; passed by --allow-inconclusive' : '; they fail unless --allow-inconclusive is given'}\n`)
  }
  if (failures.length > 0) {
    process.stdout.write(`\n${failures.length} run${failures.length === 1 ? '' : 's'} with violations; replay each with the command below it:\n`)
    for (const r of failures) {
      for (const v of r.violations) process.stdout.write(`  seed ${r.seed} ${r.scenario}: ${v.checker}: ${v.message}\n`)
      process.stdout.write(`    ${replayCommand(r.scenario, nodes, r.seed, inject, allowInconclusive)}\n`)
    }
  }
  return failures.length > 0 ? 1 : 0
}
