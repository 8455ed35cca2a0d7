// Leader election (thesis §3.3, §3.4, §3.6.1, §3.8), pre-vote (§9.6),
// check-quorum and the follower lease (§6.2, §4.2.3).

import { describe, expect, it } from 'vitest'
import type { Message } from '../../protocols/raft/messages.ts'
import { MemoryLogStorage } from '../../storage/raft-log/memory-log-storage.ts'
import { Cluster } from '../../protocols/raft/testing/cluster.ts'
import { drain, ofType, rawNode } from '../../protocols/raft/testing/raw.ts'
import type { ConfState } from '../../protocols/raft/types.ts'

const ABC: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
const E = 10 // election ticks

/** A follower whose log ends with one entry of `term` at index 2 (after the founding snapshot). */
function storageWithEntry(term: number): MemoryLogStorage {
  const storage = new MemoryLogStorage({ confState: ABC })
  storage.append([{ index: 2, term, type: 'normal', data: new Uint8Array(0) }])
  storage.setHardState({ term, vote: null, commit: 1 })
  return storage
}

function vote(from: string, to: string, term: number, lastIndex: number, lastTerm: number): Message {
  return { type: 'vote', from, to, term, lastIndex, lastTerm, transfer: false }
}

describe('§3.3/§3.4 leader election', () => {
  it('§3.3 servers start up as followers', () => {
    const n = rawNode('a', ABC)
    expect(n.core.status()).toMatchObject({ role: 'follower', term: 1, lead: null, vote: null })
  })

  it('§3.4 a follower that hears no leader for an election timeout starts an election', () => {
    const n = rawNode('a', ABC, { preVote: false })
    for (let i = 0; i < 2 * E; i++) n.core.tick()
    const st = n.core.status()
    expect(st).toMatchObject({ role: 'candidate', term: 2, vote: 'a' })
    const out = drain(n)
    // It votes for itself and asks every other voter, advertising its last entry.
    expect(ofType(out.messages, 'vote').map((m) => [m.to, m.term, m.lastIndex, m.lastTerm])).toEqual([
      ['b', 2, 1, 1],
      ['c', 2, 1, 1],
    ])
    expect(n.storage.initialState().hardState).toMatchObject({ term: 2, vote: 'a' })
  })

  it('§3.4 election timeouts are randomized in [electionTicks, 2*electionTicks)', () => {
    const seen = new Set<number>()
    for (let seed = 1; seed <= 60; seed++) {
      const n = rawNode('a', ABC, { preVote: false, seed })
      let ticks = 0
      while (n.core.status().role === 'follower' && ticks < 3 * E) {
        n.core.tick()
        ticks++
      }
      expect(ticks).toBeGreaterThanOrEqual(E)
      expect(ticks).toBeLessThan(2 * E)
      seen.add(ticks)
    }
    // Spread out, so that split votes are rare.
    expect(seen.size).toBeGreaterThanOrEqual(6)
  })

  it('§3.4 a candidate that receives votes from a majority becomes leader and asserts itself', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], preVote: false })
    c.node('c').alive = false // one voter down: two of three still elect
    c.elect('a')
    expect(c.node('a').core.status()).toMatchObject({ role: 'leader', term: 2, lead: 'a' })
    expect(c.node('b').core.status()).toMatchObject({ role: 'follower', term: 2, lead: 'a' })
  })

  it('§3.4 a candidate that hears from a leader of its term steps down', () => {
    const n = rawNode('a', ABC, { preVote: false })
    n.core.campaign()
    drain(n)
    expect(n.core.status().role).toBe('candidate')
    n.core.step({ type: 'heartbeat', from: 'b', to: 'a', term: 2, commit: 1, readSeq: 0 })
    expect(n.core.status()).toMatchObject({ role: 'follower', term: 2, lead: 'b' })
  })

  it('§3.4 a candidate without a majority times out and starts a new election in a higher term', () => {
    const n = rawNode('a', ABC, { preVote: false })
    n.core.campaign()
    n.core.step({ type: 'vote-resp', from: 'b', to: 'a', term: 2, reject: true })
    expect(n.core.status()).toMatchObject({ role: 'candidate', term: 2 })
    for (let i = 0; i < 2 * E; i++) n.core.tick()
    expect(n.core.status()).toMatchObject({ role: 'candidate', term: 3, vote: 'a' })
  })

  it('§3.4 a candidate rejected by a majority falls back to follower', () => {
    const n = rawNode('a', ABC, { preVote: false })
    n.core.campaign()
    n.core.step({ type: 'vote-resp', from: 'b', to: 'a', term: 2, reject: true })
    n.core.step({ type: 'vote-resp', from: 'c', to: 'a', term: 2, reject: true })
    expect(n.core.status()).toMatchObject({ role: 'follower', term: 2 })
  })

  it('§3.4 each server grants at most one vote per term (a repeat to the same candidate is granted again)', () => {
    const n = rawNode('b', ABC)
    n.core.step(vote('a', 'b', 2, 1, 1))
    n.core.step(vote('c', 'b', 2, 1, 1))
    n.core.step(vote('a', 'b', 2, 1, 1))
    const resps = ofType(drain(n).messages, 'vote-resp')
    expect(resps.map((m) => [m.to, m.reject])).toEqual([
      ['a', false],
      ['c', true],
      ['a', false],
    ])
  })

  it('§3.6.1 a voter denies its vote to a candidate whose log is less up to date', () => {
    const cases: [lastIndex: number, lastTerm: number, granted: boolean][] = [
      [1, 1, false], // older last term
      [5, 1, false], // longer but older last term
      [2, 2, true], // same last entry
      [3, 2, true], // same term, longer
      [1, 3, true], // newer last term, shorter
    ]
    for (const [lastIndex, lastTerm, granted] of cases) {
      const n = rawNode('b', ABC, { storage: storageWithEntry(2) })
      n.core.step(vote('a', 'b', 4, lastIndex, lastTerm))
      const [resp] = ofType(drain(n).messages, 'vote-resp')
      expect(resp?.reject, `candidate log (${lastIndex}, ${lastTerm})`).toBe(!granted)
    }
  })

  it('§3.3 a server that sees a higher term adopts it and becomes follower', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.stepInto({ type: 'app-resp', from: 'b', to: 'a', term: 9, index: 0, reject: false, rejectHint: 0, hintTerm: 0 })
    expect(c.node('a').core.status()).toMatchObject({ role: 'follower', term: 9, vote: null })
  })

  it('§3.3 a request with a stale term is rejected; a stale leader is told the newer term', () => {
    const n = rawNode('b', ABC)
    n.core.step(vote('c', 'b', 3, 1, 1))
    drain(n)
    const entry = { index: 2, term: 2, type: 'normal' as const, data: new Uint8Array(0) }
    n.core.step({ type: 'app', from: 'a', to: 'b', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry], commit: 1 })
    const out = drain(n)
    expect(n.core.status().lastIndex).toBe(1) // nothing appended
    expect(ofType(out.messages, 'app-resp')).toEqual([
      { type: 'app-resp', from: 'b', to: 'a', term: 3, index: 0, reject: false, rejectHint: 0, hintTerm: 0 },
    ])
  })

  it('§3.8 a vote is persisted (with fsync) in the same Ready that sends it', () => {
    const n = rawNode('b', ABC)
    n.core.step(vote('a', 'b', 2, 1, 1))
    const rd = n.core.ready()
    expect(rd.hardState).toEqual({ term: 2, vote: 'a', commit: 1 })
    expect(rd.mustSync).toBe(true)
    expect(rd.messages.map((m) => m.type)).toEqual(['vote-resp'])
    n.core.advance(rd)
  })

  it('a single voter elects itself and commits on its own once its entries are persisted', () => {
    const n = rawNode('a', { voters: ['a'], learners: [] })
    n.core.campaign()
    expect(n.core.status().role).toBe('leader')
    // The no-op of the new term is not committed before the driver persists it.
    expect(n.core.status().commit).toBe(1)
    const out = drain(n)
    expect(n.core.status().commit).toBe(2)
    expect(out.committed.map((e) => e.index)).toEqual([2])
  })
})

describe('§9.6 pre-vote', () => {
  it('pre-vote: a pre-candidate does not change its term until a majority would vote for it', () => {
    const n = rawNode('a', ABC)
    for (let i = 0; i < 2 * E; i++) n.core.tick()
    expect(n.core.status()).toMatchObject({ role: 'pre-candidate', term: 1, vote: null })
    const preVotes = ofType(drain(n).messages, 'pre-vote')
    expect(preVotes.map((m) => [m.to, m.term])).toEqual([
      ['b', 2],
      ['c', 2],
    ])
    n.core.step({ type: 'pre-vote-resp', from: 'b', to: 'a', term: 2, reject: false })
    expect(n.core.status()).toMatchObject({ role: 'candidate', term: 2, vote: 'a' })
  })

  it('pre-vote: a partitioned node rejoining does not increase the term or depose the leader', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], seed: 3 })
    c.elect('a')
    c.isolate('c')
    c.run(20 * E)
    expect(c.node('c').core.status().term).toBe(2) // pre-votes never succeed, so no term inflation
    c.heal()
    c.run(5 * E)
    expect(c.leader()).toBe('a')
    expect(c.node('a').core.status().term).toBe(2)
    expect(c.node('c').core.status()).toMatchObject({ role: 'follower', lead: 'a', term: 2 })
  })

  it('without pre-vote or check-quorum, the same rejoining node inflates its term and deposes the leader', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], seed: 3, preVote: false, checkQuorum: false })
    c.elect('a')
    c.isolate('c')
    c.run(20 * E)
    const partitionedTerm = c.node('c').core.status().term
    expect(partitionedTerm).toBeGreaterThan(5)
    c.heal()
    // c's next vote request (at its next timeout) carries the inflated term.
    c.run(2 * E)
    expect(c.node('a').core.status().term).toBeGreaterThan(partitionedTerm)
  })
})

describe('§6.2 check-quorum and §4.2.3 the follower lease', () => {
  it('check-quorum: an isolated leader steps down within two election timeouts', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.isolate('a')
    for (let i = 0; i < 2 * E; i++) c.tick('a')
    expect(c.node('a').core.status()).toMatchObject({ role: 'follower', lead: null, term: 2 })
  })

  it('check-quorum: a leader that hears from a majority stays leader', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c', 'd', 'e'] })
    c.elect('a')
    c.isolate('d')
    c.isolate('e')
    c.run(10 * E)
    expect(c.node('a').core.status()).toMatchObject({ role: 'leader', term: 2 })
  })

  it('without check-quorum an isolated leader keeps believing it leads', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], checkQuorum: false })
    c.elect('a')
    c.isolate('a')
    for (let i = 0; i < 10 * E; i++) c.tick('a')
    expect(c.node('a').core.status().role).toBe('leader')
  })

  it('lease: a follower that heard from its leader within the election timeout ignores a higher-term vote request', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], preVote: false })
    c.elect('a')
    c.filter = () => false // capture nothing further
    c.stepInto(vote('c', 'b', 7, 99, 7))
    expect(c.node('b').core.status()).toMatchObject({ term: 2, lead: 'a', vote: 'a' })
    expect(c.node('b').core.hasReady()).toBe(false) // no answer at all
  })

  it('lease: once the election timeout passes without the leader, the follower votes again', () => {
    const n = rawNode('b', ABC, { preVote: false })
    n.core.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 1, readSeq: 0 })
    drain(n)
    for (let i = 0; i < E; i++) n.core.tick()
    n.core.step(vote('c', 'b', 3, 1, 1))
    const [resp] = ofType(drain(n).messages, 'vote-resp')
    expect(resp).toMatchObject({ to: 'c', term: 3, reject: false })
  })

  it('lease: a vote marked as a leadership transfer is not blocked by the lease', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], preVote: false })
    c.elect('a')
    c.filter = () => false
    c.stepInto({ type: 'vote', from: 'c', to: 'b', term: 3, lastIndex: 2, lastTerm: 2, transfer: true })
    expect(c.node('b').core.status()).toMatchObject({ term: 3, vote: 'c' })
  })
})
