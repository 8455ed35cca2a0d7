import { describe, it, expect } from 'vitest'
import { autopilotDecide, type AutopilotInput, type Liveness } from '../../protocols/raft/autopilot.ts'

const cfg = { deadGraceMs: 30_000, caughtUpLagEntries: 10 }
function input(voters: string[], learners: string[], members: Array<[string, Liveness, number?]>, match: Record<string, number> = {}, now = 100_000): AutopilotInput {
  return {
    selfId: 'a',
    nowMs: now,
    voters,
    learners,
    lastIndex: 100,
    match,
    members: members.map(([peerId, state, since]) => ({ peerId, state, stateSinceMs: since ?? 0 })),
  }
}

describe('autopilot', () => {
  it('adds every alive peer as a learner', () => {
    expect(autopilotDecide(input(['a'], [], [['a', 'alive'], ['b', 'alive']]), cfg)).toEqual({ type: 'add-learner', nodeId: 'b' })
  })

  it('promotes the most caught-up alive learner while voters are under target (3 below 5 peers)', () => {
    const d = autopilotDecide(input(['a'], ['b', 'c'], [['a', 'alive'], ['b', 'alive'], ['c', 'alive']], { b: 95, c: 99 }), cfg)
    expect(d).toEqual({ type: 'add-voter', nodeId: 'c' })
  })

  it('does not promote a learner that is behind', () => {
    expect(autopilotDecide(input(['a'], ['b'], [['a', 'alive'], ['b', 'alive']], { b: 50 }), cfg)).toBeNull()
  })

  it('targets 5 voters once 5 peers are alive, and respects an explicit target', () => {
    const members: Array<[string, Liveness]> = [['a', 'alive'], ['b', 'alive'], ['c', 'alive'], ['d', 'alive'], ['e', 'alive']]
    const match = { d: 100, e: 100 }
    expect(autopilotDecide(input(['a', 'b', 'c'], ['d', 'e'], members, match), cfg)?.type).toBe('add-voter')
    expect(autopilotDecide(input(['a', 'b', 'c'], ['d', 'e'], members, match), { ...cfg, targetVoters: 3 })).toBeNull()
  })

  it('removes a voter that left at once', () => {
    expect(autopilotDecide(input(['a', 'b', 'c'], [], [['a', 'alive'], ['b', 'left', 99_999], ['c', 'alive']]), cfg)).toEqual({ type: 'remove-node', nodeId: 'b' })
  })

  it('waits out the grace period before removing a dead voter', () => {
    const members: Array<[string, Liveness, number]> = [['a', 'alive', 0], ['b', 'dead', 80_000], ['c', 'alive', 0]]
    expect(autopilotDecide(input(['a', 'b', 'c'], [], members), cfg)).toBeNull()
    expect(autopilotDecide(input(['a', 'b', 'c'], [], members, {}, 110_001), cfg)).toEqual({ type: 'remove-node', nodeId: 'b' })
  })

  it('replaces a dead voter by promoting a caught-up learner first', () => {
    const members: Array<[string, Liveness, number]> = [['a', 'alive', 0], ['b', 'dead', 0], ['c', 'alive', 0], ['d', 'alive', 0]]
    expect(autopilotDecide(input(['a', 'b', 'c'], ['d'], members, { d: 100 }), cfg)).toEqual({ type: 'add-voter', nodeId: 'd' })
    expect(autopilotDecide(input(['a', 'b', 'c', 'd'], [], members, { d: 100 }), cfg)).toEqual({ type: 'remove-node', nodeId: 'b' })
  })

  it('never removes a voter when the rest would lack a live quorum', () => {
    const members: Array<[string, Liveness, number]> = [['a', 'alive', 0], ['b', 'dead', 0], ['c', 'dead', 0], ['d', 'dead', 0], ['e', 'dead', 0]]
    // 5 voters, only a alive: removing b leaves 4 voters with 1 live; quorum 3 is not there.
    expect(autopilotDecide(input(['a', 'b', 'c', 'd', 'e'], [], members), cfg)).toBeNull()
  })

  it('has no verdict on peers it has not heard of, and never removes itself', () => {
    expect(autopilotDecide(input(['a', 'x'], [], [['a', 'alive']]), cfg)).toBeNull()
    expect(autopilotDecide(input(['a', 'b', 'c'], [], [['a', 'left', 0], ['b', 'alive'], ['c', 'alive']]), cfg)).toBeNull()
  })

  it('removes dead and departed learners', () => {
    expect(autopilotDecide(input(['a'], ['b'], [['a', 'alive'], ['b', 'left', 0]]), cfg)).toEqual({ type: 'remove-node', nodeId: 'b' })
  })
})
