// Runs one seed of one scenario, start to verdict, VOPR-style:
//
//   1. safety phase: the workload runs while the scenario's faults fire; the
//      Raft safety checker watches every step and stops the run at a breach;
//   2. heal: the network is made whole, paused nodes resume, crashed ones
//      restart (nodes that left stay gone);
//   3. liveness phase: a leader must appear and a probe write must commit
//      within LIVENESS_BOUND_MS; then replicas converge and every key gets a
//      final consistent read;
//   4. end-of-run checks on the history: acknowledged writes kept, no phantom
//      reads, replicas agree, linearizability, lock safety.
//
// Everything here is deterministic: the same options give the same trace,
// digest and verdict in any process.

import { LAN_PROFILE } from './network.ts'
import { SSD_PROFILE } from './disk.ts'
import { SimCluster } from './cluster.ts'
import { ClientApi, KV_PREFIX } from './client-api.ts'
import { History, describeOp, type KvOp } from './history.ts'
import { NO_DRIVER_FAULTS, outcomeUnknown, type NodeSettings, type SimNode } from './node.ts'
import { stream } from './random.ts'
import { DEFAULT_CLOCK, scenarioByName, type FaultContext } from './scenarios.ts'
import { SchedulerBoundError } from './scheduler.ts'
import type { Digest } from './trace.ts'
import { DEFAULT_WORKLOAD, Workload } from './workload.ts'
import { ContainerWorkload, DEFAULT_CONTAINER_WORKLOAD } from './containers.ts'
import { checkContainerRecords, lostDue, type LostRule } from './checkers/containers.ts'
import { CONTAINERS_PREFIX, type Container } from '../storage/statestore/index.ts'
import { checkAcknowledgedWrites, checkAcknowledgedWritesDurable, checkNoPhantomReads, checkReplicasAgree } from './checkers/durability.ts'
import { checkHistory, linearizabilityViolations } from './checkers/linearizability.ts'
import { checkLiveness, type LivenessObservation } from './checkers/liveness.ts'
import { checkLocks } from './checkers/locks.ts'
import { ViolationError, type Violation } from './checkers/violation.ts'
import { checkServicesConverged, PlacementChecker, RolloutChecker, type ServiceHostTruth } from './checkers/services.ts'
import { DEFAULT_SERVICE_WORKLOAD, ServiceWorkload } from './service-workload.ts'
import { REQUEST_TIMEOUT_MS } from '../protocols/raft/index.ts'

/** Broken variants a run can inject, to prove the checkers catch them (test-only). */
export type Injection =
  | 'count-stale-votes'
  | 'ack-before-fsync'
  | 'local-consistent-reads'
  | 'container-events-only'
  | 'scheduler-ignores-liveness'
  | 'agent-no-stop-obsolete'
  | 'rollout-ignores-health'
  | 'monitor-on-host-clock'
  | 'agent-wall-clock-deadlines'
  | 'lock-client-no-deadline'
  | 'proposals-without-base'

/** Every injection, with what it breaks. */
export const INJECTIONS: Readonly<Record<Injection, string>> = {
  'count-stale-votes': 'the Raft core counts a vote granted in an older term (RaftTestingFaults.countStaleTermVotes)',
  'ack-before-fsync': 'the disk acknowledges log appends before they are durable and writes back once a second',
  'local-consistent-reads': 'the driver serves consistent reads from the local replica without ReadIndex',
  'container-events-only': 'a host writes its container records from events alone, never reconciling with the full list',
  'scheduler-ignores-liveness': 'the leader\'s scheduler sees every host as alive: it places on dead hosts and reschedules nothing',
  'agent-no-stop-obsolete': 'host agents never stop a container that is no longer its task\'s current instance',
  'rollout-ignores-health': 'rolling updates do not wait for health: every new instance counts as running and stable at once',
  'monitor-on-host-clock': 'rolling updates time monitor windows on the hosts\' report times (their wall clocks) instead of the leader\'s own clock',
  'agent-wall-clock-deadlines': 'host agents time back-offs, drains and onDisconnect on the wall clock instead of the monotonic one',
  'proposals-without-base': 'proposers leave out the index they first proposed at, so a duplicate older than the dedup window applies again',
  'lock-client-no-deadline': 'lock holders keep no session deadline and hold until their own replica shows the lock gone (how `shoal lock` held before issue 11)',
}

/** What to run. */
export interface RunOptions {
  readonly scenario: string
  readonly nodes: number
  readonly seed: number
  readonly inject?: readonly Injection[]
  /** Keep a readable timeline. */
  readonly trace?: boolean
  /** Run the StateStore's own invariant checks after every applied batch (default true). */
  readonly checkStore?: boolean
  /**
   * Accept keys the linearizability search could not decide within its bound (default false:
   * each such key is a violation). They are counted in `stats.inconclusiveKeys` either way.
   */
  readonly allowInconclusive?: boolean
}

/** Counters of one run. */
export interface RunStats {
  readonly events: number
  readonly messages: number
  readonly dropped: number
  readonly duplicated: number
  readonly ops: number
  readonly acked: number
  readonly unknown: number
  readonly leaders: number
  readonly lockHolds: number
  /** Keys whose linearizability search hit its step bound (neither proved nor refuted). */
  readonly inconclusiveKeys: number
  /** Simulated ms from healing to the first leader and to the first committed write. */
  readonly leaderAfterHealMs: number | null
  readonly commitAfterHealMs: number | null
  /** What happened how often: faults (crash, partition, ...), snapshot installs, membership changes, replays. */
  readonly counts: Readonly<Record<string, number>>
}

/** The verdict of one run. */
export interface RunResult {
  readonly scenario: string
  readonly nodes: number
  readonly seed: number
  readonly inject: readonly Injection[]
  readonly violations: readonly Violation[]
  readonly simulatedUs: number
  /** A hash of the run's whole trace: equal options give equal digests. */
  readonly digest: string
  readonly stats: RunStats
  /** The readable timeline (empty unless `trace`). */
  readonly traceLines: readonly string[]
}

/** After healing, a leader and a committed write must appear within this (simulated). */
export const LIVENESS_BOUND_MS = 10_000
/** How long replicas get to converge after the probe write (a lost snapshot is retried after 20 election timeouts). */
const CONVERGE_MAX_MS = 30_000
/** Bound on events per phase of a run (a whole run takes 5-50 thousand): past it the run is reported as a livelock. */
const EVENTS_MAX = 5_000_000
/** After the KV checks, services get this long (simulated) to converge before they are judged. */
export const SERVICES_CONVERGE_MAX_MS = 60_000
/** How often the rolling-update checker samples besides engine changes. */
const ROLLOUT_POLL_MS = 100
/** How often the services' convergence is looked at while waiting. */
const SERVICES_POLL_MS = 250
/** A probe or final-read attempt is abandoned after this long and retried through another node. */
const PROBE_TIMEOUT_MS = 1_000
/** Attempts at a final read per key. */
const FINAL_READ_ATTEMPTS = 10

/** The daemon's settings (raft-node.ts, peer.ts) except snapshots, taken more often so compaction is exercised. */
export const DEFAULT_NODE_SETTINGS: NodeSettings = {
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  snapshotEveryEntries: 500,
  keepEntriesAfterSnapshot: 200,
  requestTimeoutMs: REQUEST_TIMEOUT_MS,
  disk: SSD_PROFILE,
  autopilot: { deadGraceMs: 30_000, caughtUpLagEntries: 128 },
  faults: NO_DRIVER_FAULTS,
  raftFaults: undefined,
  services: null,
}

/** The command that replays one failing run with its timeline. */
export function replayCommand(scenario: string, nodes: number, seed: number, inject: readonly Injection[] = [], allowInconclusive = false): string {
  return `shoal simulate --scenario ${scenario} --nodes ${nodes} --seeds ${seed}..${seed}${inject.map((i) => ` --inject ${i}`).join('')}${allowInconclusive ? ' --allow-inconclusive' : ''} --trace`
}

/** What one node ended a run as, for the digest. */
export interface NodeEndState {
  readonly id: string
  readonly state: string
  /** Raft term, commit and applied index, and the StateStore's digest; null while the node is down. */
  readonly term: number | null
  readonly commit: number | null
  readonly applied: number | null
  readonly store: string | null
  /** The last index its disk holds durably. */
  readonly durableIndex: number
  /** Its host's engine (it outlives the peer). */
  readonly engine: readonly Container[]
}

/**
 * Mixes where every node ended into a run's digest, so that two runs whose messages matched
 * but whose replicas, disks or engines ended apart do not share a digest.
 */
export function mixEndState(digest: Digest, nodes: readonly NodeEndState[]): void {
  digest.text('end-state')
  for (const n of nodes) digest.value(n)
  digest.number(nodes.length)
}

/** Every node's end state, in start order. */
function endStates(cluster: SimCluster): NodeEndState[] {
  return cluster.ids().map((id) => {
    const n = cluster.node(id)
    const status = n.alive ? n.core.status() : null
    return {
      id,
      state: n.state,
      term: status === null ? null : status.term,
      commit: status === null ? null : status.commit,
      applied: n.alive ? n.appliedIndex : null,
      store: n.alive ? n.store.digest() : null,
      durableIndex: n.disk.durableLastIndex(),
      engine: n.runtime.engineContainers(),
    }
  })
}

/**
 * Voters of the latest committed configuration the cluster knows (that of the node that has
 * applied the most), with what each holds on disk: without a leader, acknowledged writes are
 * checked against these.
 */
function durableVoters(cluster: SimCluster): Array<{ id: string; durableIndex: number }> {
  let freshest: SimNode | undefined
  for (const n of cluster.nodes.values()) if (freshest === undefined || n.appliedIndex > freshest.appliedIndex) freshest = n
  const voters = freshest?.confState.voters ?? []
  return voters.map((id) => ({ id, durableIndex: cluster.nodes.get(id)?.disk.durableLastIndex() ?? 0 }))
}

/** Runs one seed of one scenario. */
export function runSeed(options: RunOptions): RunResult {
  const scenario = scenarioByName(options.scenario)
  if (scenario === undefined) throw new RangeError(`unknown scenario ${options.scenario}`)
  const inject = options.inject ?? []
  const seed = options.seed
  const setup = scenario.setup
  const settings: NodeSettings = {
    ...DEFAULT_NODE_SETTINGS,
    ...setup.settings,
    faults: {
      ackBeforeFsync: inject.includes('ack-before-fsync'),
      localConsistentReads: inject.includes('local-consistent-reads'),
      containerEventsOnly: inject.includes('container-events-only'),
      proposalsWithoutBase: inject.includes('proposals-without-base'),
      services: {
        schedulerIgnoresLiveness: inject.includes('scheduler-ignores-liveness'),
        agentNoStopObsolete: inject.includes('agent-no-stop-obsolete'),
        rolloutIgnoresHealth: inject.includes('rollout-ignores-health'),
        monitorOnHostClock: inject.includes('monitor-on-host-clock'),
        agentWallDeadlines: inject.includes('agent-wall-clock-deadlines'),
      },
    },
    raftFaults: inject.includes('count-stale-votes') ? { countStaleTermVotes: true } : undefined,
  }
  const cluster = new SimCluster({
    seed,
    voters: options.nodes,
    settings,
    network: setup.network ?? LAN_PROFILE,
    clock: setup.clock ?? DEFAULT_CLOCK,
    checkStore: options.checkStore ?? true,
    keepTrace: options.trace === true,
  })
  const scheduler = cluster.scheduler
  const history = new History()
  const workload = new Workload(cluster, history, stream(seed, 'workload'), { ...DEFAULT_WORKLOAD, ...setup.workload, ...(inject.includes('lock-client-no-deadline') ? { lockClientNoDeadline: true } : {}) }, setup.maxClockDrift ?? 0)
  const api = new ClientApi(cluster)
  const containerWorkload = new ContainerWorkload({
    scheduler,
    rng: stream(seed, 'containers'),
    config: DEFAULT_CONTAINER_WORKLOAD,
    hosts: () => cluster.ids().map((id) => cluster.node(id)),
    note: (text) => cluster.trace.note(scheduler.nowUs, 'fault', text),
    log: (text) => cluster.trace.note(scheduler.nowUs, 'docker', text),
  })
  const probeRng = stream(seed, 'probe')
  // Services run only in the scenarios that have them; the others keep their seeds and digests.
  const services = settings.services === null ? null : new ServiceWorkload({ cluster, api, rng: stream(seed, 'services'), config: { ...DEFAULT_SERVICE_WORKLOAD, ...setup.serviceWorkload } })
  const placement = new PlacementChecker((host) => cluster.nodes.get(host)?.downSinceUs ?? null)
  const rollouts = new RolloutChecker({
    engines: () => cluster.ids().map((id) => [id, cluster.node(id).runtime.engineContainers()] as const),
    faultyHosts: () => faultyHosts(cluster),
  })
  if (services !== null) {
    cluster.serviceObserver = placement
    cluster.onEngineChange = () => rollouts.sample(scheduler.nowUs)
    // Between engine changes too, so a short fault cannot slip between two samples.
    const poll = (): void => {
      rollouts.sample(scheduler.nowUs)
      if (scheduler.nowUs < faultEndUs) scheduler.after(ROLLOUT_POLL_MS * 1000, poll)
    }
    scheduler.after(ROLLOUT_POLL_MS * 1000, poll)
    services.onSpecCommitted = (name, before, after) => rollouts.specCommitted(name, before, after)
  }
  const violations: Violation[] = []
  const faultEndUs = scenario.faultMs * 1000
  let liveness: LivenessObservation | null = null

  const faultRng = stream(seed, 'faults')
  const ctx: FaultContext = {
    cluster,
    rng: faultRng,
    at: (ms, fn) => scheduler.at(Math.round(ms * 1000), fn),
    rounds: (fromMs, untilMs, round) => {
      const next = (): void => {
        if (scheduler.nowUs >= untilMs * 1000) return
        const gapMs = round()
        scheduler.after(Math.max(1, Math.round(gapMs * 1000)), next)
      }
      scheduler.at(fromMs * 1000, next)
    },
  }

  const trace = cluster.trace
  trace.note(0, 'phase', `scenario ${scenario.name}, ${options.nodes} nodes, seed ${seed}${inject.length > 0 ? `, injected: ${inject.join(', ')}` : ''}`)
  let stoppedEarly = false
  try {
    workload.start(faultEndUs)
    containerWorkload.start(faultEndUs)
    services?.start(faultEndUs)
    scenario.faults(ctx)
    scheduler.runUntil(faultEndUs, undefined, EVENTS_MAX)

    healEverything(cluster)
    workload.stop()
    containerWorkload.stop()
    services?.stop()
    trace.note(scheduler.nowUs, 'phase', 'faults healed; liveness phase')
    liveness = runLiveness(cluster, api, history, probeRng)
    violations.push(...checkLiveness(liveness))

    settle(cluster, workload, history, api, probeRng, liveness.healedAtUs)
    if (services !== null) violations.push(...convergeServices(cluster, services))
  } catch (err) {
    stoppedEarly = true
    violations.push(asViolation(err, scheduler.nowUs))
  }

  const endUs = scheduler.nowUs
  let inconclusiveKeys = 0
  if (!stoppedEarly) {
    const leader = cluster.leader()
    if (leader !== undefined) violations.push(...checkAcknowledgedWrites(history.ops, leader.core.status().commit, endUs))
    else violations.push(...checkAcknowledgedWritesDurable(history.ops, durableVoters(cluster), endUs))
    violations.push(...checkNoPhantomReads(history.ops, endUs))
    violations.push(...checkReplicasAgree(cluster.aliveNodes().filter((n) => n.state === 'up').map((n) => ({ id: n.id, applied: n.appliedIndex, digest: n.store.digest() })), endUs))
    const lin = checkHistory(history.ops)
    inconclusiveKeys = lin.inconclusive.length
    violations.push(...linearizabilityViolations(lin, endUs, options.allowInconclusive === true))
    violations.push(...checkLocks(history.holds, endUs))
    if (leader !== undefined) {
      const inConfig = members(cluster)
      const hosts = cluster.ids().map((id) => ({ id, member: inConfig.includes(id), engine: cluster.node(id).runtime.engineContainers(), downSinceUs: cluster.node(id).downSinceUs }))
      const leaderNowMs = leader.nowMs()
      const lost: LostRule = {
        graceUs: settings.autopilot.deadGraceMs * 1000,
        leaderUpSinceUs: leader.upSinceUs,
        leaderUpForUs: leader.upForMs() * 1000,
        leaderSinceUs: leader.leaderSinceUs ?? endUs,
        leaderView: new Map(leader.memberStates().map((m) => [m.peerId, { state: m.state, forUs: (leaderNowMs - m.stateSinceMs) * 1000 }])),
      }
      violations.push(...checkContainerRecords(hosts, leader.store.range(CONTAINERS_PREFIX).kvs, endUs, lost))
      // How often the departed-host rule had a say, so the scenario tests can tell it is not vacuous.
      for (const h of hosts) if (!h.member && h.downSinceUs !== null && lostDue(h.id, h.downSinceUs, lost, endUs)) cluster.count('departed-hosts-judged')
    }
  }
  for (const v of violations) trace.note(v.atUs, 'check', `VIOLATION ${v.checker}: ${v.message}`)
  mixEndState(trace.digest, endStates(cluster))

  const ops = history.ops
  return {
    scenario: scenario.name,
    nodes: options.nodes,
    seed,
    inject,
    violations,
    simulatedUs: endUs,
    digest: trace.digest.hex(),
    stats: {
      events: scheduler.executed,
      messages: cluster.network.stats.sent,
      dropped: cluster.network.stats.dropped,
      duplicated: cluster.network.stats.duplicated,
      ops: ops.length,
      acked: ops.filter((op) => op.outcome === 'ok' && op.kind !== 'get' && op.kind !== 'cget').length,
      unknown: ops.filter((op) => op.outcome === 'unknown').length,
      leaders: cluster.checker.leaders.size,
      lockHolds: history.holds.length,
      inconclusiveKeys,
      leaderAfterHealMs: liveness === null || liveness.leaderAtUs === null ? null : (liveness.leaderAtUs - liveness.healedAtUs) / 1000,
      commitAfterHealMs: liveness === null || liveness.commitAtUs === null ? null : (liveness.commitAtUs - liveness.healedAtUs) / 1000,
      counts: {
        ...cluster.counts,
        ...containerWorkload.counts,
        replayed: cluster.network.stats.replayed,
        ...(services === null ? {} : { ...services.counts, 'placements-checked': placement.checked, 'rollouts-watched': rollouts.opened, 'rollouts-completed': rollouts.completed, 'rollouts-cut-by-fault': rollouts.closedByFault }),
      },
    },
    traceLines: trace.lines,
  }
}

/** Ends every fault: the network is whole and lossless again, paused nodes resume, crashed ones restart. */
function healEverything(cluster: SimCluster): void {
  cluster.heal()
  cluster.network.resetLinkProfiles()
  if (cluster.network.profile !== LAN_PROFILE) cluster.setNetwork(LAN_PROFILE, 'healthy LAN')
  for (const id of cluster.ids()) {
    const n = cluster.node(id)
    if (n.state === 'paused') cluster.resume(id)
    if (n.state === 'crashed') cluster.restart(id)
  }
}

/**
 * Hosts under a fault or its aftermath: down or paused, cut off from the leader (either way;
 * without a leader, cut off from anyone), or not seen alive by the leader's failure detector
 * (until then it may still move their tasks).
 */
function faultyHosts(cluster: SimCluster): Set<string> {
  const ids = cluster.ids()
  const leader = cluster.leader()
  const out = new Set<string>()
  const net = cluster.network
  for (const id of ids) {
    if (cluster.node(id).state !== 'up') out.add(id)
    else if (net.partitioned && (leader === undefined ? ids.some((o) => o !== id && (net.isCut(id, o) || net.isCut(o, id))) : id !== leader.id && (net.isCut(id, leader.id) || net.isCut(leader.id, id)))) out.add(id)
  }
  for (const m of leader?.memberStates() ?? []) if (m.state !== 'alive' && m.state !== 'left') out.add(m.peerId)
  return out
}

/** Nodes that run and are members of `leader`'s configuration. */
function members(cluster: SimCluster): string[] {
  const leader = cluster.leader()
  const conf = leader?.core.status()
  const inConf = conf === undefined ? undefined : new Set([...conf.voters, ...conf.learners])
  return cluster.ids().filter((id) => cluster.node(id).state === 'up' && (inConf === undefined || inConf.has(id)))
}

/**
 * The liveness phase: watch for a leader, and keep writing a probe value
 * through random running nodes until one is acknowledged, or the bound passes.
 */
function runLiveness(cluster: SimCluster, api: ClientApi, history: History, rng: ReturnType<typeof stream>): LivenessObservation {
  const scheduler = cluster.scheduler
  const healedAtUs = scheduler.nowUs
  const boundUs = LIVENESS_BOUND_MS * 1000
  let leaderAtUs: number | null = null
  let commitAtUs: number | null = null
  let attempt = 0
  const watch = (): void => {
    if (leaderAtUs !== null) return
    if (cluster.leader() !== undefined) leaderAtUs = scheduler.nowUs
    else scheduler.after(10_000, watch)
  }
  const probe = (): void => {
    if (commitAtUs !== null || scheduler.nowUs > healedAtUs + boundUs) return
    const ids = cluster.ids().filter((id) => cluster.node(id).state === 'up')
    if (ids.length === 0) return
    const node = rng.pick(ids)
    const n = ++attempt
    const op = history.invoke({ client: 'probe', node, kind: 'put', key: '__liveness', value: `probe.${n}`, expected: null, invokeUs: scheduler.nowUs })
    let settled = false
    scheduler.after(PROBE_TIMEOUT_MS * 1000, () => {
      if (settled) return
      settled = true
      op.outcome = 'unknown'
      probe()
    })
    api.write(node, `probe-${n}`, { type: 'put', key: `${KV_PREFIX}__liveness`, value: ClientApi.encodeValue(`probe.${n}`) }, (o) => {
      if (settled) return
      settled = true
      if (o.kind === 'applied' && o.result.ok) {
        op.outcome = 'ok'
        op.returnUs = scheduler.nowUs
        op.index = o.index
        commitAtUs = scheduler.nowUs
        cluster.trace.note(scheduler.nowUs, 'client', `probe write via ${node} committed at index ${o.index}`)
        return
      }
      if (outcomeUnknown(o)) op.outcome = 'unknown'
      else {
        op.outcome = 'fail'
        op.returnUs = scheduler.nowUs
      }
      scheduler.after(50_000, probe)
    })
  }
  watch()
  probe()
  scheduler.runUntil(healedAtUs + boundUs, () => commitAtUs !== null && leaderAtUs !== null, EVENTS_MAX)
  return { healedAtUs, leaderAtUs, commitAtUs, boundUs }
}

/**
 * Lets the cluster converge (clients done, every member applied the leader's
 * commit), then reads every key once more, consistently, for the history.
 */
function settle(cluster: SimCluster, workload: Workload, history: History, api: ClientApi, rng: ReturnType<typeof stream>, healedAtUs: number): void {
  const scheduler = cluster.scheduler
  const limitUs = healedAtUs + (LIVENESS_BOUND_MS + CONVERGE_MAX_MS) * 1000
  const converged = (): boolean => {
    if (!workload.idle) return false
    const leader = cluster.leader()
    if (leader === undefined) return false
    const commit = leader.core.status().commit
    // Every member applied the leader's commit and converged its container records.
    return members(cluster).every((id) => cluster.node(id).appliedIndex >= commit && cluster.node(id).containersConverged())
  }
  const check = (): void => {
    if (converged() || scheduler.nowUs >= limitUs) return
    scheduler.after(50_000, check)
  }
  check()
  scheduler.runUntil(limitUs, converged, EVENTS_MAX)

  const keys = [...new Set(history.ops.filter((op) => op.client !== 'probe').map((op) => op.key))].sort()
  let pending = keys.length
  for (const key of keys) finalRead(cluster, api, history, rng, key, FINAL_READ_ATTEMPTS, () => pending--)
  scheduler.runUntil(scheduler.nowUs + FINAL_READ_ATTEMPTS * PROBE_TIMEOUT_MS * 1000 + 1_000_000, () => pending === 0, EVENTS_MAX)
}

function finalRead(cluster: SimCluster, api: ClientApi, history: History, rng: ReturnType<typeof stream>, key: string, attempts: number, done: () => void): void {
  const scheduler = cluster.scheduler
  const ids = members(cluster)
  if (attempts <= 0 || ids.length === 0) return done()
  const node = rng.pick(ids)
  const op: KvOp = history.invoke({ client: 'final', node, kind: 'cget', key, value: null, expected: null, invokeUs: scheduler.nowUs })
  let settled = false
  const retry = (): void => finalRead(cluster, api, history, rng, key, attempts - 1, done)
  scheduler.after(PROBE_TIMEOUT_MS * 1000, () => {
    if (settled) return
    settled = true
    op.outcome = 'fail'
    op.returnUs = scheduler.nowUs
    retry()
  })
  api.read(node, key, true, (r) => {
    if (settled) return
    settled = true
    op.returnUs = scheduler.nowUs
    if (r.ok) {
      op.outcome = 'ok'
      op.read = r.value
      cluster.trace.note(scheduler.nowUs, 'client', `final ${describeOp(op)} via ${node}`)
      done()
      return
    }
    op.outcome = 'fail'
    retry()
  })
}

/**
 * Services after healing: the user fixes what is broken (a broken image, a paused rollout),
 * then every service must converge within SERVICES_CONVERGE_MAX_MS; what does not is reported
 * (service-convergence, slot-uniqueness) as it stands at the bound.
 */
function convergeServices(cluster: SimCluster, services: ServiceWorkload): Violation[] {
  const scheduler = cluster.scheduler
  const limitUs = scheduler.nowUs + SERVICES_CONVERGE_MAX_MS * 1000
  services.repair(limitUs)
  const verdict = (): Violation[] => {
    const leader = cluster.leader()
    if (leader === undefined) return [{ checker: 'liveness', atUs: scheduler.nowUs, message: 'no leader while services converge' }]
    const live = new Set(members(cluster))
    const hosts: ServiceHostTruth[] = cluster.ids().map((id) => ({ id, live: live.has(id), engine: cluster.node(id).runtime.engineContainers() }))
    return checkServicesConverged(leader.store, hosts, scheduler.nowUs)
  }
  let converged = false
  const poll = (): void => {
    if (converged || scheduler.nowUs >= limitUs) return
    converged = services.repairDone && verdict().length === 0
    if (!converged) scheduler.after(SERVICES_POLL_MS * 1000, poll)
  }
  poll()
  scheduler.runUntil(limitUs, () => converged, EVENTS_MAX)
  if (converged) {
    cluster.trace.note(scheduler.nowUs, 'phase', 'services converged')
    // The last stops and removals reach the container records too before they are checked.
    const synced = (): boolean => members(cluster).every((id) => cluster.node(id).containersConverged())
    const wait = (): void => {
      if (!synced()) scheduler.after(50_000, wait)
    }
    wait()
    scheduler.runUntil(scheduler.nowUs + CONVERGE_MAX_MS * 1000, synced, EVENTS_MAX)
  }
  return verdict()
}

/** A thrown error as a violation: a checker's own, or a core's assertion. */
function asViolation(err: unknown, atUs: number): Violation {
  if (err instanceof ViolationError) return err.violation
  if (err instanceof SchedulerBoundError) return { checker: 'liveness', atUs, message: `runaway run: ${err.message}` }
  const message = err instanceof Error ? `${err.name}: ${err.message}${stackHead(err)}` : String(err)
  return { checker: 'core-assertion', atUs, message }
}

/** The first frames of a stack, to say where an assertion fired. */
function stackHead(err: Error): string {
  const frames = (err.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim().replace(/\(.*[\\/](protocols|storage|simulations)[\\/]/, '($1/'))
  return frames.length === 0 ? '' : ` (${frames.join(' < ')})`
}
