// `shoal simulate`'s arguments as the command parses them (the command itself,
// in real processes, is tests/integration/simulate-cli.test.ts).

import { describe, expect, it } from 'vitest'
import { parseSimulateArgs, SIMULATE_USAGE } from '../../cli/commands/simulate.ts'
import { replayCommand } from '../../simulations/run.ts'
import { UsageError } from '../../node/errors.ts'

describe('shoal simulate arguments', () => {
  it('--allow-inconclusive is off unless given', () => {
    expect(parseSimulateArgs(['--scenario', 'crash-restart', '--seeds', '1..3']).allowInconclusive).toBe(false)
    const a = parseSimulateArgs(['--scenario', 'all', '--seeds', '4', '--allow-inconclusive', '--inject', 'ack-before-fsync'])
    expect(a).toMatchObject({ scenarioArg: 'all', from: 4, to: 4, nodes: 5, allowInconclusive: true, inject: ['ack-before-fsync'], json: false, trace: false })
    expect(SIMULATE_USAGE).toContain('--allow-inconclusive')
  })

  it('refuses a value for the flag and unknown flags', () => {
    expect(() => parseSimulateArgs(['--scenario', 'all', '--seeds', '1..2', '--allow-inconclusive=yes'])).toThrow(UsageError)
    expect(() => parseSimulateArgs(['--scenario', 'all', '--seeds', '1..2', '--allow-undecided'])).toThrow(UsageError)
  })

  it('a replay keeps the flag, so it reproduces the same verdict', () => {
    expect(replayCommand('leader-partition', 5, 9, [], true)).toBe('shoal simulate --scenario leader-partition --nodes 5 --seeds 9..9 --allow-inconclusive --trace')
    expect(replayCommand('leader-partition', 5, 9)).toBe('shoal simulate --scenario leader-partition --nodes 5 --seeds 9..9 --trace')
  })
})
