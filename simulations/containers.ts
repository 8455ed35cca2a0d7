// A host's containers in the simulator. The host's engine is the real
// MemoryRuntime (runtime/memory-runtime.ts): it belongs to the host, not to the
// peer, so its containers live on across the peer's crashes, as Docker's do.
// The peer's side is node/host-sync.ts's: the same ConvergeLoop
// (runtime/converge-loop.ts) over the same decisions (runtime/container-reconcile.ts)
// converges containers/<self>/ on the runtime's truth, one txn at a time, after
// every runtime change and every write to its own records, retrying with
// back-off while writes fail; the host record (hosts/<self>) converges with
// them, through the same decision (nextHostSyncWrite).
//
// The workload plays Docker users and failures on every host: run, stop,
// kill, start again, remove, and engines that go down and come back
// (dockerd restarts), with or without the peer running.

import { nextHostSyncWrite, removeHostRecords } from '../runtime/container-reconcile.ts'
import { ConvergeLoop } from '../runtime/converge-loop.ts'
import { MemoryRuntime, MemoryRuntimeError } from '../runtime/memory-runtime.ts'
import type { RuntimeChange } from '../runtime/runtime.ts'
import { TASK_LABEL } from '../storage/statestore/container-labels.ts'
import { CONTAINERS_PREFIX, containerKey, encodeRecord, type Host, type Request, type StateStore } from '../storage/statestore/index.ts'
import type { Rng } from './random.ts'
import type { Scheduler } from './scheduler.ts'

/** What a ContainerSync needs from its node (one life of it). */
export interface ContainerSyncDriver {
  readonly selfId: string
  /** This host's record as it should be stored (HostSyncInit.host). */
  host(): Host
  /** The node's replica, now. */
  store(): StateStore
  /** Proposes `request` as the node's own command; `onDone(true)` once applied here and accepted. */
  write(request: Request, onDone: (ok: boolean) => void): void
  /** Runs `fn` after `ms` of simulated time, unless the node's life ended meanwhile. */
  after(ms: number, fn: () => void): void
}

/** The peer's side of its host's containers (HostSync over the daemon's ConvergeLoop), for one life of the node. */
export class ContainerSync {
  private readonly driver: ContainerSyncDriver
  private readonly runtime: MemoryRuntime
  private readonly prefix: string
  private readonly loop: ConvergeLoop
  /** Set once the runtime listed its containers: before that, converging would delete every record. */
  private containersKnown = false
  private stopped = false
  /** Broken variant (test-only): write each event as it comes, never diff against the truth. */
  private readonly eventsOnly: boolean
  private eventWrites = 0
  private memo: { store: StateStore; revision: number; truth: readonly unknown[]; converged: boolean } | null = null

  constructor(driver: ContainerSyncDriver, runtime: MemoryRuntime, eventsOnly = false) {
    this.driver = driver
    this.runtime = runtime
    this.prefix = `${CONTAINERS_PREFIX}${driver.selfId}/`
    this.eventsOnly = eventsOnly
    this.loop = new ConvergeLoop({
      next: () => this.nextWrite(),
      write: (txn, done) => driver.write(txn, (ok) => done(ok ? null : 'write not applied')),
      after: (ms, fn) => driver.after(ms, fn),
    })
  }

  /** This host's own records' prefix. */
  get ownPrefix(): string {
    return this.prefix
  }

  /** A change reported by the runtime (HostSync.onRuntime). */
  onRuntime(change: RuntimeChange): void {
    if (this.eventsOnly) return this.writeEvent(change)
    if (change.type === 'reconciled') this.containersKnown = true
    if (change.type !== 'status') this.loop.schedule()
  }

  /** A write to this host's records (the leader marking them lost, say) was applied: they may be off the truth. */
  storeChanged(): void {
    if (this.eventsOnly || this.loop.busy || this.loop.waiting) return
    if (this.nextWrite() !== undefined) this.loop.schedule()
  }

  /** Whether the stored records equal the runtime's truth and nothing is in flight. */
  converged(): boolean {
    if (this.eventsOnly) return this.eventWrites === 0
    if (!this.containersKnown || this.loop.busy) return false
    // Asked after every event while a run settles: recomputed only when the store or the runtime moved.
    const store = this.driver.store()
    const truth = this.runtime.containers()
    if (this.memo === null || this.memo.store !== store || this.memo.revision !== store.revision || this.memo.truth !== truth) {
      this.memo = { store, revision: store.revision, truth, converged: this.nextWrite() === undefined }
    }
    return this.memo.converged
  }

  /** Graceful leave (HostSync.removeAll): this host's records go; `onDone` hears whether they did. */
  removeAll(onDone: (ok: boolean) => void): void {
    this.stop()
    const request = removeHostRecords(this.driver.selfId, this.driver.store())
    if (request === null) return onDone(true)
    this.driver.write(request, onDone)
  }

  /** Starts converging (HostSync.start): the host record at once, containers once the runtime listed them. */
  start(): void {
    if (!this.eventsOnly) this.loop.schedule()
  }

  /** The life ended: nothing more is written. */
  stop(): void {
    this.stopped = true
    this.loop.stop()
  }

  /** The broken variant: an event becomes a write of that one record; a full list (reconciled) is ignored. */
  private writeEvent(change: RuntimeChange): void {
    const request: Request | null =
      change.type === 'upsert' ? { type: 'put', key: containerKey(this.driver.selfId, change.container.id), value: encodeRecord(change.container) }
      : change.type === 'remove' ? { type: 'delete', key: containerKey(this.driver.selfId, change.id) }
      : null
    if (request === null || this.stopped) return
    this.eventWrites++
    this.driver.write(request, () => {
      this.eventWrites--
    })
  }

  /** HostSync.nextWrite. */
  private nextWrite(): Request | undefined {
    return nextHostSyncWrite(this.driver.selfId, this.driver.host(), this.containersKnown ? this.runtime.containers() : null, this.driver.store())
  }
}

/** The container workload's knobs. */
export interface ContainerWorkloadConfig {
  /** Gap between two engine operations, anywhere in the cluster (ms). */
  readonly gapMs: readonly [number, number]
  /** Most containers one host keeps (running or not). */
  readonly maxPerHost: number
  /** Chance an operation is a dockerd restart instead (engine down for `engineDownMs`). */
  readonly engineRestartRate: number
  readonly engineDownMs: readonly [number, number]
}

/** A few container changes a second across the cluster, and the odd dockerd restart. */
export const DEFAULT_CONTAINER_WORKLOAD: ContainerWorkloadConfig = { gapMs: [100, 600], maxPerHost: 6, engineRestartRate: 0.03, engineDownMs: [300, 3000] }

/** The engine of one host, as the workload sees it. */
export interface EngineHost {
  readonly id: string
  readonly runtime: MemoryRuntime
}

/** Docker users and failures on every host's engine. */
export class ContainerWorkload {
  /** Operations done, by kind, for the run's counts. */
  readonly counts: Record<string, number> = {}
  private readonly scheduler: Scheduler
  private readonly rng: Rng
  private readonly config: ContainerWorkloadConfig
  private readonly hosts: () => readonly EngineHost[]
  /** Notes a line of the timeline (engine restarts). */
  private readonly note: (text: string) => void
  private readonly down = new Set<string>()
  private serial = 0
  private stopAtUs = 0

  /** Notes a line of the timeline (every engine operation). */
  private readonly log: (text: string) => void

  constructor(init: { scheduler: Scheduler; rng: Rng; config: ContainerWorkloadConfig; hosts: () => readonly EngineHost[]; note: (text: string) => void; log: (text: string) => void }) {
    this.scheduler = init.scheduler
    this.rng = init.rng
    this.config = init.config
    this.hosts = init.hosts
    this.note = init.note
    this.log = init.log
  }

  /** Operates until `stopAtUs`. */
  start(stopAtUs: number): void {
    this.stopAtUs = stopAtUs
    this.next()
  }

  /** No more operations; every engine that is down comes back (healing). */
  stop(): void {
    this.stopAtUs = 0
    for (const host of this.hosts()) if (this.down.has(host.id)) this.engineUp(host)
  }

  private next(): void {
    const [lo, hi] = this.config.gapMs
    this.scheduler.after(Math.round(this.rng.between(lo, hi) * 1000), () => {
      if (this.scheduler.nowUs >= this.stopAtUs) return
      const hosts = this.hosts()
      if (hosts.length > 0) this.operate(this.rng.pick(hosts))
      this.next()
    })
  }

  private operate(host: EngineHost): void {
    const rt = host.runtime
    // Task containers are the host agent's: the users here play with their own containers only.
    const all = rt.engineContainers().filter((c) => c.labels[TASK_LABEL] === undefined)
    const running = all.filter((c) => c.state === 'running')
    const idle = all.filter((c) => c.state !== 'running')
    if (this.down.has(host.id)) {
      // The engine is down: nothing new starts, but containers may still die.
      if (running.length > 0 && this.rng.chance(0.3)) {
        const c = this.rng.pick(running)
        this.act(host, 'die', c.name, () => rt.kill(c.id))
      }
      return
    }
    if (this.rng.chance(this.config.engineRestartRate)) {
      this.down.add(host.id)
      this.count('engine-down')
      rt.engineDown('dockerd restarting')
      this.note(`${host.id} container engine goes down`)
      const [lo, hi] = this.config.engineDownMs
      this.scheduler.after(Math.round(this.rng.between(lo, hi) * 1000), () => {
        if (this.down.has(host.id)) this.engineUp(host)
      })
      return
    }
    const r = this.rng.next()
    if (r < 0.4 && all.length < this.config.maxPerHost) {
      const name = `${host.id}-c${++this.serial}`
      this.act(host, 'run', name, () => rt.run({ name, image: 'busybox:1', ips: [`10.0.${Number(host.id.slice(1)) % 256}.${(this.serial % 250) + 2}`], labels: { 'shoal.service': `svc${this.serial % 3}` } }))
    } else if (r < 0.6 && running.length > 0) {
      const c = this.rng.pick(running)
      this.act(host, 'stop', c.name, () => rt.stopContainer(c.id, this.rng.pick([0, 1, 137])))
    } else if (r < 0.75 && idle.length > 0) {
      const c = this.rng.pick(idle)
      this.act(host, 'start', c.name, () => rt.startContainer(c.id))
    } else if (all.length > 0) {
      const c = this.rng.pick(all)
      this.act(host, 'remove', c.name, () => rt.remove(c.id))
    }
  }

  private engineUp(host: EngineHost): void {
    this.down.delete(host.id)
    host.runtime.engineUp()
    this.note(`${host.id} container engine is back`)
  }

  private act(host: EngineHost, kind: string, name: string, fn: () => unknown): void {
    try {
      fn()
      this.count(`container-${kind}`)
      this.log(`${host.id}: docker ${kind} ${name}`)
    } catch (err) {
      // The workload only asks what an engine accepts; a refusal is a bug in it.
      if (err instanceof MemoryRuntimeError) throw new Error(`container workload on ${host.id}: ${err.message}`)
      throw err
    }
  }

  private count(what: string): void {
    this.counts[what] = (this.counts[what] ?? 0) + 1
  }
}
