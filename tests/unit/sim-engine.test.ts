// The simulator's edges: the event queue, seeded streams, the network's faults
// and the disk's crash contract (the same as storage/raft-log's).

import { describe, expect, it } from 'vitest'
import { bootstrapHardState, type Entry, type HardState } from '../../protocols/raft/index.ts'
import { NodeClock } from '../../simulations/clock.ts'
import { SimDisk, SSD_PROFILE, type DiskTiming } from '../../simulations/disk.ts'
import type { WalLog } from '../../storage/raft-log/wal-log.ts'
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

describe("disk (the daemon's own log over a file system that crashes)", () => {
  const hs = (term: number, commit: number): HardState => ({ term, vote: 'n1', commit })
  /** Timing whose fsyncs complete only when the test says so. */
  function manual(): DiskTiming & { complete(): void; completeOne(): void } {
    const queue: Array<() => void> = []
    return {
      after: (_us, fn) => void queue.push(fn),
      latencyUs: () => 1000,
      /** Every wait, including the ones the completed ones start. */
      complete() {
        while (queue.length > 0) (queue.shift() as () => void)()
      },
      /** The next wait only. */
      completeOne() {
        queue.shift()?.()
      },
    }
  }
  /** Persists a batch and waits for it, as the node's loop does. */
  function persist(disk: SimDisk, batch: Parameters<WalLog['persist']>[0]): void {
    const t = manual()
    disk.run(disk.log.persist(batch), t, () => undefined)
    t.complete()
  }
  /** A crash that keeps no pending write. */
  const keepNothing = (): Rng => scripted([])

  it('a founding disk holds the bootstrap snapshot and hard state, durably', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array([1]))
    disk.open()
    disk.crash(keepNothing(), SSD_PROFILE)
    const log = disk.open()
    expect(log.snapshot().metadata.index).toBe(1)
    expect(log.initialState()).toEqual({ hardState: bootstrapHardState(), confState: CONF })
  })

  it('a write survives a crash once complete; the read view changes only then', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    const t = manual()
    let done = false
    const r = disk.run(disk.log.persist({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2)] }), t, () => (done = true))
    expect(r.done).toBe(false)
    expect(disk.appendInFlight).toBe(true)
    expect(disk.log.lastIndex()).toBe(1)
    t.complete()
    expect(done).toBe(true)
    expect(disk.log.lastIndex()).toBe(3)
    disk.crash(keepNothing(), SSD_PROFILE)
    const log = disk.open()
    expect(log.lastIndex()).toBe(3)
    expect(log.initialState().hardState).toEqual(hs(2, 1))
  })

  it('a crash before the write completes loses it, and the job never finishes', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    const t = manual()
    let done = false
    disk.run(disk.log.persist({ hardState: hs(2, 1), entries: [entry(2, 2)] }), t, () => (done = true))
    const report = disk.crash(keepNothing(), SSD_PROFILE)
    expect(report.survived).toBe(0)
    t.complete()
    expect(done).toBe(false)
    const log = disk.open()
    expect(log.lastIndex()).toBe(1)
    expect(log.initialState().hardState).toEqual(bootstrapHardState())
  })

  it('a write torn by the crash is cut off by recovery, and appends go on after it', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    disk.run(disk.log.persist({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2), entry(4, 2)] }), manual(), () => undefined)
    // The segment keeps its one pending write, torn at 60% of its bytes; the mark keeps nothing.
    const report = disk.crash(scripted([0.99, 0.1, 0.6, 0]), SSD_PROFILE)
    expect(report.torn).toEqual(['wal-0000000001.log'])
    const log = disk.open()
    expect(log.recovery.tornTail).not.toBeNull()
    expect(log.recovery.lostTail).toBeNull()
    expect(log.lastIndex()).toBeLessThan(4)
    persist(disk, { hardState: hs(2, 1), entries: [entry(log.lastIndex() + 1, 2)] })
    disk.crash(keepNothing(), SSD_PROFILE)
    expect(disk.open().recovery.tornTail).toBeNull()
  })

  it('a commit-only hard state is not written by itself, but with the next batch or a clean stop', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    persist(disk, { hardState: hs(2, 1), entries: [entry(2, 2)] })
    expect(disk.run(disk.log.persist({ hardState: hs(2, 2), entries: [], sync: false }), manual(), () => undefined).done).toBe(true)
    disk.crash(keepNothing(), SSD_PROFILE)
    expect(disk.open().initialState().hardState.commit).toBe(1)
    disk.run(disk.log.persist({ hardState: hs(2, 2), entries: [], sync: false }), manual(), () => undefined)
    persist(disk, { entries: [entry(3, 2)] })
    disk.crash(keepNothing(), SSD_PROFILE)
    expect(disk.open().initialState().hardState.commit).toBe(2)
    disk.run(disk.log.persist({ hardState: hs(2, 3), entries: [], sync: false }), manual(), () => undefined)
    disk.stopCleanly()
    expect(disk.open().initialState().hardState.commit).toBe(3)
  })

  it('a disk that acknowledges before writing loses acknowledged entries, and the tail mark tells', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    disk.lying = true
    expect(disk.run(disk.log.persist({ hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2)] }), manual(), () => undefined).done).toBe(true)
    expect(disk.log.lastIndex()).toBe(3)
    expect(disk.durableLastIndex()).toBe(1)
    // The segment loses its write; the mark, written after it "completed", keeps both of its.
    disk.crash(scripted([0, 0.99, 0.99]), SSD_PROFILE)
    disk.lying = false
    const log = disk.open()
    expect(log.lastIndex()).toBe(1)
    expect(log.recovery.lostTail).toMatchObject({ expectedLastIndex: 3, lastIndex: 1 })
    expect(log.repairIndex).toBe(3)
    // Written back in time, nothing is lost.
    const disk2 = SimDisk.founding(CONF, new Uint8Array())
    disk2.open()
    disk2.lying = true
    disk2.run(disk2.log.persist({ hardState: hs(2, 1), entries: [entry(2, 2)] }), manual(), () => undefined)
    disk2.writeBack()
    expect(disk2.durableLastIndex()).toBe(2)
  })

  it("a leader's snapshot replaces the log; saved before the log names it, it outlives a crash in between", () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    persist(disk, { hardState: hs(2, 1), entries: [entry(2, 2), entry(3, 2)] })
    const snap = { metadata: { index: 5, term: 3, confState: CONF }, data: new Uint8Array([9]) }
    persist(disk, { hardState: { term: 3, vote: null, commit: 5 }, entries: [], snapshot: snap })
    expect(disk.durableLastIndex()).toBe(5)
    disk.crash(keepNothing(), SSD_PROFILE)
    expect(disk.open().snapshot().metadata.index).toBe(5)
    // The save completes, then the crash comes before the marker is written.
    const disk2 = SimDisk.founding(CONF, new Uint8Array())
    disk2.open()
    const t = manual()
    disk2.run(disk2.log.persist({ entries: [], snapshot: snap }), t, () => undefined)
    t.complete() // only the snapshot save: the marker's append was begun after it
    disk2.crash(keepNothing(), SSD_PROFILE)
    const log = disk2.open()
    expect(log.snapshot().metadata.index).toBe(5)
    expect(log.initialState().hardState.commit).toBe(5)
  })

  it("a crash in the middle of a snapshot save leaves the old log in charge, and the save's pieces are pruned later", () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    persist(disk, { hardState: hs(2, 3), entries: [entry(2, 2), entry(3, 2)] })
    const snap = { metadata: { index: 9, term: 3, confState: CONF }, data: new Uint8Array([9]) }
    const t = manual()
    disk.run(disk.log.persist({ hardState: { term: 3, vote: null, commit: 9 }, entries: [], snapshot: snap }), t, () => undefined)
    // Three batches make a save (unlist an older copy, the chunks, the meta last): crash before the meta lands.
    t.completeOne()
    t.completeOne()
    disk.crash(keepNothing(), SSD_PROFILE)
    const log = disk.open()
    expect(log.snapshot().metadata.index).toBe(1)
    expect(log.lastIndex()).toBe(3)
    expect(disk.snapshotKeys().some((k) => k.includes('00000000000000000009/chunk'))).toBe(true)
    // A prune leaves pieces above the newest snapshot alone (a save beside the loop may be writing them)...
    persist(disk, { hardState: hs(3, 3), entries: [] })
    const t2 = manual()
    disk.run(disk.log.createSnapshot(3, CONF, new Uint8Array([3])), t2, () => undefined)
    t2.complete()
    expect(disk.log.snapshot().metadata.index).toBe(3)
    expect(disk.snapshotKeys().some((k) => k.includes('00000000000000000009/chunk'))).toBe(true)
    // ...and the leader's snapshot, sent again, is saved whole over them.
    persist(disk, { hardState: { term: 3, vote: null, commit: 9 }, entries: [], snapshot: snap })
    disk.crash(keepNothing(), SSD_PROFILE)
    expect(disk.open().snapshot().metadata.index).toBe(9)
    expect(disk.snapshotKeys().filter((k) => k.includes('00000000000000000009/'))).toHaveLength(2)
  })

  it('segments roll, compaction deletes old ones, and recovery finds the rest either way', () => {
    const disk = SimDisk.founding(CONF, new Uint8Array())
    disk.open()
    const big = (index: number): Entry => ({ index, term: 2, type: 'normal', data: new Uint8Array(1000).fill(index & 0xff) })
    for (let i = 2; i <= 61; i++) persist(disk, { hardState: hs(2, i), entries: [big(i)] })
    expect(disk.log.stats.syncs).toBeGreaterThan(60)
    const t = manual()
    disk.run(disk.log.createSnapshot(50, CONF, new Uint8Array([50])), t, () => undefined)
    t.complete()
    t.complete()
    disk.run(disk.log.compact(45), t, () => undefined)
    t.complete()
    expect(disk.log.firstIndex()).toBe(46)
    for (const seed of [1, 2, 3, 4]) {
      disk.crash(createRng(seed), SSD_PROFILE)
      const log = disk.open()
      expect(log.snapshot().metadata.index).toBe(50)
      expect(log.lastIndex()).toBe(61)
      expect(log.initialState().hardState).toEqual(hs(2, 61))
    }
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
    const host = { peerId: 'n1', name: 'n1', addrs: [], version: 'sim', cpus: 0, memoryBytes: 0 }
    const driver: ContainerSyncDriver = {
      selfId: 'n1',
      host: () => host,
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
    // The host record converged with the containers (HostSync's one decision, nextHostSyncWrite).
    expect(store.get('hosts/n1')).not.toBeNull()
    expect(sync.converged()).toBe(true)
    let removed: boolean | null = null
    sync.removeAll((ok) => (removed = ok))
    runtime.run({ name: 'late', image: 'busybox:1' })
    scheduler.runUntil(2_000_000)
    expect(removed).toBe(true)
    expect(stored(store)).toEqual([])
    expect(store.get('hosts/n1')).toBeNull()
  })
})
