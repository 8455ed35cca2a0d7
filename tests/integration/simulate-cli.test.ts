// `shoal simulate` as a user runs it: real processes, the command contract's
// JSON, exit codes, determinism across fresh processes, and a failure's
// replay command that reproduces it.

import { describe, expect, it } from 'vitest'
import { runCli } from '../helpers/processes.ts'
import { SCENARIOS } from '../../simulations/scenarios.ts'

interface SimulateJson {
  scenario: string
  nodes: number
  runs: number
  violations: number
  failures: Array<{ seed: number; replay: string; scenario: string; violations: Array<{ checker: string; message: string }> }>
  simulatedMs: number
  wallMs: number
  digest: string
}

function parse(stdout: string): SimulateJson {
  return JSON.parse(stdout) as SimulateJson
}

describe('shoal simulate', () => {
  it('the same seeds give the same digest in two fresh processes, whatever the worker count', async () => {
    const args = ['simulate', '--scenario', 'all', '--nodes', '5', '--seeds', '1..1', '--json']
    const a = await runCli([...args, '--workers', '2'], {}, 120_000)
    const [b, c] = await Promise.all([runCli([...args, '--workers', '1'], {}, 120_000), runCli(['simulate', '--scenario', 'crash-restart', '--seeds', '1..1', '--json'], {}, 120_000)])
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    const ja = parse(a.stdout)
    const jb = parse(b.stdout)
    expect(Object.keys(ja).slice(0, 8)).toEqual(['scenario', 'nodes', 'runs', 'violations', 'failures', 'simulatedMs', 'wallMs', 'digest'])
    expect(ja).toMatchObject({ scenario: 'all', nodes: 5, runs: SCENARIOS.length, violations: 0, failures: [] })
    expect(ja.digest).toMatch(/^[0-9a-f]{16}$/)
    expect(jb.digest).toBe(ja.digest)
    expect(jb.simulatedMs).toBe(ja.simulatedMs)
    expect(parse(c.stdout).digest).not.toBe(ja.digest)
    expect(ja.simulatedMs).toBeGreaterThan(11 * 10_000)
  }, 180_000)

  it('prints a summary table with the digest, exit 0', async () => {
    const r = await runCli(['simulate', '--scenario', 'leader-partition', '--nodes', '3', '--seeds', '7..9'], {}, 60_000)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^SCENARIO\s+RUNS\s+VIOLATIONS\s+SIMULATED\s+WALL\s+SPEED-UP\n/)
    expect(r.stdout).toMatch(/leader-partition\s+3\s+0\s/)
    expect(r.stdout).toMatch(/3 nodes, seeds 7\.\.9, .*digest [0-9a-f]{16}/)
    // No progress bar when stderr is not a terminal.
    expect(r.stderr).toBe('')
  }, 60_000)

  it('a violation exits 1 with a replay command that reproduces it, with its timeline', async () => {
    const r = await runCli(['simulate', '--scenario', 'leader-partition', '--seeds', '1..3', '--inject', 'local-consistent-reads', '--json'], {}, 60_000)
    expect(r.code, r.stderr).toBe(1)
    const j = parse(r.stdout)
    expect(j.violations).toBeGreaterThan(0)
    expect(j.failures).toHaveLength(j.violations)
    const first = j.failures[0]
    expect(first?.violations.map((v) => v.checker)).toContain('linearizability')
    expect(first?.replay).toBe(`shoal simulate --scenario leader-partition --nodes 5 --seeds ${first?.seed}..${first?.seed} --inject local-consistent-reads --trace`)
    const replay = await runCli((first?.replay ?? '').split(' ').slice(1), {}, 60_000)
    expect(replay.code).toBe(1)
    expect(replay.stdout).toContain(`scenario leader-partition, 5 nodes, seed ${first?.seed}, injected: local-consistent-reads`)
    expect(replay.stdout).toMatch(/role\s+n\d is leader in term \d+/)
    expect(replay.stdout).toMatch(/fault\s+partition/)
    expect(replay.stdout).toMatch(/client\s+c\d put .* ok \(index \d+\)/)
    expect(replay.stdout).toContain('VIOLATION linearizability')
    expect(replay.stdout).toContain('replay each with the command below it')
  }, 120_000)

  it('bad arguments get one clear line and exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['simulate', '--seeds', '1..2'], /--scenario is required/],
      [['simulate', '--scenario', 'nope', '--seeds', '1..2'], /unknown scenario "nope"/],
      [['simulate', '--scenario', 'all', '--seeds', '5..1'], /first seed is after the last/],
      [['simulate', '--scenario', 'all', '--seeds', '1..2', '--nodes', '12'], /--nodes "12"/],
    ]
    const results = await Promise.all(cases.map(([args]) => runCli(args)))
    results.forEach((r, i) => {
      expect(r.code).toBe(2)
      expect(r.stderr.split('\n')[0]).toMatch(cases[i]?.[1] ?? /./)
      expect(r.stdout).toBe('')
    })
  }, 60_000)
})
