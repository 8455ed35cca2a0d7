// The simulated network between nodes. Every message draws its fate from the
// network stream: lost, duplicated, or delivered after a latency drawn from its
// link's distribution. Independent latencies reorder messages (a long-tail draw
// lets a stale message arrive after newer ones), and a replayed message comes
// back once more seconds later, as VOPR's network replays packets. Partitions cut directed
// links: symmetric and one-way cuts, isolation, and a "bridge" node that sees
// both sides. A message is dropped if its link is cut when it is sent or when
// it would arrive.

import type { Rng } from './random.ts'
import type { Scheduler } from './scheduler.ts'

/** Latency and fault rates of a link. */
export interface NetworkProfile {
  /** Uniform base latency, lower bound (µs). */
  readonly latencyMinUs: number
  /** Uniform base latency, upper bound (µs). */
  readonly latencyMaxUs: number
  /** Chance a message is held back by a long delay (a retransmit, a stalled queue). */
  readonly tailChance: number
  /** Upper bound of that extra delay (µs). */
  readonly tailMaxUs: number
  /** Chance a message is lost. */
  readonly dropChance: number
  /** Chance a message is delivered twice. */
  readonly duplicateChance: number
  /** Chance a message is delivered once more, much later (a replay). */
  readonly replayChance: number
  /** How much later a replay arrives, lower bound (µs). */
  readonly replayMinUs: number
  /** How much later a replay arrives, upper bound (µs). */
  readonly replayMaxUs: number
}

/** A healthy LAN: sub-millisecond to 2 ms, rare small delays, nothing lost. */
export const LAN_PROFILE: NetworkProfile = {
  latencyMinUs: 200,
  latencyMaxUs: 2_000,
  tailChance: 0.002,
  tailMaxUs: 10_000,
  dropChance: 0,
  duplicateChance: 0,
  replayChance: 0,
  replayMinUs: 0,
  replayMaxUs: 0,
}

/** Why a message did not arrive. */
export type LossReason = 'drop' | 'cut' | 'down'

/** Callbacks of the network into the simulated cluster. */
export interface NetworkHandlers<P> {
  /** A message arrives at `to`. */
  deliver(from: string, to: string, payload: P): void
  /** A message was lost; `reason` says whether the sender's transport could notice ('cut', 'down'). */
  lost(from: string, to: string, payload: P, reason: LossReason): void
  /** A message was duplicated (`replay`: it comes back much later) by the network, for the trace. */
  duplicated(from: string, to: string, payload: P, replay: boolean): void
}

/** Counters for the run summary. */
export interface NetworkStats {
  sent: number
  delivered: number
  dropped: number
  duplicated: number
  replayed: number
  cut: number
}

/** Directed links between named nodes, with faults. */
export class SimNetwork<P> {
  /** Default profile of every link without its own. */
  profile: NetworkProfile = LAN_PROFILE
  /** Counters. */
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, replayed: 0, cut: 0 }
  private readonly scheduler: Scheduler
  private readonly rng: Rng
  private readonly handlers: NetworkHandlers<P>
  private readonly blocked = new Map<string, Set<string>>()
  private readonly links = new Map<string, Map<string, NetworkProfile>>()
  /** The arrival of one message; bound once, so a send allocates no closure. */
  private readonly arrive = (from: string, to: string, payload: P): void => {
    if (this.isCut(from, to)) {
      this.stats.cut++
      this.handlers.lost(from, to, payload, 'cut')
      return
    }
    this.stats.delivered++
    this.handlers.deliver(from, to, payload)
  }

  constructor(scheduler: Scheduler, rng: Rng, handlers: NetworkHandlers<P>) {
    this.scheduler = scheduler
    this.rng = rng
    this.handlers = handlers
  }

  /** Sends `payload` from `from` to `to`; its fate is drawn now. */
  send(from: string, to: string, payload: P): void {
    this.stats.sent++
    if (this.isCut(from, to)) {
      this.stats.cut++
      this.handlers.lost(from, to, payload, 'cut')
      return
    }
    const profile = this.links.get(from)?.get(to) ?? this.profile
    if (this.rng.chance(profile.dropChance)) {
      this.stats.dropped++
      this.handlers.lost(from, to, payload, 'drop')
      return
    }
    this.schedule(from, to, payload, profile, 0)
    if (this.rng.chance(profile.duplicateChance)) {
      this.stats.duplicated++
      this.handlers.duplicated(from, to, payload, false)
      this.schedule(from, to, payload, profile, 0)
    }
    if (this.rng.chance(profile.replayChance)) {
      this.stats.replayed++
      this.handlers.duplicated(from, to, payload, true)
      this.schedule(from, to, payload, profile, this.rng.between(profile.replayMinUs, profile.replayMaxUs))
    }
  }

  /** Whether the link from `from` to `to` is cut. */
  isCut(from: string, to: string): boolean {
    return this.blocked.get(from)?.has(to) === true
  }

  /** Cuts the link from `from` to `to` (one way). */
  cut(from: string, to: string): void {
    let set = this.blocked.get(from)
    if (set === undefined) {
      set = new Set()
      this.blocked.set(from, set)
    }
    set.add(to)
  }

  /** Cuts both directions between every member of `a` and every member of `b`. */
  cutBetween(a: readonly string[], b: readonly string[]): void {
    for (const x of a) {
      for (const y of b) {
        if (x === y) continue
        this.cut(x, y)
        this.cut(y, x)
      }
    }
  }

  /**
   * Splits `all` into `groups` that cannot talk to each other; a node in no
   * group is isolated. Replaces any earlier cut.
   */
  partition(groups: readonly (readonly string[])[], all: readonly string[]): void {
    this.heal()
    const groupOf = new Map<string, number>()
    groups.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i)
    })
    for (const a of all) {
      for (const b of all) {
        if (a === b) continue
        const ga = groupOf.get(a)
        if (ga === undefined || ga !== groupOf.get(b)) this.cut(a, b)
      }
    }
  }

  /** Restores every link (profiles stay). */
  heal(): void {
    this.blocked.clear()
  }

  /** Whether any link is cut. */
  get partitioned(): boolean {
    for (const set of this.blocked.values()) if (set.size > 0) return true
    return false
  }

  /** Gives the link from `from` to `to` its own profile (undefined: back to the default). */
  setLinkProfile(from: string, to: string, profile: NetworkProfile | undefined): void {
    if (profile === undefined) {
      this.links.get(from)?.delete(to)
      return
    }
    let map = this.links.get(from)
    if (map === undefined) {
      map = new Map()
      this.links.set(from, map)
    }
    map.set(to, profile)
  }

  /** Drops every per-link profile. */
  resetLinkProfiles(): void {
    this.links.clear()
  }

  private schedule(from: string, to: string, payload: P, profile: NetworkProfile, extraUs: number): void {
    let latencyUs = extraUs + this.rng.between(profile.latencyMinUs, profile.latencyMaxUs)
    if (this.rng.chance(profile.tailChance)) latencyUs += this.rng.int(profile.tailMaxUs + 1)
    this.scheduler.call(this.scheduler.nowUs + latencyUs, this.arrive, from, to, payload)
  }
}
