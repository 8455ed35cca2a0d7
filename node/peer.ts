/**
 * One Shoal peer: wires storage, libp2p, membership, the event topic, the runtime probe and
 * the admin API, and owns their start and stop order.
 *
 * Start: data dir lock, API path checked -> identity + secret -> Raft log opened -> DNS ->
 * libp2p -> membership -> events -> Raft running -> runtime -> API. What can fail for a local
 * reason comes before libp2p listens, so a peer that cannot start was never seen alive.
 * Stop: API closed -> DNS, runtime -> own records removed -> leadership handed off, leave
 * announced, removal from the voters awaited -> Raft -> events -> libp2p -> socket, lock.
 */
import { cpus, totalmem } from 'node:os'
import { unlinkSync } from 'node:fs'
import type { Server, ServerResponse, IncomingMessage } from 'node:http'
import type { StartConfig } from './config.ts'
import type { Logger } from './logger.ts'
import { UserError, environmentError, errorMessage } from './errors.ts'
import { ensureDataDir, acquireDataDirLock, loadOrCreatePeerKey, loadClusterSecret } from './data-dir.ts'
import { createHost, type ShoalLibp2p, type HandshakeStats } from './libp2p-host.ts'
import { startApiServer, checkApiSocketPath, ApiError, type ApiHandler, type ApiResult } from './api-server.ts'
import { EventHub, SUBSCRIBER_QUEUE_MAX, type ClusterEvent } from './event-hub.ts'
import { SHOAL_VERSION } from './version.ts'
import { Membership, type MemberView } from '../protocols/gossip/membership.ts'
import { EventTopic, userEventNameProblem, USER_EVENT_PAYLOAD_MAX_BYTES } from '../protocols/gossip/event-topic.ts'
import type { HostRecord } from '../protocols/gossip/host-record.ts'
import { DockerRuntime } from '../runtime/docker-runtime.ts'
import { NO_RUNTIME_STATUS, type ContainerRuntime, type RuntimeStatus } from '../runtime/runtime.ts'
import { join } from 'node:path'
import { OutcomeUnknownError, RaftNode, RetryableError } from './raft-node.ts'
import { LogCorruptionError } from '../storage/raft-log/file-log-storage.ts'
import { StoreMachine } from './store-machine.ts'
import { KvService, KV_PREFIX } from './kv-service.ts'
import { EventLoopMonitor, type EventLoopView } from './event-loop-monitor.ts'
import { WatchHub } from './watch-hub.ts'
import { Sessions } from './sessions.ts'
import { isValidLockName, type Fence } from '../storage/statestore/index.ts'
import { DEFAULT_AUTOPILOT } from '../protocols/raft/autopilot.ts'
import { AUTOPILOT_INTERVAL_MS, LEAVE_REMOVE_TIMEOUT_MS, LEAVE_VOTERS_TIMEOUT_MS, LeaderDuties } from '../runtime/leader-duties.ts'
import { LEAVE_POLL_MS, LeaveSequence, type LeaveView } from '../runtime/leave-sequence.ts'
import { loadKnownPeers, saveKnownPeers } from './known-peers.ts'
import { HostSync } from './host-sync.ts'
import { DnsService, type DnsView } from './dns-service.ts'
import { listContainers, listHosts } from './container-views.ts'
import { CONTAINERS_PREFIX, RECORD_MAX_ITEMS, parseContainer, type WatchEvent } from '../storage/statestore/index.ts'
import { SchedulerLoop } from './scheduler-loop.ts'
import { TaskAgentDriver } from './task-agent.ts'
import { ServiceApi } from './service-api.ts'
import { LinkApi } from './link-api.ts'
import { LinkAddresses } from './link-addresses.ts'
import { LinkDataplane } from './link-dataplane.ts'
import { LinkInterface } from './link-interface.ts'
import type { LinkForwarderStats } from './link-forwarder.ts'
import { serviceEventsOf, SERVICE_EVENT_PREFIXES } from './service-events.ts'

/** How often the list of known members is written to the data dir, at most. */
const KNOWN_PEERS_SAVE_MS = 1000


/** The optional `"fence": {"lock": NAME, "token": N}` of a write: applied only while NAME is held with token N. */
function parseFence(value: unknown): Fence | undefined {
  if (value === undefined || value === null) return undefined
  const f = value as { lock?: unknown; token?: unknown }
  if (typeof value !== 'object' || typeof f.lock !== 'string' || !isValidLockName(f.lock) || typeof f.token !== 'number' || !Number.isSafeInteger(f.token) || f.token < 1) {
    throw new ApiError(400, '"fence" must be {"lock": lock name, "token": the holder\'s fencing token (a positive integer)}')
  }
  return { lock: f.lock, token: f.token }
}

/** Turns consensus refusals into HTTP answers with their advice: 503 retry later, 504 outcome unknown. */
async function retryable<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof RetryableError) throw new ApiError(503, err.message)
    // 504, as a proxy whose upstream went quiet: the write may have taken effect.
    if (err instanceof OutcomeUnknownError) throw new ApiError(504, err.message)
    throw err
  }
}

/** `shoal status --json`: the command contract's fields first, then Shoal's additions. */
export interface StatusView {
  peerId: string
  name: string
  addrs: string[]
  version: string
  role: 'leader' | 'follower' | 'candidate' | 'learner' | 'none'
  term: number
  leader: string | null
  commitIndex: number
  appliedIndex: number
  voters: string[]
  learners: string[]
  /**
   * Non-zero while this peer's log lacks entries it had acknowledged (lost by its disk): it
   * does not vote, and its local reads may be stale, until the leader has copied the log back
   * up to this index. 0 when healthy.
   */
  repairIndex: number
  runtime: RuntimeStatus['runtime']
  runtimeStatus: RuntimeStatus
  hostSync: HostSync['stats'] | null
  /** The leader's scheduler rounds (counted on whichever peer led). */
  scheduler: SchedulerLoop['stats'] | null
  /** This host's agent: steps, engine and report actions, failures. */
  tasks: TaskAgentDriver['stats'] | null
  /** Null with --dns off. */
  dns: DnsView | null
  /** This host's link forwarder (issue 13): listeners, connections carried, streams refused. */
  linkForwarder: LinkForwarderStats | null
  startedAt: string
  dataDir: string
  members: Record<'alive' | 'suspect' | 'dead' | 'left', number>
  security: HandshakeStats
  gossip: { swim: Membership['transportStats']; events: EventTopic['stats'] & { subscribers: number; mesh: number } }
  /** Longest event-loop stalls: what starves Raft's and SWIM's timers. */
  eventLoop: EventLoopView
}

/** `shoal peers --json` rows. */
export interface PeerView {
  peerId: string
  name: string | null
  addrs: string[]
  state: MemberView['state']
  voter: boolean
  self: boolean
  incarnation: number
  stateSince: string
  version: string | null
  startedAt: string | null
  cpus: number | null
  memoryBytes: number | null
}

export class Peer {
  private readonly config: StartConfig
  private readonly log: Logger
  private releaseLock: (() => void) | null = null
  private libp2p: ShoalLibp2p | null = null
  private handshakes: HandshakeStats | null = null
  private membership: Membership | null = null
  private events: EventTopic | null = null
  private runtime: ContainerRuntime | null = null
  private raft: RaftNode | null = null
  private machine: StoreMachine | null = null
  private kv: KvService | null = null
  private watches: WatchHub | null = null
  private sessions: Sessions | null = null
  private autopilot: ReturnType<typeof setInterval> | null = null
  private duties: LeaderDuties | null = null
  private hostSync: HostSync | null = null
  private scheduler: SchedulerLoop | null = null
  private taskAgent: TaskAgentDriver | null = null
  private services: ServiceApi | null = null
  private links: LinkApi | null = null
  private linkAddresses: LinkAddresses | null = null
  private linkDataplane: LinkDataplane | null = null
  private unwatchServiceEvents: Array<() => void> = []
  private dns: DnsService | null = null
  private knownPeersTimer: ReturnType<typeof setTimeout> | null = null
  private api: Server | null = null
  private readonly hub = new EventHub()
  private readonly eventLoop = new EventLoopMonitor().start()
  private readonly startedAt = new Date().toISOString()

  constructor(config: StartConfig, log: Logger) {
    this.config = config
    this.log = log
  }

  /** This peer's id; valid after start(). */
  get peerId(): string {
    return this.node().peerId.toString()
  }

  /**
   * Everything that can fail for a reason on this host (the data dir, the Raft log, the DNS
   * and API addresses) is checked before libp2p listens: a peer that cannot start must not
   * have announced itself alive to the cluster, where it would stay a voter nobody replaces.
   */
  async start(): Promise<void> {
    const { config, log } = this
    ensureDataDir(config.dataDir)
    this.releaseLock = await acquireDataDirLock(config.dataDir)
    await checkApiSocketPath(config.apiSocket)
    const privateKey = await loadOrCreatePeerKey(config.dataDir)
    const { secret, source } = loadClusterSecret(config.dataDir, config.secretFile, config.bootstrap.length > 0)
    if (source === 'created') log.info(`founded a new cluster; its secret is ${config.dataDir}/cluster.key — give joining peers a copy (--secret-file)`)

    const host = await createHost({ privateKey, listen: config.listen, bootstrap: config.bootstrap, clusterSecret: secret })
    this.libp2p = host.libp2p
    this.handshakes = host.handshakes

    this.machine = new StoreMachine()
    const machine = this.machine
    const watches = new WatchHub(() => machine.store)
    this.watches = watches
    machine.onApplied = () => watches.onApplied()
    machine.onRestored = () => {
      watches.onRestored()
      this.sessions?.onRestored()
      this.dns?.restored()
    }
    machine.onCommand = (command, result) => this.sessions?.onCommand(command, result)
    this.raft = new RaftNode({
      dir: join(config.dataDir, 'raft'),
      stateDir: join(config.dataDir, 'state'),
      libp2p: this.libp2p,
      founding: config.bootstrap.length === 0,
      stateMachine: this.machine,
      log: log.child('raft'),
      snapshotEveryEntries: config.snapshotEntries,
      // Keep half an interval of entries behind each snapshot (at most 5,000) so a follower
      // that lags briefly catches up from the log instead of needing a whole snapshot.
      keepEntriesAfterSnapshot: Math.min(5000, Math.floor(config.snapshotEntries / 2)),
    })
    try {
      await this.raft.open()
    } catch (err) {
      if (err instanceof LogCorruptionError) throw new UserError(err.message)
      throw environmentError(err, `cannot open the Raft log in ${config.dataDir}`) ?? err
    }

    if (config.dns !== 'off') {
      this.dns = new DnsService({ listen: config.dns, forward: config.dnsForward, ttlSeconds: config.dnsTtl, loops: config.dnsLoops, machine, watches, log: log.child('dns'), selfId: this.peerId })
      await this.dns.start()
    }

    try {
      await this.libp2p.start()
    } catch (err) {
      throw new UserError(`cannot listen on ${config.listen.map(String).join(', ')}: ${err instanceof Error ? err.message : String(err)}; pass a free --listen address`)
    }
    const addrs = this.libp2p.getMultiaddrs().map(String)

    const known = loadKnownPeers(config.dataDir, this.peerId)
    if (known.length > 0) log.info(`rejoining through ${known.length} addresses of members known before the restart`)
    this.membership = new Membership({
      libp2p: this.libp2p,
      host: this.hostRecord(addrs),
      bootstrap: [...config.bootstrap, ...known],
      log: log.child('membership'),
      onChange: (change, hostRecord) => {
        const name = hostRecord?.name ?? null
        if (change.peerId !== this.peerId) {
          const label = `${name ?? '?'} (${change.peerId})`
          if (change.previous === null) log.info(`peer ${label} joined as ${change.state}`)
          else log.info(`peer ${label} is ${change.state} (was ${change.previous})`)
        }
        this.scheduleKnownPeersSave()
        // A voter that leaves waits to be removed (leaveVoters): do not keep it waiting a second.
        if (change.state === 'left') this.runAutopilot()
        this.hub.publish({
          type: 'host',
          action: change.previous === null ? 'joined' : change.state,
          peerId: change.peerId,
          name,
          incarnation: change.incarnation,
          time: new Date(change.atMs).toISOString(),
        })
      },
    })
    await this.membership.start()

    this.events = new EventTopic({
      pubsub: this.libp2p.services.pubsub,
      selfId: this.peerId,
      selfName: config.name,
      isMember: (id) => this.isLiveMember(id),
      onEvent: (event) => this.hub.publish(event),
      debug: (m) => log.debug(m),
    })
    this.events.start()

    await this.raft.start()
    this.kv = new KvService(this.raft, this.machine, this.peerId)
    const raft = this.raft
    this.sessions = new Sessions({
      selfId: this.peerId,
      libp2p: this.libp2p,
      kv: this.kv,
      machine,
      watches,
      raft,
      isMember: (id) => this.isLiveMember(id),
      log: log.child('sessions'),
    })
    await this.sessions.start()
    const membership = this.membership
    this.duties = new LeaderDuties({
      selfId: this.peerId,
      // Member times are wall-clock less the monotonic time elapsed (Membership.members()): durations survive a clock step.
      nowMs: () => Date.now(),
      // performance.now() counts from this process's start, on the monotonic clock.
      upForMs: () => performance.now(),
      raftStatus: () => (raft.running ? raft.status() : null),
      members: () => membership?.members().map((m) => ({ peerId: m.peerId, state: m.state, stateSinceMs: Date.parse(m.stateSince) })) ?? [],
      containers: () => machine.store.range(CONTAINERS_PREFIX).kvs,
      autopilot: { ...DEFAULT_AUTOPILOT, targetVoters: this.config.voters, deadGraceMs: this.config.deadGraceMs },
      propose: (change) => {
        raft.changeMembership(change).then(
          () => this.log.info(`autopilot: proposed ${change.type} ${change.nodeId}`),
          (err: unknown) => this.log.debug(`autopilot: ${change.type} ${change.nodeId} not proposed: ${err instanceof Error ? err.message : String(err)}`),
        )
      },
      write: (txn, done) => {
        const kv = this.kv
        if (kv === null) return done(false)
        kv.write(txn, true).then(
          // A txn its guard refused (the record changed meanwhile) is settled too: the next run decides afresh.
          () => done(true),
          (err: unknown) => {
            this.log.debug(`marking containers lost: ${err instanceof Error ? err.message : String(err)}`)
            done(false)
          },
        )
      },
      marking: (count) => this.log.info(`marking ${count} container(s) of dead hosts lost`),
    })
    this.autopilot = setInterval(() => this.runAutopilot(), AUTOPILOT_INTERVAL_MS)
    this.services = new ServiceApi(this.kv, machine)
    this.scheduler = new SchedulerLoop({
      selfId: this.peerId,
      isLeader: () => raft.running && raft.status().role === 'leader',
      machine,
      watches,
      kv: this.kv,
      membership: this.membership,
      rescheduleGraceMs: config.rescheduleGraceMs,
      log: log.child('scheduler'),
    })
    this.scheduler.start()
    for (const prefix of SERVICE_EVENT_PREFIXES) {
      this.unwatchServiceEvents.push(watches.add(prefix, machine.store.revision, {
        deliver: (events) => {
          const now = new Date().toISOString()
          for (const e of events) for (const out of serviceEventsOf(e, now)) this.hub.publish(out)
          return true
        },
        // Fell behind compaction: the lines in between are gone; `service ps` shows the state.
        compacted: () => undefined,
      }))
    }

    let runtime: DockerRuntime | null = null
    if (config.docker === 'none') {
      log.info(config.dockerDefaulted ? 'no Docker socket at /var/run/docker.sock: running without a container runtime' : 'running without a container runtime (--docker none)')
    } else {
      runtime = new DockerRuntime({ socket: config.docker, identity: { hostId: this.peerId, hostName: config.name }, log: log.child('docker') })
      this.runtime = runtime
      runtime.subscribe((change) => {
        if (change.type === 'status') this.dns?.runtimeChanged(change.status)
      })
    }
    const libp2p = this.libp2p
    this.hostSync = new HostSync({
      selfId: this.peerId,
      host: () => ({ peerId: this.peerId, name: config.name, addrs: libp2p.getMultiaddrs().map(String).slice(0, RECORD_MAX_ITEMS), version: SHOAL_VERSION, cpus: cpus().length, memoryBytes: totalmem(), labels: config.labels }),
      runtime,
      kv: this.kv,
      machine,
      watches,
      events: this.events,
      log: log.child('containers'),
    })
    this.hostSync.start()
    libp2p.addEventListener('self:peer:update', () => this.hostSync?.hostChanged())
    // Links (issue 13): this host's link addresses, and the API over links.
    this.linkAddresses = new LinkAddresses({ selfId: this.peerId, subnet: config.linkSubnet, kv: this.kv, machine, watches, log: log.child('links') })
    this.linkAddresses.start()
    this.linkDataplane = new LinkDataplane({
      selfId: this.peerId,
      libp2p,
      machine,
      watches,
      addresses: this.linkAddresses,
      iface: config.linkInterface === null ? null : new LinkInterface({ name: config.linkInterface }),
      publishAddress: config.publishAddress,
      log: log.child('links'),
    })
    await this.linkDataplane.start()
    this.links = new LinkApi(this.kv, machine, this.peerId)
    // A restarted peer acts on its tasks only once its replica has caught up with the leader:
    // before, it could restart the container of a task that moved away while it was down.
    let caughtUp = false
    const ready = (): boolean => {
      if (caughtUp) return true
      if (!raft.running) return false
      const st = raft.status()
      caughtUp = st.lead !== null && raft.applied >= st.commit
      return caughtUp
    }
    this.taskAgent = new TaskAgentDriver({
      selfId: this.peerId,
      ready,
      engine: runtime,
      runtime,
      machine,
      watches,
      kv: this.kv,
      raftLeader: () => (raft.running ? raft.status().lead : null),
      dns: () => this.dns?.containerResolvers() ?? [],
      // An instance leaves DNS the moment its task stops wanting it; it keeps serving for this
      // long (bounded by the answers' TTL) so clients that resolved it just before still reach it.
      drainMs: Math.min(config.dnsTtl, 2) * 1000,
      log: log.child('tasks'),
    })
    this.taskAgent.start()
    await runtime?.start()

    this.api = await startApiServer(config.apiSocket, this.routes(), log.child('api'))
    log.info(`peer ${config.name} ${this.peerId} started; listening on ${addrs.join(' ')}; API ${config.apiSocket}`)
    if (config.bootstrap.length > 0) log.info(`joining through ${config.bootstrap.map(String).join(', ')}`)
  }

  /**
   * Graceful stop: announce leaving, then close everything in reverse start order. Also tears
   * down a start that failed half-way: every step runs whatever an earlier one threw, so the
   * sockets close, the process can exit and the data dir lock is released.
   */
  async stop(): Promise<void> {
    const step = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        this.log.warn(`stopping ${what}: ${errorMessage(err)}`)
      }
    }
    const api = this.api
    this.api = null
    if (api !== null) {
      api.closeAllConnections()
      await new Promise<void>((resolve) => api.close(() => resolve()))
    }
    try {
      if (api !== null) unlinkSync(this.config.apiSocket)
    } catch {
      // Already removed.
    }
    if (this.knownPeersTimer !== null) clearTimeout(this.knownPeersTimer)
    this.eventLoop.stop()
    this.sessions?.stop()
    this.scheduler?.stop()
    this.taskAgent?.stop()
    for (const u of this.unwatchServiceEvents) u()
    this.unwatchServiceEvents = []
    if (this.autopilot !== null) clearInterval(this.autopilot)
    this.duties?.stop()
    this.autopilot = null
    await step('DNS', () => this.dns?.stop())
    await step('the link forwarder', () => this.linkDataplane?.stop())
    await step('the container runtime', () => this.runtime?.stop())
    this.hostSync?.stop()
    this.linkAddresses?.stop()
    await step('the leave', () => this.leave())
    await step('Raft', () => this.raft?.stop())
    await step('membership', () => this.membership?.stop(true))
    this.events?.stop()
    await step('libp2p', () => this.libp2p?.stop())
    const wasRunning = this.libp2p !== null
    this.libp2p = null
    this.releaseLock?.()
    this.releaseLock = null
    if (wasRunning) this.log.info('stopped')
  }

  status(): StatusView {
    const libp2p = this.node()
    const members = { alive: 0, suspect: 0, dead: 0, left: 0 }
    for (const m of this.membershipOrThrow().members()) members[m.state]++
    return {
      peerId: libp2p.peerId.toString(),
      name: this.config.name,
      addrs: libp2p.getMultiaddrs().map(String),
      version: SHOAL_VERSION,
      ...this.raftView(),
      runtime: this.runtime?.status().runtime ?? 'none',
      runtimeStatus: this.runtime?.status() ?? NO_RUNTIME_STATUS,
      hostSync: this.hostSync?.stats ?? null,
      scheduler: this.scheduler?.stats ?? null,
      tasks: this.taskAgent?.stats ?? null,
      dns: this.dns?.view() ?? null,
      linkForwarder: this.linkDataplane?.forwarder.stats ?? null,
      startedAt: this.startedAt,
      dataDir: this.config.dataDir,
      members,
      security: this.handshakes ?? { rejectedInbound: 0, rejectedOutbound: 0, lastRejectedAddr: null, lastRejectedAt: null },
      gossip: {
        swim: this.membershipOrThrow().transportStats,
        events: { ...(this.events?.stats ?? { published: 0, received: 0, droppedNotMember: 0, droppedInvalid: 0 }), ...(this.events?.topology() ?? { subscribers: 0, mesh: 0 }) },
      },
      eventLoop: this.eventLoop.view(),
    }
  }

  peers(): PeerView[] {
    return this.membershipOrThrow().members().map((m) => ({
      peerId: m.peerId,
      name: m.host?.name ?? null,
      addrs: m.host?.addrs ?? [],
      state: m.state,
      voter: this.raft?.running === true && this.raft.status().voters.includes(m.peerId),
      self: m.self,
      incarnation: m.incarnation,
      stateSince: m.stateSince,
      version: m.host?.version ?? null,
      startedAt: m.host?.startedAt ?? null,
      cpus: m.host?.cpus ?? null,
      memoryBytes: m.host?.memoryBytes ?? null,
    }))
  }

  /**
   * A graceful leave (runtime/leave-sequence.ts, which the simulator runs too): this host's
   * records go, leadership goes, the leave is announced, and a voter waits to be removed from
   * the voters before it stops.
   */
  private async leave(): Promise<void> {
    const raft = this.raft?.running === true ? this.raft : null
    const sync = this.hostSync
    const self = this.peerId
    const seq = new LeaveSequence({ hasRecords: sync !== null && raft !== null, handOffTimeoutMs: raft?.handOffTimeoutMs ?? 0 })
    const view = (): LeaveView => {
      if (raft === null) return { isLeader: false, removable: false }
      const st = raft.status()
      return { isLeader: st.role === 'leader', removable: st.voters.includes(self) && st.voters.length > 1 }
    }
    let wake: (() => void) | null = null
    for (;;) {
      for (const action of seq.step(performance.now(), view())) {
        switch (action.kind) {
          case 'remove-records':
            sync?.removeAll().then(
              (removed) => {
                if (removed > 0) this.log.info(`removed this host's ${removed} container record(s) from the cluster`)
                seq.recordsDone(true)
                wake?.()
              },
              (err: unknown) => {
                this.log.warn(`container records left in place (${errorMessage(err)}); the leader marks them lost after the grace period`)
                seq.recordsDone(false)
                wake?.()
              },
            )
            break
          case 'transfer-leadership':
            raft?.transferLeadership()
            break
          case 'announce-leave':
            await this.membership?.stop(true)
            break
          case 'stop':
            if (action.stillVoter) this.log.warn(`still a voter after ${LEAVE_VOTERS_TIMEOUT_MS} ms (no leader removed it; is a quorum of the other voters alive?); stopping anyway`)
            else if (action.wasVoter) this.log.info('removed from the voters; stopping')
            if (!action.recordsRemoved && sync !== null && raft !== null) this.log.warn(`this host's records were not removed within ${LEAVE_REMOVE_TIMEOUT_MS} ms (no leader answered); the leader marks them lost after the grace period`)
            return
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, LEAVE_POLL_MS)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      wake = null
    }
  }

  /** The command contract's Raft fields. A peer not yet in the configuration has role "none". */
  private raftView(): Pick<StatusView, 'role' | 'term' | 'leader' | 'commitIndex' | 'appliedIndex' | 'voters' | 'learners' | 'repairIndex'> {
    if (this.raft === null || !this.raft.running) return { role: 'none', term: 0, leader: null, commitIndex: 0, appliedIndex: 0, voters: [], learners: [], repairIndex: 0 }
    const st = this.raft.status()
    const self = this.peerId
    const role = st.voters.includes(self)
      ? (st.role === 'pre-candidate' ? 'candidate' : st.role)
      : st.learners.includes(self) ? 'learner' : 'none'
    return { role, term: st.term, leader: st.lead, commitIndex: st.commit, appliedIndex: this.raft.applied, voters: [...st.voters], learners: [...st.learners], repairIndex: st.repairIndex }
  }

  /** Alive or suspect: a member whose gossip is still accepted. */
  private isLiveMember(peerId: string): boolean {
    const state = this.membership?.stateOf(peerId)
    return state === 'alive' || state === 'suspect'
  }

  private scheduleKnownPeersSave(): void {
    if (this.knownPeersTimer !== null) return
    this.knownPeersTimer = setTimeout(() => {
      this.knownPeersTimer = null
      const alive = this.membership?.members().filter((m) => !m.self && (m.state === 'alive' || m.state === 'suspect')) ?? []
      // An empty list is not saved: a peer cut off from everyone keeps its last good seeds.
      if (alive.length === 0) return
      try {
        saveKnownPeers(this.config.dataDir, alive.map((m) => m.host?.addrs ?? []))
      } catch (err) {
        this.log.warn(`cannot save known peers: ${err instanceof Error ? err.message : String(err)}`)
      }
    }, KNOWN_PEERS_SAVE_MS)
    this.knownPeersTimer.unref()
  }

  /** On the leader: autopilot's next membership change and the lost-marking (runtime/leader-duties.ts). */
  private runAutopilot(): void {
    if (this.raft === null || !this.raft.running) return
    this.duties?.run()
  }

  private serviceApi(): ServiceApi {
    if (this.services === null) throw new ApiError(503, 'peer is starting; retry in a moment')
    return this.services
  }

  private linkApi(): LinkApi {
    if (this.links === null) throw new ApiError(503, 'peer is starting; retry in a moment')
    return this.links
  }

  private kvService(): KvService {
    if (this.kv === null) throw new ApiError(503, 'peer is starting; retry in a moment')
    return this.kv
  }

  private hostRecord(addrs: string[]): HostRecord {
    return { name: this.config.name, addrs, version: SHOAL_VERSION, startedAt: this.startedAt, cpus: cpus().length, memoryBytes: totalmem() }
  }

  private node(): ShoalLibp2p {
    if (this.libp2p === null) throw new Error('peer not started')
    return this.libp2p
  }

  private membershipOrThrow(): Membership {
    if (this.membership === null) throw new Error('peer not started')
    return this.membership
  }

  private routes(): Map<string, ApiHandler> {
    const ok = (body: unknown): ApiResult => ({ status: 200, body })
    return new Map<string, ApiHandler>([
      ['GET /_ping', () => ok('OK')],
      ['GET /v1/status', () => ok(this.status())],
      ['GET /v1/peers', () => ok(this.peers())],
      ['GET /v1/containers', (req) => {
        if (this.machine === null) throw new ApiError(503, 'peer is starting; retry in a moment')
        return ok(listContainers(this.machine.store, { all: req.query.get('all') === '1', host: req.query.get('host') }))
      }],
      ['GET /v1/events', (req) => ({ stream: (res, httpReq) => this.streamEvents(req.query.get('history') === '1', res, httpReq) })],
      ['GET /v1/kv', async (req) => {
        const key = req.query.get('key') ?? ''
        const r = await retryable(() => this.kvService().get(key, req.query.get('consistent') === '1'))
        if (r.kv === null) throw new ApiError(404, 'not found')
        return ok(r)
      }],
      ['PUT /v1/kv', async (req) => {
        const body = req.body as { key?: unknown; value?: unknown; fence?: unknown } | undefined
        if (typeof body !== 'object' || body === null) throw new ApiError(400, 'expected a JSON object {"key": string, "value": string}')
        if (typeof body.value !== 'string') throw new ApiError(400, '"value" must be a string')
        if (typeof body.key !== 'string') throw new ApiError(400, '"key" must be a string')
        const { key, value } = body
        const fence = parseFence(body.fence)
        return ok(await retryable(() => this.kvService().put(key, value, fence)))
      }],
      ['DELETE /v1/kv', async (req) => ok(await retryable(() => this.kvService().del(req.query.get('key') ?? '')))],
      ['GET /v1/kv/watch', (req) => {
        const prefix = req.query.get('prefix') ?? ''
        const decoder = new TextDecoder()
        return this.watchRoute(req.query.get('revision'), KV_PREFIX + prefix, (e) => ({ type: e.type, key: e.kv.key.slice(KV_PREFIX.length), value: decoder.decode(e.kv.value), revision: e.kv.modRevision }))
      }],
      // Every change of a container record anywhere in the cluster, as this replica applies it.
      ['GET /v1/hosts', () => {
        if (this.machine === null) throw new ApiError(503, 'peer is starting; retry in a moment')
        return ok(listHosts(this.machine.store, (id) => this.membership?.stateOf(id) ?? 'unknown'))
      }],
      ['GET /v1/containers/watch', (req) => this.watchRoute(req.query.get('revision'), CONTAINERS_PREFIX, (e) => {
        const [host, id] = e.kv.key.slice(CONTAINERS_PREFIX.length).split('/')
        const parsed = e.type === 'put' ? parseContainer(e.kv.value) : null
        return { type: e.type, host, id, container: parsed?.ok === true ? parsed.record : null, revision: e.kv.modRevision }
      })],
      // Lock errors (bad name or ttl, no quorum) are answered with their HTTP status before
      // anything is streamed; the stream then carries waiting/acquired/lost lines.
      ['POST /v1/locks', async (req) => {
        const name = req.query.get('name') ?? ''
        const ttlText = req.query.get('ttl') ?? '10'
        const ttlMs = Math.round(Number(ttlText) * 1000)
        if (!/^\d+(\.\d+)?$/.test(ttlText) || !Number.isSafeInteger(ttlMs)) throw new ApiError(400, `ttl ${JSON.stringify(ttlText)}: give seconds, e.g. ttl=10`)
        const sessions = this.sessions
        if (sessions === null) throw new ApiError(503, 'peer is starting; retry in a moment')
        const lease = await retryable(() => sessions.begin(name, ttlMs))
        return {
          stream: (res, httpReq) => {
            res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
            res.flushHeaders()
            const gone = new AbortController()
            // The client holding the lock went away: release it.
            httpReq.socket.on('close', () => gone.abort())
            res.on('close', () => gone.abort())
            if (httpReq.socket.destroyed) gone.abort()
            res.write(`${JSON.stringify({ state: 'queued', lease, ttlMs })}\n`)
            sessions.hold(name, lease, (e) => res.write(`${JSON.stringify(e)}\n`), gone.signal).then(
              () => res.end(),
              (err: unknown) => res.end(`${JSON.stringify({ state: 'error', error: err instanceof Error ? err.message : String(err) })}\n`),
            )
          },
        }
      }],
      // A lock client's own renewal: answered once the leader confirmed it (etcd's LeaseKeepAlive).
      ['POST /v1/leases/keepalive', async (req) => {
        const sessions = this.sessions
        if (sessions === null) throw new ApiError(503, 'peer is starting; retry in a moment')
        return ok(await sessions.keepAlive(Number(req.query.get('id') ?? '')))
      }],
      ['GET /v1/kv/list', async (req) => {
        const limit = Number(req.query.get('limit') ?? '1000')
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new ApiError(400, 'limit must be an integer from 1 to 10000')
        // Paged: ?after= the previous page's `next` (see KvService.list).
        return ok(await retryable(() => this.kvService().list(req.query.get('prefix') ?? '', req.query.get('consistent') === '1', limit, req.query.get('after'))))
      }],
      ['GET /v1/services', () => ok(this.serviceApi().list())],
      ['GET /v1/services/inspect', (req) => ok(this.serviceApi().inspect(req.query.get('name') ?? ''))],
      ['GET /v1/services/ps', (req) => ok(this.serviceApi().ps(req.query.get('name') ?? ''))],
      // {"mode": "create"|"update"|"apply", "specs": [spec...], "prune"?: bool}: all or nothing.
      ['POST /v1/services', async (req) => {
        const body = req.body as { mode?: unknown; specs?: unknown; prune?: unknown } | undefined
        if (typeof body !== 'object' || body === null) throw new ApiError(400, 'expected a JSON object {"mode": "create"|"update"|"apply", "specs": [spec, ...]}')
        const { mode, specs, prune } = body
        if (mode !== 'create' && mode !== 'update' && mode !== 'apply') throw new ApiError(400, '"mode" must be "create", "update" or "apply"')
        if (!Array.isArray(specs) || specs.length === 0 || specs.length > 1000) throw new ApiError(400, '"specs" must be a list of 1 to 1000 service specs')
        if (prune !== undefined && typeof prune !== 'boolean') throw new ApiError(400, '"prune" must be true or false')
        if (prune === true && mode !== 'apply') throw new ApiError(400, '"prune" goes only with mode "apply"')
        const api = this.serviceApi()
        const parsed = specs.map((s, i) => {
          try {
            return api.parseSpec(s)
          } catch (err) {
            if (err instanceof ApiError && specs.length > 1) throw new ApiError(400, `spec ${i + 1}: ${err.message}`)
            throw err
          }
        })
        return ok(await retryable(() => api.write(parsed, mode, prune === true)))
      }],
      ['POST /v1/services/scale', async (req) => {
        const body = req.body as { scales?: unknown } | undefined
        const scales = typeof body === 'object' && body !== null ? body.scales : undefined
        if (typeof scales !== 'object' || scales === null || Array.isArray(scales) || Object.keys(scales).length === 0) throw new ApiError(400, 'expected {"scales": {"NAME": replicas, ...}}')
        const entries = Object.entries(scales as Record<string, unknown>)
        for (const [name, n] of entries) {
          if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ApiError(400, `replicas of ${name} must be a whole number >= 0`)
        }
        return ok(await retryable(() => this.serviceApi().scale(Object.fromEntries(entries) as Record<string, number>)))
      }],
      ['POST /v1/services/rollback', async (req) => ok(await retryable(() => this.serviceApi().rollback(req.query.get('name') ?? '')))],
      ['POST /v1/services/rebalance', async (req) => ok(await retryable(() => this.serviceApi().rebalance(req.query.get('name') ?? '')))],
      ['DELETE /v1/services', async (req) => ok(await retryable(() => this.serviceApi().remove(req.query.get('name') ?? '')))],
      // Links (issue 13): node/link-api.ts validates and resolves.
      ['GET /v1/links', () => ok(this.linkApi().list())],
      ['POST /v1/links', async (req) => ok(await retryable(() => this.linkApi().create(req.body)))],
      ['DELETE /v1/links', async (req) => ok(await retryable(() => this.linkApi().remove(req.query.get('source') ?? '', req.query.get('alias') ?? '')))],
      ['POST /v1/hosts/availability', async (req) => {
        const body = req.body as { host?: unknown; availability?: unknown } | undefined
        if (typeof body !== 'object' || body === null || typeof body.host !== 'string' || (body.availability !== 'drain' && body.availability !== 'active')) {
          throw new ApiError(400, 'expected {"host": NAME or peer id, "availability": "drain" | "active"}')
        }
        const { host, availability } = body
        return ok(await retryable(() => this.serviceApi().setAvailability(host, availability === 'drain')))
      }],
      ['POST /v1/events', async (req) => {
        const body = req.body
        if (typeof body !== 'object' || body === null) throw new ApiError(400, 'expected a JSON object {"name": string, "payload"?: string}')
        const { name, payload } = body as Record<string, unknown>
        if (typeof name !== 'string') throw new ApiError(400, '"name" must be a string')
        const problem = userEventNameProblem(name)
        if (problem !== null) throw new ApiError(400, `event name ${JSON.stringify(name)}: ${problem}`)
        if (payload !== undefined && typeof payload !== 'string') throw new ApiError(400, '"payload" must be a string')
        if (payload !== undefined && Buffer.byteLength(payload) > USER_EVENT_PAYLOAD_MAX_BYTES) {
          throw new ApiError(413, `payload is over ${USER_EVENT_PAYLOAD_MAX_BYTES} bytes; events are signals: put data in the KV store and send its key`)
        }
        if (this.events === null) throw new ApiError(503, 'peer is starting; retry in a moment')
        return ok(await this.events.fire(name, payload ?? ''))
      }],
    ])
  }

  /** A watch route: validates ?revision= (default: from now on) and streams `line` per change. */
  private watchRoute(from: string | null, prefix: string, line: (e: WatchEvent) => unknown): ApiResult {
    const machine = this.machine
    const watches = this.watches
    if (machine === null || watches === null) throw new ApiError(503, 'peer is starting; retry in a moment')
    const fromRevision = from === null ? machine.store.revision : Number(from)
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) throw new ApiError(400, 'revision must be a non-negative integer: events after it are sent')
    return { stream: (res, httpReq) => this.streamWatch(watches, prefix, fromRevision, line, res, httpReq) }
  }

  /**
   * NDJSON stream of changes under a store prefix, one `line(event)` a line, from
   * `fromRevision` on. A slow client is cut off rather than buffered without bound; it resumes
   * with ?revision= its last line's revision.
   */
  private streamWatch(watches: WatchHub, prefix: string, fromRevision: number, line: (e: WatchEvent) => unknown, res: ServerResponse, req: IncomingMessage): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    res.flushHeaders()
    let stop: (() => void) | null = null
    try {
      stop = watches.add(prefix, fromRevision, {
        deliver: (events) => {
          if (res.destroyed || res.writableLength > SUBSCRIBER_QUEUE_MAX * 512) {
            res.destroy()
            return false
          }
          res.write(events.map((e) => `${JSON.stringify(line(e))}\n`).join(''))
          return true
        },
        compacted: (compactRevision, revision) => {
          res.end(`${JSON.stringify({ error: `revision ${fromRevision} is compacted (history starts after ${compactRevision}); list the keys again, then watch from revision ${revision}`, compactRevision, revision })}\n`)
        },
      })
    } catch (err) {
      res.end(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`)
      return
    }
    const close = (): void => stop?.()
    req.socket.on('close', close)
    res.on('close', close)
  }

  /** NDJSON stream: one event a line, flushed as it happens, until the client goes away. */
  private streamEvents(history: boolean, res: ServerResponse, req: IncomingMessage): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    res.flushHeaders()
    const write = (event: ClusterEvent): void => {
      if (res.writableLength > SUBSCRIBER_QUEUE_MAX * 512) {
        res.destroy(new Error('subscriber too slow'))
        return
      }
      res.write(`${JSON.stringify(event)}\n`)
    }
    if (history) for (const event of this.hub.recent()) write(event)
    const unsubscribe = this.hub.subscribe(write)
    req.socket.on('close', unsubscribe)
    res.on('close', unsubscribe)
  }
}
