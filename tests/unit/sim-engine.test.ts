// The simulator's edges: the event queue, seeded streams, the network's faults
// and the disk's crash contract (the same as storage/raft-log's).

import { describe, expect, it } from 'vitest'
import { bootstrapHardState, type Entry, type HardState } from '../../protocols/raft/index.ts'
import { NodeClock } from '../../simulations/clock.ts'
import { SimDisk, SSD_PROFILE } from '../../simulations/disk.ts'
import { LAN_PROFILE, SimNetwork, type LossReason, type NetworkProfile } from '../../simulations/network.ts'
import { createRng, stream, type Rng } from '../../simulations/random.ts'
import { Scheduler, SchedulerBoundError } from '../../simulations/scheduler.ts'
import { Digest, Trace, combineDigests } from '../../simulations/trace.ts'
import { ContainerSync, type ContainerSyncDriver } from '../../simulations/containers.ts'
import { mixEndState, runSeed, type NodeEndState } from '../../simulations/run.ts'
import type { Envelope } from '../../simulations/envelope.ts'
import { MemoryRuntime } from '../../runtime/memory-runtime.ts'
import { StateStore, containerKey, encodeRecord, parseContainer } from '../../storage/statestore/index.ts'

const CONF = { voters: ['n1', 'n2', 'n3'], learners: [] }

function entry(index: number, term: number): Entry {
  return { index, term, type: 'normal', data: new Uint8Array([index & 0xff, term & 0xff]) }
}

/** An Rng whose draws are scripted: `next()` returns the listed values in turn. */
function scripted(values: number[]): Rng {
  const base = createRng(1)
  let i = 0
  const next = (): number => values[i++] ?? 0
  return { ...base, next, int: (n) => Math.floor(next() * n), between: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), chance: (p) => p > 0 && next() < p }
}

describe('scheduler', () => {
  it('runs events in time order, ties in the order they were scheduled', () => {
    const s = new Scheduler()
    const order: string[] = []
    s.at(30, () => order.push('c'))
    s.at(10, () => order.push('a1'))
    s.at(10, () => order.push('a2'))
    s.at(20, () => {
      order.push('b')
      s.after(0, () => order.push('b-then'))
    })
    s.runUntil(Infinity)
    expect(order).toEqual(['a1', 'a2', 'b', 'b-then', 'c'])
    expect(s.nowUs).toBe(30)
  })

  it('stops at the horizon and leaves later events queued', () => {
    const s = new Scheduler()
    const seen: number[] = []
    for (const t of [5, 15, 25]) s.at(t, () => seen.push(t))
    s.runUntil(20)
    expect(seen).toEqual([5, 15])
    expect(s.nowUs).toBe(20)
    expect(s.pending).toBe(1)
  })

  it('bounds a runaway loop', () => {
    const s = new Scheduler()
    const loop = (): void => s.after(1, loop)
    s.at(0, loop)
    expect(() => s.runUntil(Infinity, undefined, 1000)).toThrow(SchedulerBoundError)
  })
})

describe('random streams', () => {
  it('the same seed and name give the same stream; other names are independent', () => {
    const a = stream(42, 'network')
    const b = stream(42, 'network')
    const c = stream(42, 'workload')
    const xs = Array.from({ length: 5 }, () => a.next())
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs)
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xs)
  })

  it('draws stay in range', () => {
    const r = createRng(7)
    for (let i = 0; i < 1000; i++) {
      const x = r.between(3, 5)
      expect(x >= 3 && x <= 5).toBe(true)
    }
    expect(r.shuffle([1, 2, 3, 4]).sort()).toEqual([1, 2, 3, 4])
  })
})

describe('clock', () => {
  it('a fast clock reads ahead and fires its timers early', () => {
    const fast = new NodeClock({ driftRatio: 0.1, offsetMs: 5, timerJitterUs: 0 })
    expect(fast.localMs(1_000_000)).toBeCloseTo(5 + 1100)
    expect(fast.timerDelayUs(50, createRng(1))).toBe(Math.round(50_000 / 1.1))
  })
})

interface Delivered {
  readonly from: string
  readonly to: string
  readonly payload: number
  readonly atUs: number
}

function network(profile: NetworkProfile, seed = 1): { s: Scheduler; net: SimNetwork<number>; got: Delivered[]; lost: Array<[number, LossReason]> } {
  const s = new Scheduler()
  const got: Delivered[] = []
  const lost: Array<[number, LossReason]> = []
  const net = new SimNetwork<number>(s, createRng(seed), {
    deliver: (from, to, payload) => got.push({ from, to, payload, atUs: s.nowUs }),
    lost: (_from, _to, payload, reason) => lost.push([payload, reason]),
    duplicated: () => undefined,
  })
  net.profile = profile
  return { s, net, got, lost }
}

describe('network', () => {
  it('delivers within the latency bounds', () => {
    const { s, net, got } = network({ ...LAN_PROFILE, tailChance: 0 })
    for (let i = 0; i < 100; i++) net.send('a', 'b', i)
    s.runUntil(Infinity)
    expect(got).toHaveLength(100)
    for (const d of got) expect(d.atUs >= LAN_PROFILE.latencyMinUs && d.atUs <= LAN_PROFILE.latencyMaxUs).toBe(true)
    // Independent latencies reorder.
    expect(got.map((d) => d.payload)).not.toEqual([...Array(100).keys()])
  })

  it('drops, duplicates and replays at their rates', () => {
    const { s, net, got, lost } = network({ ...LAN_PROFILE, dropChance: 0.3, duplicateChance: 0.2, replayChance: 0.1, replayMinUs: 1_000_000, replayMaxUs: 2_000_000 })
    for (let i = 0; i < 2000; i++) net.send('a', 'b', i)
    s.runUntil(Infinity)
    expect(lost.length / 2000).toBeGreaterThan(0.25)
    expect(lost.length / 2000).toBeLessThan(0.35)
    expect(net.stats.duplicated).toBeGreaterThan(0)
    expect(got.filter((d) => d.atUs >= 1_000_000).length).toBe(net.stats.replayed)
    expect(got.length).toBe(2000 - lost.length + net.stats.duplicated + net.stats.replayed)
  })

  it('partitions cut both ways; one-way cuts one way; in-flight messages die when their link is cut', () => {
    const { s, net, got, lost } = network({ ...LAN_PROFILE, tailChance: 0 })
    net.partition([['a'], ['b', 'c']], ['a', 'b', 'c'])
    net.send('a', 'b', 1)
    net.send('b', 'a', 2)
    net.send('b', 'c', 3)
    net.heal()
    net.cut('a', 'b')
    net.send('a', 'b', 4)
    net.send('b', 'a', 5)
    net.heal()
    net.send('c', 'a', 6)
    net.cut('c', 'a')
    s.runUntil(Infinity)
    expect(got.map((d) => d.payload).sort()).toEqual([3, 5])
    expect(lost).toEqual(expect.arrayContaining([[1, 'cut'], [2, 'cut'], [4, 'cut'], [6, 'cut']]))
  })

  it('a bridge node reaches both sides that cannot reach each other', () => {
    const { s, net, got } = network({ ...LAN_PROFILE, tailChance: 0 })
    net.cutBetween(['a'], ['c'])
    net.send('a', 'b', 1)
    net.send('c', 'b', 2)
    net.send('a', 'c', 3)
    s.runUntil(Infinity)
    expect(got.map((d) => d.payload).sort()).toEqual([1, 2])
  })

  it('a slow link has its own latency', () => {
    const { s, net, got } = network({ ...LAN_PROFILE, tailChance: 0 })
    net.setLinkProfile('a', 'b', { ...LAN_PROFILE, latencyMinUs: 500_000, latencyMaxUs: 600_000, tailChance: 0 })
    net.send('a', 'b', 1)
    net.send('b', 'a', 2)
    s.runUntil(Infinity)
    expect(got.find((d) => d.payload === 1)?.atUs).toBeGreaterThanOrEqual(500_000)
    expect(got.find((d) => d.payload === 2)?.atUs).toBeLessThan(10_000)
  })
})

describe("disk (the real log's contract)", () => {
  const hs = (term: number, commit: number): HardState => ({ term, vote: 'n1', commit })

  it('a founding disk holds the bootstrap snapshot and hard state, durably', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array([1]))
    disk.crash(createRng(1), SSD_PROFILE)
    const st = disk.recover()
    expect(st.snapshot().metadata.index).toBe(1)
    expect(st.initialState()).toEqual({ hardState: bootstrapHardState(), confState: CONF })
  })

  it('a synced write survives a crash; the read view changes only when the fsync completes', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.write({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2)], snapshot: undefined }, true)
    expect(disk.writing).toBe(true)
    expect(disk.storage.lastIndex()).toBe(1)
    disk.sync()
    expect(disk.storage.lastIndex()).toBe(3)
    disk.crash(scripted([0.99, 0.99]), SSD_PROFILE)
    const st = disk.recover()
    expect(st.lastIndex()).toBe(3)
    expect(st.initialState().hardState).toEqual(hs(2, 1))
  })

  it('a crash before the fsync loses the write (no unsynced record reached the disk)', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.write({ hardState: hs(2, 1), entries: [entry(2, 2)], snapshot: undefined }, true)
    const report = disk.crash(scripted([0]), SSD_PROFILE)
    expect(report).toEqual({ lost: 2, survived: 0, torn: false })
    const st = disk.recover()
    expect(st.lastIndex()).toBe(1)
    expect(st.initialState().hardState).toEqual(bootstrapHardState())
  })

  it('a prefix of unsynced records may survive, and the last of it may be torn (cut on recovery)', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.write({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2), entry(4, 2)], snapshot: undefined }, true)
    // Four unsynced records; the draws keep three of them and tear the third.
    const report = disk.crash(scripted([0.7, 0.1]), SSD_PROFILE)
    expect(report).toEqual({ lost: 2, survived: 2, torn: true })
    expect(disk.recover().lastIndex()).toBe(3)
  })

  it('a commit-only hard state is written unsynced and made durable by the next fsync', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.write({ hardState: hs(2, 1), entries: [entry(2, 2)], snapshot: undefined }, true)
    disk.sync()
    disk.write({ hardState: hs(2, 2), entries: [], snapshot: undefined }, false)
    expect(disk.unsyncedCount).toBe(1)
    disk.write({ hardState: undefined, entries: [entry(3, 2)], snapshot: undefined }, true)
    disk.sync()
    disk.crash(scripted([0]), SSD_PROFILE)
    expect(disk.recover().initialState().hardState.commit).toBe(2)
  })

  it('the durable last index counts synced records only (what a power loss would leave)', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    expect(disk.durableLastIndex()).toBe(1)
    disk.write({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2)], snapshot: undefined }, true)
    expect(disk.durableLastIndex()).toBe(1)
    disk.sync()
    expect(disk.durableLastIndex()).toBe(3)
    // Written without a sync (as the ack-before-fsync variant does): not durable yet.
    disk.write({ hardState: undefined, entries: [entry(4, 2)], snapshot: undefined }, false)
    expect(disk.storage.lastIndex()).toBe(4)
    expect(disk.durableLastIndex()).toBe(3)
    const snap = { metadata: { index: 9, term: 3, confState: CONF }, data: new Uint8Array([9]) }
    disk.write({ hardState: { term: 3, vote: null, commit: 9 }, entries: [], snapshot: snap }, true)
    disk.sync()
    expect(disk.durableLastIndex()).toBe(9)
    // Reading it changes nothing: a crash and recovery still see the same disk.
    disk.crash(scripted([0]), SSD_PROFILE)
    expect(disk.recover().lastIndex()).toBe(9)
  })

  it("a leader's snapshot replaces the log, even when its marker record is lost", () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.write({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2)], snapshot: undefined }, true)
    disk.sync()
    const snap = { metadata: { index: 5, term: 3, confState: CONF }, data: new Uint8Array([9]) }
    disk.write({ hardState: { term: 3, vote: null, commit: 5 }, entries: [], snapshot: snap }, true)
    disk.sync()
    expect(disk.recover().snapshot().metadata.index).toBe(5)
    // Saved to the snapshot store before the log names it: a crash right after the save keeps it.
    const disk2 = SimDisk.founding(CONF, new Uint8Array())
    disk2.write({ hardState: undefined, entries: [], snapshot: snap }, true)
    disk2.crash(scripted([0]), SSD_PROFILE)
    const st = disk2.recover()
    expect(st.snapshot().metadata.index).toBe(5)
    expect(st.initialState().hardState.commit).toBe(5)
  })

  it('compaction drops the log prefix but keeps what recovery needs', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    const entries = Array.from({ length: 20 }, (_, i) => entry(i + 2, 2))
    disk.write({ hardState: hs(2, 21), entries, snapshot: undefined }, true)
    disk.sync()
    disk.createSnapshot(15, CONF, new Uint8Array([15]))
    const before = disk.recordCount
    disk.compact(12)
    expect(disk.recordCount).toBeLessThan(before)
    expect(disk.storage.firstIndex()).toBe(13)
    const st = disk.recover()
    expect(st.snapshot().metadata.index).toBe(15)
    expect(st.lastIndex()).toBe(21)
    expect(st.initialState().hardState).toEqual(hs(2, 21))
  })
})

describe('trace digest', () => {
  it('depends on every event, in order, and not on whether lines are kept', () => {
    const a = new Trace(false)
    const b = new Trace(true)
    for (const t of [a, b]) {
      t.note(10, 'fault', 'n1 crashes')
      t.mix(20, 1, 2, 3, 4)
    }
    expect(a.digest.hex()).toBe(b.digest.hex())
    expect(b.lines).toHaveLength(1)
    const c = new Trace(false)
    c.mix(20, 1, 2, 3, 4)
    c.note(10, 'fault', 'n1 crashes')
    expect(c.digest.hex()).not.toBe(a.digest.hex())
    expect(combineDigests(['a', 'b'])).not.toBe(combineDigests(['b', 'a']))
    const d = new Digest()
    d.number(2 ** 40 + 5)
    expect(d.hex()).toMatch(/^[0-9a-f]{16}$/)
  })

  /** An append carrying one entry whose payload is `data`. */
  const app = (data: number[]): Envelope => ({ kind: 'raft', message: { type: 'app', from: 'n1', to: 'n2', term: 3, prevIndex: 4, prevTerm: 3, commit: 4, entries: [{ index: 5, term: 3, type: 'normal', data: new Uint8Array(data) }] } })
  const digestOf = (fn: (t: Trace) => void): string => {
    const t = new Trace(false)
    fn(t)
    return t.digest.hex()
  }

  it("covers every message's payload, not only its headers", () => {
    const a = digestOf((t) => t.message(20, 1, 2, 1, 0, app([1, 2, 3, 4, 5])))
    expect(digestOf((t) => t.message(20, 1, 2, 1, 0, app([1, 2, 3, 4, 5])))).toBe(a)
    // One byte of one entry differs: the headers the digest used to cover (time, from, to, type, term) are equal.
    expect(digestOf((t) => t.mix(20, 1, 2, 1, 3))).toBe(digestOf((t) => t.mix(20, 1, 2, 1, 3)))
    expect(digestOf((t) => t.message(20, 1, 2, 1, 0, app([1, 2, 3, 4, 6])))).not.toBe(a)
    expect(digestOf((t) => t.message(20, 1, 2, 1, 0, app([1, 2, 3, 4])))).not.toBe(a)
    // Lost messages count, with why they were lost.
    expect(digestOf((t) => t.message(20, 1, 2, 1, 1, app([1])))).not.toBe(digestOf((t) => t.message(20, 1, 2, 1, 2, app([1]))))
    // Gossip too: a different update piggybacked.
    const swim = (state: 'alive' | 'dead'): Envelope => ({ kind: 'swim', message: { type: 'ack', seq: 9, updates: [{ peerId: 'n3', incarnation: 1, state, meta: '{}' }] } })
    expect(digestOf((t) => t.message(20, 1, 2, 35, 0, swim('alive')))).not.toBe(digestOf((t) => t.message(20, 1, 2, 35, 0, swim('dead'))))
  })

  it('tells values of different shapes apart', () => {
    const values: unknown[] = [undefined, null, true, false, 0, 1, -1, 0.5, Number.NaN, '', '1', [], [0], {}, { a: 0 }, { b: 0 }, new Uint8Array(), new Uint8Array([0]), 2n, new Map([[1, 2]])]
    const hexes = values.map((v) => {
      const d = new Digest()
      d.value(v)
      return d.hex()
    })
    expect(new Set(hexes).size).toBe(values.length)
  })

  it("mixes in where every node ended: replicas, disks, engines", () => {
    const node: NodeEndState = { id: 'n1', state: 'up', term: 4, commit: 90, applied: 90, store: 'abc', durableIndex: 90, engine: [] }
    const end = (nodes: NodeEndState[]): string => {
      const d = new Digest()
      mixEndState(d, nodes)
      return d.hex()
    }
    expect(end([node])).toBe(end([{ ...node }]))
    expect(end([{ ...node, applied: 89 }])).not.toBe(end([node]))
    expect(end([{ ...node, store: 'abd' }])).not.toBe(end([node]))
    expect(end([{ ...node, durableIndex: 91 }])).not.toBe(end([node]))
    expect(end([{ ...node, state: 'stopped', term: null, commit: null, applied: null, store: null }])).not.toBe(end([node]))
  })

  it('a seed replays to the same digest; another seed does not', () => {
    const a = runSeed({ scenario: 'leader-partition', nodes: 3, seed: 11 })
    expect(runSeed({ scenario: 'leader-partition', nodes: 3, seed: 11 }).digest).toBe(a.digest)
    expect(runSeed({ scenario: 'leader-partition', nodes: 3, seed: 12 }).digest).not.toBe(a.digest)
  })
})

describe('container sync (HostSync in the simulator)', () => {
  /** A driver whose writes apply to a real StateStore, or fail while `failing`. */
  function setup() {
    const store = new StateStore()
    const scheduler = new Scheduler()
    const runtime = new MemoryRuntime({ identity: { hostId: 'n1', hostName: 'n1' } })
    let index = 0
    const state = { failing: false, writes: 0, attemptsAtUs: [] as number[], nextIndex: () => ++index }
    const driver: ContainerSyncDriver = {
      selfId: 'n1',
      store: () => store,
      write: (request, onDone) => {
        state.attemptsAtUs.push(scheduler.nowUs)
        scheduler.after(1000, () => {
          if (state.failing) return onDone(false)
          state.writes++
          const r = store.apply(++index, { origin: 'n1', requestId: `w${index}`, request })
          onDone(r.ok)
          sync.storeChanged()
        })
      },
      after: (ms, fn) => scheduler.after(ms * 1000, fn),
    }
    const sync = new ContainerSync(driver, runtime)
    runtime.subscribe((change) => sync.onRuntime(change))
    return { store, scheduler, runtime, sync, state }
  }
  const stored = (store: StateStore) => store.range('containers/n1/').kvs.map((kv) => parseContainer(kv.value)).map((p) => (p.ok ? `${p.record.name}:${p.record.state}` : 'garbage'))

  it('writes nothing before the runtime listed its containers, then converges on every change', () => {
    const { store, scheduler, runtime, sync } = setup()
    runtime.run({ name: 'web', image: 'busybox:1' })
    scheduler.runUntil(1_000_000)
    expect(stored(store)).toEqual([])
    expect(sync.converged()).toBe(false)
    void runtime.start()
    const db = runtime.run({ name: 'db', image: 'busybox:1' })
    scheduler.runUntil(2_000_000)
    expect(stored(store).sort()).toEqual(['db:running', 'web:running'])
    runtime.stopContainer(db.id, 3)
    scheduler.runUntil(3_000_000)
    expect(stored(store).sort()).toEqual(['db:exited', 'web:running'])
    expect(sync.converged()).toBe(true)
  })

  it('retries a failed write with back-off (250 ms, doubling) and converges once writes succeed', () => {
    const { store, scheduler, runtime, state } = setup()
    void runtime.start()
    state.failing = true
    runtime.run({ name: 'web', image: 'busybox:1' })
    scheduler.runUntil(2_000_000)
    const gaps = state.attemptsAtUs.slice(1).map((t, i) => t - (state.attemptsAtUs[i] ?? 0))
    expect(gaps.slice(0, 3)).toEqual([251_000, 501_000, 1_001_000])
    state.failing = false
    scheduler.runUntil(10_000_000)
    expect(stored(store)).toEqual(['web:running'])
  })

  it('repairs records someone else changed, and what changed while the engine was down', () => {
    const { store, scheduler, runtime, sync, state } = setup()
    void runtime.start()
    const web = runtime.run({ name: 'web', image: 'busybox:1' })
    scheduler.runUntil(1_000_000)
    // The leader marks them lost (it took this host for dead).
    store.apply(state.nextIndex(), { origin: 'n2', requestId: 'lost', asLeader: true, request: { type: 'put', key: containerKey('n1', web.id), value: encodeRecord({ ...web, state: 'lost' }) } })
    sync.storeChanged()
    scheduler.runUntil(2_000_000)
    expect(stored(store)).toEqual(['web:running'])
    runtime.engineDown()
    runtime.remove(web.id)
    runtime.run({ name: 'api', image: 'busybox:1' })
    scheduler.runUntil(3_000_000)
    expect(stored(store)).toEqual(['web:running'])
    runtime.engineUp()
    scheduler.runUntil(4_000_000)
    expect(stored(store)).toEqual(['api:running'])
  })

  it('a graceful leave removes every record of the host', () => {
    const { store, scheduler, runtime, sync } = setup()
    void runtime.start()
    runtime.run({ name: 'web', image: 'busybox:1' })
    scheduler.runUntil(1_000_000)
    let removed: boolean | null = null
    sync.removeAll((ok) => (removed = ok))
    runtime.run({ name: 'late', image: 'busybox:1' })
    scheduler.runUntil(2_000_000)
    expect(removed).toBe(true)
    expect(stored(store)).toEqual([])
  })
})
