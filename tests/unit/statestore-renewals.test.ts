// Lease renewals between a peer and the leader (storage/statestore/renewals.ts), the table and
// the leader's answer that the daemon's sessions and the simulator's nodes both run.
import { describe, it, expect } from 'vitest'
import { LeaseKeeper, RenewalRequests, renewAsLeader, type RenewReply } from '../../storage/statestore/index.ts'
import { StoreDriver } from '../../storage/statestore/testing.ts'

describe('RenewalRequests', () => {
  it('takes an answer only from the peer asked, once', () => {
    const r = new RenewalRequests({ timeoutMs: 2000, pendingMax: 4 })
    const replies: RenewReply[] = []
    const id = r.start('leader', 0, (reply) => replies.push(reply))
    expect(id).not.toBeNull()
    if (id === null) return
    const ok: RenewReply = { ok: true, renewed: [7], refused: [] }
    expect(r.answer('someone-else', id, ok)).toBe(false) // a forged confirmation
    expect(replies).toEqual([])
    expect(r.answer('leader', id, ok)).toBe(true)
    expect(r.answer('leader', id, ok)).toBe(false) // late duplicate
    expect(replies).toEqual([ok])
    expect(r.size).toBe(0)
  })

  it('fails what the leader left unanswered past the timeout, and refuses past the bound', () => {
    const r = new RenewalRequests({ timeoutMs: 2000, pendingMax: 1 })
    const replies: RenewReply[] = []
    r.start('leader', 0, (reply) => replies.push(reply))
    expect(r.start('leader', 0, (reply) => replies.push(reply))).toBeNull()
    expect(replies).toEqual([{ ok: false, reason: 'too many renewals in flight on this peer' }])
    r.tick(1999)
    expect(replies).toHaveLength(1)
    r.tick(2000)
    expect(replies[1]).toEqual({ ok: false, reason: 'the leader did not answer within 2000 ms' })
    r.start('leader', 3000, (reply) => replies.push(reply))
    r.dropAll('this peer is stopping')
    expect(replies[2]).toEqual({ ok: false, reason: 'this peer is stopping' })
  })
})

describe('renewAsLeader', () => {
  function leaderWithLease(owner: string): { keeper: LeaseKeeper; d: StoreDriver } {
    const d = new StoreDriver(undefined, owner)
    const keeper = new LeaseKeeper()
    const cmd = d.command({ type: 'leaseGrant', id: 5, ttlMs: 3000 })
    keeper.onCommand(cmd, d.apply(cmd), 0)
    return { keeper, d }
  }

  it('renews only after leadership was confirmed, only the owner\'s leases', () => {
    const { keeper, d } = leaderWithLease('p1')
    expect(renewAsLeader(keeper, d.store, 'p1', [5], false, true, 100, 'no quorum')).toEqual({ ok: false, reason: 'no quorum' })
    expect(renewAsLeader(keeper, d.store, 'p1', [5, 9], true, true, 100)).toEqual({ ok: true, renewed: [5], refused: [{ id: 9, code: 'lease-not-found' }] })
    expect(renewAsLeader(keeper, d.store, 'p2', [5], true, true, 200)).toMatchObject({ ok: true, renewed: [] })
  })

  it('a peer that lost office meanwhile renews nothing', () => {
    const { keeper, d } = leaderWithLease('p1')
    expect(renewAsLeader(keeper, d.store, 'p1', [5], true, false, 100)).toEqual({ ok: false, reason: 'leadership moved during the renewal' })
  })
})
