// PendingRequests: the one copy of proposal and ReadIndex waiting that the daemon's RaftNode and
// the simulator's node both run. What a client hears must say whether the write may have
// taken effect: a refusal after an earlier attempt reached a leader is not a clean "no".
import { describe, it, expect } from 'vitest'
import { PendingRequests, type ProposalEnd, type ReadEnd } from '../../protocols/raft/requests.ts'
import type { ProposeResult, ReadIndexResult } from '../../protocols/raft/results.ts'

/** A core whose answers the test sets, recording what it was asked. */
class FakeCore {
  proposeAnswer: ProposeResult = { ok: false, reason: 'no-leader' }
  readAnswer: ReadIndexResult = { ok: false, reason: 'no-leader' }
  proposed: Uint8Array[] = []
  readContexts: string[] = []

  requests(): PendingRequests<string> {
    return new PendingRequests<string>({
      propose: (data) => {
        this.proposed.push(data)
        return this.proposeAnswer
      },
      readIndex: (context) => {
        this.readContexts.push(new TextDecoder().decode(context))
        return this.readAnswer
      },
      retryAfterMs: 1000,
      proposalsMax: 2,
      readsMax: 1,
    })
  }
}

const DATA = Uint8Array.of(1, 2, 3)

describe('PendingRequests', () => {
  it('a refusal before any attempt left the node is a clean refusal', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: ProposalEnd<string>[] = []
    core.proposeAnswer = { ok: false, reason: 'uncommitted-limit' }
    expect(r.propose('k', DATA, 0, 5000, (e) => ends.push(e))).toBeNull()
    expect(ends).toEqual([{ kind: 'refused', reason: 'uncommitted-limit' }])
    expect(r.proposals).toBe(0)
  })

  it('a refusal after an attempt was forwarded is uncertain: the first attempt may still commit', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: ProposalEnd<string>[] = []
    core.proposeAnswer = { ok: true, kind: 'forwarded', to: 'n2' }
    r.propose('k', DATA, 0, 5000, (e) => ends.push(e))
    expect(ends).toEqual([])
    core.proposeAnswer = { ok: false, reason: 'uncommitted-limit' }
    r.tick(1000) // unanswered for retryAfterMs: attempted again, refused
    expect(core.proposed).toHaveLength(2)
    expect(ends).toEqual([{ kind: 'uncertain', reason: 'uncommitted-limit' }])
  })

  it('waits through no-leader, retries every retryAfterMs, and ends with the applied result', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: ProposalEnd<string>[] = []
    r.propose('k', DATA, 0, 5000, (e) => ends.push(e))
    r.tick(500)
    expect(core.proposed).toHaveLength(1)
    r.tick(1000)
    expect(core.proposed).toHaveLength(2)
    core.proposeAnswer = { ok: true, kind: 'appended', index: 7, term: 2 }
    r.retryAll(1100) // a new leader: at once, not at the next retry time
    expect(core.proposed).toHaveLength(3)
    r.applied('other', 'not mine', 6)
    r.applied('k', 'done', 7)
    expect(ends).toEqual([{ kind: 'applied', result: 'done', index: 7 }])
    r.applied('k', 'again', 8) // a duplicate entry: nobody waits any more
    expect(ends).toHaveLength(1)
  })

  it('a timeout says whether any attempt left the node', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: ProposalEnd<string>[] = []
    r.propose('never-sent', DATA, 0, 2000, (e) => ends.push(e))
    core.proposeAnswer = { ok: true, kind: 'forwarded', to: 'n2' }
    r.propose('sent', DATA, 0, 2000, (e) => ends.push(e))
    core.proposeAnswer = { ok: false, reason: 'no-leader' }
    r.tick(2000)
    expect(ends).toEqual([{ kind: 'timeout', sent: false }, { kind: 'timeout', sent: true }])
  })

  it('refuses a duplicate key and a full table without calling back', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: ProposalEnd<string>[] = []
    expect(r.propose('a', DATA, 0, 5000, (e) => ends.push(e))).toBeNull()
    expect(r.propose('a', DATA, 0, 5000, (e) => ends.push(e))).toBe('duplicate-key')
    expect(r.propose('b', DATA, 0, 5000, (e) => ends.push(e))).toBeNull()
    expect(r.propose('c', DATA, 0, 5000, (e) => ends.push(e))).toBe('too-many')
    expect(ends).toEqual([])
  })

  it('a read ends once confirmed and applied here; unconfirmed ones are retried and time out', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: ReadEnd[] = []
    core.readAnswer = { ok: true, kind: 'forwarded', to: 'n2' }
    r.read('ctx', 0, 5000, (e) => ends.push(e))
    expect(r.read('other', 0, 5000, (e) => ends.push(e))).toBe('too-many')
    r.confirmed(new TextEncoder().encode('ctx'), 10)
    r.settleReads(9)
    expect(ends).toEqual([])
    r.settleReads(10)
    expect(ends).toEqual([{ ok: true }])

    const late: ReadEnd[] = []
    r.read('slow', 0, 3000, (e) => late.push(e))
    r.tick(1000)
    expect(core.readContexts).toEqual(['ctx', 'slow', 'slow'])
    r.tick(3000)
    expect(late).toMatchObject([{ ok: false, kind: 'timeout' }])
  })

  it('dropAll ends everything, saying which writes may still commit', () => {
    const core = new FakeCore()
    const r = core.requests()
    const ends: Array<ProposalEnd<string> | ReadEnd> = []
    r.propose('waiting', DATA, 0, 5000, (e) => ends.push(e))
    core.proposeAnswer = { ok: true, kind: 'appended', index: 3, term: 1 }
    r.propose('appended', DATA, 0, 5000, (e) => ends.push(e))
    r.read('ctx', 0, 5000, (e) => ends.push(e))
    r.dropAll()
    expect(ends).toEqual([{ kind: 'dropped', sent: false }, { kind: 'dropped', sent: true }, { ok: false, kind: 'dropped', reason: 'the node stopped' }])
    expect(r.proposals + r.reads).toBe(0)
  })
})
