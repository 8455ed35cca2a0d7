// Property tests: random interleavings of ticks, proposals, partitions, message
// loss/duplication/reordering, crash-restarts (losing unpersisted state),
// compactions, membership changes, reads and leadership transfers. The cluster
// harness checks election safety, leader completeness, commit agreement, state
// machine safety and read linearizability after every input; each run then
// checks log matching, heals everything and requires the cluster to converge
// with nothing ever applied lost (see protocols/raft/testing/scenario.ts).

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { runScenario, SCENARIO_IDS, type Action, type Scenario } from '../../protocols/raft/testing/scenario.ts'

const nodeArb = fc.integer({ min: 0, max: SCENARIO_IDS.length - 1 })

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('tick' as const), node: nodeArb, n: fc.integer({ min: 1, max: 25 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('tickAll' as const), n: fc.integer({ min: 1, max: 15 }) }) },
  {
    weight: 20,
    arbitrary: fc.record({
      t: fc.constant('round' as const),
      n: fc.integer({ min: 1, max: 12 }),
      deliver: fc.integer({ min: 0, max: 80 }),
      process: fc.boolean(),
    }),
  },
  { weight: 10, arbitrary: fc.record({ t: fc.constant('deliver' as const), n: fc.integer({ min: 1, max: 60 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('process' as const), node: nodeArb }) },
  {
    weight: 10,
    arbitrary: fc.record({ t: fc.constant('propose' as const), node: nodeArb, n: fc.integer({ min: 1, max: 6 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('partition' as const),
      groups: fc.array(fc.integer({ min: 0, max: 2 }), {
        minLength: SCENARIO_IDS.length,
        maxLength: SCENARIO_IDS.length,
      }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('heal' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('crash' as const), node: nodeArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('restart' as const), node: nodeArb }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('compact' as const), node: nodeArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('loss' as const), rate: fc.constantFrom(0, 0.05, 0.2, 0.5) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('read' as const), node: nodeArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('transfer' as const), node: nodeArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('conf' as const),
      kind: fc.constantFrom('add-voter' as const, 'add-learner' as const, 'remove-node' as const),
      node: nodeArb,
    }),
  },
)

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  preVote: fc.boolean(),
  checkQuorum: fc.boolean(),
  reorder: fc.boolean(),
  autoProcess: fc.boolean(),
  duplicateRate: fc.constantFrom(0, 0.05),
  maxSizePerMsgBytes: fc.constantFrom(64, 1024 * 1024),
  maxInflightMsgs: fc.constantFrom(2, 256),
  warmup: fc.boolean(),
  fiveVoters: fc.boolean(),
  actions: fc.array(actionArb, { minLength: 50, maxLength: 250 }),
})

describe('raft properties (random faults, fast-check)', () => {
  it('election safety, log matching, leader completeness, state machine safety; nothing applied is lost', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        runScenario(s)
      }),
      { numRuns: 800, seed: 20240611, endOnFailure: false },
    )
  })

  it('the same properties hold over long histories (hundreds of faults per run)', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain((s) =>
          fc.array(actionArb, { minLength: 500, maxLength: 1000 }).map((actions) => ({ ...s, actions })),
        ),
        (s) => {
          runScenario(s)
        },
      ),
      { numRuns: 60, seed: 7, endOnFailure: false },
    )
  })

  it('a scenario replays exactly: the same inputs give the same trace digest', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        expect(runScenario(s).digest).toBe(runScenario(s).digest)
      }),
      { numRuns: 30, seed: 99 },
    )
  })
})
