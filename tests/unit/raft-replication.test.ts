// Log replication and commitment (thesis §3.5, §3.6.2, §3.8), fast
// backtracking, batching and pipelining (§10.2), proposal results.

import { describe, expect, it } from 'vitest'
import type { Message } from '../../protocols/raft/messages.ts'
import { Cluster } from '../../protocols/raft/testing/cluster.ts'
import { drain, ids, ofType, pump, rawNode, storageWithTerms, type RawNode } from '../../protocols/raft/testing/raw.ts'
import type { ConfState, Entry, NodeId } from '../../protocols/raft/types.ts'

const ABC: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
const LFX: ConfState = { voters: ['l', 'f', 'x'], learners: [] }
const enc = new TextEncoder()

function entry(index: number, term: number): Entry {
  return { index, term, type: 'normal', data: new Uint8Array([index & 0xff]) }
}

/** Raw nodes l (with `leaderTerms`), f (with `followerTerms`) and an empty x; l is elected. */
function divergent(leaderTerms: number[], followerTerms: number[], maxSizePerMsgBytes?: number): Map<NodeId, RawNode> {
  const opts = { preVote: false, ...(maxSizePerMsgBytes === undefined ? {} : { maxSizePerMsgBytes }) }
  // The leader campaigns above every term in the fixture (Election Safety).
  const leaderStorage = storageWithTerms(LFX, leaderTerms)
  leaderStorage.setHardState({ term: Math.max(1, ...leaderTerms, ...followerTerms), vote: null, commit: 1 })
  const nodes = new Map<NodeId, RawNode>([
    ['l', rawNode('l', LFX, { ...opts, storage: leaderStorage })],
    ['f', rawNode('f', LFX, { ...opts, storage: storageWithTerms(LFX, followerTerms) })],
    ['x', rawNode('x', LFX, opts)],
  ])
  return nodes
}

function logOf(n: RawNode): [number, number][] {
  const st = n.core.status()
  return ids(n.core.logEntries(st.firstIndex, st.lastIndex + 1) ?? [])
}

describe('§3.5 log replication', () => {
  it('§3.5 the leader commits an entry once a majority has stored it, and followers apply it', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.isolate('c')
    const r = c.propose('a', 'x')
    expect(r).toMatchObject({ ok: true, kind: 'appended', index: 3, term: 2 })
    c.run(2)
    expect(c.appliedData('a')).toEqual(['x'])
    expect(c.appliedData('b')).toEqual(['x'])
    expect(c.appliedData('c')).toEqual([])
    c.heal()
    c.run(3)
    expect(c.appliedData('c')).toEqual(['x'])
  })

  it('§3.5 an entry stored only by a minority is not committed', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], checkQuorum: false })
    c.elect('a')
    const before = c.node('a').core.status().commit
    c.isolate('b')
    c.isolate('c')
    c.propose('a', 'x')
    c.run(5)
    expect(c.node('a').core.status().commit).toBe(before)
    expect(c.appliedData('a')).toEqual([])
  })

  it('§3.5 a follower rejects an append whose previous entry does not match, hinting where to retry', () => {
    const f = rawNode('f', LFX, { storage: storageWithTerms(LFX, [2]) }) // log: 1:t1, 2:t2
    f.core.step({ type: 'app', from: 'l', to: 'f', term: 3, prevIndex: 2, prevTerm: 3, entries: [entry(3, 3)], commit: 1 })
    f.core.step({ type: 'app', from: 'l', to: 'f', term: 3, prevIndex: 6, prevTerm: 3, entries: [entry(7, 3)], commit: 1 })
    const resps = ofType(drain(f).messages, 'app-resp')
    expect(resps.map((m) => [m.reject, m.index, m.rejectHint, m.hintTerm])).toEqual([
      [true, 2, 2, 2], // our entry 2 has term 2 <= 3: the leader may match there
      [true, 6, 2, 2], // our log ends at 2
    ])
    expect(logOf(f)).toEqual([[2, 2]])
  })

  it('§3.5 conflicting follower entries are replaced by the leader\'s, matching ones kept', () => {
    const f = rawNode('f', LFX, { storage: storageWithTerms(LFX, [2, 2, 2]) }) // 2:t2 3:t2 4:t2
    f.core.step({
      type: 'app',
      from: 'l',
      to: 'f',
      term: 3,
      prevIndex: 1,
      prevTerm: 1,
      entries: [entry(2, 2), entry(3, 3), entry(4, 3)],
      commit: 2,
    })
    const out = drain(f)
    expect(ofType(out.messages, 'app-resp')[0]).toMatchObject({ reject: false, index: 4 })
    expect(logOf(f)).toEqual([
      [2, 2],
      [3, 3],
      [4, 3],
    ])
    expect(f.storage.lastIndex()).toBe(4)
    expect(f.storage.term(3)).toBe(3)
    expect(f.core.status().commit).toBe(2) // min(leader commit, last new entry)
  })

  it('§3.5 the leader brings every kind of divergent follower log into agreement (Figure 3.6)', () => {
    const leader = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    const followers = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6], // missing an entry
      [1, 1, 1, 4], // missing many
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // an extra uncommitted entry
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // extra entries of a later term
      [1, 1, 1, 4, 4, 4, 4], // a divergent tail of an old term
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // a long divergent tail of other terms
    ]
    for (const ft of followers) {
      const nodes = divergent(leader, ft)
      const l = nodes.get('l') as RawNode
      const f = nodes.get('f') as RawNode
      l.core.campaign() // wins with x's vote even when f refuses
      pump(nodes)
      expect(l.core.status().role).toBe('leader')
      expect(logOf(f), `follower ${ft.join(',')}`).toEqual(logOf(l))
    }
  })

  it('§3.6.2 a leader commits only entries of its own term by counting replicas (Figure 3.7)', () => {
    // l holds an entry of term 2 that was never committed, and wins term 3.
    // One entry per append, so the old entry and the new no-op arrive separately.
    const nodes = divergent([2], [], 1)
    const l = nodes.get('l') as RawNode
    l.core.campaign()
    const seen: { majorityHasOld: boolean; commit: number }[] = []
    for (let round = 0; round < 100; round++) {
      const inFlight: Message[] = []
      for (const n of nodes.values()) inFlight.push(...drain(n).messages)
      if (inFlight.length === 0) break
      for (const m of inFlight) {
        ;(nodes.get(m.to) as RawNode).core.step(m)
        const st = l.core.status()
        if (m.to !== 'l' || st.role !== 'leader') continue
        const holders = Object.values(st.progress ?? {}).filter((p) => p.match >= 2).length
        seen.push({ majorityHasOld: holders >= 2, commit: st.commit })
      }
    }
    // The term-2 entry sat on a majority while commit stayed below it...
    expect(seen.some((s) => s.majorityHasOld && s.commit < 2)).toBe(true)
    // ...and was committed only together with the term-3 no-op after it.
    expect(seen.every((s) => s.commit === 1 || s.commit === 3)).toBe(true)
    expect(l.core.status()).toMatchObject({ term: 3, commit: 3 })
  })

  it('§3.5 a follower learns the commit index from heartbeats, capped at what it is known to hold', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.filter = (m) => !(m.type === 'app' && m.to === 'c') // c gets heartbeats only
    c.propose('a', 'x')
    c.run(3)
    expect(c.node('a').core.status().commit).toBe(3)
    expect(c.node('c').core.status().commit).toBe(2) // its match, not the leader's commit
    expect(c.node('c').core.status().lastIndex).toBe(2)
  })
})

describe('fast log backtracking', () => {
  function rejections(leaderTerms: number[], followerTerms: number[]): number {
    const nodes = divergent(leaderTerms, followerTerms)
    const l = nodes.get('l') as RawNode
    l.core.campaign()
    let rejects = 0
    pump(nodes, {
      onDeliver: (m) => {
        if (m.type === 'app-resp' && m.from === 'f' && m.reject) rejects++
      },
    })
    expect(logOf(nodes.get('f') as RawNode)).toEqual(logOf(l))
    return rejects
  }

  it('fast backtracking takes O(terms) round trips, not O(entries): divergent tail of higher terms', () => {
    // Leader: 100 entries of term 3 then one of term 7. Follower: 2 entries of
    // term 3, then ~100 entries of terms 4, 5 and 6 that the leader never had.
    const leader = [...Array<number>(100).fill(3), 7]
    const follower = [3, 3, ...Array<number>(33).fill(4), ...Array<number>(33).fill(5), ...Array<number>(33).fill(6)]
    expect(rejections(leader, follower)).toBeLessThanOrEqual(3)
  })

  it('fast backtracking takes O(terms) round trips, not O(entries): divergent tail of lower terms', () => {
    const leader = [...Array<number>(10).fill(2), ...Array<number>(10).fill(5), ...Array<number>(10).fill(6)]
    const follower = [...Array<number>(10).fill(2), ...Array<number>(40).fill(3), ...Array<number>(40).fill(4)]
    expect(rejections(leader, follower)).toBeLessThanOrEqual(3)
  })

  it('a follower that is merely behind is found in one probe', () => {
    const leader = Array.from({ length: 60 }, (_, i) => 2 + Math.floor(i / 3))
    expect(rejections(leader, leader.slice(0, 7))).toBeLessThanOrEqual(1)
  })
})

describe('§10.2 batching and pipelining', () => {
  it('batching: an append carries at most maxSizePerMsgBytes of entries, but always at least one', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], maxSizePerMsgBytes: 100 })
    c.elect('a')
    c.isolate('b')
    for (let i = 0; i < 20; i++) c.propose('a', `${'x'.repeat(9)}${i % 10}`) // 10 bytes + 16 overhead each
    c.propose('a', 'y'.repeat(300)) // larger than a whole message
    c.run(1)
    const sizes: number[][] = []
    c.onDeliver = (m) => {
      if (m.type === 'app' && m.to === 'b' && m.entries.length > 0) sizes.push(m.entries.map((e) => e.data.byteLength))
    }
    c.heal()
    c.run(5)
    expect(sizes.length).toBeGreaterThan(5)
    for (const batch of sizes) {
      const bytes = batch.reduce((sum, n) => sum + n + 16, 0)
      expect(batch.length === 1 || bytes <= 100, `batch ${batch.join(',')}`).toBe(true)
    }
    expect(sizes.some((b) => b.length === 3)).toBe(true)
    expect(c.appliedData('b')).toEqual(c.appliedData('a'))
  })

  it('pipelining: a replicating follower has at most maxInflightMsgs appends outstanding', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], maxInflightMsgs: 3 })
    c.elect('a')
    expect(c.node('a').core.status().progress?.b?.state).toBe('replicate')
    c.cutLink('b', 'a') // b's acknowledgements are lost
    let appendsToB = 0
    c.onDeliver = (m) => {
      if (m.type === 'app' && m.to === 'b' && m.entries.length > 0) appendsToB++
    }
    for (let i = 0; i < 10; i++) {
      c.propose('a', `p${i}`)
      c.deliverAll()
    }
    expect(appendsToB).toBe(3)
    expect(c.node('a').core.status().progress?.b).toMatchObject({ state: 'replicate', inflight: 3 })
    expect(c.node('b').core.status().lastIndex).toBe(5) // three proposals, pipelined without waiting
    c.heal()
    c.run(3)
    expect(c.appliedData('b')).toHaveLength(10)
  })

  it('probe: after a send failure the leader sends one append at a time until the follower answers', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.node('a').core.reportUnreachable('b')
    expect(c.node('a').core.status().progress?.b?.state).toBe('probe')
    c.cutLink('b', 'a')
    let appendsToB = 0
    c.onDeliver = (m) => {
      if (m.type === 'app' && m.to === 'b') appendsToB++
    }
    for (let i = 0; i < 5; i++) {
      c.propose('a', `p${i}`)
      c.deliverAll()
    }
    expect(appendsToB).toBe(1)
    c.heal()
    c.run(3)
    expect(c.node('a').core.status().progress?.b?.state).toBe('replicate')
    expect(c.appliedData('b')).toHaveLength(5)
  })
})

describe('proposals', () => {
  it('a follower forwards a proposal to the leader, which appends it', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    expect(c.propose('b', 'via-b')).toEqual({ ok: true, kind: 'forwarded', to: 'a' })
    c.run(2)
    for (const id of ['a', 'b', 'c']) expect(c.appliedData(id)).toEqual(['via-b'])
  })

  it('typed rejections: no leader known; forwarding disabled', () => {
    const noLeader = rawNode('a', ABC)
    expect(noLeader.core.propose(enc.encode('x'))).toEqual({ ok: false, reason: 'no-leader' })
    noLeader.core.campaign() // pre-candidate
    expect(noLeader.core.propose(enc.encode('x'))).toEqual({ ok: false, reason: 'no-leader' })

    const c = new Cluster({ voters: ['a', 'b', 'c'], disableProposalForwarding: true })
    c.elect('a')
    expect(c.propose('b', 'x')).toEqual({ ok: false, reason: 'not-leader' })
  })

  it('the uncommitted tail is bounded by maxUncommittedEntriesBytes', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], maxUncommittedEntriesBytes: 100, checkQuorum: false })
    c.elect('a')
    c.isolate('b')
    c.isolate('c')
    expect(c.propose('a', 'x'.repeat(60)).ok).toBe(true) // an empty tail admits any one proposal
    expect(c.propose('a', 'y'.repeat(60))).toEqual({ ok: false, reason: 'uncommitted-limit' })
    c.heal()
    c.run(3)
    expect(c.appliedData('a')).toEqual(['x'.repeat(60)])
    expect(c.propose('a', 'y'.repeat(60)).ok).toBe(true)
  })
})

describe('§3.8 persistence and restarts', () => {
  it('§3.8 a follower acknowledges entries in the same Ready that persists them (with fsync)', () => {
    const f = rawNode('f', LFX)
    f.core.step({ type: 'app', from: 'l', to: 'f', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry(2, 2)], commit: 1 })
    const rd = f.core.ready()
    expect(ids(rd.entries)).toEqual([[2, 2]])
    expect(rd.mustSync).toBe(true)
    expect(rd.messages.map((m) => m.type)).toEqual(['app-resp'])
    f.core.advance(rd)
  })

  it('§3.8 a crash loses only what was never persisted; the restarted follower catches up', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], autoProcess: false })
    c.elect('a')
    c.propose('a', 'x')
    c.processReady('a')
    // b receives the append but crashes before handling its Ready.
    c.filter = (m) => m.to !== 'b' || m.type !== 'app-resp'
    while (c.queue.some((m) => m.to === 'b')) c.deliverOne()
    expect(c.node('b').core.status().lastIndex).toBe(3)
    c.crash('b')
    c.restart('b')
    expect(c.node('b').core.status().lastIndex).toBe(2) // the unpersisted entry is gone
    c.filter = undefined
    c.run(5)
    for (const id of ['a', 'b', 'c']) expect(c.appliedData(id)).toEqual(['x'])
  })

  it('§3.8 entries acknowledged to a client survive the crash of the leader', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], seed: 5 })
    c.elect('a')
    c.propose('a', 'x')
    c.run(2)
    expect(c.appliedData('a')).toEqual(['x'])
    c.crash('a')
    expect(c.runUntil(() => c.leader() !== undefined, 100)).toBe(true)
    const leader = c.leader() as NodeId
    c.propose(leader, 'y')
    c.run(2)
    c.restart('a')
    c.run(5)
    for (const id of ['a', 'b', 'c']) expect(c.appliedData(id)).toEqual(['x', 'y'])
  })

  it('step() between ready() and advance(): output goes into the next Ready; stale persistence is ignored', () => {
    const f = rawNode('f', LFX)
    f.core.step({ type: 'app', from: 'l', to: 'f', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry(2, 2), entry(3, 2)], commit: 1 })
    const rd1 = f.core.ready()
    // Before rd1 is handled, a new leader overwrites entry 3.
    f.core.step({ type: 'app', from: 'x', to: 'f', term: 3, prevIndex: 2, prevTerm: 2, entries: [entry(3, 3)], commit: 1 })
    expect(f.core.hasReady()).toBe(false) // one Ready at a time
    f.storage.append(rd1.entries)
    if (rd1.hardState !== undefined) f.storage.setHardState(rd1.hardState)
    f.core.advance(rd1)
    const rd2 = f.core.ready()
    expect(ids(rd2.entries)).toEqual([[3, 3]])
    expect(ofType(rd2.messages, 'app-resp').map((m) => [m.to, m.index])).toEqual([['x', 3]])
    f.storage.append(rd2.entries)
    f.core.advance(rd2)
    expect(f.storage.term(3)).toBe(3)
    expect(f.core.logTerm(3)).toBe(3)
  })
})
