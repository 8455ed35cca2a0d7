// The failure detector alone, at scale: N real FailureDetector cores on the
// simulated network (LAN latency, random loss), already joined, one of which
// then crashes. Measures how long until every live peer declares it dead, and
// how often live peers are wrongly suspected along the way. Each peer is
// ticked exactly at its own nextDeadlineMs() (the driving contract allows it),
// which keeps 1,000 peers cheap to simulate.

import { FailureDetector, type MemberUpdate, type SwimMessage } from '../protocols/gossip/failure-detector.ts'
import { SWIM_MAX_UPDATES } from '../protocols/gossip/swim-codec.ts'
import { LAN_PROFILE, SimNetwork } from './network.ts'
import { stream } from './random.ts'
import { Scheduler } from './scheduler.ts'

/** What to simulate. */
export interface SwimScaleOptions {
  readonly peers: number
  /** Chance each message is lost. */
  readonly lossRate: number
  readonly seed: number
  /** Time to settle after the joins, before the crash (ms). */
  readonly warmupMs: number
  /** How long to watch after the crash at most (ms). */
  readonly watchMs: number
}

/** What happened. */
export interface SwimScaleResult {
  /** Simulated ms from the crash until every live peer had it dead; null if some never did. */
  readonly allDeadMs: number | null
  /** Percentiles over live peers of the ms from the crash to their first suspicion and their 'dead'. */
  readonly suspectP50Ms: number
  readonly deadP50Ms: number
  readonly deadP99Ms: number
  /** Live peers that suspected another live peer at some point, summed over observers (each suspect transition counts). */
  readonly falseSuspicions: number
  /** Live peers declared dead by someone (should be none). */
  readonly falseDeaths: number
  /** Probes (direct pings) sent in total. */
  readonly probes: number
  readonly messages: number
  /** Simulated ms covered. */
  readonly simulatedMs: number
  /** Events run. */
  readonly events: number
}

interface Peer {
  readonly id: string
  readonly fd: FailureDetector
  /** Time (µs) of the one tick currently scheduled for this peer. */
  tickAtUs: number
  alive: boolean
}

/** Runs the failure detector of `options.peers` peers and crashes one. */
export function runSwimAtScale(options: SwimScaleOptions): SwimScaleResult {
  const scheduler = new Scheduler()
  const rng = stream(options.seed, 'swim-scale')
  const ids = Array.from({ length: options.peers }, (_, i) => `p${i}`)
  const peers = new Map<string, Peer>()
  let probes = 0
  let crashed: string | null = null
  let crashAtMs = Infinity
  const firstSuspect = new Map<string, number>()
  const dead = new Map<string, number>()
  let falseSuspicions = 0
  let falseDeaths = 0

  const network = new SimNetwork<SwimMessage>(scheduler, stream(options.seed, 'swim-network'), {
    deliver: (from, to, message) => {
      const peer = peers.get(to)
      if (peer === undefined || !peer.alive) return
      peer.fd.step(from, message, scheduler.nowUs / 1000)
      drain(peer)
    },
    lost: () => undefined,
    duplicated: () => undefined,
  })
  network.profile = { ...LAN_PROFILE, dropChance: options.lossRate }

  const drain = (peer: Peer): void => {
    const out = peer.fd.ready()
    for (const m of out.messages) {
      if (m.message.type === 'ping') probes++
      network.send(peer.id, m.to, m.message)
    }
    for (const c of out.changes) {
      if (c.peerId === peer.id) continue
      const isVictim = c.peerId === crashed
      if (c.state === 'suspect') {
        if (isVictim) {
          if (!firstSuspect.has(peer.id)) firstSuspect.set(peer.id, c.atMs - crashAtMs)
        } else if (crashAtMs !== Infinity || c.atMs > options.warmupMs / 2) {
          // Early suspicions while the join gossip settles are not counted.
          falseSuspicions++
        }
      }
      if (c.state === 'dead') {
        if (isVictim) dead.set(peer.id, c.atMs - crashAtMs)
        else falseDeaths++
      }
    }
    scheduleTick(peer)
  }

  const scheduleTick = (peer: Peer): void => {
    if (!peer.alive) return
    const atUs = Math.max(scheduler.nowUs + 1, Math.ceil(peer.fd.nextDeadlineMs() * 1000))
    if (atUs >= peer.tickAtUs && peer.tickAtUs > scheduler.nowUs) return
    peer.tickAtUs = atUs
    scheduler.at(atUs, () => {
      if (peer.tickAtUs !== atUs || !peer.alive) return
      peer.tickAtUs = Infinity
      peer.fd.tick(scheduler.nowUs / 1000)
      drain(peer)
    })
  }

  // Every peer starts knowing every other (a finished join), staggered so probes do not align.
  const everyone: MemberUpdate[] = ids.map((peerId) => ({ peerId, incarnation: 0, state: 'alive', meta: '' }))
  for (const id of ids) {
    const seed = stream(options.seed, `swim/${id}`)
    const startMs = rng.int(300)
    const peer: Peer = { id, fd: new FailureDetector({ selfId: id, meta: '', nowMs: startMs, random: () => seed.next() }), tickAtUs: Infinity, alive: true }
    peers.set(id, peer)
    for (let i = 0; i < everyone.length; i += SWIM_MAX_UPDATES) {
      peer.fd.step(id === 'p0' ? 'p1' : 'p0', { type: 'sync', reply: false, members: everyone.slice(i, i + SWIM_MAX_UPDATES) }, startMs)
    }
    peer.fd.ready()
  }
  for (const peer of peers.values()) scheduleTick(peer)

  scheduler.runUntil(options.warmupMs * 1000)
  const victim = peers.get(rng.pick(ids)) as Peer
  crashed = victim.id
  crashAtMs = scheduler.nowUs / 1000
  victim.alive = false
  const live = options.peers - 1
  scheduler.runUntil(scheduler.nowUs + options.watchMs * 1000, () => dead.size >= live)

  const deadTimes = [...dead.values()].sort((a, b) => a - b)
  const suspectTimes = [...firstSuspect.values()].sort((a, b) => a - b)
  return {
    allDeadMs: dead.size >= live ? (deadTimes[deadTimes.length - 1] ?? 0) : null,
    suspectP50Ms: percentile(suspectTimes, 50),
    deadP50Ms: percentile(deadTimes, 50),
    deadP99Ms: percentile(deadTimes, 99),
    falseSuspicions,
    falseDeaths,
    probes,
    messages: network.stats.sent,
    simulatedMs: scheduler.nowUs / 1000,
    events: scheduler.executed,
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}
