// Membership: learners (thesis §4.2.1), single-server changes applied after
// commit (§4.1, as etcd), removal of the leader (§4.2.2).

import { describe, expect, it } from 'vitest'
import { decodeConfChange, encodeConfChange, type ConfChange } from '../../protocols/raft/conf-change.ts'
import { Cluster } from '../../protocols/raft/testing/cluster.ts'
import { drain, ofType, rawNode, storageWithTerms } from '../../protocols/raft/testing/raw.ts'
import type { NodeId } from '../../protocols/raft/types.ts'

const E = 10

function members(c: Cluster, id: NodeId): { voters: readonly NodeId[]; learners: readonly NodeId[] } {
  const st = c.node(id).core.status()
  return { voters: st.voters, learners: st.learners }
}

describe('§4.2.1 learners', () => {
  it('§4.2.1 learners receive every entry but never count toward the commit quorum', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], learners: ['d'], checkQuorum: false })
    c.elect('a')
    c.isolate('b')
    c.isolate('c')
    c.propose('a', 'x')
    c.run(3)
    expect(c.node('d').core.status().lastIndex).toBe(3) // d holds it...
    expect(c.node('a').core.status().commit).toBe(2) // ...but a + d is no majority of {a, b, c}
    c.heal()
    c.run(3)
    for (const id of ['a', 'b', 'c', 'd']) expect(c.appliedData(id)).toEqual(['x'])
  })

  it('§4.2.1 a learner never campaigns, and its vote does not count', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], learners: ['d'] })
    c.isolate('a')
    c.isolate('b')
    c.isolate('c')
    for (let i = 0; i < 10 * E; i++) c.tick('d')
    expect(c.node('d').core.status()).toMatchObject({ role: 'follower', term: 1 })
    expect(c.queue.filter((m) => m.from === 'd')).toEqual([])

    const cand = rawNode('a', { voters: ['a', 'b', 'c'], learners: ['d'] }, { preVote: false })
    cand.core.campaign()
    cand.core.step({ type: 'vote-resp', from: 'd', to: 'a', term: 2, reject: false })
    expect(cand.core.status().role).toBe('candidate') // a + learner d is not a majority
    cand.core.step({ type: 'vote-resp', from: 'b', to: 'a', term: 2, reject: false })
    expect(cand.core.status().role).toBe('leader')
  })

  it('promote a learner with add-voter: it then counts and may lead', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], learners: ['d'] })
    c.elect('a')
    expect(c.proposeConfChange('a', { type: 'add-voter', nodeId: 'd' }).ok).toBe(true)
    c.run(3)
    for (const id of ['a', 'b', 'c', 'd']) expect(members(c, id)).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] })
    expect(c.transferLeadership('a', 'd')).toMatchObject({ ok: true, kind: 'started' })
    c.run(2)
    expect(c.leader()).toBe('d')
  })
})

describe('§4.1 single-server membership changes', () => {
  it('§4.1 adding a voter: the new server catches up from a snapshot and then counts toward the quorum', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], spares: ['e'], checkQuorum: false })
    c.elect('a')
    c.propose('a', 'x')
    c.run(2)
    expect(c.proposeConfChange('a', { type: 'add-voter', nodeId: 'e' }).ok).toBe(true)
    c.run(5)
    expect(c.delivered.get('snap')).toBe(1) // an empty log starts from a snapshot
    for (const id of ['a', 'b', 'c', 'e']) expect(members(c, id).voters).toEqual(['a', 'b', 'c', 'e'])
    expect(c.appliedData('e')).toEqual(['x'])
    // Four voters: a majority is three.
    c.isolate('b')
    c.isolate('c')
    c.propose('a', 'y')
    c.run(3)
    expect(c.appliedData('a')).toEqual(['x'])
    c.heal()
    c.isolate('c')
    c.run(3)
    expect(c.appliedData('a')).toEqual(['x', 'y']) // a, b and e
  })

  it('§4.1 one change at a time: a second conf change is refused until the first is applied', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], learners: ['d', 'e'], checkQuorum: false })
    c.elect('a')
    c.isolate('b')
    c.isolate('c')
    expect(c.proposeConfChange('a', { type: 'add-voter', nodeId: 'd' })).toMatchObject({ ok: true, kind: 'appended' })
    expect(c.proposeConfChange('a', { type: 'add-voter', nodeId: 'e' })).toEqual({
      ok: false,
      reason: 'conf-change-pending',
    })
    c.heal()
    c.run(3)
    expect(c.proposeConfChange('a', { type: 'add-voter', nodeId: 'e' }).ok).toBe(true)
    c.run(3)
    expect(members(c, 'b').voters).toEqual(['a', 'b', 'c', 'd', 'e'])
  })

  it('a new leader refuses conf changes until it has applied the entries of its predecessors', () => {
    // Entry 2 (a possible conf change of an earlier term) is committed but not yet applied.
    const storage = storageWithTerms({ voters: ['a'], learners: [] }, [1], 2)
    const n = rawNode('a', { voters: ['a'], learners: [] }, { storage })
    n.core.campaign()
    expect(n.core.proposeConfChange({ type: 'add-learner', nodeId: 'z' })).toEqual({
      ok: false,
      reason: 'conf-change-pending',
    })
    drain(n)
    expect(n.core.proposeConfChange({ type: 'add-learner', nodeId: 'z' }).ok).toBe(true)
  })

  it('removing a follower: it no longer receives the log nor counts', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.proposeConfChange('a', { type: 'remove-node', nodeId: 'c' })
    c.run(3)
    expect(members(c, 'a')).toEqual({ voters: ['a', 'b'], learners: [] })
    expect(c.node('a').core.status().progress?.c).toBeUndefined()
    c.crash('c')
    c.propose('a', 'x')
    c.run(2)
    expect(c.appliedData('b')).toEqual(['x']) // a + b is a majority of {a, b}
  })

  it('invalid changes are refused with a typed reason', () => {
    const c = new Cluster({ voters: ['a', 'b'], learners: ['d'] })
    c.elect('a')
    const cases: [ConfChange, string][] = [
      [{ type: 'add-voter', nodeId: 'b' }, 'already-voter'],
      [{ type: 'add-learner', nodeId: 'd' }, 'already-learner'],
      [{ type: 'remove-node', nodeId: 'z' }, 'not-member'],
    ]
    for (const [cc, reason] of cases) expect(c.proposeConfChange('a', cc)).toEqual({ ok: false, reason })
    c.proposeConfChange('a', { type: 'remove-node', nodeId: 'b' })
    c.run(3)
    expect(c.proposeConfChange('a', { type: 'remove-node', nodeId: 'a' })).toEqual({ ok: false, reason: 'last-voter' })
    expect(c.proposeConfChange('a', { type: 'add-learner', nodeId: 'a' })).toEqual({ ok: false, reason: 'last-voter' })
  })

  it('a conf-change entry whose payload does not decode is refused', () => {
    const n = rawNode('a', { voters: ['a'], learners: [] })
    n.core.campaign()
    drain(n)
    n.core.step({
      type: 'prop',
      from: 'b',
      to: 'a',
      term: 0,
      entries: [{ type: 'conf-change', data: new TextEncoder().encode('{nope') }],
    })
    expect(n.core.status().lastIndex).toBe(2)
  })

  it('conf changes round-trip through their entry encoding; garbage decodes to undefined', () => {
    const all: ConfChange[] = [
      { type: 'add-voter', nodeId: 'QmPeer' },
      { type: 'add-learner', nodeId: 'x', context: '{"addrs":[]}' },
      { type: 'remove-node', nodeId: 'y' },
    ]
    for (const cc of all) expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc)
    for (const bad of ['', 'null', '{"type":"add-voter"}', '{"type":"zap","nodeId":"a"}', '{"type":"add-voter","nodeId":""}']) {
      expect(decodeConfChange(new TextEncoder().encode(bad))).toBeUndefined()
    }
  })
})

describe('§4.2.2 removing or demoting the leader', () => {
  it('§4.2.2 a removed leader keeps leading until it hands over to an up-to-date voter', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.proposeConfChange('a', { type: 'remove-node', nodeId: 'a' })
    let rounds = 0
    while (c.leader() === 'a' || c.leader() === undefined) {
      c.run(1)
      if (++rounds > 3 * E) break
    }
    expect(rounds).toBeLessThan(E) // a handover, not an election timeout
    const leader = c.leader() as NodeId
    expect(['b', 'c']).toContain(leader)
    expect(members(c, leader).voters).toEqual(['b', 'c'])
    c.run(2) // a's next heartbeat meets the newer term
    expect(c.node('a').core.status().role).toBe('follower')
    c.propose(leader, 'after')
    c.run(2)
    expect(c.appliedData('b')).toEqual(['after'])
  })

  it('§4.2.2 a leader demoted to learner refuses proposals while it hands over', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], autoProcess: true })
    c.elect('a')
    c.proposeConfChange('a', { type: 'add-learner', nodeId: 'a' })
    c.filter = (m) => m.type !== 'timeout-now' // hold the handover
    c.run(2)
    expect(c.node('a').core.status()).toMatchObject({ role: 'leader', learners: ['a'] })
    expect(c.propose('a', 'x')).toEqual({ ok: false, reason: 'not-member' })
    c.filter = undefined
    c.run(2 * E)
    expect(['b', 'c']).toContain(c.leader())
    expect(c.node('a').core.status().role).toBe('follower')
  })

  it('§4.2.2 a removed leader cut off before handing over is elected again to finish the change', () => {
    // {a, b} -> {b}. b stores the removal but never hears that it committed,
    // so b still needs a's vote, and a (with the longer log) refuses b. a may
    // campaign outside its configuration (thesis §4.2.2) to break the tie.
    const c = new Cluster({ voters: ['a', 'b'], seed: 11 })
    c.elect('a')
    c.proposeConfChange('a', { type: 'remove-node', nodeId: 'a' }) // entry 3
    c.propose('a', 'more') // entry 4: a's log will be longer than b's
    while (c.node('b').core.status().lastIndex < 3) c.deliverOne()
    c.cutLink('a', 'b') // b acks entry 3, but entry 4 and the commit index never reach it
    c.deliverAll()
    expect(c.node('a').core.status()).toMatchObject({ voters: ['b'], lastIndex: 4 }) // a applied its removal
    expect(c.node('b').core.status()).toMatchObject({ voters: ['a', 'b'], lastIndex: 3, commit: 2 })
    c.run(3 * E) // a loses check-quorum and steps down; b campaigns in vain
    c.heal()
    expect(c.runUntil(() => c.leader() === 'b' && c.node('b').core.status().voters.length === 1, 50 * E)).toBe(true)
    expect(members(c, 'b')).toEqual({ voters: ['b'], learners: [] })
    c.propose('b', 'y')
    c.run(2)
    expect(c.appliedData('b')).toEqual(['more', 'y']) // a committed its tail before handing over
  })

  it('a removed follower stops hearing from the leader and ignores nothing it should not', () => {
    const n = rawNode('c', { voters: ['a', 'b', 'c'], learners: [] })
    n.core.applyConfChange({ type: 'remove-node', nodeId: 'c' })
    expect(n.core.status()).toMatchObject({ voters: ['a', 'b'], learners: [] })
    // It may still answer votes (it may be needed until the change commits everywhere).
    n.core.step({ type: 'vote', from: 'a', to: 'c', term: 5, lastIndex: 1, lastTerm: 1, transfer: false })
    expect(ofType(drain(n).messages, 'vote-resp')[0]).toMatchObject({ reject: false })
  })
})
