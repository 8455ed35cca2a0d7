/** A graceful leave's steps (runtime/leave-sequence.ts), which Peer.stop and the simulator's nodes both run. */
import { describe, it, expect } from 'vitest'
import { LeaveSequence } from '../../runtime/leave-sequence.ts'
import { LEAVE_REMOVE_TIMEOUT_MS, LEAVE_VOTERS_TIMEOUT_MS } from '../../runtime/leader-duties.ts'

const kinds = (actions: ReadonlyArray<{ kind: string }>): string[] => actions.map((a) => a.kind)
const LEADER = { isLeader: true, removable: true }
const FOLLOWER = { isLeader: false, removable: true }
const GONE = { isLeader: false, removable: false }

describe('LeaveSequence', () => {
  it('a leading voter: records, hand-off, announce, then waits to be removed before it stops', () => {
    const seq = new LeaveSequence({ hasRecords: true, handOffTimeoutMs: 1000 })
    expect(kinds(seq.step(0, LEADER))).toEqual(['remove-records'])
    expect(seq.step(10, LEADER)).toEqual([])
    seq.recordsDone(true)
    expect(kinds(seq.step(20, LEADER))).toEqual(['transfer-leadership'])
    expect(seq.step(500, LEADER)).toEqual([])
    expect(kinds(seq.step(600, FOLLOWER))).toEqual(['announce-leave'])
    expect(seq.step(700, FOLLOWER)).toEqual([])
    expect(seq.step(800, GONE)).toEqual([{ kind: 'stop', wasVoter: true, stillVoter: false, recordsRemoved: true }])
    expect(seq.done).toBe(true)
    expect(seq.step(900, GONE)).toEqual([])
  })

  it('every wait has a deadline: no leader to remove records, a transfer that never lands, a removal that never commits', () => {
    const seq = new LeaveSequence({ hasRecords: true, handOffTimeoutMs: 1000 })
    expect(kinds(seq.step(0, LEADER))).toEqual(['remove-records'])
    expect(seq.step(LEAVE_REMOVE_TIMEOUT_MS - 1, LEADER)).toEqual([])
    expect(kinds(seq.step(LEAVE_REMOVE_TIMEOUT_MS, LEADER))).toEqual(['transfer-leadership'])
    expect(kinds(seq.step(LEAVE_REMOVE_TIMEOUT_MS + 1000, LEADER))).toEqual(['announce-leave'])
    const t = LEAVE_REMOVE_TIMEOUT_MS + 1000 + LEAVE_VOTERS_TIMEOUT_MS
    expect(seq.step(t - 1, LEADER)).toEqual([])
    expect(seq.step(t, LEADER)).toEqual([{ kind: 'stop', wasVoter: true, stillVoter: true, recordsRemoved: false }])
  })

  it('a peer that is no voter (or the last one) announces and stops at once; one without records skips them', () => {
    const learner = new LeaveSequence({ hasRecords: false, handOffTimeoutMs: 1000 })
    expect(kinds(learner.step(0, GONE))).toEqual(['announce-leave', 'stop'])
    const follower = new LeaveSequence({ hasRecords: false, handOffTimeoutMs: 1000 })
    expect(kinds(follower.step(0, FOLLOWER))).toEqual(['announce-leave'])
    expect(kinds(follower.step(50, GONE))).toEqual(['stop'])
  })
})
