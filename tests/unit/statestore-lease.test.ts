// Leases in the state machine (grant, attach, revoke deletes keys) and the
// leader-only LeaseClock that decides expiry outside apply().
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import { LeaseClock, LEASE_REVOKE_RETRY_MS } from '../../storage/statestore/lease-clock.ts'
import { LEASE_TTL_MAX_MS, LEASE_TTL_MIN_MS } from '../../storage/statestore/limits.ts'

describe('lease grant', () => {
  it('creates a lease owned by the origin, without using a revision', () => {
    const d = new StoreDriver()
    expect(d.run({ type: 'leaseGrant', id: 5, ttlMs: 10_000 })).toMatchObject({ ok: true, response: { type: 'leaseGrant', id: 5, ttlMs: 10_000, revision: 0 } })
    expect(d.store.lease(5)).toEqual({ id: 5, ttlMs: 10_000, owner: 'peerA', keys: [] })
    expect(d.store.revision).toBe(0)
  })

  it('refuses an existing id, bad ids and ttls outside 1 s..1 h', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 5, ttlMs: 10_000 })
    expect(d.run({ type: 'leaseGrant', id: 5, ttlMs: 10_000 })).toMatchObject({ ok: false, code: 'lease-exists' })
    for (const id of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 1]) {
      expect(d.run({ type: 'leaseGrant', id, ttlMs: 10_000 })).toMatchObject({ ok: false, code: 'lease-id-invalid' })
    }
    expect(d.run({ type: 'leaseGrant', id: 6, ttlMs: LEASE_TTL_MIN_MS - 1 })).toMatchObject({ ok: false, code: 'ttl-out-of-range' })
    expect(d.run({ type: 'leaseGrant', id: 6, ttlMs: LEASE_TTL_MAX_MS + 1 })).toMatchObject({ ok: false, code: 'ttl-out-of-range' })
    expect(d.run({ type: 'leaseGrant', id: 6, ttlMs: LEASE_TTL_MIN_MS }).ok).toBe(true)
    expect(d.run({ type: 'leaseGrant', id: 7, ttlMs: LEASE_TTL_MAX_MS }).ok).toBe(true)
  })
})

describe('attaching keys', () => {
  it('a put with a lease attaches the key; a put without one or a delete detaches it', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
    d.run({ type: 'leaseGrant', id: 2, ttlMs: 5_000 })
    d.put('kv/a', '1', { lease: 1 })
    d.put('kv/b', '1', { lease: 1 })
    expect(d.store.lease(1)?.keys).toEqual(['kv/a', 'kv/b'])
    d.put('kv/a', '2')
    expect(d.store.lease(1)?.keys).toEqual(['kv/b'])
    d.put('kv/b', '2', { lease: 2 })
    expect(d.store.lease(1)?.keys).toEqual([])
    expect(d.store.lease(2)?.keys).toEqual(['kv/b'])
    d.del('kv/b')
    expect(d.store.lease(2)?.keys).toEqual([])
    d.store.assertInvariants()
  })

  it('refuses a missing lease, and another peer\'s lease unless the leader uses it', () => {
    const d = new StoreDriver()
    expect(d.put('kv/a', '1', { lease: 42 })).toMatchObject({ ok: false, code: 'lease-not-found' })
    d.run({ type: 'leaseGrant', id: 42, ttlMs: 5_000 })
    expect(d.put('kv/a', '1', { lease: 42, origin: 'peerB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.put('kv/a', '1', { lease: 42, origin: 'peerB', asLeader: true }).ok).toBe(true)
  })
})

describe('lease revoke', () => {
  it('deletes every attached key at one revision and removes the lease', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
    d.put('kv/a', '1', { lease: 1 })
    d.put('kv/b', '1', { lease: 1 })
    d.put('kv/c', '1')
    expect(d.run({ type: 'leaseRevoke', id: 1 })).toMatchObject({ ok: true, response: { type: 'leaseRevoke', id: 1, deleted: 2, revision: 4 } })
    expect(d.store.range('kv/').kvs.map((kv) => kv.key)).toEqual(['kv/c'])
    expect(d.store.lease(1)).toBeNull()
    expect(d.run({ type: 'leaseRevoke', id: 1 })).toMatchObject({ ok: false, code: 'lease-not-found' })
    d.store.assertInvariants()
  })

  it('a lease with no keys revokes without a revision', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
    expect(d.run({ type: 'leaseRevoke', id: 1 })).toMatchObject({ ok: true, response: { deleted: 0, revision: 0 } })
  })

  it('revokes many keys consistently', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
    for (let i = 0; i < 100; i++) {
      d.put(`kv/${i}`, 'v', { lease: i % 2 === 0 ? 1 : undefined })
    }
    d.run({ type: 'leaseRevoke', id: 1 })
    expect(d.store.keyCount).toBe(50)
    d.store.assertInvariants()
  })

  it('only the owner, or the leader, may revoke', () => {
    const d = new StoreDriver()
    d.run({ type: 'leaseGrant', id: 1, ttlMs: 5_000 })
    expect(d.run({ type: 'leaseRevoke', id: 1 }, { origin: 'peerB' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(d.run({ type: 'leaseRevoke', id: 1 }, { origin: 'peerB', asLeader: true }).ok).toBe(true)
  })
})

describe('LeaseClock', () => {
  it('answers keep-alives and reports expiry only when primary', () => {
    const clock = new LeaseClock()
    clock.grant(1, 5_000, 0)
    expect(clock.keepAlive(1, 100)).toEqual({ ok: false, code: 'not-leader' })
    expect(clock.expired(1_000_000)).toEqual([])
    clock.promote(0)
    expect(clock.isPrimary).toBe(true)
    expect(clock.keepAlive(1, 1_000)).toEqual({ ok: true, ttlMs: 5_000, expiresAtMs: 6_000 })
    expect(clock.keepAlive(2, 1_000)).toEqual({ ok: false, code: 'lease-not-found' })
    clock.demote()
    expect(clock.keepAlive(1, 2_000)).toEqual({ ok: false, code: 'not-leader' })
  })

  it('keep-alive extends the deadline by the full TTL', () => {
    const clock = new LeaseClock()
    clock.promote(0)
    clock.grant(1, 5_000, 0)
    clock.keepAlive(1, 4_000)
    expect(clock.expired(8_999)).toEqual([])
    expect(clock.expired(9_000)).toEqual([1])
  })

  it('reports expired leases earliest first, bounded, and retries only after LEASE_REVOKE_RETRY_MS', () => {
    const clock = new LeaseClock()
    clock.promote(0)
    clock.grant(3, 3_000, 0)
    clock.grant(1, 2_000, 0)
    clock.grant(2, 2_000, 0)
    clock.grant(4, 60_000, 0)
    expect(clock.expired(10_000, 2)).toEqual([1, 2])
    expect(clock.expired(10_000)).toEqual([3])
    expect(clock.expired(10_000 + LEASE_REVOKE_RETRY_MS - 1)).toEqual([])
    expect(clock.expired(10_000 + LEASE_REVOKE_RETRY_MS)).toEqual([1, 2, 3])
    clock.revoke(1) // its revoke applied
    expect(clock.expired(10_000 + 2 * LEASE_REVOKE_RETRY_MS - 1)).toEqual([])
    expect(clock.expired(10_000 + 2 * LEASE_REVOKE_RETRY_MS)).toEqual([2, 3])
  })

  it('refuses to renew a lease past its deadline (its revoke is under way)', () => {
    const clock = new LeaseClock()
    clock.promote(0)
    clock.grant(1, 2_000, 0)
    expect(clock.keepAlive(1, 2_000)).toEqual({ ok: false, code: 'lease-expired' })
  })

  it('a new leader extends every lease by its full TTL, so a leader change never expires a live session early', () => {
    const follower = new LeaseClock()
    follower.grant(1, 10_000, 0) // mirrored when the grant applied, long ago
    follower.grant(2, 4_000, 0)
    // Leadership moves at t = 50 s: both leases would be long overdue on the old deadlines.
    follower.promote(50_000)
    expect(follower.expired(50_000)).toEqual([])
    expect(follower.remainingMs(1, 50_000)).toBe(10_000)
    expect(follower.expired(54_000)).toEqual([2])
    follower.revoke(2) // its revoke applied
    expect(follower.expired(59_999)).toEqual([])
    expect(follower.expired(60_000)).toEqual([1])
  })

  it('sync reconciles with the store after a restore', () => {
    const clock = new LeaseClock()
    clock.grant(1, 5_000, 0)
    clock.grant(2, 5_000, 0)
    clock.sync([{ id: 2, ttlMs: 5_000 }, { id: 3, ttlMs: 7_000 }], 1_000)
    expect(clock.size).toBe(2)
    expect(clock.remainingMs(1, 1_000)).toBeNull()
    expect(clock.remainingMs(2, 1_000)).toBe(4_000)
    expect(clock.remainingMs(3, 1_000)).toBe(7_000)
  })

  it('drives expiry through the log: the leader proposes leaseRevoke asLeader and the keys go', () => {
    const d = new StoreDriver(undefined, 'client-peer')
    const clock = new LeaseClock()
    clock.promote(0)
    const grant = d.run({ type: 'leaseGrant', id: 77, ttlMs: 3_000 })
    if (grant.ok && grant.response.type === 'leaseGrant') clock.grant(grant.response.id, grant.response.ttlMs, 0)
    d.put('locks/job/4d', '', { lease: 77 })
    for (const id of clock.expired(3_000)) {
      const r = d.run({ type: 'leaseRevoke', id }, { origin: 'leader-peer', asLeader: true })
      expect(r.ok).toBe(true)
      clock.revoke(id)
    }
    expect(d.store.get('locks/job/4d')).toBeNull()
    expect(d.store.leaseCount).toBe(0)
    expect(clock.size).toBe(0)
  })

  it('refuses ttls outside the store bounds (a driver bug)', () => {
    expect(() => new LeaseClock().grant(1, 10, 0)).toThrow(RangeError)
  })
})
