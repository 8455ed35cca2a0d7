// A peer whose disk lost entries it had acknowledged (a write-back cache that
// dropped synced writes, a data dir restored from an old copy). Raft's safety
// rests on acknowledged entries staying put: such a peer must not vote with
// the shorter log (protocol-aware recovery, Alagappan et al., FAST'18), and a
// leader must repair it instead of taking its rejections for stale ones.

import { describe, expect, it } from 'vitest'
import { MemoryLogStorage } from '../../storage/raft-log/memory-log-storage.ts'
import { drain, ids, ofType, pump, rawNode, type RawNode } from '../../protocols/raft/testing/raw.ts'
import type { ConfState, Entry, NodeId } from '../../protocols/raft/types.ts'

const ABC: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
const enc = new TextEncoder()

function logOf(n: RawNode): [number, number][] {
  const st = n.core.status()
  return ids(n.core.logEntries(st.firstIndex, st.lastIndex + 1) ?? [])
}

/** A healthy 3-voter cluster led by a, with 30 committed writes everywhere. */
function cluster(options: { checkQuorum?: boolean } = {}): Map<NodeId, RawNode> {
  const nodes = new Map<NodeId, RawNode>(['a', 'b', 'c'].map((id) => [id, rawNode(id, ABC, options)]))
  const a = nodes.get('a') as RawNode
  a.core.campaign()
  pump(nodes)
  for (let i = 0; i < 30; i++) a.core.propose(enc.encode(`v${i}`))
  pump(nodes)
  a.core.tick() // a heartbeat carries the final commit index to the followers
  pump(nodes)
  return nodes
}

/** What `n`'s disk still holds after losing every entry after `keep`: the hard state of that time. */
function lostAfter(n: RawNode, keep: number): MemoryLogStorage {
  const storage = new MemoryLogStorage({ confState: ABC })
  const kept = n.storage.entries(2, keep + 1, Infinity) as Entry[]
  storage.append(kept)
  const hs = n.storage.initialState().hardState
  storage.setHardState({ term: hs.term, vote: hs.vote, commit: Math.min(hs.commit, keep) })
  return storage
}

describe('a follower whose log went backwards', () => {
  it('finds out from the leader\'s heartbeat, stops voting, and is repaired by the leader instead of being ignored', () => {
    const nodes = cluster()
    const a = nodes.get('a') as RawNode
    const last = a.core.status().lastIndex
    expect(a.core.status().progress?.['b']?.match).toBe(last)
    // b restarts on a disk that kept only its first entries; nothing told it (no tail mark).
    const b = rawNode('b', ABC, { storage: lostAfter(nodes.get('b') as RawNode, 5) })
    nodes.set('b', b)

    a.core.tick()
    const heartbeat = ofType(drain(a).messages, 'heartbeat').find((m) => m.to === 'b')
    expect(heartbeat?.commit).toBe(last) // the leader still counts b as holding everything
    b.core.step(heartbeat!)
    const answer = drain(b)
    expect(answer.logLoss).toEqual([{ kind: 'own-log-lost', leader: 'a', leaderCommit: last, lastIndex: 5 }])
    expect(b.core.status().repairIndex).toBe(last)
    const report = ofType(answer.messages, 'app-resp')
    expect(report).toMatchObject([{ reject: true, logLost: true, index: last, rejectHint: 5 }])

    a.core.step(report[0]!)
    const repaired = pump(nodes)
    expect(repaired.logLoss.get('a')).toEqual([{ kind: 'follower-log-lost', follower: 'b', holds: 5 }])
    expect(logOf(b)).toEqual(logOf(a))
    a.core.tick()
    pump(nodes)
    expect(b.core.status()).toMatchObject({ commit: last, repairIndex: 0 })
    expect(a.core.status().progress?.['b']).toMatchObject({ match: last, state: 'replicate' })
  })

  it('stale or repeated rejections at or below match still change nothing', () => {
    const nodes = cluster()
    const a = nodes.get('a') as RawNode
    const st = a.core.status()
    const before = st.progress?.['b']
    // A rejection of an old probe, delivered late: b's log is fine.
    a.core.step({ type: 'app-resp', from: 'b', to: 'a', term: st.term, index: 10, reject: true, rejectHint: 5, hintTerm: 1 })
    // A loss report that asks for nothing below what the leader already resends from.
    a.core.step({ type: 'app-resp', from: 'b', to: 'a', term: st.term, index: st.lastIndex, reject: true, rejectHint: st.lastIndex, hintTerm: 0, logLost: true })
    const out = drain(a)
    expect(out.messages).toEqual([])
    expect(out.logLoss).toEqual([])
    expect(a.core.status().progress?.['b']).toEqual(before)
  })
})

describe('a peer started on a log that lost acknowledged entries (repairIndex)', () => {
  it('neither votes nor campaigns until its log reaches the lost index again, then does both', () => {
    // (No leases: c must answer a's new election below right away.)
    const nodes = cluster({ checkQuorum: false })
    const a = nodes.get('a') as RawNode
    const last = a.core.status().lastIndex
    const term = a.core.status().term
    // Storage found the tail cut short and says how far the log had reached.
    const b = rawNode('b', ABC, { storage: lostAfter(nodes.get('b') as RawNode, 5), repairIndex: last, checkQuorum: false })
    expect(b.core.status().repairIndex).toBe(last)

    b.core.step({ type: 'pre-vote', from: 'c', to: 'b', term: term + 1, lastIndex: 3, lastTerm: term })
    b.core.step({ type: 'vote', from: 'c', to: 'b', term: term + 1, lastIndex: 3, lastTerm: term, transfer: false })
    let out = drain(b)
    expect(ofType(out.messages, 'pre-vote-resp')).toMatchObject([{ reject: true }])
    expect(ofType(out.messages, 'vote-resp')).toMatchObject([{ reject: true }])
    // No leader heard from for many election timeouts, and asked to take over: still no campaign.
    for (let i = 0; i < 100; i++) b.core.tick()
    b.core.step({ type: 'timeout-now', from: 'a', to: 'b', term: term + 1 })
    out = drain(b)
    expect(out.messages.filter((m) => m.type === 'vote' || m.type === 'pre-vote')).toEqual([])
    expect(b.core.status().role).toBe('follower')

    // b's term moved past a's: a steps down at b's answer to its heartbeat, is
    // elected again without b's vote, and copies the log back.
    nodes.set('b', b)
    a.core.tick()
    pump(nodes)
    a.core.campaign()
    pump(nodes)
    expect(a.core.status().role).toBe('leader')
    expect(logOf(b)).toEqual(logOf(a))
    expect(b.core.status().repairIndex).toBe(0)
    const now = b.core.status()
    b.core.step({ type: 'vote', from: 'c', to: 'b', term: now.term + 1, lastIndex: now.lastIndex, lastTerm: now.term, transfer: true })
    expect(ofType(drain(b).messages, 'vote-resp')).toMatchObject([{ reject: false }])
  })
})
