// The simulated world: nodes, their clocks and disks, the network between
// them, the scheduler that orders everything, and the online safety checker
// watching every node. Faults are methods here; scenarios decide when to call
// them.

import { StateStore } from '../storage/statestore/index.ts'
import { NodeClock, type ClockProfile } from './clock.ts'
import { SimDisk } from './disk.ts'
import { envelopeCode, envelopeName, type Envelope } from './envelope.ts'
import { SimNetwork, type LossReason, type NetworkProfile } from './network.ts'
import { SimNode, type NodeHost, type NodeSettings } from './node.ts'
import { stream, type Rng } from './random.ts'
import { RaftSafetyChecker } from './checkers/raft-safety.ts'
import { Scheduler } from './scheduler.ts'
import { Trace } from './trace.ts'
import type { ServiceObserver } from './services.ts'

/** How a cluster is built. */
export interface ClusterConfig {
  /** The run seed; every random stream derives from it. */
  readonly seed: number
  /** Founding voters. */
  readonly voters: number
  readonly settings: NodeSettings
  readonly network: NetworkProfile
  /** The clock each node gets (by id and its random stream). */
  readonly clock: (id: string, rng: Rng) => ClockProfile
  /** Check every StateStore's invariants after every applied batch (costly, thorough). */
  readonly checkStore: boolean
  /** Keep readable trace lines. */
  readonly keepTrace: boolean
}

/** A message's fate as the digest records it: delivered, or lost and why. */
const FATE_DELIVERED = 0
const LOSS_FATES: Readonly<Record<LossReason, number>> = { drop: 1, cut: 2, down: 3 }

/** The transport notices a failed delivery this long after the send (a refused or timed-out dial). */
const UNREACHABLE_NOTICE_US = 1_000

/** The simulated cluster. */
export class SimCluster {
  /** Simulated time and the event queue. */
  readonly scheduler = new Scheduler()
  /** The run's trace and digest. */
  readonly trace: Trace
  /** The network between nodes. */
  readonly network: SimNetwork<Envelope>
  /** The online Raft safety checker. */
  readonly checker: RaftSafetyChecker
  /** Every node ever started, by id, in start order. */
  readonly nodes = new Map<string, SimNode>()
  /** What happened how often (faults, snapshot installs, membership changes), for the summary. */
  readonly counts: Record<string, number> = {}
  /** Who hears the scheduler's committed decisions (the services checkers), if anyone. */
  serviceObserver: ServiceObserver | null = null
  /** Called after every change the task agents' engines make (the rolling-update checker samples then). */
  onEngineChange: (() => void) | null = null
  private readonly config: ClusterConfig
  private readonly clockRng: Rng
  private readonly numbers = new Map<string, number>()
  private readonly host: NodeHost

  /** Builds the founding cluster; nothing runs until the scheduler does. */
  constructor(config: ClusterConfig) {
    this.config = config
    this.trace = new Trace(config.keepTrace)
    this.checker = new RaftSafetyChecker(this.scheduler, config.checkStore)
    this.clockRng = stream(config.seed, 'clock')
    this.network = new SimNetwork<Envelope>(this.scheduler, stream(config.seed, 'network'), {
      deliver: (from, to, payload) => this.deliver(from, to, payload),
      lost: (from, to, payload, reason) => this.lost(from, to, payload, reason),
      duplicated: (from, to, payload, replay) => {
        if (payload.kind === 'raft') this.trace.note(this.scheduler.nowUs, 'dup', `${from} -> ${to} ${envelopeName(payload)} ${replay ? 'will be replayed later' : 'duplicated'}`)
      },
    })
    this.network.profile = config.network
    const scheduler = this.scheduler
    const trace = this.trace
    const checker = this.checker
    this.host = {
      scheduler,
      trace,
      observer: checker,
      send: (from, to, envelope) => this.network.send(from, to, envelope),
      seeds: (self) => [...this.nodes.keys()].filter((id) => id !== self && this.nodes.get(id)?.state !== 'stopped'),
      count: (what) => this.count(what),
      serviceObserver: () => this.serviceObserver,
      engineChanged: () => this.onEngineChange?.(),
    }
    const ids = Array.from({ length: config.voters }, (_, i) => `n${i + 1}`)
    const founding = { voters: ids, learners: [] }
    // The founding state machine is the daemon's: an empty store's snapshot at the bootstrap index.
    const bootstrapData = new StateStore(config.settings.storeOptions).snapshot()
    for (const id of ids) this.start(id, SimDisk.founding(founding, bootstrapData))
  }

  /** Ids of every node ever started, in start order. */
  ids(): string[] {
    return [...this.nodes.keys()]
  }

  /** The node `id` (throws if unknown). */
  node(id: string): SimNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  /** Nodes that run (up or paused). */
  aliveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive)
  }

  /** The up node leading the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined
    let bestTerm = -1
    for (const n of this.nodes.values()) {
      if (n.state !== 'up' || n.soft.role !== 'leader') continue
      const term = n.core.status().term
      if (term > bestTerm) {
        best = n
        bestTerm = term
      }
    }
    return best
  }

  /** Highest term any running node is in. */
  maxTerm(): number {
    let max = 0
    for (const n of this.nodes.values()) if (n.alive) max = Math.max(max, n.core.status().term)
    return max
  }

  // ------------------------------------------------------------ faults

  /** Crashes `id` (power loss). */
  crash(id: string): void {
    if (this.node(id).alive) this.count('crash')
    this.node(id).crash()
  }

  /**
   * Crashes `id` while its log has an append in flight, if one starts within `withinMs`
   * (else at the end of it), so a crash tears a segment's last write often enough to test
   * recovery's cutting; `then` runs right after the crash.
   */
  crashDuringWrite(id: string, withinMs: number, then: () => void): void {
    const pollUs = 100
    const deadlineUs = this.scheduler.nowUs + withinMs * 1000
    const poll = (): void => {
      const n = this.node(id)
      if (!n.alive) return
      if (n.disk.appendInFlight || this.scheduler.nowUs >= deadlineUs) {
        this.crash(id)
        then()
        return
      }
      this.scheduler.after(pollUs, poll)
    }
    poll()
  }

  /** Restarts a crashed `id` from its disk. */
  restart(id: string): void {
    const n = this.node(id)
    if (n.state === 'crashed' || n.state === 'stopped') this.count('restart')
    n.restart()
  }

  /** Stalls `id` (GC pause) until resume(). */
  pause(id: string): void {
    const n = this.node(id)
    if (n.state !== 'up') return
    this.count('pause')
    this.trace.note(this.scheduler.nowUs, 'fault', `${id} pauses`)
    n.pause()
  }

  /** Ends the stall of `id`. */
  resume(id: string): void {
    const n = this.node(id)
    if (n.state !== 'paused') return
    this.trace.note(this.scheduler.nowUs, 'fault', `${id} resumes`)
    n.resume()
  }

  /** Graceful leave of `id`. */
  leave(id: string): void {
    const n = this.node(id)
    if (n.state !== 'up') return
    this.count('leave')
    this.trace.note(this.scheduler.nowUs, 'fault', `${id} leaves gracefully`)
    n.leave()
  }

  /** Starts a brand-new node with an empty disk; it joins through the failure detector and autopilot. */
  join(): string {
    const id = `n${this.nodes.size + 1}`
    this.count('join')
    this.trace.note(this.scheduler.nowUs, 'fault', `${id} starts empty and joins`)
    this.start(id, SimDisk.empty())
    return id
  }

  /** Replaces every cut with a partition into `groups` (nodes in no group are isolated). */
  partition(groups: readonly (readonly string[])[]): void {
    this.count('partition')
    this.trace.note(this.scheduler.nowUs, 'fault', `partition ${groups.map((g) => `[${g.join(' ')}]`).join(' | ')}`)
    this.network.partition(groups, this.ids())
  }

  /** Cuts one direction only. */
  cutOneWay(from: string, to: string): void {
    this.count('one-way-cut')
    this.trace.note(this.scheduler.nowUs, 'fault', `cut ${from} -> ${to} (one way)`)
    this.network.cut(from, to)
  }

  /** Heals every cut. */
  heal(): void {
    if (!this.network.partitioned) return
    this.trace.note(this.scheduler.nowUs, 'fault', 'network healed')
    this.network.heal()
  }

  /** Sets the network's default profile. */
  setNetwork(profile: NetworkProfile, label: string): void {
    this.count('network-change')
    this.trace.note(this.scheduler.nowUs, 'fault', `network: ${label}`)
    this.network.profile = profile
  }

  /** Gives `id` a new clock profile (drift, jitter). */
  setClock(id: string, profile: ClockProfile): void {
    this.count('clock-change')
    this.trace.note(this.scheduler.nowUs, 'fault', `${id} clock drift ${(profile.driftRatio * 100).toFixed(1)}%, timer jitter ${(profile.timerJitterUs / 1000).toFixed(1)} ms`)
    this.node(id).clock.setProfile(profile, this.scheduler.nowUs)
  }

  /** Steps `id`'s wall clock by `deltaMs` (NTP, an operator); its monotonic clock goes on. */
  stepWallClock(id: string, deltaMs: number): void {
    this.count('wall-clock-step')
    this.trace.note(this.scheduler.nowUs, 'fault', `${id} wall clock steps ${deltaMs >= 0 ? '+' : ''}${(deltaMs / 1000).toFixed(1)} s`)
    this.node(id).clock.stepWall(deltaMs)
  }

  /** Counts `what` once. */
  count(what: string): void {
    this.counts[what] = (this.counts[what] ?? 0) + 1
  }

  // ------------------------------------------------------------ wiring

  private start(id: string, disk: SimDisk): void {
    this.numbers.set(id, Number(id.slice(1)))
    const seed = this.config.seed
    const clock = new NodeClock(this.config.clock(id, this.clockRng))
    const node = new SimNode({
      id,
      clock,
      disk,
      host: this.host,
      settings: this.config.settings,
      rngs: { raft: stream(seed, `raft/${id}`), swim: stream(seed, `swim/${id}`), timer: stream(seed, `timer/${id}`), disk: stream(seed, `disk/${id}`), engine: stream(seed, `engine/${id}`) },
    })
    this.nodes.set(id, node)
  }

  private deliver(from: string, to: string, payload: Envelope): void {
    const target = this.nodes.get(to)
    this.trace.message(this.scheduler.nowUs, this.numbers.get(from) ?? 0, this.numbers.get(to) ?? 0, envelopeCode(payload), FATE_DELIVERED, payload)
    if (target === undefined || !target.alive) {
      this.lost(from, to, payload, 'down')
      return
    }
    target.receive(from, payload)
  }

  private lost(from: string, to: string, payload: Envelope, reason: LossReason): void {
    // Every loss is in the digest, with its reason and payload, even those the timeline leaves out.
    this.trace.message(this.scheduler.nowUs, this.numbers.get(from) ?? 0, this.numbers.get(to) ?? 0, envelopeCode(payload), LOSS_FATES[reason], payload)
    if (payload.kind === 'raft') {
      const type = payload.message.type
      const routine = type === 'heartbeat' || type === 'heartbeat-resp'
      if (reason === 'drop' || !routine) this.trace.note(this.scheduler.nowUs, 'lost', `${from} -> ${to} ${envelopeName(payload)} (${reason === 'drop' ? 'dropped' : reason === 'cut' ? 'link cut' : `${to} is down`})`)
    }
    // A lost message goes unnoticed; a refused or impossible connection is reported back (FramedChannel onUnreachable).
    if (reason === 'drop') return
    const sender = this.nodes.get(from)
    if (sender === undefined) return
    const gen = sender.generation
    this.scheduler.after(UNREACHABLE_NOTICE_US, () => {
      if (sender.generation === gen) sender.undeliverable(to, payload)
    })
  }
}
