// The end-of-run checkers on hand-written histories: each accepts what is
// correct and rejects what is not (a checker that cannot fail proves nothing).

import { describe, expect, it } from 'vitest'
import { checkHistory, checkKey, linearizabilityViolations } from '../../simulations/checkers/linearizability.ts'
import { checkAcknowledgedWrites, checkAcknowledgedWritesDurable, checkNoPhantomReads, checkReplicasAgree } from '../../simulations/checkers/durability.ts'
import { checkLocks } from '../../simulations/checkers/locks.ts'
import { checkLiveness } from '../../simulations/checkers/liveness.ts'
import { checkContainerRecords, LOST_MARKING_SLACK_US, MARK_ROUND_SLACK_US, NEW_LEADER_MARKING_US } from '../../simulations/checkers/containers.ts'
import { MemoryRuntime } from '../../runtime/memory-runtime.ts'
import { StateStore, containerKey, encodeRecord, type Container, type KeyValue } from '../../storage/statestore/index.ts'
import type { KvKind, KvOp, LockHold, Outcome } from '../../simulations/history.ts'
import { RaftSafetyChecker } from '../../simulations/checkers/raft-safety.ts'
import { ViolationError } from '../../simulations/checkers/violation.ts'
import { Scheduler } from '../../simulations/scheduler.ts'
import type { SimNode } from '../../simulations/node.ts'
import type { Entry, Ready } from '../../protocols/raft/index.ts'

let nextId = 0

/** An operation on key k over [from, to] ms (to: Infinity = unknown outcome). */
function op(kind: KvKind, from: number, to: number, fields: Partial<KvOp> = {}, outcome: Outcome = to === Infinity ? 'unknown' : 'ok'): KvOp {
  return {
    id: nextId++,
    client: 'c',
    node: 'n1',
    kind,
    key: 'k',
    value: null,
    expected: null,
    invokeUs: from * 1000,
    returnUs: to * 1000,
    outcome,
    read: null,
    succeeded: null,
    deleted: null,
    index: null,
    ...fields,
  }
}

const put = (v: string, from: number, to: number, outcome?: Outcome): KvOp => op('put', from, to, { value: v }, outcome)
const read = (v: string | null, from: number, to: number): KvOp => op('cget', from, to, { read: v })
const cas = (expected: string, v: string, ok: boolean | null, from: number, to: number): KvOp => op('cas', from, to, { expected, value: v, succeeded: ok })
const del = (deleted: number | null, from: number, to: number): KvOp => op('delete', from, to, { deleted })

describe('linearizability (per key, Wing–Gong / Porcupine search)', () => {
  it('accepts a sequential history and concurrent operations in some valid order', () => {
    expect(checkKey([put('a', 0, 1), read('a', 2, 3), put('b', 4, 6), read('a', 5, 7), read('b', 8, 9)]).kind).toBe('ok')
  })

  it('rejects a stale read: a value overwritten before the read began', () => {
    const v = checkKey([put('a', 0, 1), put('b', 2, 3), read('a', 4, 5)])
    expect(v.kind).toBe('violation')
    if (v.kind === 'violation') expect(v.stuck[0]?.kind).toBe('cget')
  })

  it('rejects a read of nothing after an acknowledged write (a lost write)', () => {
    expect(checkKey([put('a', 0, 1), read(null, 2, 3)]).kind).toBe('violation')
  })

  it('an unknown write may take effect at any point after it was invoked...', () => {
    expect(checkKey([put('a', 0, Infinity), read(null, 1, 2), read('a', 3, 4)]).kind).toBe('ok')
  })

  it('...or never', () => {
    expect(checkKey([put('a', 0, 1), put('b', 2, Infinity), read('a', 3, 4), read('a', 5, 6)]).kind).toBe('ok')
  })

  it('...but not before it was invoked, and not undone once seen', () => {
    expect(checkKey([read('a', 0, 1), put('a', 2, Infinity)]).kind).toBe('violation')
    expect(checkKey([put('a', 0, 1), put('b', 2, Infinity), read('b', 3, 4), read('a', 5, 6)]).kind).toBe('violation')
  })

  it('a failed write had no effect and is left out', () => {
    expect(checkKey([put('a', 0, 1, 'fail'), read(null, 2, 3)]).kind).toBe('ok')
  })

  it('compare-and-swap: swaps only on a match, and its answer must fit', () => {
    expect(checkKey([put('a', 0, 1), cas('a', 'b', true, 2, 3), read('b', 4, 5), cas('a', 'c', false, 6, 7)]).kind).toBe('ok')
    expect(checkKey([put('a', 0, 1), cas('x', 'b', true, 2, 3)]).kind).toBe('violation')
    expect(checkKey([put('a', 0, 1), cas('a', 'b', false, 2, 3)]).kind).toBe('violation')
    // An unknown CAS may have swapped.
    expect(checkKey([put('a', 0, 1), cas('a', 'b', null, 2, Infinity), read('b', 4, 5)]).kind).toBe('ok')
  })

  it('delete: its count must match whether the key existed', () => {
    expect(checkKey([put('a', 0, 1), del(1, 2, 3), read(null, 4, 5), del(0, 6, 7)]).kind).toBe('ok')
    expect(checkKey([del(1, 0, 1)]).kind).toBe('violation')
  })

  it('operations that touch at one instant count as concurrent (no false alarm from ties)', () => {
    expect(checkKey([put('a', 0, 5), read('a', 5, 6), put('b', 5, 7)]).kind).toBe('ok')
  })

  it('plain reads (may be stale by design) are not held to linearizability', () => {
    expect(checkKey([put('a', 0, 1), put('b', 2, 3), op('get', 4, 5, { read: 'a' })]).kind).toBe('ok')
  })

  it('checks keys independently and names the broken one', () => {
    const ops = [put('a', 0, 1), { ...read('x', 2, 3), key: 'k2' }, { ...put('x', 0, 1), key: 'k2' }, read('b', 2, 3)]
    const r = checkHistory(ops)
    expect(r.violations.map((v) => v.key)).toEqual(['k'])
  })

  it('stays bounded: an exhausted step budget is inconclusive, not a verdict', () => {
    const many = Array.from({ length: 16 }, (_, i) => put(`v${i}`, i, Infinity))
    expect(checkKey([...many, read('v3', 100, 101), read('zz', 200, 201)], 50).kind).toBe('inconclusive')
  })

  it('an undecided key fails the run unless inconclusive keys are allowed', () => {
    const many = Array.from({ length: 16 }, (_, i) => put(`v${i}`, i, Infinity))
    const verdict = checkHistory([...many, read('v3', 100, 101), read('zz', 200, 201)], 50)
    expect(verdict).toEqual({ violations: [], inconclusive: ['k'] })
    // Before, the run only counted it: no violation, so the run passed on a guess.
    const failing = linearizabilityViolations(verdict, 7, false, 50)
    expect(failing).toHaveLength(1)
    expect(failing[0]).toMatchObject({ checker: 'linearizability', atUs: 7 })
    expect(failing[0]?.message).toMatch(/key k is undecided: the linearizability search hit its bound of 50 steps/)
    expect(failing[0]?.message).toMatch(/--allow-inconclusive/)
    expect(linearizabilityViolations(verdict, 7, true, 50)).toEqual([])
    // A real violation fails either way.
    const broken = checkHistory([put('a', 0, 1), read('b', 2, 3)])
    expect(linearizabilityViolations(broken, 0, true).map((v) => v.message)).toEqual([expect.stringMatching(/key k has no linearization/)])
  })

  it('handles a long concurrent history quickly (memoised)', () => {
    const ops: KvOp[] = []
    for (let i = 0; i < 300; i++) {
      ops.push(put(`v${i}`, i * 10, i * 10 + 25))
      ops.push(read(i === 0 ? null : `v${i - 1}`, i * 10 + 1, i * 10 + 24))
    }
    const started = performance.now()
    expect(checkKey(ops).kind).toBe('ok')
    expect(performance.now() - started).toBeLessThan(2000)
  })
})

describe('durability and reads', () => {
  it('an acknowledged write beyond the recovered log is lost', () => {
    const w = { ...put('a', 0, 1), index: 40 }
    expect(checkAcknowledgedWrites([w], 40, 0)).toEqual([])
    expect(checkAcknowledgedWrites([w], 39, 0).map((v) => v.checker)).toEqual(['acknowledged-write-lost'])
    expect(checkAcknowledgedWrites([{ ...w, outcome: 'unknown' }], 10, 0)).toEqual([])
  })

  it('without a leader, an acknowledged write must be on a majority of the voters\' disks', () => {
    const w = { ...put('a', 0, 1), index: 40 }
    const disks = (...indexes: number[]) => indexes.map((durableIndex, i) => ({ id: `n${i + 1}`, durableIndex }))
    expect(checkAcknowledgedWritesDurable([w], disks(40, 41, 12), 0)).toEqual([])
    expect(checkAcknowledgedWritesDurable([w], disks(40, 41, 39, 39, 45), 0)).toEqual([])
    // Before, a run without a leader at the end skipped the check: these passed.
    const v = checkAcknowledgedWritesDurable([w], disks(40, 39, 12), 5)
    expect(v.map((x) => x.checker)).toEqual(['acknowledged-write-lost'])
    expect(v[0]?.message).toMatch(/only 1 of the 3 voters \(n1: 40, n2: 39, n3: 12\) hold index 40 on disk, fewer than the majority of 2/)
    expect(checkAcknowledgedWritesDurable([w], disks(40, 40, 39, 39), 0)).toHaveLength(1)
    // Only acknowledged writes count.
    expect(checkAcknowledgedWritesDurable([{ ...w, outcome: 'unknown' }, { ...read('a', 2, 3), index: 50 }], disks(1, 1, 1), 0)).toEqual([])
  })

  it('a read returning a value never written, written later, or refused, is a phantom', () => {
    expect(checkNoPhantomReads([put('a', 0, 1), op('get', 2, 3, { read: 'a' })], 0)).toEqual([])
    expect(checkNoPhantomReads([put('a', 0, Infinity), op('get', 2, 3, { read: 'a' })], 0)).toEqual([])
    expect(checkNoPhantomReads([op('get', 2, 3, { read: 'zz' })], 0)).toHaveLength(1)
    expect(checkNoPhantomReads([op('get', 2, 3, { read: 'a' }), put('a', 4, 5)], 0)).toHaveLength(1)
    expect(checkNoPhantomReads([put('a', 0, 1, 'fail'), read('a', 2, 3)], 0)).toHaveLength(1)
  })

  it('replicas at the same applied index must hold the same state', () => {
    expect(checkReplicasAgree([{ id: 'n1', applied: 5, digest: 'x' }, { id: 'n2', applied: 5, digest: 'x' }, { id: 'n3', applied: 4, digest: 'y' }], 0)).toEqual([])
    expect(checkReplicasAgree([{ id: 'n1', applied: 5, digest: 'x' }, { id: 'n2', applied: 5, digest: 'z' }], 0)).toHaveLength(1)
  })
})

describe('lock safety (by fencing token)', () => {
  const hold = (client: string, leaseId: number, token: number, from: number, to: number): LockHold => ({ client, node: 'n1', lock: 'l', leaseId, token, fromUs: from * 1000, toUs: to * 1000, endedBy: 'released' })

  it('accepts holders one after the other with growing tokens', () => {
    expect(checkLocks([hold('a', 1, 10, 0, 5), hold('b', 2, 12, 6, 9), hold('a', 3, 15, 9, 12)], 20_000)).toEqual([])
  })

  it('rejects two holders at once', () => {
    const v = checkLocks([hold('a', 1, 10, 0, 5), hold('b', 2, 12, 4, 9)], 20_000)
    expect(v.map((x) => x.checker)).toEqual(['lock-safety'])
    expect(v[0]?.message).toContain('held it until')
  })

  it('rejects a later holder with a smaller token, and one token for two sessions', () => {
    expect(checkLocks([hold('a', 1, 10, 0, 5), hold('b', 2, 8, 6, 9)], 20_000)[0]?.message).toContain('smaller')
    expect(checkLocks([hold('a', 1, 10, 0, 5), hold('b', 2, 10, 6, 9)], 20_000)[0]?.message).toContain('fencing token 10')
  })

  it('a hold still open at the end lasts until the end', () => {
    expect(checkLocks([hold('a', 1, 10, 0, Infinity), hold('b', 2, 12, 6, 9)], 20_000)).toHaveLength(1)
  })
})

describe('liveness', () => {
  it('needs a leader and a committed write within the bound after healing', () => {
    const base = { healedAtUs: 1_000_000, boundUs: 10_000_000 }
    expect(checkLiveness({ ...base, leaderAtUs: 1_500_000, commitAtUs: 2_000_000 })).toEqual([])
    expect(checkLiveness({ ...base, leaderAtUs: null, commitAtUs: null })[0]?.message).toContain('no leader')
    expect(checkLiveness({ ...base, leaderAtUs: 1_500_000, commitAtUs: null })[0]?.message).toContain('no write committed')
    expect(checkLiveness({ ...base, leaderAtUs: 1_500_000, commitAtUs: 12_000_000 })).toHaveLength(1)
  })
})

describe('Raft safety checker (online)', () => {
  /** A stand-in for a node: only what the checker reads (id, its log's terms, its status). */
  function stub(id: string, terms: number[], term: number): SimNode {
    const core = {
      logTerm: (i: number): number | undefined => (i === 0 ? 0 : terms[i - 1]),
      status: () => ({ term, firstIndex: 1, lastIndex: terms.length }),
    }
    return { id, core } as unknown as SimNode
  }
  const ready = (entries: Entry[], hard: { term: number; commit: number } | undefined): Ready =>
    ({ entries, hardState: hard === undefined ? undefined : { ...hard, vote: null } }) as unknown as Ready
  const e = (index: number, term: number, byte = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array([byte]) })

  it('leader completeness: a leader of a later term must hold what was committed before it', () => {
    const checker = new RaftSafetyChecker(new Scheduler(), false)
    const a = stub('a', [1, 2, 2, 2], 2)
    checker.persisted(a, ready([], { term: 2, commit: 4 }))
    // Committed in term 2: a leader of term 3 without index 4 breaks the property...
    expect(() => checker.roleChanged(stub('b', [1, 2, 2], 3), { lead: 'b', role: 'leader' })).toThrow(ViolationError)
    // ...but a late leader of term 2 itself (a stale election) does not.
    expect(() => checker.roleChanged(stub('a', [1, 2, 2, 2], 2), { lead: 'a', role: 'leader' })).not.toThrow()
  })

  it('election safety, log matching and state-machine safety fail on their breaches', () => {
    const checker = new RaftSafetyChecker(new Scheduler(), false)
    const a = stub('a', [1, 2], 2)
    const b = stub('b', [1, 2], 2)
    checker.sent(a, { type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0, readSeq: 0 })
    expect(() => checker.sent(b, { type: 'heartbeat', from: 'b', to: 'a', term: 2, commit: 0, readSeq: 0 })).toThrow(/election-safety/)
    checker.persisted(a, ready([e(2, 2, 1)], undefined))
    expect(() => checker.persisted(b, ready([e(2, 2, 9)], undefined))).toThrow(/log-matching/)
    checker.applied(a, e(2, 2, 1))
    expect(() => checker.applied(b, e(2, 3, 1))).toThrow(/state-machine-safety/)
  })
})

describe('container records', () => {
  const rt = new MemoryRuntime({ identity: { hostId: 'n1', hostName: 'n1' } })
  const web = rt.run({ name: 'web', image: 'busybox:1', ips: ['10.0.1.2'] })
  const db = rt.run({ name: 'db', image: 'busybox:1', ips: ['10.0.1.3'] })
  /** The containers/ range of a store holding `records` (as host n1 wrote them). */
  const stored = (records: readonly Container[], extra: (s: StateStore) => void = () => undefined): readonly KeyValue[] => {
    const s = new StateStore()
    let i = 0
    for (const c of records) s.apply(++i, { origin: 'n1', requestId: `r${i}`, request: { type: 'put', key: containerKey('n1', c.id), value: encodeRecord(c) } })
    extra(s)
    return s.range('containers/').kvs
  }
  const hosts = (member = true) => [{ id: 'n1', member, engine: rt.engineContainers() }]

  it('accepts records equal to the engine', () => {
    expect(checkContainerRecords(hosts(), stored([web, db]), 0)).toEqual([])
  })

  it('reports a missing, a stale and a leftover record', () => {
    expect(checkContainerRecords(hosts(), stored([web]), 0)[0]?.message).toMatch(/db \(running\) is missing/)
    const stale = { ...db, state: 'exited' as const, exitCode: 0 }
    expect(checkContainerRecords(hosts(), stored([web, stale]), 0)[0]?.message).toMatch(/db is stored as exited but is running/)
    const gone = { ...web, id: 'f'.repeat(64), name: 'gone' }
    const v = checkContainerRecords(hosts(), stored([web, db, gone]), 0)
    expect(v).toHaveLength(1)
    expect(v[0]).toMatchObject({ checker: 'container-records' })
    expect(v[0]?.message).toMatch(/ffffffffffff is stored but no longer exists/)
  })

  it('does not hold a host whose peer is gone to its engine', () => {
    expect(checkContainerRecords(hosts(false), stored([web]), 0)).toEqual([])
  })

  it('a host down past the grace must have no record that is not lost', () => {
    const grace = 3_000_000
    const downAt = 10_000_000
    const due = downAt + grace + LOST_MARKING_SLACK_US
    const departed = [{ id: 'n1', member: false, engine: rt.engineContainers(), downSinceUs: downAt }]
    // By the simulator's truth alone (the leader's detector still thinks n1 alive).
    const rule = { graceUs: grace, leaderUpSinceUs: 0, leaderUpForUs: due, leaderSinceUs: 0, leaderView: new Map([['n1', { state: 'alive', forUs: due }]]) }
    const lostWeb = { ...web, state: 'lost' as const }
    const lostDb = { ...db, state: 'lost' as const }
    expect(checkContainerRecords(departed, stored([lostWeb, lostDb]), due, rule)).toEqual([])
    expect(checkContainerRecords(departed, stored([]), due, rule)).toEqual([])
    // Before, a non-member was not looked at: records left running passed.
    const v = checkContainerRecords(departed, stored([lostWeb, db]), due, rule)
    expect(v).toHaveLength(1)
    expect(v[0]).toMatchObject({ checker: 'container-records' })
    expect(v[0]?.message).toMatch(/host n1 has been down since 10\.000s and the leader's 3\.000s grace for it has run out, yet its records still show db \(running\) instead of lost or removed/)
    // Within the grace (plus the slack to notice), or with a leader too young to mark, records may still stand.
    expect(checkContainerRecords(departed, stored([web, db]), due - 1, rule)).toEqual([])
    expect(checkContainerRecords(departed, stored([web, db]), due, { ...rule, leaderUpSinceUs: downAt + 1 })).toEqual([])
    expect(checkContainerRecords(departed, stored([web, db]), due, { ...rule, leaderSinceUs: due - 1 })).toEqual([])
    expect(checkContainerRecords(departed, stored([web, db]), due + NEW_LEADER_MARKING_US, { ...rule, leaderSinceUs: due })).toHaveLength(1)
    // A host whose peer runs but is no member is not judged (its HostSync may still write).
    expect(checkContainerRecords([{ id: 'n1', member: false, engine: [], downSinceUs: null }], stored([web]), due, rule)).toEqual([])
  })

  it("by the leader's own view: seen dead, left or unknown for the grace, by a leader up that long", () => {
    const grace = 3_000_000
    const departed = [{ id: 'n1', member: false, engine: rt.engineContainers(), downSinceUs: 10_000_000 }]
    const at = 14_000_000
    const enough = grace + MARK_ROUND_SLACK_US
    const view = (state: string, forUs: number) => ({ graceUs: grace, leaderUpSinceUs: 0, leaderUpForUs: at, leaderSinceUs: 0, leaderView: new Map([['n1', { state, forUs }]]) })
    expect(checkContainerRecords(departed, stored([web]), at, view('dead', enough))).toHaveLength(1)
    expect(checkContainerRecords(departed, stored([web]), at, view('left', enough))).toHaveLength(1)
    expect(checkContainerRecords(departed, stored([web]), at, { ...view('left', 0), leaderView: new Map() })).toHaveLength(1)
    expect(checkContainerRecords(departed, stored([web]), at, view('dead', enough - 1))).toEqual([])
    expect(checkContainerRecords(departed, stored([web]), at, view('suspect', enough))).toEqual([])
    expect(checkContainerRecords(departed, stored([web]), at, { ...view('dead', enough), leaderUpForUs: enough - 1 })).toEqual([])
  })

  it('reports a record stored under another host', () => {
    // The StateStore refuses such a write; the checker must still catch one that got through.
    const forged: KeyValue = { key: containerKey('n2', web.id), value: encodeRecord(web), createRevision: 1, modRevision: 1, version: 1, lease: 0 }
    const v = checkContainerRecords([], [forged], 0)
    expect(v).toHaveLength(1)
    expect(v[0]?.message).toMatch(/holds container .* of host n1/)
  })
})
