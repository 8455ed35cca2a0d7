// Linearizable reads with ReadIndex (thesis §6.4) and leadership transfer (§3.10).

import { describe, expect, it } from 'vitest'
import { Cluster } from '../../protocols/raft/testing/cluster.ts'
import { drain, ofType, pump, rawNode, type RawNode } from '../../protocols/raft/testing/raw.ts'
import type { ConfState, NodeId } from '../../protocols/raft/types.ts'
import { FORWARDED_TERM, type Message } from '../../protocols/raft/messages.ts'

const ABC: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
const E = 10
const dec = new TextDecoder()
const enc = new TextEncoder()

function reads(c: Cluster, id: NodeId): [string, number][] {
  return c.node(id).readStates.map((r) => [dec.decode(r.context), r.index])
}

describe('§6.4 ReadIndex', () => {
  it('§6.4 ReadIndex returns the commit index only after a heartbeat quorum confirms leadership', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.propose('a', 'x')
    c.run(2)
    const commit = c.node('a').core.status().commit
    c.cutLink('b', 'a')
    c.cutLink('c', 'a')
    expect(c.readIndex('a', 'r1')).toEqual({ ok: true, kind: 'pending' })
    c.run(3) // heartbeats go out, answers are lost
    expect(reads(c, 'a')).toEqual([])
    c.heal()
    c.run(1)
    expect(reads(c, 'a')).toEqual([['r1', commit]])
  })

  it('§6.4 the read index is the commit index when the read arrived, even if commits continue', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.cutLink('b', 'a')
    c.cutLink('c', 'a')
    const commit = c.node('a').core.status().commit
    c.readIndex('a', 'r1')
    c.propose('a', 'later')
    c.heal()
    c.run(3)
    expect(reads(c, 'a')).toEqual([['r1', commit]])
    expect(c.node('a').core.status().commit).toBeGreaterThan(commit)
  })

  it('§6.4 a new leader holds reads until it has committed an entry of its own term', () => {
    const nodes = new Map<NodeId, RawNode>(['a', 'b', 'c'].map((id) => [id, rawNode(id, ABC, { preVote: false })]))
    const a = nodes.get('a') as RawNode
    a.core.campaign()
    pump(nodes, { drop: (m) => m.type === 'app' }) // elected, but its no-op does not replicate
    expect(a.core.status()).toMatchObject({ role: 'leader', term: 2, commit: 1 })
    expect(a.core.readIndex(enc.encode('r'))).toEqual({ ok: true, kind: 'pending' })
    // Commit 1 predates this leader: answering with it could miss a newer commit.
    const held = pump(nodes, { drop: (m) => m.type === 'app' })
    expect(held.readStates.get('a')).toEqual([])
    expect(ofType(held.delivered, 'heartbeat').filter((m) => m.readSeq > 0)).toEqual([])
    a.core.tick() // heartbeat: the answers make a resend the no-op
    const released = pump(nodes)
    expect(a.core.status().commit).toBe(2)
    expect(released.readStates.get('a')?.map((r) => [dec.decode(r.context), r.index])).toEqual([['r', 2]])
    expect(ofType(released.delivered, 'heartbeat').some((m) => m.readSeq > 0)).toBe(true)
  })

  it('§6.4 a follower\'s read is forwarded to the leader and answered with a read index', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.propose('a', 'x')
    c.run(2)
    expect(c.readIndex('b', 'rb')).toEqual({ ok: true, kind: 'forwarded', to: 'a' })
    c.run(2)
    expect(reads(c, 'b')).toEqual([['rb', 3]])
    expect(c.node('b').core.status().applied).toBeGreaterThanOrEqual(3)
  })

  it('§6.4 a deposed leader never confirms a read', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], seed: 2 })
    c.elect('a')
    c.isolate('a')
    c.readIndex('a', 'stale')
    c.run(3 * E) // a steps down (check-quorum); b or c takes over
    expect(c.node('a').core.status().role).not.toBe('leader')
    const leader = c.leader() as NodeId
    c.propose(leader, 'newer')
    c.run(2)
    c.heal()
    c.run(3 * E)
    expect(reads(c, 'a')).toEqual([])
  })

  it('a follower relays no read or transfer request another peer sent it: one hop, so no loop between stale followers', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.run(2)
    const b = c.node('b')
    expect(b.core.status().lead).toBe('a')
    // c took b for the leader: b must not pass these on (under its own name, with a stale view of the leader).
    b.core.step({ type: 'read-index', from: 'c', to: 'b', term: FORWARDED_TERM, context: enc.encode('from-c') })
    b.core.step({ type: 'transfer-leader', from: 'c', to: 'b', term: FORWARDED_TERM, transferee: 'c' })
    const sent: Message[] = []
    while (b.core.hasReady()) {
      const rd = b.core.ready()
      sent.push(...rd.messages)
      b.core.advance(rd)
    }
    expect(sent.filter((m) => m.type === 'read-index' || m.type === 'transfer-leader')).toEqual([])
    // Its own reads still go to the leader.
    expect(c.readIndex('b', 'own')).toEqual({ ok: true, kind: 'forwarded', to: 'a' })
  })

  it('a single voter answers reads at once (after its first commit)', () => {
    const n = rawNode('a', { voters: ['a'], learners: [] })
    n.core.campaign()
    drain(n)
    n.core.readIndex(enc.encode('solo'))
    expect(drain(n).readStates.map((r) => [dec.decode(r.context), r.index])).toEqual([['solo', 2]])
  })

  it('typed rejections: no leader; too many pending reads', () => {
    const lonely = rawNode('a', ABC)
    expect(lonely.core.readIndex(enc.encode('r'))).toEqual({ ok: false, reason: 'no-leader' })
    const n = rawNode('a', ABC, { preVote: false, maxPendingReadIndexRequests: 2 })
    n.core.campaign()
    n.core.step({ type: 'vote-resp', from: 'b', to: 'a', term: 2, reject: false })
    expect(n.core.readIndex(enc.encode('1')).ok).toBe(true)
    expect(n.core.readIndex(enc.encode('2')).ok).toBe(true)
    expect(n.core.readIndex(enc.encode('3'))).toEqual({ ok: false, reason: 'too-many-pending-reads' })
    const c = new Cluster({ voters: ['a', 'b', 'c'], disableProposalForwarding: true })
    c.elect('a')
    expect(c.readIndex('b', 'r')).toEqual({ ok: false, reason: 'not-leader' })
  })
})

describe('§3.10 leadership transfer', () => {
  it('§3.10 the leader brings the target up to date, then TimeoutNow makes it win the next term', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.isolate('c')
    for (let i = 0; i < 5; i++) c.propose('a', `p${i}`)
    c.run(2)
    c.heal()
    const sent: string[] = []
    c.onDeliver = (m) => {
      if (m.to === 'c' && (m.type === 'app' || m.type === 'timeout-now')) sent.push(m.type)
    }
    expect(c.transferLeadership('a', 'c')).toEqual({ ok: true, kind: 'started', to: 'c' })
    c.run(3)
    expect(c.leader()).toBe('c')
    expect(c.node('c').core.status().term).toBe(3)
    expect(sent.indexOf('timeout-now')).toBeGreaterThan(sent.indexOf('app')) // caught up first
    expect(c.appliedData('c')).toEqual(['p0', 'p1', 'p2', 'p3', 'p4'])
  })

  it('§3.10 proposals are refused during a transfer; an unfinished transfer is abandoned after an election timeout', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.isolate('c')
    expect(c.transferLeadership('a', 'c').ok).toBe(true)
    expect(c.propose('a', 'x')).toEqual({ ok: false, reason: 'transfer-in-progress' })
    c.run(E)
    expect(c.node('a').core.status()).toMatchObject({ role: 'leader', leadTransferee: null })
    expect(c.propose('a', 'x').ok).toBe(true)
  })

  it('graceful stop: transferLeadership() with no target picks the most up-to-date voter', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    c.isolate('b')
    c.propose('a', 'x')
    c.run(2)
    expect(c.transferLeadership('a')).toEqual({ ok: true, kind: 'started', to: 'c' })
    c.run(2)
    expect(c.leader()).toBe('c')
  })

  it('a follower forwards a transfer request to the leader', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    expect(c.transferLeadership('b', 'b')).toEqual({ ok: true, kind: 'forwarded', to: 'a' })
    c.run(2)
    expect(c.leader()).toBe('b')
  })

  it('transfers to a learner, an unknown node or the leader itself are refused', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], learners: ['d'] })
    c.elect('a')
    expect(c.transferLeadership('a', 'd')).toEqual({ ok: false, reason: 'learner' })
    expect(c.transferLeadership('a', 'zz')).toEqual({ ok: false, reason: 'unknown-node' })
    expect(c.transferLeadership('a', 'a')).toEqual({ ok: false, reason: 'already-leader' })
    expect(c.transferLeadership('b', 'a')).toEqual({ ok: false, reason: 'already-leader' })
    expect(rawNode('a', ABC).core.transferLeadership('b')).toEqual({ ok: false, reason: 'no-leader' })
  })
})
