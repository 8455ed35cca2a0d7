// Log compaction and InstallSnapshot (thesis §5.1), snapshot flow control.

import { describe, expect, it } from 'vitest'
import { MemoryLogStorage } from '../../storage/raft-log/memory-log-storage.ts'
import type { SnapshotMessage } from '../../protocols/raft/messages.ts'
import { Cluster } from '../../protocols/raft/testing/cluster.ts'
import { drain, ofType, rawNode, storageWithTerms } from '../../protocols/raft/testing/raw.ts'
import type { ConfState, Snapshot } from '../../protocols/raft/types.ts'

const ABC: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
const E = 10

/** a leads; c is cut off while 10 entries commit; a and b then compact. */
function laggingFollowerAfterCompaction(options: { snapshotTimeoutTicks?: number } = {}): Cluster {
  const c = new Cluster({ voters: ['a', 'b', 'c'], ...options })
  c.elect('a')
  c.isolate('c')
  for (let i = 0; i < 10; i++) c.propose('a', `p${i}`)
  c.run(2)
  expect(c.compact('a')).toBe(true)
  expect(c.compact('b')).toBe(true)
  return c
}

function snapshotOf(index: number, term: number, conf: ConfState = ABC): Snapshot {
  return { metadata: { index, term, confState: conf }, data: new Uint8Array([1, 2, 3]) }
}

describe('§5.1 log compaction and InstallSnapshot', () => {
  it('§5.1 a follower that needs compacted entries receives a snapshot, then the tail by appends', () => {
    const c = laggingFollowerAfterCompaction()
    expect(c.node('a').core.status().firstIndex).toBe(13)
    for (let i = 10; i < 15; i++) c.propose('a', `p${i}`)
    c.heal()
    c.run(5)
    expect(c.delivered.get('snap')).toBe(1)
    expect(c.appliedData('c')).toEqual(c.appliedData('a'))
    expect(c.appliedData('c')).toHaveLength(15)
    expect(c.node('c').storage.firstIndex()).toBe(13) // restored from the snapshot at 12
    expect(c.node('a').core.status().progress?.c).toMatchObject({ state: 'replicate', match: 17 })
    c.checkLogMatching()
  })

  it('while a snapshot is in flight the leader sends that follower nothing else, then resumes from it', () => {
    const c = laggingFollowerAfterCompaction()
    let seenWhileInFlight: unknown
    c.onDeliver = (m) => {
      if (m.type === 'snap') seenWhileInFlight = c.node('a').core.status().progress?.c
    }
    c.heal()
    c.run(3)
    expect(seenWhileInFlight).toMatchObject({ state: 'snapshot', pendingSnapshot: 12 })
    expect(c.node('a').core.status().progress?.c?.state).toBe('replicate')
  })

  it('a snapshot lost in transit is reported by the transport and sent again', () => {
    const c = laggingFollowerAfterCompaction()
    let dropped = 0
    c.filter = (m) => {
      if (m.type === 'snap' && dropped === 0) {
        dropped++
        return false // the cluster's transport reports the failure to the leader
      }
      return true
    }
    c.heal()
    c.run(5)
    expect(dropped).toBe(1)
    expect(c.delivered.get('snap')).toBe(1)
    expect(c.appliedData('c')).toHaveLength(10)
  })

  it('a snapshot whose fate is never reported is retried after snapshotTimeoutTicks', () => {
    const c = laggingFollowerAfterCompaction({ snapshotTimeoutTicks: 3 * E })
    c.heal()
    // Heartbeat -> c answers -> a sends the snapshot.
    for (let i = 0; i < 100 && !c.queue.some((m) => m.type === 'snap'); i++) {
      if (!c.deliverOne()) c.tickAll()
    }
    const lost = c.queue.findIndex((m) => m.type === 'snap')
    expect(lost).toBeGreaterThanOrEqual(0)
    c.queue.splice(lost, 1) // silently lost: nobody tells the leader
    c.run(2 * E)
    expect(c.node('a').core.status().progress?.c?.state).toBe('snapshot') // still waiting
    c.run(2 * E)
    expect(c.delivered.get('snap')).toBe(1)
    expect(c.appliedData('c')).toHaveLength(10)
  })

  it('a follower ignores a snapshot older than its commit index', () => {
    const f = rawNode('c', ABC, { storage: storageWithTerms(ABC, [2, 2, 2, 2], 5) })
    f.core.step({ type: 'snap', from: 'a', to: 'c', term: 2, snapshot: snapshotOf(3, 2) })
    const rd = f.core.ready()
    expect(rd.snapshot).toBeUndefined()
    expect(ofType(rd.messages, 'app-resp')[0]).toMatchObject({ reject: false, index: 5 })
    f.core.advance(rd)
  })

  it('a follower that already holds the snapshot\'s last entry keeps its log and only advances commit', () => {
    const f = rawNode('c', ABC, { storage: storageWithTerms(ABC, [2, 2, 2, 2], 1) })
    f.core.step({ type: 'snap', from: 'a', to: 'c', term: 2, snapshot: snapshotOf(3, 2) })
    const rd = f.core.ready()
    expect(rd.snapshot).toBeUndefined()
    expect(rd.hardState?.commit).toBe(3)
    expect(ids(rd.committedEntries)).toEqual([2, 3])
    f.core.advance(rd)
    expect(f.core.status().lastIndex).toBe(5)
  })

  it('installing a snapshot: persisted and applied before any entry after it; membership comes with it', () => {
    const f = rawNode('z', { voters: [], learners: [] }, { storage: new MemoryLogStorage() })
    const conf: ConfState = { voters: ['a', 'b', 'c'], learners: ['z'] }
    f.core.step({ type: 'snap', from: 'a', to: 'z', term: 4, snapshot: snapshotOf(20, 3, conf) })
    const rd = f.core.ready()
    expect(rd.snapshot?.metadata.index).toBe(20)
    expect(rd.committedEntries).toEqual([])
    expect(rd.mustSync).toBe(true)
    expect(ofType(rd.messages, 'app-resp')[0]).toMatchObject({ to: 'a', reject: false, index: 20 })
    f.storage.applySnapshot(rd.snapshot as Snapshot)
    f.core.advance(rd)
    expect(f.core.status()).toMatchObject({ commit: 20, applied: 20, firstIndex: 21, voters: ['a', 'b', 'c'], learners: ['z'] })
    f.core.step({
      type: 'app',
      from: 'a',
      to: 'z',
      term: 4,
      prevIndex: 20,
      prevTerm: 3,
      entries: [{ index: 21, term: 4, type: 'normal', data: new Uint8Array(0) }],
      commit: 21,
    })
    expect(drain(f).committed.map((e) => e.index)).toEqual([21])
  })

  it('a peer joining with an empty log starts from a snapshot that carries the membership', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'], spares: ['z'] })
    c.elect('a')
    c.propose('a', 'x')
    c.run(2)
    let snap: SnapshotMessage | undefined
    c.onDeliver = (m) => {
      if (m.type === 'snap') snap = m
    }
    c.proposeConfChange('a', { type: 'add-learner', nodeId: 'z' })
    c.run(3)
    // Never compacted: the founding snapshot (index 1) is what it gets.
    expect(snap?.snapshot.metadata).toMatchObject({ index: 1, confState: { voters: ['a', 'b', 'c'], learners: [] } })
    expect(c.node('z').core.status()).toMatchObject({ voters: ['a', 'b', 'c'], learners: ['z'] })
    expect(c.appliedData('z')).toEqual(['x'])
  })

  it('a restarted node recovers from its snapshot and re-applies the committed entries after it', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    for (let i = 0; i < 5; i++) c.propose('a', `p${i}`)
    c.run(2)
    c.compact('b')
    c.propose('a', 'p5')
    c.run(2)
    c.crash('b')
    const replayed: number[] = []
    const sm = c.node('b')
    c.restart('b') // rebuilds the state machine from the snapshot at 7, then applies what follows
    expect(sm.storage.snapshot().metadata.index).toBe(7)
    for (const e of sm.stateMachine) if (e.index > 7) replayed.push(e.index)
    expect(replayed).toEqual([8])
    expect(c.appliedData('b')).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5'])
  })
})

function ids(entries: readonly { index: number }[]): number[] {
  return entries.map((e) => e.index)
}
