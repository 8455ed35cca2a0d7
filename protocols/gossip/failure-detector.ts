// SWIM failure detector with the Lifeguard extensions, as a pure core.
//
// References, cited by section in the comments below:
//  - SWIM: Das, Gupta, Motivala, "SWIM: Scalable Weakly-consistent Infection-style
//    Process Group Membership Protocol", DSN 2002.
//  - Lifeguard: Dadgar, Phillips, Currey, "Lifeguard: Local Health Awareness for
//    More Accurate Failure Detection", 2018 (§IV: Local Health Aware Probe, Local
//    Health Aware Suspicion, Buddy System).
//  - hashicorp/memberlist (`state.go`, `suspicion.go`, `util.go`), whose behaviour
//    this follows where the papers leave a choice open.
//
// The core never reads a clock, never schedules a timer and never draws its own
// randomness (DESIGN.md, "The one rule that makes this testable"): time arrives
// as `nowMs`, randomness through the injected `random`, and every effect leaves
// through `ready()`.

import {
  applyAwarenessDelta,
  expectedConfirmations,
  retransmitLimit,
  scaleByAwareness,
  suspicionMaxTimeoutMs,
  suspicionMinTimeoutMs,
  suspicionTimeoutMs,
} from './suspicion.ts'
import {
  SWIM_ENVELOPE_RESERVE_BYTES,
  SWIM_MAX_FRAME_BYTES,
  SWIM_MAX_UPDATES,
  isValidIncarnation,
  isValidMeta,
  isValidPeerId,
  memberUpdateEncodedBytes,
  validateMemberUpdate,
} from './swim-codec.ts'

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'
export interface MemberUpdate { peerId: string; incarnation: number; state: MemberState; meta: string } // meta: opaque JSON host record, bounded size
export type SwimMessage =
  | { type: 'ping'; seq: number; target: string; updates: MemberUpdate[] }      // target = intended recipient id; a recipient that is not target drops it
  | { type: 'ping-req'; seq: number; target: string; updates: MemberUpdate[] }  // ask recipient to probe target for us
  | { type: 'ack'; seq: number; updates: MemberUpdate[] }
  | { type: 'nack'; seq: number; updates: MemberUpdate[] }                      // Lifeguard: intermediary could not reach target
  | { type: 'sync'; reply: boolean; members: MemberUpdate[] }                   // push-pull anti-entropy, full state
export interface Outbound { to: string; message: SwimMessage }
export interface MemberChange { peerId: string; previous: MemberState | null; state: MemberState; incarnation: number; meta: string; atMs: number }
export interface Member { peerId: string; incarnation: number; state: MemberState; meta: string; stateSinceMs: number }
export interface Ready { messages: Outbound[]; changes: MemberChange[] }
export interface FailureDetectorConfig {
  selfId: string; meta: string; nowMs: number; random: () => number
  incarnation?: number            // default 0
  probeIntervalMs?: number        // default 400
  probeTimeoutMs?: number         // default 200 (direct ping; indirect probes wait until the end of the period)
  indirectChecks?: number         // default 3
  suspicionMult?: number          // default 3
  suspicionMaxMult?: number       // default 6
  retransmitMult?: number         // default 4
  maxPiggyback?: number           // default 8 updates per message
  pushPullIntervalMs?: number     // default 30000
  deadRetentionMs?: number        // default 6 h: dead/left members stay listed that long, then are reaped
  maxMembers?: number             // default 4096
  awarenessMax?: number           // default 8 (Lifeguard local health multiplier)
  /**
   * How long an intermediary waits for the target's ack before it answers the
   * requester with a nack. Default 80% of probeTimeoutMs: the requester sends its
   * ping-req once probeTimeoutMs has passed and gives up at probeIntervalMs
   * (2 × probeTimeoutMs by default), so the nack must leave the intermediary
   * before that, or Lifeguard would count it as missing and blame our own health.
   */
  nackTimeoutMs?: number
  /**
   * While we know no live member but ourselves, the join sync is re-sent to the
   * seeds this often (default 2000). A join lost in transit, or a seed that was
   * down when we started, would otherwise leave us alone for good: a lone member
   * has nobody to probe or push-pull with.
   */
  joinRetryIntervalMs?: number
}

/** Most probes in flight at once: the regular round-robin probe plus out-of-turn probes from connection hints. */
export const MAX_OUTSTANDING_PROBES = 64
/** Most ping-reqs we serve as intermediary at once; more are dropped (the requester has other intermediaries). */
export const MAX_PENDING_RELAYS = 256
/** Most outbound messages buffered between two `ready()` calls; beyond it new ones are dropped, which SWIM tolerates as loss. */
export const MAX_PENDING_MESSAGES = 16_384
/** Most membership changes buffered between two `ready()` calls; beyond it the oldest are dropped (`members()` stays authoritative). */
export const MAX_PENDING_CHANGES = 65_536
/** Most seeds contacted by one `join`. */
export const MAX_JOIN_SEEDS = 64

const DEFAULTS = {
  probeIntervalMs: 300,
  probeTimeoutMs: 150,
  indirectChecks: 3,
  suspicionMult: 3,
  suspicionMaxMult: 6,
  retransmitMult: 4,
  maxPiggyback: 8,
  pushPullIntervalMs: 30_000,
  deadRetentionMs: 6 * 60 * 60 * 1000,
  maxMembers: 4096,
  awarenessMax: 8,
  joinRetryIntervalMs: 2000,
} as const
const NACK_TIMEOUT_FRACTION = 0.8
const UINT32_RANGE = 0x1_0000_0000

interface Settings {
  probeIntervalMs: number
  probeTimeoutMs: number
  nackTimeoutMs: number
  indirectChecks: number
  suspicionMult: number
  suspicionMaxMult: number
  retransmitMult: number
  maxPiggyback: number
  pushPullIntervalMs: number
  deadRetentionMs: number
  maxMembers: number
  awarenessMax: number
  joinRetryIntervalMs: number
}

/** A suspicion timer (memberlist `suspicion`), kept as data and checked on tick. */
interface Suspicion {
  incarnation: number
  startedAtMs: number
  /** k: confirmations that drive the timeout to its minimum, fixed when the suspicion starts. */
  expected: number
  minTimeoutMs: number
  maxTimeoutMs: number
  /** Who told us first; never counted as a confirmation (memberlist excludes `from`). null: learned via sync. */
  initiator: string | null
  /** Distinct other reporters, bounded by `expected`. */
  confirmers: Set<string>
  deadlineMs: number
}

interface Probe {
  seq: number
  target: string
  /** Incarnation when the probe began: a failed probe suspects exactly that life (memberlist copies the node state). */
  incarnation: number
  directDeadlineMs: number
  roundEndMs: number
  indirectSent: boolean
  /** The transport said the target is unreachable: no direct ack can still arrive. */
  directUnreachable: boolean
  intermediaries: string[]
  /** Intermediaries that may still answer (ack or nack). */
  awaiting: Set<string>
  nacks: Set<string>
}

interface Relay {
  requester: string
  requesterSeq: number
  target: string
  deadlineMs: number
}

interface BroadcastEntry {
  update: MemberUpdate
  transmits: number
  order: number
  /**
   * Peers known to hold this update: the one we learned it from, the subject of
   * an alive update, and those we sent it to. At most transmits + 2.
   */
  holders: Set<string>
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`FailureDetector: ${name} must be a positive number, got ${value}`)
  return value
}

function integerAtLeast(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`FailureDetector: ${name} must be an integer >= ${min}, got ${value}`)
  return value
}

function resolveSettings(config: FailureDetectorConfig): Settings {
  const probeIntervalMs = positive('probeIntervalMs', config.probeIntervalMs ?? DEFAULTS.probeIntervalMs)
  const probeTimeoutMs = positive('probeTimeoutMs', config.probeTimeoutMs ?? DEFAULTS.probeTimeoutMs)
  if (probeTimeoutMs >= probeIntervalMs) {
    // SWIM §3.1: the indirect probe needs the rest of the period; without it no ping-req is ever sent.
    throw new RangeError('FailureDetector: probeTimeoutMs must be smaller than probeIntervalMs')
  }
  const maxPiggyback = integerAtLeast('maxPiggyback', config.maxPiggyback ?? DEFAULTS.maxPiggyback, 0)
  if (maxPiggyback > SWIM_MAX_UPDATES) throw new RangeError(`FailureDetector: maxPiggyback must be <= ${SWIM_MAX_UPDATES}`)
  return {
    probeIntervalMs,
    probeTimeoutMs,
    nackTimeoutMs: positive('nackTimeoutMs', config.nackTimeoutMs ?? Math.max(1, Math.floor(probeTimeoutMs * NACK_TIMEOUT_FRACTION))),
    indirectChecks: integerAtLeast('indirectChecks', config.indirectChecks ?? DEFAULTS.indirectChecks, 0),
    suspicionMult: positive('suspicionMult', config.suspicionMult ?? DEFAULTS.suspicionMult),
    suspicionMaxMult: positive('suspicionMaxMult', config.suspicionMaxMult ?? DEFAULTS.suspicionMaxMult),
    retransmitMult: integerAtLeast('retransmitMult', config.retransmitMult ?? DEFAULTS.retransmitMult, 1),
    maxPiggyback,
    pushPullIntervalMs: positive('pushPullIntervalMs', config.pushPullIntervalMs ?? DEFAULTS.pushPullIntervalMs),
    deadRetentionMs: integerAtLeast('deadRetentionMs', config.deadRetentionMs ?? DEFAULTS.deadRetentionMs, 0),
    maxMembers: integerAtLeast('maxMembers', config.maxMembers ?? DEFAULTS.maxMembers, 1),
    awarenessMax: integerAtLeast('awarenessMax', config.awarenessMax ?? DEFAULTS.awarenessMax, 1),
    joinRetryIntervalMs: positive('joinRetryIntervalMs', config.joinRetryIntervalMs ?? DEFAULTS.joinRetryIntervalMs),
  }
}

function isLive(state: MemberState): boolean {
  return state === 'alive' || state === 'suspect'
}

function toUpdate(m: Member): MemberUpdate {
  return { peerId: m.peerId, incarnation: m.incarnation, state: m.state, meta: m.meta }
}

/**
 * SWIM + Lifeguard failure detector for one peer.
 *
 * Driving contract (the daemon and the simulator do the same): after every call
 * that takes `nowMs` — and after the constructor — call `ready()`, send every
 * `messages[i].message` to `messages[i].to` (best effort, any order; a send that
 * fails at once is reported back through `onUnreachable`), then apply `changes`
 * in order. There is nothing to persist: a restarted peer recovers its standing
 * by refuting (SWIM §4.2). Call `tick(nowMs)` often enough for the timeouts to be
 * honoured (every 10–50 ms, or at `nextDeadlineMs()`).
 *
 * Dissemination of suspicion (a deliberate choice, since `MemberUpdate` carries
 * no "from"): a suspect update is broadcast only by members whose own probe of
 * the suspect failed. Others apply it and run their own timer but do not relay
 * it, so the sender of every suspect update we receive is an independent
 * accuser and can be counted as a Lifeguard confirmation. Were relays counted,
 * one unhealthy member's accusation would be "confirmed" by gossip alone and hit
 * the minimum timeout before the suspect could refute. Alive, dead and left
 * updates are relayed as usual (SWIM §4.1). The suspect still hears of it
 * quickly: every ping to it and every ack to it carries the accusation first
 * (Lifeguard buddy system), and a stale accusation re-arms our refutation.
 */
export class FailureDetector {
  private readonly selfId: string
  private readonly settings: Settings
  private readonly random: () => number
  private incarnation: number
  private meta: string
  private left = false
  /** Lifeguard local health score, 0..awarenessMax-1; timeouts scale by score + 1. */
  private healthScore = 0
  private seq: number

  private readonly membersById = new Map<string, Member>()
  private liveMembers = 0
  private readonly suspicions = new Map<string, Suspicion>()
  /** One entry per member (a newer update replaces the older), so bounded by maxMembers. */
  private readonly broadcasts = new Map<string, BroadcastEntry>()
  private broadcastOrder = 0
  private readonly probes = new Map<number, Probe>()
  private readonly probeSeqByTarget = new Map<string, number>()
  private readonly relays = new Map<number, Relay>()
  /** SWIM §4.3 round-robin probe order, bounded by maxMembers. */
  private rotation: string[] = []
  private rotationIndex = 0

  private nextProbeAtMs: number
  private nextPushPullAtMs: number
  private nextReapAtMs = Number.POSITIVE_INFINITY
  /** Seeds of the last join, bounded by MAX_JOIN_SEEDS. */
  private joinSeeds: string[] = []
  private nextJoinRetryAtMs = Number.POSITIVE_INFINITY

  private pendingMessages: Outbound[] = []
  private pendingChanges: MemberChange[] = []

  constructor(config: FailureDetectorConfig) {
    if (!isValidPeerId(config.selfId)) throw new RangeError(`FailureDetector: invalid selfId ${JSON.stringify(config.selfId)}`)
    if (!isValidMeta(config.meta)) throw new RangeError('FailureDetector: meta is not a string or is too large')
    if (!Number.isFinite(config.nowMs)) throw new RangeError('FailureDetector: nowMs must be finite')
    if (typeof config.random !== 'function') throw new TypeError('FailureDetector: random must be a function')
    const incarnation = config.incarnation ?? 0
    if (!isValidIncarnation(incarnation)) throw new RangeError('FailureDetector: incarnation must be a non-negative safe integer')
    this.selfId = config.selfId
    this.settings = resolveSettings(config)
    this.random = config.random
    this.incarnation = incarnation
    this.meta = config.meta
    // A random first sequence number keeps a restarted peer from matching acks
    // that were addressed to its previous life.
    this.seq = this.randomIndex(UINT32_RANGE)
    this.nextProbeAtMs = config.nowMs + this.settings.probeIntervalMs
    // memberlist staggers the first push-pull so peers started together do not sync in lockstep.
    this.nextPushPullAtMs = config.nowMs + this.randomIndex(Math.max(1, Math.floor(this.settings.pushPullIntervalMs))) + 1
    const self: Member = { peerId: this.selfId, incarnation, state: 'alive', meta: this.meta, stateSinceMs: config.nowMs }
    this.membersById.set(this.selfId, self)
    this.liveMembers = 1
    this.pushChange(self, null, config.nowMs)
    // memberlist setAlive: announce ourselves, so the members we probe learn of
    // us and pass it on even before a push-pull reaches them.
    this.enqueueBroadcast(toUpdate(self), null)
  }

  // ---------------------------------------------------------------- inputs

  join(seeds: string[], nowMs: number): void {
    if (this.left) return
    const contacted = new Set<string>()
    for (const seed of seeds) {
      if (contacted.size >= MAX_JOIN_SEEDS) break
      if (!isValidPeerId(seed) || seed === this.selfId || contacted.has(seed)) continue
      contacted.add(seed)
      this.sendSync(seed, true)
    }
    this.joinSeeds = [...contacted]
    this.nextJoinRetryAtMs = this.joinSeeds.length > 0 ? nowMs + this.settings.joinRetryIntervalMs : Number.POSITIVE_INFINITY
  }

  tick(nowMs: number): void {
    if (!this.left) {
      this.expireSuspicions(nowMs)
      this.expireRelays(nowMs)
      this.advanceProbes(nowMs)
      if (nowMs >= this.nextProbeAtMs) {
        const target = this.nextRotationTarget()
        if (target !== null) this.startProbe(target, nowMs)
        // Lifeguard §IV (Local Health Aware Probe): a degraded member probes less often.
        this.nextProbeAtMs = nowMs + scaleByAwareness(this.settings.probeIntervalMs, this.healthScore)
      }
      if (nowMs >= this.nextPushPullAtMs) {
        this.pushPull()
        this.nextPushPullAtMs = nowMs + this.settings.pushPullIntervalMs
      }
      if (nowMs >= this.nextJoinRetryAtMs) {
        if (this.liveMembers <= 1) for (const seed of this.joinSeeds) this.sendSync(seed, true)
        this.nextJoinRetryAtMs = nowMs + this.settings.joinRetryIntervalMs
      }
    }
    if (nowMs >= this.nextReapAtMs) this.reap(nowMs)
  }

  step(from: string, message: SwimMessage, nowMs: number): void {
    if (from === this.selfId || !isValidPeerId(from)) return
    switch (message.type) {
      case 'ping': {
        // A ping meant for a previous owner of this address must not refresh our standing or theirs.
        if (message.target !== this.selfId) return
        if (!this.applyGossip(from, message.updates, nowMs)) return
        this.send(from, { type: 'ack', seq: message.seq, updates: this.piggyback(from, this.accusationFor(from)) })
        return
      }
      case 'ping-req': {
        if (!this.applyGossip(from, message.updates, nowMs)) return
        this.onPingReq(from, message.seq, message.target, nowMs)
        return
      }
      case 'ack': {
        if (!this.applyGossip(from, message.updates, nowMs)) return
        this.onAck(from, message.seq)
        return
      }
      case 'nack': {
        if (!this.applyGossip(from, message.updates, nowMs)) return
        this.onNack(from, message.seq, nowMs)
        return
      }
      case 'sync': {
        if (!this.mergeState(from, message.members, nowMs)) return
        if (message.reply) this.sendSync(from, false)
        return
      }
      default: {
        const unknown: never = message
        void unknown
      }
    }
  }

  onUnreachable(peerId: string, nowMs: number): void {
    if (this.left) return
    for (const probe of [...this.probes.values()]) {
      if (probe.target === peerId) {
        probe.directUnreachable = true
        // Do not wait out probeTimeoutMs: the direct path is known broken, go indirect now (SWIM §3.1).
        if (!probe.indirectSent) this.sendIndirect(probe, nowMs)
        else this.concludeIfHopeless(probe, nowMs)
      } else if (probe.awaiting.delete(peerId)) {
        this.concludeIfHopeless(probe, nowMs)
      }
    }
    for (const [localSeq, relay] of [...this.relays]) {
      if (relay.target !== peerId) continue
      this.relays.delete(localSeq)
      this.send(relay.requester, { type: 'nack', seq: relay.requesterSeq, updates: this.piggyback(relay.requester, null) })
    }
  }

  onConnectionLost(peerId: string, nowMs: number): void {
    if (this.left || peerId === this.selfId) return
    const member = this.membersById.get(peerId)
    if (member === undefined || member.state !== 'alive' || this.probeSeqByTarget.has(peerId)) return
    this.startProbe(peerId, nowMs)
  }

  updateMeta(meta: string, nowMs: number): void {
    if (!isValidMeta(meta)) throw new RangeError('FailureDetector: meta is not a string or is too large')
    if (this.left) return
    const self = this.self()
    this.meta = meta
    this.incarnation = this.nextIncarnation(this.incarnation)
    self.meta = meta
    self.incarnation = this.incarnation
    this.pushChange(self, 'alive', nowMs)
    this.enqueueBroadcast(toUpdate(self), null)
  }

  leave(nowMs: number): void {
    if (this.left) return
    const self = this.self()
    this.incarnation = this.nextIncarnation(this.incarnation)
    self.incarnation = this.incarnation
    this.transition(self, 'left', nowMs)
    const farewell = toUpdate(self)
    for (const member of this.membersById.values()) {
      if (member.peerId === this.selfId || !isLive(member.state)) continue
      // A sync with reply:false is applied without an answer; gossip of the
      // left update would need rounds we no longer run.
      this.send(member.peerId, { type: 'sync', reply: false, members: [farewell] })
    }
    this.left = true
    this.probes.clear()
    this.probeSeqByTarget.clear()
    this.relays.clear()
    this.broadcasts.clear()
  }

  // --------------------------------------------------------------- outputs

  ready(): Ready {
    const out: Ready = { messages: this.pendingMessages, changes: this.pendingChanges }
    this.pendingMessages = []
    this.pendingChanges = []
    return out
  }

  members(): Member[] {
    return [...this.membersById.values()]
      .map((m) => ({ ...m }))
      .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
  }

  member(peerId: string): Member | undefined {
    const m = this.membersById.get(peerId)
    return m === undefined ? undefined : { ...m }
  }

  /** Lifeguard local health score (0 = healthy); probe interval and timeout are multiplied by score + 1. */
  awareness(): number {
    return this.healthScore
  }

  /** Earliest time at which `tick` has work to do; the adapter may arm one timer for it instead of polling. */
  nextDeadlineMs(): number {
    let next = this.nextReapAtMs
    if (this.left) return next
    next = Math.min(next, this.nextProbeAtMs, this.nextPushPullAtMs, this.nextJoinRetryAtMs)
    for (const s of this.suspicions.values()) next = Math.min(next, s.deadlineMs)
    for (const r of this.relays.values()) next = Math.min(next, r.deadlineMs)
    for (const p of this.probes.values()) next = Math.min(next, p.indirectSent ? p.roundEndMs : p.directDeadlineMs)
    return next
  }

  assertInvariants(): void {
    const fail = (what: string): never => {
      throw new Error(`FailureDetector(${this.selfId}) invariant broken: ${what}`)
    }
    const s = this.settings
    const self = this.membersById.get(this.selfId)
    if (self === undefined) fail('self is not a member')
    else {
      if (self.incarnation !== this.incarnation) fail('self incarnation out of sync')
      if (self.meta !== this.meta) fail('self meta out of sync')
      if (self.state !== (this.left ? 'left' : 'alive')) fail(`self is ${self.state}`)
    }
    if (this.membersById.size > s.maxMembers) fail('more members than maxMembers')
    let live = 0
    for (const [id, m] of this.membersById) {
      if (id !== m.peerId || !isValidPeerId(id)) fail(`bad member id ${id}`)
      if (!isValidIncarnation(m.incarnation)) fail(`bad incarnation for ${id}`)
      if (!isValidMeta(m.meta)) fail(`bad meta for ${id}`)
      if (!Number.isFinite(m.stateSinceMs)) fail(`bad stateSinceMs for ${id}`)
      if (isLive(m.state)) live++
      if (id !== this.selfId && m.state === 'suspect' && !this.suspicions.has(id)) fail(`suspect ${id} has no suspicion timer`)
    }
    if (live !== this.liveMembers) fail('live member count out of sync')
    for (const [id, sus] of this.suspicions) {
      const m = this.membersById.get(id)
      if (m === undefined || m.state !== 'suspect' || m.incarnation !== sus.incarnation) fail(`stale suspicion for ${id}`)
      if (sus.confirmers.size > sus.expected) fail(`suspicion for ${id} over-confirmed`)
      if (sus.initiator !== null && sus.confirmers.has(sus.initiator)) fail(`initiator counted as confirmer for ${id}`)
      if (sus.confirmers.has(id)) fail(`suspect ${id} confirms itself`)
    }
    if (this.broadcasts.size > s.maxMembers) fail('broadcast queue over bound')
    for (const [id, entry] of this.broadcasts) {
      if (entry.update.peerId !== id || !this.membersById.has(id)) fail(`broadcast entry for unknown ${id}`)
      if (entry.holders.size > entry.transmits + 2 || entry.holders.has(this.selfId)) fail(`broadcast holders of ${id} out of bound`)
    }
    if (this.probes.size > MAX_OUTSTANDING_PROBES) fail('too many outstanding probes')
    if (this.probeSeqByTarget.size !== this.probes.size) fail('probe index out of sync')
    for (const [seq, probe] of this.probes) {
      if (this.probeSeqByTarget.get(probe.target) !== seq) fail(`probe ${seq} not indexed`)
      if (probe.target === this.selfId) fail('probing self')
      if (probe.intermediaries.length > s.indirectChecks) fail(`probe ${seq} has too many intermediaries`)
      for (const id of probe.awaiting) if (!probe.intermediaries.includes(id) || probe.nacks.has(id)) fail(`probe ${seq} awaiting ${id}`)
      for (const id of probe.nacks) if (!probe.intermediaries.includes(id)) fail(`probe ${seq} nack from ${id}`)
    }
    if (this.relays.size > MAX_PENDING_RELAYS) fail('too many relays')
    if (this.joinSeeds.length > MAX_JOIN_SEEDS || this.joinSeeds.includes(this.selfId)) fail('bad join seeds')
    if (this.rotation.length > s.maxMembers) fail('rotation over bound')
    if (new Set(this.rotation).size !== this.rotation.length) fail('duplicate in rotation')
    if (this.rotation.includes(this.selfId)) fail('self in rotation')
    if (this.rotationIndex < 0 || this.rotationIndex > this.rotation.length) fail('rotation index out of range')
    if (!Number.isInteger(this.healthScore) || this.healthScore < 0 || this.healthScore > s.awarenessMax - 1) fail('awareness out of range')
    if (this.pendingMessages.length > MAX_PENDING_MESSAGES) fail('pending messages over bound')
    if (this.pendingChanges.length > MAX_PENDING_CHANGES) fail('pending changes over bound')
    if (this.left && (this.probes.size > 0 || this.relays.size > 0 || this.broadcasts.size > 0)) fail('activity after leave')
    if (!Number.isInteger(this.seq) || this.seq < 0 || this.seq >= UINT32_RANGE) fail('seq out of uint32 range')
  }

  // ------------------------------------------------------------ membership

  private self(): Member {
    const self = this.membersById.get(this.selfId)
    if (self === undefined) throw new Error('FailureDetector: self missing')
    return self
  }

  /** Applies piggybacked updates; false when the message must be dropped as a whole. */
  private applyGossip(from: string, updates: MemberUpdate[], nowMs: number): boolean {
    if (!Array.isArray(updates) || updates.length > SWIM_MAX_UPDATES) return false
    for (const raw of updates) {
      const u = validateMemberUpdate(raw)
      if (typeof u === 'string') continue
      this.applyUpdate(u, from, false, nowMs)
    }
    return true
  }

  /** Push-pull merge (memberlist `mergeState`). */
  private mergeState(from: string, members: MemberUpdate[], nowMs: number): boolean {
    if (!Array.isArray(members) || members.length > SWIM_MAX_UPDATES) return false
    for (const raw of members) {
      const u = validateMemberUpdate(raw)
      if (typeof u === 'string') continue
      this.applyUpdate(u, from, true, nowMs)
    }
    return true
  }

  /**
   * One update from `from`, by the incarnation rules of SWIM §4.2. A suspect
   * update in gossip is an accusation by `from`; in a sync it is a snapshot of
   * state, and accuses nobody.
   */
  private applyUpdate(u: MemberUpdate, from: string, fromSync: boolean, nowMs: number): void {
    if (u.peerId === this.selfId) {
      this.applySelfUpdate(u, from)
      return
    }
    switch (u.state) {
      case 'alive':
        this.applyAlive(u, from, nowMs)
        return
      case 'suspect':
        this.applySuspect(u, fromSync || from === u.peerId ? null : from, from, nowMs)
        return
      case 'dead':
        if (fromSync) {
          // memberlist mergeState: a full-state snapshot may be stale, so a remote
          // "dead" only makes us suspect; the member can still refute, and if it
          // really is gone our own timer declares it dead.
          if (this.membersById.has(u.peerId)) this.applySuspect({ ...u, state: 'suspect' }, null, from, nowMs)
          return
        }
        this.applyDeadOrLeft(u, from, nowMs)
        return
      case 'left':
        this.applyDeadOrLeft(u, from, nowMs)
        return
      default: {
        const unknown: never = u.state
        void unknown
      }
    }
  }

  /** SWIM §4.2: only the member itself may raise its incarnation, and it does so to refute. */
  private applySelfUpdate(u: MemberUpdate, from: string): void {
    if (this.left) return
    const mustRefute =
      u.state === 'alive'
        ? u.incarnation > this.incarnation || (u.incarnation === this.incarnation && u.meta !== this.meta)
        : u.incarnation >= this.incarnation
    const self = this.self()
    if (!mustRefute) {
      // `from` still believes an accusation we already refuted: our refutation
      // has not reached it (piggybacking gave out first). Send it again, starting
      // with the reply to this very message; otherwise `from` declares us dead.
      if (u.state !== 'alive' && u.incarnation < this.incarnation) {
        const entry = this.broadcasts.get(this.selfId)
        if (entry !== undefined && entry.update.incarnation === this.incarnation) entry.holders.delete(from)
        else this.enqueueBroadcast(toUpdate(self), null)
      }
      return
    }
    this.incarnation = this.nextIncarnation(Math.max(this.incarnation, u.incarnation))
    self.incarnation = this.incarnation
    this.enqueueBroadcast(toUpdate(self), null)
    // Lifeguard §IV (Local Health Aware Probe): being accused is a hint that we are the slow one.
    this.healthScore = applyAwarenessDelta(this.healthScore, 1, this.settings.awarenessMax)
  }

  private applyAlive(u: MemberUpdate, source: string, nowMs: number): void {
    const m = this.membersById.get(u.peerId)
    if (m === undefined) {
      const added = this.addMember(u, nowMs)
      if (added !== undefined) this.enqueueBroadcast(toUpdate(added), source)
      return
    }
    // alive(i) beats alive/suspect(j < i), and dead/left(j) only for i > j (SWIM §4.2).
    if (u.incarnation <= m.incarnation) return
    const previousMeta = m.meta
    m.incarnation = u.incarnation
    m.meta = u.meta
    this.suspicions.delete(m.peerId)
    if (m.state !== 'alive') {
      const wasGone = !isLive(m.state)
      this.transition(m, 'alive', nowMs)
      if (wasGone) this.insertIntoRotation(m.peerId)
    } else if (previousMeta !== m.meta) {
      this.pushChange(m, 'alive', nowMs)
    }
    this.enqueueBroadcast(toUpdate(m), source)
  }

  /**
   * `reporter`: the accuser to count as a Lifeguard confirmation (self for our
   * own failed probe), null for none. `source`: who already holds this update.
   */
  private applySuspect(u: MemberUpdate, reporter: string | null, source: string | null, nowMs: number): void {
    const m = this.membersById.get(u.peerId)
    const own = reporter === this.selfId
    if (m === undefined) {
      // A suspect member is very likely alive; learning it lets us probe it, and our ping tells it to refute.
      const added = this.addMember(u, nowMs)
      if (added !== undefined) this.startSuspicion(added, reporter, nowMs)
      return
    }
    switch (m.state) {
      case 'alive': {
        // suspect(i) beats alive(j <= i) (SWIM §4.2).
        if (u.incarnation < m.incarnation) return
        if (u.incarnation > m.incarnation) m.meta = u.meta
        m.incarnation = u.incarnation
        this.transition(m, 'suspect', nowMs)
        this.startSuspicion(m, reporter, nowMs)
        if (own) this.enqueueBroadcast(toUpdate(m), source)
        return
      }
      case 'suspect': {
        if (u.incarnation < m.incarnation) return
        if (u.incarnation > m.incarnation) {
          // It refuted a suspicion we missed and is accused again: a fresh suspicion for the new life.
          const previousMeta = m.meta
          m.incarnation = u.incarnation
          m.meta = u.meta
          if (previousMeta !== m.meta) this.pushChange(m, 'suspect', nowMs)
          this.startSuspicion(m, reporter, nowMs)
          if (own) this.enqueueBroadcast(toUpdate(m), source)
          return
        }
        const sus = this.suspicions.get(m.peerId)
        if (sus !== undefined && reporter !== null && this.confirm(sus, m.peerId, reporter) && own) {
          // Our own failed probe is an independent accusation: tell others so they can count it.
          this.enqueueBroadcast(toUpdate(m), source)
        }
        return
      }
      case 'dead':
      case 'left':
        return
      default: {
        const unknown: never = m.state
        void unknown
      }
    }
  }

  private applyDeadOrLeft(u: MemberUpdate, source: string, nowMs: number): void {
    const m = this.membersById.get(u.peerId)
    // Learning a member only to list it as gone adds nothing and would let stale gossip fill the table.
    if (m === undefined) return
    if (isLive(m.state)) {
      // dead/left(i) beat anything with j <= i (SWIM §4.2).
      if (u.incarnation < m.incarnation) return
    } else {
      // Between two "gone" states only a newer life counts, except that the member's
      // own "left" is more precise than our "dead" for the same life. Never the
      // other way round, so dead and left cannot flap.
      const newer = u.incarnation > m.incarnation
      const refines = u.incarnation === m.incarnation && m.state === 'dead' && u.state === 'left'
      if (!newer && !refines) return
    }
    const previousMeta = m.meta
    if (u.incarnation > m.incarnation) m.meta = u.meta
    m.incarnation = u.incarnation
    this.suspicions.delete(m.peerId)
    this.cancelProbe(m.peerId)
    if (m.state !== u.state) this.transition(m, u.state, nowMs)
    else if (previousMeta !== m.meta) this.pushChange(m, m.state, nowMs)
    this.enqueueBroadcast(toUpdate(m), source)
  }

  private addMember(u: MemberUpdate, nowMs: number): Member | undefined {
    if (this.membersById.size >= this.settings.maxMembers) return undefined
    const m: Member = { peerId: u.peerId, incarnation: u.incarnation, state: u.state, meta: u.meta, stateSinceMs: nowMs }
    this.membersById.set(m.peerId, m)
    if (isLive(m.state)) {
      this.liveMembers++
      this.insertIntoRotation(m.peerId)
    } else {
      this.scheduleReap(nowMs)
    }
    this.pushChange(m, null, nowMs)
    return m
  }

  private transition(m: Member, state: MemberState, nowMs: number): void {
    const previous = m.state
    if (previous === state) return
    if (isLive(previous) && !isLive(state)) this.liveMembers--
    else if (!isLive(previous) && isLive(state)) this.liveMembers++
    m.state = state
    m.stateSinceMs = nowMs
    if (!isLive(state)) this.scheduleReap(nowMs)
    this.pushChange(m, previous, nowMs)
  }

  private nextIncarnation(from: number): number {
    return Math.min(Number.MAX_SAFE_INTEGER, from + 1)
  }

  // -------------------------------------------------------------- suspicion

  private startSuspicion(m: Member, initiator: string | null, nowMs: number): void {
    const n = this.liveMembers
    const expected = expectedConfirmations(this.settings.indirectChecks, n)
    const minTimeoutMs = suspicionMinTimeoutMs(this.settings.suspicionMult, n, this.settings.probeIntervalMs)
    const maxTimeoutMs = suspicionMaxTimeoutMs(this.settings.suspicionMaxMult, minTimeoutMs)
    this.suspicions.set(m.peerId, {
      incarnation: m.incarnation,
      startedAtMs: nowMs,
      expected,
      minTimeoutMs,
      maxTimeoutMs,
      initiator,
      confirmers: new Set(),
      deadlineMs: nowMs + suspicionTimeoutMs(0, expected, minTimeoutMs, maxTimeoutMs),
    })
  }

  /** Lifeguard §IV (Local Health Aware Suspicion): each distinct accuser shortens the timer. */
  private confirm(sus: Suspicion, suspectId: string, reporter: string): boolean {
    if (sus.confirmers.size >= sus.expected) return false
    if (reporter === sus.initiator || reporter === suspectId || sus.confirmers.has(reporter)) return false
    sus.confirmers.add(reporter)
    sus.deadlineMs = sus.startedAtMs + suspicionTimeoutMs(sus.confirmers.size, sus.expected, sus.minTimeoutMs, sus.maxTimeoutMs)
    return true
  }

  private expireSuspicions(nowMs: number): void {
    for (const [id, sus] of this.suspicions) {
      if (nowMs < sus.deadlineMs) continue
      this.suspicions.delete(id)
      const m = this.membersById.get(id)
      if (m === undefined || m.state !== 'suspect') continue
      this.cancelProbe(id)
      this.transition(m, 'dead', nowMs)
      this.enqueueBroadcast(toUpdate(m), null)
    }
  }

  // ----------------------------------------------------------------- probes

  private nextRotationTarget(): string | null {
    let reshuffled = false
    // Bounded: at most one full pass before and one after a reshuffle.
    for (let guard = 0; guard <= 2 * this.settings.maxMembers + 2; guard++) {
      if (this.rotationIndex >= this.rotation.length) {
        if (reshuffled) return null
        this.reshuffleRotation()
        reshuffled = true
        if (this.rotation.length === 0) return null
      }
      const id = this.rotation[this.rotationIndex++]
      if (id === undefined) continue
      const m = this.membersById.get(id)
      if (m !== undefined && isLive(m.state) && !this.probeSeqByTarget.has(id)) return id
    }
    return null
  }

  /** SWIM §4.3: a fresh random permutation per pass bounds detection time while keeping probes unpredictable. */
  private reshuffleRotation(): void {
    const ids: string[] = []
    for (const m of this.membersById.values()) {
      if (m.peerId !== this.selfId && isLive(m.state)) ids.push(m.peerId)
    }
    for (let i = ids.length - 1; i > 0; i--) {
      const j = this.randomIndex(i + 1)
      const a = ids[i]
      const b = ids[j]
      if (a === undefined || b === undefined) continue
      ids[i] = b
      ids[j] = a
    }
    this.rotation = ids
    this.rotationIndex = 0
  }

  /** memberlist inserts new members at a random position; we pick one not yet visited in this pass. */
  private insertIntoRotation(id: string): void {
    if (id === this.selfId || this.rotation.includes(id)) return
    if (this.rotation.length >= this.settings.maxMembers) return
    const position = this.rotationIndex + this.randomIndex(this.rotation.length - this.rotationIndex + 1)
    this.rotation.splice(position, 0, id)
  }

  private removeFromRotation(id: string): void {
    const index = this.rotation.indexOf(id)
    if (index < 0) return
    this.rotation.splice(index, 1)
    if (index < this.rotationIndex) this.rotationIndex--
  }

  private startProbe(target: string, nowMs: number): void {
    if (this.probes.size >= MAX_OUTSTANDING_PROBES) return
    const m = this.membersById.get(target)
    if (m === undefined || target === this.selfId) return
    const seq = this.nextSeq()
    const s = this.settings
    this.probes.set(seq, {
      seq,
      target,
      incarnation: m.incarnation,
      directDeadlineMs: nowMs + scaleByAwareness(s.probeTimeoutMs, this.healthScore),
      roundEndMs: nowMs + scaleByAwareness(s.probeIntervalMs, this.healthScore),
      indirectSent: false,
      directUnreachable: false,
      intermediaries: [],
      awaiting: new Set(),
      nacks: new Set(),
    })
    this.probeSeqByTarget.set(target, seq)
    this.sendPing(target, seq)
  }

  private sendPing(target: string, seq: number): void {
    // Lifeguard §IV (Buddy System): a suspect learns of the accusation from the
    // very ping that probes it, so it can refute without waiting for gossip.
    this.send(target, { type: 'ping', seq, target, updates: this.piggyback(target, this.accusationFor(target)) })
  }

  /**
   * What we hold against a peer we are about to talk to: its suspect, dead or
   * left entry, if any. Telling it first lets it refute at once (Lifeguard §IV,
   * Buddy System; memberlist also gossips to recently dead members for this).
   */
  private accusationFor(peerId: string): MemberUpdate | null {
    const m = this.membersById.get(peerId)
    return m !== undefined && m.state !== 'alive' ? toUpdate(m) : null
  }

  private advanceProbes(nowMs: number): void {
    for (const probe of [...this.probes.values()]) {
      if (!this.probes.has(probe.seq)) continue
      if (!probe.indirectSent && nowMs >= probe.directDeadlineMs) this.sendIndirect(probe, nowMs)
      if (this.probes.has(probe.seq) && nowMs >= probe.roundEndMs) this.failProbe(probe, nowMs)
    }
  }

  /** SWIM §3.1: ask k other members to probe the target, to rule out a bad path between us and it. */
  private sendIndirect(probe: Probe, nowMs: number): void {
    probe.indirectSent = true
    const candidates: string[] = []
    for (const m of this.membersById.values()) {
      if (m.state === 'alive' && m.peerId !== this.selfId && m.peerId !== probe.target) candidates.push(m.peerId)
    }
    const count = Math.min(this.settings.indirectChecks, candidates.length)
    for (let i = 0; i < count; i++) {
      const j = i + this.randomIndex(candidates.length - i)
      const a = candidates[i]
      const b = candidates[j]
      if (a === undefined || b === undefined) continue
      candidates[i] = b
      candidates[j] = a
      probe.intermediaries.push(b)
      probe.awaiting.add(b)
      this.send(b, { type: 'ping-req', seq: probe.seq, target: probe.target, updates: this.piggyback(b, null) })
    }
    this.concludeIfHopeless(probe, nowMs)
  }

  /**
   * When the transport has already refused the direct path and every
   * intermediary has nacked (or is unreachable too), no ack can arrive any more:
   * intermediaries forget the probe once they nack. Waiting out the round would
   * only delay the suspicion.
   */
  private concludeIfHopeless(probe: Probe, nowMs: number): void {
    if (!this.probes.has(probe.seq)) return
    if (probe.indirectSent && probe.directUnreachable && probe.awaiting.size === 0) this.failProbe(probe, nowMs)
  }

  private failProbe(probe: Probe, nowMs: number): void {
    this.removeProbe(probe)
    // Lifeguard §IV (Local Health Aware Probe): a missing nack means a message to
    // or from a healthy intermediary was lost or late, which points at us. With
    // nobody to nack, any failed probe counts (memberlist `probeNode`).
    const expectedNacks = probe.intermediaries.length
    const delta = expectedNacks > 0 ? expectedNacks - probe.nacks.size : 1
    this.healthScore = applyAwarenessDelta(this.healthScore, delta, this.settings.awarenessMax)
    const m = this.membersById.get(probe.target)
    if (m === undefined || !isLive(m.state)) return
    this.applySuspect({ peerId: m.peerId, incarnation: probe.incarnation, state: 'suspect', meta: m.meta }, this.selfId, null, nowMs)
  }

  private removeProbe(probe: Probe): void {
    this.probes.delete(probe.seq)
    if (this.probeSeqByTarget.get(probe.target) === probe.seq) this.probeSeqByTarget.delete(probe.target)
  }

  private cancelProbe(target: string): void {
    const seq = this.probeSeqByTarget.get(target)
    if (seq === undefined) return
    const probe = this.probes.get(seq)
    if (probe !== undefined) this.removeProbe(probe)
    else this.probeSeqByTarget.delete(target)
  }

  private onAck(from: string, seq: number): void {
    const probe = this.probes.get(seq)
    if (probe !== undefined) {
      if (from !== probe.target && !probe.intermediaries.includes(from)) return
      this.removeProbe(probe)
      this.healthScore = applyAwarenessDelta(this.healthScore, -1, this.settings.awarenessMax)
      return
    }
    const relay = this.relays.get(seq)
    if (relay !== undefined && from === relay.target) {
      this.relays.delete(seq)
      this.send(relay.requester, { type: 'ack', seq: relay.requesterSeq, updates: this.piggyback(relay.requester, null) })
    }
  }

  private onNack(from: string, seq: number, nowMs: number): void {
    const probe = this.probes.get(seq)
    if (probe === undefined || !probe.awaiting.delete(from)) return
    probe.nacks.add(from)
    this.concludeIfHopeless(probe, nowMs)
  }

  /** Intermediary side of SWIM §3.1 with the Lifeguard nack. */
  private onPingReq(from: string, requesterSeq: number, target: string, nowMs: number): void {
    if (this.left) return
    if (target === this.selfId) {
      this.send(from, { type: 'ack', seq: requesterSeq, updates: this.piggyback(from, null) })
      return
    }
    if (this.relays.size >= MAX_PENDING_RELAYS) return
    for (const relay of this.relays.values()) {
      if (relay.requester === from && relay.requesterSeq === requesterSeq) return
    }
    const localSeq = this.nextSeq()
    this.relays.set(localSeq, { requester: from, requesterSeq, target, deadlineMs: nowMs + this.settings.nackTimeoutMs })
    this.sendPing(target, localSeq)
  }

  private expireRelays(nowMs: number): void {
    for (const [localSeq, relay] of this.relays) {
      if (nowMs < relay.deadlineMs) continue
      this.relays.delete(localSeq)
      this.send(relay.requester, { type: 'nack', seq: relay.requesterSeq, updates: this.piggyback(relay.requester, null) })
    }
  }

  // ---------------------------------------------------- dissemination, sync

  /** `source`: the peer we learned the update from, which needs no copy. A newer update replaces the queued one. */
  private enqueueBroadcast(update: MemberUpdate, source: string | null): void {
    if (this.left) return
    const holders = new Set<string>()
    if (source !== null) holders.add(source)
    // A member knows it is alive better than anyone.
    if (update.state === 'alive' && update.peerId !== this.selfId) holders.add(update.peerId)
    this.broadcasts.set(update.peerId, { update: { ...update }, transmits: 0, order: ++this.broadcastOrder, holders })
  }

  /**
   * Takes updates to piggyback on one message to `to` (SWIM §4.1): fewest
   * transmissions first, newest first among equals (memberlist
   * TransmitLimitedQueue), within maxPiggyback and the frame budget.
   *
   * Piggybacking rides on probe traffic, so we do not choose recipients; to make
   * the few transmissions count, an update is not spent on a peer known to hold
   * it already (its source, earlier recipients, or its subject for an alive
   * update), and it retires once every live member has had it.
   */
  private piggyback(to: string, first: MemberUpdate | null): MemberUpdate[] {
    const out: MemberUpdate[] = []
    let budgetBytes = SWIM_MAX_FRAME_BYTES - SWIM_ENVELOPE_RESERVE_BYTES
    if (first !== null) {
      out.push(first)
      budgetBytes -= memberUpdateEncodedBytes(first)
    }
    const maxCount = Math.max(out.length, this.settings.maxPiggyback)
    if (this.broadcasts.size === 0 || out.length >= maxCount) return out
    const limit = retransmitLimit(this.settings.retransmitMult, this.liveMembers)
    const entries = [...this.broadcasts.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order)
    for (const entry of entries) {
      if (out.length >= maxCount) break
      const u = entry.update
      if (first !== null && u.peerId === first.peerId) continue
      if (entry.holders.has(to)) continue
      const size = memberUpdateEncodedBytes(u)
      if (size > budgetBytes) continue
      out.push(u)
      budgetBytes -= size
      entry.transmits++
      entry.holders.add(to)
      if (entry.transmits >= limit || entry.holders.size >= this.liveMembers - 1) this.broadcasts.delete(u.peerId)
    }
    return out
  }

  private pushPull(): void {
    const candidates: string[] = []
    for (const m of this.membersById.values()) {
      if (m.state === 'alive' && m.peerId !== this.selfId) candidates.push(m.peerId)
    }
    const target = candidates[this.randomIndex(candidates.length)]
    if (target !== undefined) this.sendSync(target, true)
  }

  /**
   * Full state, split so each frame holds at most SWIM_MAX_UPDATES members and
   * fits SWIM_MAX_FRAME_BYTES. Only the first part asks for a reply: one answer
   * per exchange is enough.
   */
  private sendSync(to: string, reply: boolean): void {
    const budget = SWIM_MAX_FRAME_BYTES - SWIM_ENVELOPE_RESERVE_BYTES
    let chunk: MemberUpdate[] = []
    let chunkBytes = 0
    let first = true
    const flush = (): void => {
      this.send(to, { type: 'sync', reply: first && reply, members: chunk })
      first = false
      chunk = []
      chunkBytes = 0
    }
    for (const m of this.members()) {
      const u = toUpdate(m)
      const size = memberUpdateEncodedBytes(u)
      if (chunk.length >= SWIM_MAX_UPDATES || chunkBytes + size > budget) flush()
      chunk.push(u)
      chunkBytes += size
    }
    if (chunk.length > 0) flush()
  }

  // ------------------------------------------------------------ reaping

  private scheduleReap(nowMs: number): void {
    this.nextReapAtMs = Math.min(this.nextReapAtMs, nowMs + this.settings.deadRetentionMs)
  }

  private reap(nowMs: number): void {
    let next = Number.POSITIVE_INFINITY
    for (const [id, m] of this.membersById) {
      if (id === this.selfId || isLive(m.state)) continue
      const dueMs = m.stateSinceMs + this.settings.deadRetentionMs
      if (nowMs >= dueMs) {
        this.membersById.delete(id)
        this.broadcasts.delete(id)
        this.suspicions.delete(id)
        this.cancelProbe(id)
        this.removeFromRotation(id)
      } else {
        next = Math.min(next, dueMs)
      }
    }
    this.nextReapAtMs = next
  }

  // ------------------------------------------------------------ plumbing

  private send(to: string, message: SwimMessage): void {
    // After leave the member is gone for good; it must not look alive to anyone.
    if (this.left || this.pendingMessages.length >= MAX_PENDING_MESSAGES) return
    this.pendingMessages.push({ to, message })
  }

  private pushChange(m: Member, previous: MemberState | null, nowMs: number): void {
    if (this.pendingChanges.length >= MAX_PENDING_CHANGES) this.pendingChanges.shift()
    this.pendingChanges.push({ peerId: m.peerId, previous, state: m.state, incarnation: m.incarnation, meta: m.meta, atMs: nowMs })
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % UINT32_RANGE
    return this.seq
  }

  /** Uniform integer in [0, n); tolerant of a `random` that returns exactly 1 or garbage. */
  private randomIndex(n: number): number {
    if (n <= 1) return 0
    const r = this.random()
    const index = Math.floor((Number.isFinite(r) ? r : 0) * n)
    return Math.min(n - 1, Math.max(0, index))
  }
}
