// Building blocks: storage, the unstable tail, the combined log, inflight
// windows, progress, quorum arithmetic, and RaftCore API misuse.

import { describe, expect, it } from 'vitest'
import { RaftCore } from '../../protocols/raft/core.ts'
import { Inflights } from '../../protocols/raft/inflights.ts'
import { RaftLog } from '../../protocols/raft/log.ts'
import { MemoryLogStorage } from '../../storage/raft-log/memory-log-storage.ts'
import { Progress } from '../../protocols/raft/progress.ts'
import { committedIndex, majority, voteResult } from '../../protocols/raft/quorum.ts'
import { drain, ids, rawNode, storageWithTerms } from '../../protocols/raft/testing/raw.ts'
import { Unstable } from '../../protocols/raft/unstable.ts'
import { RaftInvariantError, limitBytes, type ConfState, type Entry } from '../../protocols/raft/types.ts'

const ABC: ConfState = { voters: ['a', 'b', 'c'], learners: [] }

function e(index: number, term: number, bytes = 0): Entry {
  return { index, term, type: 'normal', data: new Uint8Array(bytes) }
}

describe('MemoryLogStorage', () => {
  it('a founding storage starts after a snapshot at index 1 that holds the membership', () => {
    const s = new MemoryLogStorage({ confState: ABC })
    expect([s.firstIndex(), s.lastIndex(), s.term(1)]).toEqual([2, 1, 1])
    expect(s.initialState()).toEqual({ hardState: { term: 1, vote: null, commit: 1 }, confState: ABC })
    const empty = new MemoryLogStorage()
    expect([empty.firstIndex(), empty.lastIndex(), empty.term(0)]).toEqual([1, 0, 0])
  })

  it('append replaces a conflicting suffix, skips compacted entries and refuses gaps', () => {
    const s = new MemoryLogStorage({ confState: ABC })
    s.append([e(2, 1), e(3, 1), e(4, 1)])
    s.append([e(3, 2)])
    expect(ids(s.entries(2, 4, Infinity))).toEqual([
      [2, 1],
      [3, 2],
    ])
    s.append([e(1, 1), e(2, 1)]) // index 1 is compacted; 2 replaces 2.. (and drops 3)
    expect(s.lastIndex()).toBe(2)
    expect(() => s.append([e(9, 2)])).toThrow(RaftInvariantError)
  })

  it('entries() honours maxBytes but returns at least one entry', () => {
    const s = new MemoryLogStorage({ confState: ABC })
    s.append([e(2, 1, 100), e(3, 1, 10), e(4, 1, 10)])
    expect(s.entries(2, 5, 1)).toHaveLength(1)
    expect(s.entries(3, 5, 2 * (10 + 16))).toHaveLength(2)
    expect(() => s.entries(1, 3, Infinity)).toThrow(RaftInvariantError)
  })

  it('compaction keeps the term of the last compacted entry and never passes the snapshot', () => {
    const s = new MemoryLogStorage({ confState: ABC })
    s.append([e(2, 1), e(3, 2), e(4, 2)])
    expect(() => s.compact(3)).toThrow(RaftInvariantError)
    s.createSnapshot(3, ABC, new Uint8Array([7]))
    s.compact(3)
    expect([s.firstIndex(), s.lastIndex(), s.term(3), s.term(4)]).toEqual([4, 4, 2, 2])
    expect(s.snapshot().metadata).toEqual({ index: 3, term: 2, confState: ABC })
  })

  it('applySnapshot replaces the log unless the snapshot is older', () => {
    const s = new MemoryLogStorage({ confState: ABC })
    s.append([e(2, 1), e(3, 1)])
    const snap = { metadata: { index: 10, term: 3, confState: ABC }, data: new Uint8Array(0) }
    expect(s.applySnapshot(snap)).toBe(true)
    expect([s.firstIndex(), s.lastIndex(), s.initialState().hardState.commit]).toEqual([11, 10, 10])
    expect(s.applySnapshot({ ...snap, metadata: { ...snap.metadata, index: 5 } })).toBe(false)
  })
})

describe('Unstable', () => {
  it('truncateAndAppend: append at the end, replace everything, or truncate in the middle', () => {
    const u = new Unstable(5)
    u.truncateAndAppend([e(5, 1), e(6, 1)])
    u.truncateAndAppend([e(7, 1)])
    expect(ids(u.entries)).toEqual([
      [5, 1],
      [6, 1],
      [7, 1],
    ])
    u.acceptInProgress()
    u.truncateAndAppend([e(6, 2)])
    expect(ids(u.entries)).toEqual([
      [5, 1],
      [6, 2],
    ])
    expect(u.offsetInProgress).toBe(6) // the replaced entry must be handed out again
    expect(ids(u.nextEntries())).toEqual([[6, 2]])
    u.truncateAndAppend([e(4, 2)])
    expect([u.offset, ids(u.entries)]).toEqual([4, [[4, 2]]])
  })

  it('stableTo ignores a confirmation for an entry that has since been replaced (ABA guard)', () => {
    const u = new Unstable(5)
    u.truncateAndAppend([e(5, 1), e(6, 1)])
    u.acceptInProgress()
    u.truncateAndAppend([e(6, 2)])
    u.stableTo(6, 1) // the write of the old entry 6 completed
    expect(ids(u.entries)).toEqual([
      [5, 1],
      [6, 2],
    ])
    u.stableTo(5, 1)
    expect([u.offset, ids(u.entries)]).toEqual([6, [[6, 2]]])
  })
})

describe('RaftLog', () => {
  it('findConflictByTerm finds the last entry at or below an index whose term is <= the given term', () => {
    const log = new RaftLog(storageWithTerms(ABC, [1, 3, 3, 4, 4, 5]), Infinity) // indexes 2..7
    const cases: [number, number, number, number][] = [
      // index, term -> hint index, hint term
      [7, 6, 7, 5],
      [7, 4, 6, 4],
      [7, 3, 4, 3],
      [7, 2, 2, 1],
      [7, 0, 0, 0],
      [5, 9, 5, 4],
    ]
    for (const [index, term, hi, ht] of cases) expect(log.findConflictByTerm(index, term)).toEqual({ index: hi, term: ht })
  })

  it('slice() spans stored and unstable entries within maxBytes', () => {
    const log = new RaftLog(storageWithTerms(ABC, [1, 1]), Infinity) // stored 2, 3
    log.append([e(4, 2, 10), e(5, 2, 10)])
    expect(ids(log.slice(2, 6, Infinity) ?? [])).toEqual([
      [2, 1],
      [3, 1],
      [4, 2],
      [5, 2],
    ])
    expect(log.slice(2, 6, 17 + 17 + 26)?.length).toBe(3) // two stored 1-byte entries and one 10-byte entry
    expect(log.slice(1, 3, Infinity)).toBeUndefined() // compacted
  })

  it('maybeAppend refuses an entry that would rewrite a committed one', () => {
    const log = new RaftLog(storageWithTerms(ABC, [1, 1], 3), Infinity)
    log.committed = 3
    expect(() => log.maybeAppend(1, 1, 3, [e(2, 1), e(3, 2)])).toThrow(RaftInvariantError)
  })

  it('committed entries are handed out for applying in batches of at most maxApplyingBytes', () => {
    const storage = storageWithTerms(ABC, [1, 1, 1, 1], 5)
    const log = new RaftLog(storage, 2 * 17)
    log.committed = 5
    expect(log.nextCommittedEntries().map((x) => x.index)).toEqual([2, 3])
    log.acceptApplying(3)
    expect(log.nextCommittedEntries().map((x) => x.index)).toEqual([4, 5])
  })
})

describe('Inflights and Progress', () => {
  it('the inflight window is bounded by messages and by bytes', () => {
    const w = new Inflights(3, 100)
    w.add(1, 10)
    w.add(2, 10)
    expect(w.full()).toBe(false)
    w.add(3, 10)
    expect(w.full()).toBe(true)
    expect(() => w.add(4, 1)).toThrow(RaftInvariantError)
    w.freeLE(2)
    expect([w.count(), w.bytes(), w.full()]).toEqual([1, 10, false])
    w.add(9, 95)
    expect(w.full()).toBe(true) // 105 bytes in flight
  })

  it('probe: only the answer to the outstanding probe moves next back, never below match + 1', () => {
    const pr = new Progress({ match: 3, next: 10, isLearner: false, recentActive: true, inflights: new Inflights(4, Infinity) })
    expect(pr.maybeDecrTo(5, 4)).toBe(false) // stale: we probed at 9
    expect(pr.maybeDecrTo(9, 6)).toBe(true)
    expect(pr.next).toBe(7)
    expect(pr.maybeDecrTo(6, 0)).toBe(true)
    expect(pr.next).toBe(4)
  })

  it('replicate: a rejection above match falls back to match + 1; after a snapshot, probing resumes after it', () => {
    const pr = new Progress({ match: 3, next: 4, isLearner: false, recentActive: true, inflights: new Inflights(4, Infinity) })
    pr.becomeReplicate()
    pr.sentEntries(2, 0)
    expect([pr.next, pr.inflights.count()]).toEqual([6, 1])
    expect(pr.maybeDecrTo(2, 0)).toBe(false)
    expect(pr.maybeDecrTo(5, 0)).toBe(true)
    expect(pr.next).toBe(4)
    pr.becomeSnapshot(20)
    expect(pr.isPaused()).toBe(true)
    pr.becomeProbe()
    expect([pr.state, pr.next]).toEqual(['probe', 21])
  })
})

describe('quorum', () => {
  it('committedIndex is the highest index acknowledged by a majority of voters', () => {
    const acks: Record<string, number> = { a: 5, b: 3, c: 9, d: 1, e: 7 }
    expect(committedIndex(['a', 'b', 'c'], (id) => acks[id])).toBe(5)
    expect(committedIndex(['a', 'b', 'c', 'd'], (id) => acks[id])).toBe(3)
    expect(committedIndex(['a', 'b', 'c', 'd', 'e'], (id) => acks[id])).toBe(5)
    expect(committedIndex(['a', 'x'], (id) => acks[id])).toBe(0)
    expect(committedIndex([], () => 1)).toBe(0)
    expect([majority(1), majority(2), majority(3), majority(4), majority(5)]).toEqual([1, 2, 2, 3, 3])
  })

  it('voteResult decides as soon as the outcome is certain and ignores non-voters', () => {
    const v = (entries: [string, boolean][]): Map<string, boolean> => new Map(entries)
    expect(voteResult(['a', 'b', 'c'], v([['a', true]]))).toBe('pending')
    expect(voteResult(['a', 'b', 'c'], v([['a', true], ['b', true]]))).toBe('won')
    expect(voteResult(['a', 'b', 'c'], v([['a', true], ['b', false], ['c', false]]))).toBe('lost')
    expect(voteResult(['a', 'b', 'c', 'd'], v([['a', true], ['b', false], ['c', false]]))).toBe('lost')
    expect(voteResult(['a', 'b', 'c'], v([['a', true], ['x', true], ['y', true]]))).toBe('pending')
    expect(voteResult([], v([]))).toBe('lost')
  })

  it('limitBytes keeps at least one entry', () => {
    expect(limitBytes([e(1, 1, 1000), e(2, 1)], 10)).toHaveLength(1)
    expect(limitBytes([], 10)).toEqual([])
  })
})

describe('RaftCore API contract', () => {
  it('refuses misaddressed and self-sent messages', () => {
    const n = rawNode('a', ABC)
    const hb = { type: 'heartbeat' as const, from: 'b', to: 'z', term: 2, commit: 1, readSeq: 0 }
    expect(n.core.step(hb)).toEqual({ ok: false, reason: 'misaddressed' })
    expect(n.core.step({ ...hb, from: 'a', to: 'a' })).toEqual({ ok: false, reason: 'misaddressed' })
  })

  it('ready() twice without advance(), or advance() with another Ready, is a bug', () => {
    const n = rawNode('a', ABC)
    n.core.campaign()
    const rd = n.core.ready()
    expect(n.core.hasReady()).toBe(false)
    expect(() => n.core.ready()).toThrow(RaftInvariantError)
    expect(() => n.core.advance({ ...rd })).toThrow(RaftInvariantError)
    n.core.advance(rd)
    drain(n)
  })

  it('invalid configuration and a bad random source are bugs, reported as exceptions', () => {
    const storage = new MemoryLogStorage({ confState: ABC })
    const base = { id: 'a', storage, random: () => 0.5 }
    expect(() => new RaftCore({ ...base, electionTicks: 1, heartbeatTicks: 1 })).toThrow(RaftInvariantError)
    expect(() => new RaftCore({ ...base, electionTicks: 10, heartbeatTicks: 0 })).toThrow(RaftInvariantError)
    expect(() => new RaftCore({ ...base, electionTicks: 10, heartbeatTicks: 1, maxInflightMsgs: 0 })).toThrow()
    expect(() => new RaftCore({ ...base, random: () => 1, electionTicks: 10, heartbeatTicks: 1 })).toThrow(
      RaftInvariantError,
    )
  })

  it('restarts with term, vote and commit from storage and the applied index it is given', () => {
    const storage = storageWithTerms(ABC, [2, 2, 2], 3)
    storage.setHardState({ term: 3, vote: 'b', commit: 3 })
    const n = rawNode('a', ABC, { storage, applied: 2 })
    expect(n.core.status()).toMatchObject({ term: 3, vote: 'b', commit: 3, applied: 2, role: 'follower' })
    expect(drain(n).committed.map((x) => x.index)).toEqual([3])
  })
})
