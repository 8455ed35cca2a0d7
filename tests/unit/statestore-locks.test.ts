// Locks after etcd's concurrency.Mutex: a queue of lease-attached waiter keys
// ordered by createRevision, fencing tokens that grow from holder to holder.
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import {
  fencingToken, isValidLockName, lockAcquireRequest, lockHolder, lockKey, lockReleaseRequest, lockStatus, lockWaiters, lockWaitingOn,
} from '../../storage/statestore/locks.ts'
import { LeaseHolder, leaseMarginFraction, renewalBatches, LEASE_RENEW_BATCH_MAX } from '../../storage/statestore/lease-holder.ts'
import { LeaseClock, renewOwned } from '../../storage/statestore/lease-clock.ts'
import { decodeCommand, encodeCommand } from '../../storage/statestore/codec.ts'
import { decodeResult, encodeResult } from '../../storage/statestore/result-codec.ts'
import type { ApplyResult } from '../../storage/statestore/results.ts'

// Each client is a peer with a lease, as `shoal lock` would be.
function setup(leases: Array<[string, number]>): StoreDriver {
  const d = new StoreDriver()
  for (const [origin, id] of leases) d.run({ type: 'leaseGrant', id, ttlMs: 10_000 }, { origin })
  return d
}

function acquire(d: StoreDriver, origin: string, lease: number, name = 'job'): boolean {
  const r = d.run(lockAcquireRequest(name, lease), { origin })
  if (!r.ok || r.response.type !== 'txn') throw new Error(`acquire failed: ${JSON.stringify(r)}`)
  return r.response.succeeded
}

describe('lock keys', () => {
  it('are locks/NAME/<lease hex>', () => {
    expect(lockKey('job', 255)).toBe('locks/job/ff')
  })

  it('refuse names that could nest inside another lock\'s queue', () => {
    expect(isValidLockName('a/b')).toBe(false)
    expect(isValidLockName('')).toBe(false)
    expect(isValidLockName('deploy-web.v2')).toBe(true)
    expect(() => lockKey('a/b', 1)).toThrow(RangeError)
    expect(() => lockKey('a', 0)).toThrow(RangeError)
  })
})

describe('lock queue', () => {
  it('the first waiter holds; each later waiter watches the next-lower one', () => {
    const d = setup([['pa', 1], ['pb', 2], ['pc', 3]])
    expect(acquire(d, 'pa', 1)).toBe(true)
    expect(acquire(d, 'pb', 2)).toBe(true)
    expect(acquire(d, 'pc', 3)).toBe(true)
    expect(lockHolder(d.store, 'job')).toMatchObject({ leaseId: 1, key: 'locks/job/1' })
    expect(lockStatus(d.store, 'job', 1)).toMatchObject({ state: 'held' })
    expect(lockWaitingOn(d.store, 'job', 1)).toBeNull()
    expect(lockWaitingOn(d.store, 'job', 2)).toMatchObject({ leaseId: 1 })
    expect(lockWaitingOn(d.store, 'job', 3)).toMatchObject({ leaseId: 2 })
    expect(lockStatus(d.store, 'job', 3)).toMatchObject({ state: 'waiting', position: 2 })
    expect(lockStatus(d.store, 'job', 4)).toEqual({ state: 'absent' })
    expect(fencingToken(d.store, 'job', 2)).toBeNull()
  })

  it('re-acquiring with the same lease is a no-op that keeps the place in the queue', () => {
    const d = setup([['pa', 1], ['pb', 2]])
    acquire(d, 'pa', 1)
    acquire(d, 'pb', 2)
    expect(acquire(d, 'pa', 1)).toBe(false)
    expect(lockHolder(d.store, 'job')?.leaseId).toBe(1)
    expect(lockWaiters(d.store, 'job').map((w) => w.leaseId)).toEqual([1, 2])
  })

  it('release hands the lock on in queue order with growing fencing tokens', () => {
    const d = setup([['pa', 1], ['pb', 2], ['pc', 3]])
    acquire(d, 'pa', 1)
    acquire(d, 'pb', 2)
    acquire(d, 'pc', 3)
    const tokens: number[] = []
    tokens.push(fencingToken(d.store, 'job', 1) ?? -1)
    d.run(lockReleaseRequest('job', 1), { origin: 'pa' })
    expect(lockHolder(d.store, 'job')?.leaseId).toBe(2)
    tokens.push(fencingToken(d.store, 'job', 2) ?? -1)
    // The first holder comes back: it queues behind the others.
    acquire(d, 'pa', 1)
    d.run(lockReleaseRequest('job', 2), { origin: 'pb' })
    tokens.push(fencingToken(d.store, 'job', 3) ?? -1)
    d.run(lockReleaseRequest('job', 3), { origin: 'pc' })
    tokens.push(fencingToken(d.store, 'job', 1) ?? -1)
    expect(tokens.every((t, i) => t > 0 && (i === 0 || t > (tokens[i - 1] ?? 0)))).toBe(true)
    expect(d.store.range('locks/').kvs.length).toBe(1)
  })

  it('revoking a holder\'s lease (expiry) releases the lock; revoking a middle waiter relinks the queue', () => {
    const d = setup([['pa', 1], ['pb', 2], ['pc', 3]])
    acquire(d, 'pa', 1)
    acquire(d, 'pb', 2)
    acquire(d, 'pc', 3)
    d.run({ type: 'leaseRevoke', id: 2 }, { origin: 'leader', asLeader: true })
    expect(lockWaitingOn(d.store, 'job', 3)).toMatchObject({ leaseId: 1 })
    const before = fencingToken(d.store, 'job', 1) ?? 0
    d.run({ type: 'leaseRevoke', id: 1 }, { origin: 'pa' })
    expect(lockHolder(d.store, 'job')?.leaseId).toBe(3)
    expect(fencingToken(d.store, 'job', 3)).toBeGreaterThan(before)
  })

  it('locks of different names are independent', () => {
    const d = setup([['pa', 1], ['pb', 2]])
    acquire(d, 'pa', 1, 'a')
    acquire(d, 'pb', 2, 'ab')
    expect(lockHolder(d.store, 'a')?.leaseId).toBe(1)
    expect(lockHolder(d.store, 'ab')?.leaseId).toBe(2)
  })

  it('ignores stray keys under the queue prefix', () => {
    const d = setup([['pa', 1], ['pb', 2]])
    d.put('locks/job/junk', 'x')
    d.put('locks/job/5', 'x', { origin: 'pb', lease: 2 }) // names lease 5, attached to 2
    acquire(d, 'pa', 1)
    expect(lockHolder(d.store, 'job')?.leaseId).toBe(1)
    expect(lockWaiters(d.store, 'job').length).toBe(1)
  })

  it('a peer cannot queue with another peer\'s lease', () => {
    const d = setup([['pa', 1]])
    expect(d.run(lockAcquireRequest('job', 1), { origin: 'pb' })).toMatchObject({ ok: false, code: 'permission-denied' })
    expect(lockHolder(d.store, 'job')).toBeNull()
  })
})

// A fenced write applies only while its lock is held with its token (etcd's compare on the
// holder's key): a stale holder is refused once a newer one holds, or once nobody does.
describe('fenced writes', () => {
  const fenced = (d: StoreDriver, token: number, value = 'v', lock = 'job'): ApplyResult =>
    d.run({ type: 'put', key: 'kv/data', value: new TextEncoder().encode(value), fence: { lock, token } }, { origin: 'pz' })

  it('apply while the lock is held with the token', () => {
    const d = setup([['pa', 1]])
    acquire(d, 'pa', 1)
    const token = fencingToken(d.store, 'job', 1) ?? 0
    expect(fenced(d, token, 'one')).toMatchObject({ ok: true })
    expect(d.value('kv/data')).toBe('one')
  })

  it('refuse a stale holder once a newer holder has the lock, and leave the key as it was', () => {
    const d = setup([['pa', 1], ['pb', 2]])
    acquire(d, 'pa', 1)
    acquire(d, 'pb', 2)
    const stale = fencingToken(d.store, 'job', 1) ?? 0
    d.run({ type: 'leaseRevoke', id: 1 }, { origin: 'leader', asLeader: true }) // the first holder's session expired
    const current = fencingToken(d.store, 'job', 2) ?? 0
    expect(current).toBeGreaterThan(stale)
    const r = fenced(d, stale)
    expect(r).toMatchObject({ ok: false, code: 'fence-rejected' })
    expect(!r.ok && r.message).toContain(`a newer holder has lock job (token ${current})`)
    expect(d.store.get('kv/data')).toBeNull()
    expect(fenced(d, current)).toMatchObject({ ok: true })
  })

  it('refuse when nobody holds the lock, or it is held with another token', () => {
    const d = setup([['pa', 1]])
    expect(fenced(d, 5)).toMatchObject({ ok: false, code: 'fence-rejected' })
    acquire(d, 'pa', 1)
    const token = fencingToken(d.store, 'job', 1) ?? 0
    const r = fenced(d, token + 7)
    expect(!r.ok && r.message).toContain(`held with token ${token}, not ${token + 7}`)
    d.run(lockReleaseRequest('job', 1), { origin: 'pa' })
    const after = fenced(d, token)
    expect(!after.ok && after.message).toContain('lock job is not held')
  })

  it('guard puts inside a txn too: the branch applies as a whole or not at all', () => {
    const d = setup([['pa', 1]])
    const r = d.run({ type: 'txn', compare: [], success: [{ type: 'put', key: 'kv/a', value: new Uint8Array(1) }, { type: 'put', key: 'kv/b', value: new Uint8Array(1), fence: { lock: 'job', token: 9 } }], failure: [] }, { origin: 'pz' })
    expect(r).toMatchObject({ ok: false, code: 'fence-rejected' })
    expect(d.store.get('kv/a')).toBeNull()
  })

  it('are refused as malformed with a bad lock name or token', () => {
    const d = setup([])
    expect(fenced(d, 0)).toMatchObject({ ok: false, code: 'revision-invalid' })
    expect(fenced(d, 1, 'v', 'a/b')).toMatchObject({ ok: false, code: 'malformed-command' })
  })

  it('survive the wire codec; an unfenced put encodes as before', () => {
    const cmd = { origin: 'pz', requestId: 'r1', request: { type: 'put' as const, key: 'kv/x', value: new Uint8Array([1]), fence: { lock: 'job', token: 42 } } }
    const decoded = decodeCommand(encodeCommand(cmd))
    expect(decoded).toMatchObject({ ok: true, command: { request: { fence: { lock: 'job', token: 42 } } } })
    const plain = decodeCommand(encodeCommand({ ...cmd, request: { type: 'put', key: 'kv/x', value: new Uint8Array([1]) } }))
    expect(plain.ok && plain.command.request).not.toHaveProperty('fence')
    expect(decodeResult(encodeResult({ ok: false, duplicate: false, code: 'fence-rejected', message: 'm' }))).toMatchObject({ code: 'fence-rejected' })
  })
})

// The holder's side of the session discipline (`shoal lock`, the daemon, the simulator).
describe('lease holder deadline', () => {
  it('counts on TTL less the margin from the send time of the last confirmed renewal', () => {
    const h = new LeaseHolder({ ttlMs: 3000, clockDriftMax: 0.01 })
    expect(h.holds(0)).toBe(false) // nothing confirmed yet
    h.onConfirmed(1000)
    const margin = leaseMarginFraction(0.01)
    expect(h.deadlineMs).toBeCloseTo(1000 + 3000 * (1 - margin))
    expect(h.holds(h.deadlineMs - 1)).toBe(true)
    expect(h.holds(h.deadlineMs)).toBe(false)
    // A late confirmation of an earlier request never pulls the deadline back.
    h.onConfirmed(500)
    expect(h.deadlineMs).toBeCloseTo(1000 + 3000 * (1 - margin))
    h.onConfirmed(2000)
    expect(h.deadlineMs).toBeCloseTo(2000 + 3000 * (1 - margin))
  })

  it('asks the command to stop a grace before the kill, and kills before the deadline', () => {
    const h = new LeaseHolder({ ttlMs: 3000, clockDriftMax: 0, stopGraceMs: 600, killSlackMs: 100 })
    h.onConfirmed(0)
    const deadline = h.deadlineMs
    expect(h.decide(deadline - 701)).toEqual({ action: 'hold', untilMs: deadline - 700 })
    expect(h.decide(deadline - 700)).toEqual({ action: 'stop', killAtMs: deadline - 100 })
    expect(h.decide(deadline - 100)).toEqual({ action: 'kill' })
    expect(h.renewIntervalMs).toBe(1000)
  })

  it('refuses a grace that does not fit in the TTL, and a drift out of range', () => {
    expect(() => new LeaseHolder({ ttlMs: 1000, clockDriftMax: 0.01, stopGraceMs: 1000 })).toThrow(RangeError)
    expect(() => leaseMarginFraction(1)).toThrow(RangeError)
  })

  it('batches every lease into renewal requests, however many', () => {
    const ids = Array.from({ length: 2500 }, (_, i) => i + 1)
    const batches = renewalBatches(ids)
    expect(batches.map((b) => b.length)).toEqual([LEASE_RENEW_BATCH_MAX, LEASE_RENEW_BATCH_MAX, 2500 - 2 * LEASE_RENEW_BATCH_MAX])
    expect(batches.flat()).toEqual(ids)
    expect(renewalBatches([])).toEqual([])
  })

  it('the leader renews only leases the sender owns, and only while primary', () => {
    const clock = new LeaseClock()
    clock.grant(1, 3000, 0)
    clock.grant(2, 3000, 0)
    const owners = new Map([[1, 'pa'], [2, 'pb']])
    expect(renewOwned(clock, (id) => owners.get(id), 'pa', [1, 2, 3], 100)).toBeNull() // not primary
    clock.promote(100)
    expect(renewOwned(clock, (id) => owners.get(id), 'pa', [1, 2, 3], 200)).toEqual({
      renewed: [1],
      refused: [{ id: 2, code: 'lease-not-found' }, { id: 3, code: 'lease-not-found' }],
    })
    expect(clock.remainingMs(1, 200)).toBe(3000)
    expect(renewOwned(clock, (id) => owners.get(id), 'pb', [2], 10_000)).toEqual({ renewed: [], refused: [{ id: 2, code: 'lease-expired' }] })
  })
})
