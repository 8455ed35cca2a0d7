// Locks after etcd's concurrency.Mutex: a queue of lease-attached waiter keys
// ordered by createRevision, fencing tokens that grow from holder to holder.
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import {
  fencingToken, isValidLockName, lockAcquireRequest, lockHolder, lockKey, lockReleaseRequest, lockStatus, lockWaiters, lockWaitingOn,
} from '../../storage/statestore/locks.ts'

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
