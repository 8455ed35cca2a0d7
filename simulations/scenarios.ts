// The named scenarios: each is a fault plan drawn from the seed's fault
// stream, run against the default workload for `faultMs` of simulated time.
// After that the runner heals everything (network, crashed and paused nodes)
// and runs the liveness phase. Targets such as "the leader" are resolved when
// the fault fires, so a plan follows the cluster as it changes.

import { EXACT_CLOCK, type ClockProfile } from './clock.ts'
import type { SimCluster } from './cluster.ts'
import { LAN_PROFILE, type NetworkProfile } from './network.ts'
import type { NodeSettings } from './node.ts'
import type { Rng } from './random.ts'
import type { WorkloadConfig } from './workload.ts'
import type { ServiceWorkloadConfig } from './service-workload.ts'
import type { ServiceSettings } from './services.ts'
import { TASK_LABEL } from '../storage/statestore/container-labels.ts'
import { lockHolder } from '../storage/statestore/index.ts'

/** What a scenario's fault plan works with. */
export interface FaultContext {
  readonly cluster: SimCluster
  /** The fault stream of the seed. */
  readonly rng: Rng
  /** Runs `fn` at `ms` of simulated time. */
  at(ms: number, fn: () => void): void
  /**
   * Rounds from `fromMs` until `untilMs`: each calls `round()`, which starts a
   * fault and returns how long until the next round (ms).
   */
  rounds(fromMs: number, untilMs: number, round: () => number): void
}

/** Cluster and workload settings a scenario changes. */
export interface ScenarioSetup {
  readonly network?: NetworkProfile
  readonly clock?: (id: string, rng: Rng) => ClockProfile
  /** The largest clock rate error any node gets (lock clients' session margin). */
  readonly maxClockDrift?: number
  readonly settings?: Partial<NodeSettings>
  readonly workload?: Partial<WorkloadConfig>
  /** The services workload's knobs (services run when `settings.services` is set). */
  readonly serviceWorkload?: Partial<ServiceWorkloadConfig>
}

/** One named scenario. */
export interface Scenario {
  readonly name: string
  /** One line for `--help` and the README. */
  readonly summary: string
  /** How long faults go on (ms of simulated time). */
  readonly faultMs: number
  readonly setup: ScenarioSetup
  /** Schedules the faults. */
  faults(ctx: FaultContext): void
}

/** Ids of nodes that have not left. */
function present(cluster: SimCluster): string[] {
  return cluster.ids().filter((id) => cluster.node(id).state !== 'stopped')
}

/** Ids of nodes that run (up or paused). */
function running(cluster: SimCluster): string[] {
  return cluster.ids().filter((id) => cluster.node(id).alive)
}

/** A random minority of `ids` (1 .. ⌊(n−1)/2⌋ nodes), optionally forced to include `include`. */
function minority(rng: Rng, ids: readonly string[], include?: string): string[] {
  const max = Math.max(1, Math.floor((ids.length - 1) / 2))
  const size = rng.between(1, max)
  const others = rng.shuffle(ids.filter((id) => id !== include))
  return include === undefined ? others.slice(0, size) : [include, ...others.slice(0, size - 1)]
}

function rest(ids: readonly string[], minus: readonly string[]): string[] {
  return ids.filter((id) => !minus.includes(id))
}

/** The current leader, or a random running node when there is none. */
function leaderOrAny(ctx: FaultContext): string | undefined {
  const leader = ctx.cluster.leader()
  if (leader !== undefined) return leader.id
  const ids = running(ctx.cluster)
  return ids.length === 0 ? undefined : ctx.rng.pick(ids)
}

/**
 * A lossy, duplicating, reordering network (a congested or flaky path; TCP
 * retransmits show up as long tails), which also replays old messages
 * seconds later.
 */
function lossyProfile(rng: Rng): NetworkProfile {
  return {
    latencyMinUs: 200,
    latencyMaxUs: rng.between(2_000, 10_000),
    tailChance: 0.02 + rng.next() * 0.08,
    tailMaxUs: rng.between(100_000, 1_200_000),
    dropChance: 0.02 + rng.next() * 0.18,
    duplicateChance: 0.01 + rng.next() * 0.09,
    replayChance: rng.next() * 0.05,
    replayMinUs: 300_000,
    replayMaxUs: 3_000_000,
  }
}

/** A network that replays a share of old messages 0.3-3 s later (flapping links retransmit stale data). */
const REPLAYING_LAN: NetworkProfile = { ...LAN_PROFILE, replayChance: 0.05, replayMinUs: 300_000, replayMaxUs: 3_000_000 }

const leaderPartition: Scenario = {
  name: 'leader-partition',
  summary: 'the leader is cut off (alone, or with a minority) again and again; the majority elects a new one',
  faultMs: 15_000,
  setup: {},
  faults(ctx) {
    ctx.rounds(1_500, 14_000, () => {
      const leader = leaderOrAny(ctx)
      if (leader === undefined) return 500
      const ids = present(ctx.cluster)
      const side = ctx.rng.chance(0.5) ? [leader] : minority(ctx.rng, ids, leader)
      ctx.cluster.partition([side, rest(ids, side)])
      const holdMs = ctx.rng.between(800, 4_000)
      ctx.at(nowMs(ctx) + holdMs, () => ctx.cluster.heal())
      return holdMs + ctx.rng.between(500, 2_500)
    })
  },
}

const minorityPartition: Scenario = {
  name: 'minority-partition',
  summary: 'a random minority is split off (sometimes into three groups with no majority at all), then healed',
  faultMs: 15_000,
  setup: {},
  faults(ctx) {
    ctx.rounds(1_000, 14_000, () => {
      const ids = present(ctx.cluster)
      if (ctx.rng.chance(0.2) && ids.length >= 3) {
        // No side has a majority: nobody may commit until it heals.
        const shuffled = ctx.rng.shuffle(ids)
        const a = Math.max(1, Math.floor(ids.length / 3))
        const b = Math.max(1, Math.floor(ids.length / 3))
        ctx.cluster.partition([shuffled.slice(0, a), shuffled.slice(a, a + b), shuffled.slice(a + b)])
      } else {
        const side = minority(ctx.rng, ids)
        ctx.cluster.partition([side, rest(ids, side)])
      }
      const holdMs = ctx.rng.between(500, 5_000)
      ctx.at(nowMs(ctx) + holdMs, () => ctx.cluster.heal())
      return holdMs + ctx.rng.between(300, 2_000)
    })
  },
}

const asymmetricPartition: Scenario = {
  name: 'asymmetric-partition',
  summary: 'one-way cuts (the leader can send but not hear, or hear but not send) and bridge partitions where one node sees both sides',
  faultMs: 15_000,
  setup: {},
  faults(ctx) {
    ctx.rounds(1_000, 14_000, () => {
      const ids = present(ctx.cluster)
      const leader = leaderOrAny(ctx)
      const kind = ctx.rng.int(4)
      if (kind === 0 && leader !== undefined) {
        // The leader's heartbeats go out, but no answer comes back: check-quorum must depose it.
        for (const id of ids) if (id !== leader) ctx.cluster.cutOneWay(id, leader)
      } else if (kind === 1 && leader !== undefined) {
        // The leader hears everyone but reaches only some: the others time out and pre-vote.
        for (const id of minority(ctx.rng, rest(ids, [leader]).length > 0 ? rest(ids, [leader]) : ids)) ctx.cluster.cutOneWay(leader, id)
      } else if (kind === 2 && ids.length >= 3) {
        // Bridge: two sides that cannot talk, and one node both sides reach.
        const shuffled = ctx.rng.shuffle(ids)
        const bridge = shuffled[0] as string
        const half = Math.floor((shuffled.length - 1) / 2)
        const a = shuffled.slice(1, 1 + half)
        const b = shuffled.slice(1 + half)
        ctx.cluster.count('bridge')
        ctx.cluster.trace.note(ctx.cluster.scheduler.nowUs, 'fault', `bridge: ${bridge} sees both [${a.join(' ')}] and [${b.join(' ')}]`)
        ctx.cluster.network.heal()
        ctx.cluster.network.cutBetween(a, b)
      } else {
        // Random one-way cuts between random pairs.
        const cuts = ctx.rng.between(1, ids.length)
        for (let i = 0; i < cuts; i++) {
          const from = ctx.rng.pick(ids)
          const to = ctx.rng.pick(ids)
          if (from !== to) ctx.cluster.cutOneWay(from, to)
        }
      }
      const holdMs = ctx.rng.between(800, 4_000)
      ctx.at(nowMs(ctx) + holdMs, () => ctx.cluster.heal())
      return holdMs + ctx.rng.between(300, 2_000)
    })
  },
}

const flappingNetwork: Scenario = {
  name: 'flapping-network',
  summary: 'the network flaps every 0.1-0.8 s between healed and a fresh random split, and replays old messages; elections start and abort',
  faultMs: 12_000,
  setup: { network: REPLAYING_LAN },
  faults(ctx) {
    ctx.rounds(500, 12_000, () => {
      const ids = present(ctx.cluster)
      if (ctx.rng.chance(0.4)) ctx.cluster.heal()
      else {
        const shuffled = ctx.rng.shuffle(ids)
        const cut = ctx.rng.between(1, Math.max(1, ids.length - 1))
        ctx.cluster.partition([shuffled.slice(0, cut), shuffled.slice(cut)])
      }
      return ctx.rng.between(100, 800)
    })
  },
}

const crashRestart: Scenario = {
  name: 'crash-restart',
  summary: 'nodes lose power (unsynced writes lost or torn) and restart from disk; the leader, a minority, sometimes a majority',
  faultMs: 15_000,
  setup: {},
  faults(ctx) {
    ctx.rounds(1_000, 13_000, () => {
      const ids = running(ctx.cluster)
      if (ids.length === 0) return 500
      let victims: string[]
      const dice = ctx.rng.next()
      if (dice < 0.4) {
        const leader = leaderOrAny(ctx)
        victims = leader === undefined ? [] : [leader]
      } else if (dice < 0.85) {
        victims = minority(ctx.rng, present(ctx.cluster)).filter((id) => ctx.cluster.node(id).alive)
      } else {
        // A majority down: no progress, and nothing acknowledged may be lost.
        victims = ctx.rng.shuffle(ids).slice(0, Math.floor(present(ctx.cluster).length / 2) + 1)
      }
      const midWrite = victims.length === 1 && ctx.rng.chance(0.5)
      for (const id of victims) {
        const downMs = ctx.rng.between(100, 4_000)
        const restartLater = (): void => ctx.at(nowMs(ctx) + downMs, () => ctx.cluster.restart(id))
        // Half the single crashes wait for a log write in flight: its torn bytes are what recovery must cut.
        if (midWrite) ctx.cluster.crashDuringWrite(id, 200, restartLater)
        else {
          ctx.cluster.crash(id)
          restartLater()
        }
      }
      return ctx.rng.between(800, 3_000)
    })
  },
}

const rollingRestart: Scenario = {
  name: 'rolling-restart',
  summary: "every node in turn stops gracefully (hands over leadership, announces its leave, autopilot removes it) and comes back from its disk",
  faultMs: 24_000,
  setup: {},
  faults(ctx) {
    const ids = ctx.rng.shuffle(present(ctx.cluster))
    let t = 1_000
    const slotMs = Math.floor(22_000 / Math.max(1, ids.length))
    for (const id of ids) {
      ctx.at(t, () => ctx.cluster.leave(id))
      ctx.at(t + ctx.rng.between(Math.floor(slotMs / 3), Math.floor(slotMs / 2)), () => ctx.cluster.restart(id))
      t += slotMs
    }
  },
}

const lossyNetwork: Scenario = {
  name: 'lossy-network',
  summary: 'messages are dropped (2-20%), duplicated, replayed seconds later and delayed by long tails that reorder them, with changing rates; a dedup window of 32 requests, so replayed proposals outlive it',
  faultMs: 15_000,
  // The daemon remembers 10,000 requests; 32 here let a proposal replayed seconds later arrive
  // after the window forgot it, which is what its horizon is for (Command.base).
  setup: { settings: { storeOptions: { dedupMaxEntries: 32 } } },
  faults(ctx) {
    ctx.rounds(500, 15_000, () => {
      if (ctx.rng.chance(0.2)) ctx.cluster.setNetwork(LAN_PROFILE, 'healthy LAN')
      else {
        const p = lossyProfile(ctx.rng)
        ctx.cluster.setNetwork(p, `lossy: drop ${(p.dropChance * 100).toFixed(0)}%, duplicate ${(p.duplicateChance * 100).toFixed(0)}%, ${(p.tailChance * 100).toFixed(0)}% delayed up to ${(p.tailMaxUs / 1000).toFixed(0)} ms`)
      }
      return ctx.rng.between(1_000, 4_000)
    })
  },
}

const membershipChange: Scenario = {
  name: 'membership-change-under-faults',
  summary: 'new nodes join (learner, snapshot, promotion by autopilot), a voter leaves, a dead voter is removed and comes back, amid partitions',
  faultMs: 22_000,
  setup: { settings: { autopilot: { deadGraceMs: 3_000, caughtUpLagEntries: 128 } } },
  faults(ctx) {
    const joins = ctx.rng.between(1, 2)
    for (let i = 0; i < joins; i++) ctx.at(ctx.rng.between(1_000, 12_000), () => void ctx.cluster.join())
    ctx.at(ctx.rng.between(3_000, 15_000), () => {
      const ids = running(ctx.cluster)
      if (ids.length > 3) ctx.cluster.leave(ctx.rng.pick(ids))
    })
    ctx.at(ctx.rng.between(2_000, 10_000), () => {
      const ids = running(ctx.cluster)
      if (ids.length <= 3) return
      const victim = ctx.rng.pick(ids)
      ctx.cluster.crash(victim)
      // Down past the dead grace: autopilot removes it; when it returns it is added back.
      ctx.at(nowMs(ctx) + ctx.rng.between(5_000, 9_000), () => ctx.cluster.restart(victim))
    })
    ctx.rounds(2_000, 20_000, () => {
      const ids = present(ctx.cluster)
      if (ctx.rng.chance(0.5)) {
        const side = minority(ctx.rng, ids)
        ctx.cluster.partition([side, rest(ids, side)])
        const holdMs = ctx.rng.between(500, 3_000)
        ctx.at(nowMs(ctx) + holdMs, () => ctx.cluster.heal())
        return holdMs + ctx.rng.between(1_000, 3_000)
      }
      const leader = leaderOrAny(ctx)
      if (leader !== undefined && ctx.cluster.node(leader).state === 'up') {
        ctx.cluster.crash(leader)
        ctx.at(nowMs(ctx) + ctx.rng.between(300, 2_500), () => ctx.cluster.restart(leader))
      }
      return ctx.rng.between(1_500, 4_000)
    })
  },
}

const snapshotInstall: Scenario = {
  name: 'snapshot-install',
  summary: 'snapshots every 40 entries; nodes fall behind compaction (down or cut off) and catch up by snapshot; a new node joins',
  faultMs: 18_000,
  setup: {
    settings: { snapshotEveryEntries: 40, keepEntriesAfterSnapshot: 10 },
    workload: { mix: { put: 5, get: 1, cget: 2, cas: 2, delete: 1 }, thinkMinMs: 10, thinkMaxMs: 120 },
  },
  faults(ctx) {
    ctx.at(ctx.rng.between(4_000, 14_000), () => void ctx.cluster.join())
    ctx.rounds(1_000, 16_000, () => {
      const ids = running(ctx.cluster)
      if (ids.length === 0) return 500
      const victim = ctx.rng.chance(0.3) ? (leaderOrAny(ctx) ?? ctx.rng.pick(ids)) : ctx.rng.pick(ids)
      const downMs = ctx.rng.between(2_000, 5_000)
      if (ctx.rng.chance(0.5)) {
        ctx.cluster.crash(victim)
        ctx.at(nowMs(ctx) + downMs, () => ctx.cluster.restart(victim))
      } else {
        const all = present(ctx.cluster)
        ctx.cluster.partition([[victim], rest(all, [victim])])
        ctx.at(nowMs(ctx) + downMs, () => ctx.cluster.heal())
      }
      return downMs + ctx.rng.between(500, 2_000)
    })
  },
}

/** A degraded link: 0.2-1.5 s per message (a congested or failing path that still delivers). */
const SLOW_LINK: NetworkProfile = { ...LAN_PROFILE, latencyMinUs: 200_000, latencyMaxUs: 1_500_000, tailChance: 0 }

const slowLinks: Scenario = {
  name: 'slow-links',
  summary: 'gray failures: links turn very slow (0.2-1.5 s, still delivering) while the leader is cut off, so elections drag on and votes arrive terms late',
  faultMs: 15_000,
  setup: {},
  faults(ctx) {
    ctx.rounds(1_000, 14_000, () => {
      const ids = present(ctx.cluster)
      ctx.cluster.network.resetLinkProfiles()
      const slow = ctx.rng.between(1, ids.length)
      const pairs: string[] = []
      for (let i = 0; i < slow * 4; i++) {
        const from = ctx.rng.pick(ids)
        const to = ctx.rng.pick(ids)
        if (from === to) continue
        // A degraded path is slow both ways.
        ctx.cluster.network.setLinkProfile(from, to, SLOW_LINK)
        ctx.cluster.network.setLinkProfile(to, from, SLOW_LINK)
        pairs.push(`${from}<->${to}`)
      }
      ctx.cluster.count('slow-links')
      ctx.cluster.trace.note(ctx.cluster.scheduler.nowUs, 'fault', `slow links: ${pairs.join(' ')}`)
      const leader = leaderOrAny(ctx)
      if (leader !== undefined) {
        // Cut the leader off too, so an election has to run over the slow links.
        ctx.cluster.partition([[leader], rest(ids, [leader])])
        ctx.at(nowMs(ctx) + ctx.rng.between(500, 2_000), () => ctx.cluster.heal())
      }
      return ctx.rng.between(1_500, 3_500)
    })
  },
}

/** The clock-skew scenario's bound on clock rate error. */
const CLOCK_DRIFT_MAX = 0.05

const clockSkew: Scenario = {
  name: 'clock-skew',
  summary: 'clocks drift up to ±5% and timers fire up to 30 ms late; GC-like pauses stall nodes (the leader too) past the election timeout',
  faultMs: 15_000,
  setup: {
    maxClockDrift: CLOCK_DRIFT_MAX,
    clock: (_id, rng) => ({
      driftRatio: (rng.next() * 2 - 1) * CLOCK_DRIFT_MAX,
      offsetMs: rng.between(-60_000, 60_000),
      timerJitterUs: rng.between(0, 30_000),
    }),
  },
  faults(ctx) {
    ctx.rounds(1_000, 14_000, () => {
      const ids = running(ctx.cluster)
      if (ids.length === 0) return 500
      if (ctx.rng.chance(0.25)) {
        const id = ctx.rng.pick(ids)
        ctx.cluster.setClock(id, { ...ctx.cluster.node(id).clock.profile, driftRatio: (ctx.rng.next() * 2 - 1) * CLOCK_DRIFT_MAX })
        return ctx.rng.between(200, 1_000)
      }
      const victim = ctx.rng.chance(0.5) ? (leaderOrAny(ctx) ?? ctx.rng.pick(ids)) : ctx.rng.pick(ids)
      const pauseMs = ctx.rng.between(100, 3_000)
      ctx.cluster.pause(victim)
      ctx.at(nowMs(ctx) + pauseMs, () => ctx.cluster.resume(victim))
      return pauseMs + ctx.rng.between(300, 2_000)
    })
  },
}

/** Services settings of the services scenarios: a 2 s reschedule grace, a 1 s drain, hosts in zones a (odd) and b (even). */
const SERVICES: ServiceSettings = {
  rescheduleGraceMs: 2_000,
  drainMs: 1_000,
  labels: (id) => ({ zone: Number(id.slice(1)) % 2 === 1 ? 'a' : 'b' }),
}

/** Running task containers on `id`'s engine. */
function taskCount(cluster: SimCluster, id: string): number {
  return cluster.node(id).runtime.engineContainers().filter((c) => c.state === 'running' && c.labels[TASK_LABEL] !== undefined).length
}

/** A running node with the most running task containers (ties drawn at random), if any runs one. */
function busiest(ctx: FaultContext): string | undefined {
  const ids = running(ctx.cluster).filter((id) => ctx.cluster.node(id).state === 'up')
  const counts = ids.map((id) => [id, taskCount(ctx.cluster, id)] as const)
  const max = Math.max(0, ...counts.map(([, n]) => n))
  const top = counts.filter(([, n]) => n === max && n > 0).map(([id]) => id)
  return top.length === 0 ? undefined : ctx.rng.pick(top)
}

const serviceHostCrash: Scenario = {
  name: 'service-host-crash',
  summary: 'services run; the host running the most tasks loses power for 4-9 s (past the reschedule grace: its tasks move) and comes back',
  faultMs: 22_000,
  setup: { settings: { services: SERVICES } },
  faults(ctx) {
    ctx.rounds(5_000, 19_000, () => {
      const victim = busiest(ctx)
      if (victim === undefined) return 1_000
      ctx.cluster.crash(victim)
      const downMs = ctx.rng.between(4_000, 9_000)
      ctx.at(nowMs(ctx) + downMs, () => ctx.cluster.restart(victim))
      return downMs + ctx.rng.between(2_000, 4_000)
    })
  },
}

const servicePartition: Scenario = {
  name: 'service-partition',
  summary: 'services run; the host running the most tasks is cut off for 2-8 s (sometimes past the grace: its tasks move while its engine runs them) and comes back',
  faultMs: 22_000,
  setup: { settings: { services: SERVICES } },
  faults(ctx) {
    ctx.rounds(5_000, 19_000, () => {
      const victim = busiest(ctx)
      if (victim === undefined) return 1_000
      const ids = present(ctx.cluster)
      ctx.cluster.partition([[victim], rest(ids, [victim])])
      const holdMs = ctx.rng.between(2_000, 8_000)
      ctx.at(nowMs(ctx) + holdMs, () => ctx.cluster.heal())
      return holdMs + ctx.rng.between(2_000, 4_000)
    })
  },
}

const serviceRollingUpdateLeaderChange: Scenario = {
  name: 'service-rolling-update-leader-change',
  summary: 'rolling updates (some to a broken image that fails its health check) while the leader is killed or cut off; the next leader carries the rollout on',
  faultMs: 22_000,
  setup: { settings: { services: SERVICES }, serviceWorkload: { mix: { scale: 1, update: 6, broken: 1.5, remove: 0 }, gapMs: [500, 2_000] } },
  faults(ctx) {
    ctx.rounds(4_000, 20_000, () => {
      const leader = ctx.cluster.leader()?.id
      if (leader === undefined) return 500
      if (ctx.rng.chance(0.5)) {
        ctx.cluster.crash(leader)
        ctx.at(nowMs(ctx) + ctx.rng.between(500, 3_000), () => ctx.cluster.restart(leader))
      } else {
        ctx.cluster.partition([[leader], rest(present(ctx.cluster), [leader])])
        ctx.at(nowMs(ctx) + ctx.rng.between(1_000, 3_000), () => ctx.cluster.heal())
      }
      return ctx.rng.between(3_500, 6_000)
    })
  },
}

const serviceScaleLossy: Scenario = {
  name: 'service-scale-lossy',
  summary: 'services scaled up and down (and now and then updated or removed) while messages are dropped, duplicated, delayed and replayed',
  faultMs: 20_000,
  setup: { settings: { services: SERVICES }, serviceWorkload: { mix: { scale: 6, update: 1, broken: 0, remove: 0.3 }, gapMs: [400, 1_500], maxReplicas: 6 } },
  faults(ctx) {
    ctx.rounds(1_000, 20_000, () => {
      if (ctx.rng.chance(0.2)) ctx.cluster.setNetwork(LAN_PROFILE, 'healthy LAN')
      else {
        const p = lossyProfile(ctx.rng)
        ctx.cluster.setNetwork(p, `lossy: drop ${(p.dropChance * 100).toFixed(0)}%, duplicate ${(p.duplicateChance * 100).toFixed(0)}%, ${(p.tailChance * 100).toFixed(0)}% delayed up to ${(p.tailMaxUs / 1000).toFixed(0)} ms`)
      }
      return ctx.rng.between(1_000, 4_000)
    })
  },
}

/** The nodes through which lock holders hold their locks now, as the leader's replica (or any running node's) says. */
function lockHolderNodes(ctx: FaultContext, locks: number): string[] {
  const source = ctx.cluster.leader() ?? ctx.cluster.node(running(ctx.cluster)[0] ?? ctx.cluster.ids()[0] ?? '')
  if (source === undefined || source.state !== 'up') return []
  const nodes = new Set<string>()
  for (let i = 0; i < locks; i++) {
    const holder = lockHolder(source.store, `lock${i}`)
    const owner = holder === null ? undefined : source.store.lease(holder.leaseId)?.owner
    if (owner !== undefined) nodes.add(owner)
  }
  return [...nodes].sort()
}

/** Lock contention: four clients on two locks, holds longer than the 3 s session TTL. */
const LOCK_WORKLOAD: Partial<WorkloadConfig> = { clients: 2, lockClients: 4, locks: 2, holdMinMs: 500, holdMaxMs: 5_000 }

const lockHolderFaults: Scenario = {
  name: 'lock-holder-faults',
  summary: 'lock holders are cut off from the leader, their peers paused past the session TTL (a GC pause), the leader\'s clock runs fast or slow and wall clocks step; never two holders',
  faultMs: 20_000,
  setup: {
    maxClockDrift: CLOCK_DRIFT_MAX,
    clock: (_id, rng) => ({ driftRatio: (rng.next() * 2 - 1) * CLOCK_DRIFT_MAX, offsetMs: rng.between(-60_000, 60_000), timerJitterUs: rng.between(0, 10_000) }),
    workload: LOCK_WORKLOAD,
  },
  faults(ctx) {
    const locks = LOCK_WORKLOAD.locks ?? 1
    ctx.rounds(1_500, 18_000, () => {
      const ids = present(ctx.cluster)
      const holders = lockHolderNodes(ctx, locks)
      const leader = ctx.cluster.leader()?.id
      const roll = ctx.rng.next()
      if (roll < 0.35 && holders.length > 0) {
        // The holder's peer alone (or, when it leads, with a minority): the other side's leader expires its session.
        const victim = ctx.rng.pick(holders)
        const side = victim === leader && ctx.rng.chance(0.5) ? minority(ctx.rng, ids, victim) : [victim]
        ctx.cluster.partition([side, rest(ids, side)])
        const holdMs = ctx.rng.between(1_000, 7_000)
        ctx.at(nowMs(ctx) + holdMs, () => ctx.cluster.heal())
        return holdMs + ctx.rng.between(300, 1_500)
      }
      if (roll < 0.65 && holders.length > 0) {
        // A pause longer than the TTL: the holder's peer does nothing, then wakes to a world that moved on.
        const victim = ctx.rng.pick(holders)
        const pauseMs = ctx.rng.between(1_000, 7_000)
        ctx.cluster.pause(victim)
        ctx.at(nowMs(ctx) + pauseMs, () => ctx.cluster.resume(victim))
        return pauseMs + ctx.rng.between(300, 1_500)
      }
      if (roll < 0.85 && leader !== undefined) {
        // The leader's clock rate changes: a fast one expires sessions early (the holder's margin covers it).
        ctx.cluster.setClock(leader, { ...ctx.cluster.node(leader).clock.profile, driftRatio: (ctx.rng.chance(0.7) ? 1 : -1) * CLOCK_DRIFT_MAX * (0.5 + ctx.rng.next() / 2) })
        return ctx.rng.between(1_000, 3_000)
      }
      const victim = leader ?? ctx.rng.pick(ids)
      ctx.cluster.stepWallClock(victim, (ctx.rng.chance(0.5) ? 1 : -1) * ctx.rng.between(1_000, 600_000))
      return ctx.rng.between(500, 2_000)
    })
  },
}

const wallClockStep: Scenario = {
  name: 'wall-clock-step',
  summary: 'services and locks run while wall clocks step by seconds to hours, forwards and backwards, on the leader and the hosts running tasks (monotonic clocks go on)',
  faultMs: 22_000,
  setup: { settings: { services: SERVICES } },
  faults(ctx) {
    ctx.rounds(4_000, 19_000, () => {
      const ids = running(ctx.cluster)
      if (ids.length === 0) return 1_000
      const pick = ctx.rng.next()
      const victims = pick < 0.3 ? [ctx.cluster.leader()?.id ?? ctx.rng.pick(ids)] : pick < 0.6 ? [busiest(ctx) ?? ctx.rng.pick(ids)] : pick < 0.8 ? ids : [ctx.rng.pick(ids)]
      const deltaMs = (ctx.rng.chance(0.5) ? 1 : -1) * (ctx.rng.chance(0.5) ? ctx.rng.between(500, 30_000) : ctx.rng.between(60_000, 7_200_000))
      for (const id of victims) ctx.cluster.stepWallClock(id, deltaMs)
      return ctx.rng.between(1_000, 3_000)
    })
  },
}

/** Every named scenario, in the order `all` runs them. */
export const SCENARIOS: readonly Scenario[] = [
  leaderPartition,
  minorityPartition,
  asymmetricPartition,
  slowLinks,
  flappingNetwork,
  crashRestart,
  rollingRestart,
  lossyNetwork,
  membershipChange,
  snapshotInstall,
  clockSkew,
  serviceHostCrash,
  servicePartition,
  serviceRollingUpdateLeaderChange,
  serviceScaleLossy,
  lockHolderFaults,
  wallClockStep,
]

/** The scenario called `name`, if any. */
export function scenarioByName(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name)
}

/** The scenario names `name` stands for ('all': every one). */
export function expandScenario(name: string): string[] | undefined {
  if (name === 'all') return SCENARIOS.map((s) => s.name)
  return scenarioByName(name) === undefined ? undefined : [name]
}

/** Nodes get a perfect clock unless a scenario says otherwise. */
export const DEFAULT_CLOCK = (): ClockProfile => EXACT_CLOCK

function nowMs(ctx: FaultContext): number {
  return ctx.cluster.scheduler.nowUs / 1000
}
