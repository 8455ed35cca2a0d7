/** The peer's table of held leases (storage/statestore/held-leases.ts), as node/sessions.ts and the simulator run it. */
import { describe, it, expect } from 'vitest'
import { HeldLeases, LEASE_RENEW_BATCH_MAX, LEASE_RENEWALS_PER_TTL } from '../../storage/statestore/index.ts'

describe('HeldLeases', () => {
  it('renews every held lease once a renewal interval passed, however many, in bounded batches', () => {
    const held = new HeldLeases({ clockDriftMax: 0.01 })
    const count = 2 * LEASE_RENEW_BATCH_MAX + 5
    for (let id = 1; id <= count; id++) held.add(id, 9000, 0)
    expect(held.due(9000 / LEASE_RENEWALS_PER_TTL - 1)).toEqual([])
    const batches = held.due(9000 / LEASE_RENEWALS_PER_TTL)
    expect(batches.map((b) => b.length)).toEqual([LEASE_RENEW_BATCH_MAX, LEASE_RENEW_BATCH_MAX, 5])
    expect(new Set(batches.flat()).size).toBe(count)
    // Marked as sent: not due again until another interval passed.
    expect(held.due(9000 / LEASE_RENEWALS_PER_TTL + 1)).toEqual([])
  })

  it('a confirmed renewal moves the deadline to its send time; a failed one changes nothing', () => {
    const held = new HeldLeases({ clockDriftMax: 0.01 })
    held.add(7, 3000, 0)
    expect(held.lostReason(7, 2000)).toBeNull()
    expect(held.lostReason(7, 2990)).toMatch(/no renewal was confirmed/)
    expect(held.onReply(1000, { ok: false, reason: 'no leader' })).toEqual([])
    expect(held.lostReason(7, 2990)).toMatch(/no renewal was confirmed/)
    expect(held.onReply(1000, { ok: true, renewed: [7], refused: [] })).toEqual([])
    expect(held.lostReason(7, 2990)).toBeNull()
    expect(held.lostReason(7, 3990)).toMatch(/no renewal was confirmed/)
  })

  it('a lease the leader refuses stops being held and is reported once', () => {
    const held = new HeldLeases({ clockDriftMax: 0.01 })
    held.add(1, 3000, 0)
    held.add(2, 3000, 0)
    const reply = { ok: true as const, renewed: [1], refused: [{ id: 2, code: 'lease-expired' as const }] }
    expect(held.onReply(500, reply)).toEqual([{ id: 2, code: 'lease-expired' }])
    expect(held.onReply(500, reply)).toEqual([])
    expect([held.has(1), held.has(2), held.size]).toEqual([true, false, 1])
    expect(held.lostReason(2, 0)).toMatch(/gone/)
    expect(held.ttlOf(1)).toBe(3000)
    expect(held.delete(1)).toBe(true)
    expect(held.due(1e9)).toEqual([])
  })
})
