/**
 * One Shoal peer: wires storage, libp2p, membership, the event topic, the runtime probe and
 * the admin API, and owns their start and stop order.
 *
 * Start: data dir lock -> identity + secret -> libp2p -> membership -> events -> runtime -> API.
 * Stop (reverse): API closed -> leave announced -> events -> libp2p -> runtime -> socket, lock.
 */
import { cpus, totalmem } from 'node:os'
import { unlinkSync } from 'node:fs'
import type { Server, ServerResponse, IncomingMessage } from 'node:http'
import type { StartConfig } from './config.ts'
import type { Logger } from './logger.ts'
import { UserError } from './errors.ts'
import { ensureDataDir, acquireDataDirLock, loadOrCreatePeerKey, loadClusterSecret } from './data-dir.ts'
import { createHost, type ShoalLibp2p, type HandshakeStats } from './libp2p-host.ts'
import { startApiServer, ApiError, type ApiHandler, type ApiResult } from './api-server.ts'
import { EventHub, SUBSCRIBER_QUEUE_MAX, type ClusterEvent } from './event-hub.ts'
import { SHOAL_VERSION } from './version.ts'
import { Membership, type MemberView } from '../protocols/gossip/membership.ts'
import { EventTopic, userEventNameProblem, USER_EVENT_PAYLOAD_MAX_BYTES } from '../protocols/gossip/event-topic.ts'
import type { HostRecord } from '../protocols/gossip/host-record.ts'
import { DockerProbe, type RuntimeStatus } from '../runtime/docker-probe.ts'

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
  runtime: 'docker' | 'none'
  runtimeStatus: RuntimeStatus
  startedAt: string
  dataDir: string
  members: Record<'alive' | 'suspect' | 'dead' | 'left', number>
  security: HandshakeStats
  gossip: { swim: Membership['transportStats']; events: EventTopic['stats'] & { subscribers: number; mesh: number } }
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
  private docker: DockerProbe | null = null
  private api: Server | null = null
  private readonly hub = new EventHub()
  private readonly startedAt = new Date().toISOString()
  private runtimeStatus: RuntimeStatus = { runtime: 'none', socket: null, engineVersion: null, degraded: null }

  constructor(config: StartConfig, log: Logger) {
    this.config = config
    this.log = log
  }

  /** This peer's id; valid after start(). */
  get peerId(): string {
    return this.node().peerId.toString()
  }

  async start(): Promise<void> {
    const { config, log } = this
    ensureDataDir(config.dataDir)
    this.releaseLock = acquireDataDirLock(config.dataDir)
    const privateKey = await loadOrCreatePeerKey(config.dataDir)
    const { secret, source } = loadClusterSecret(config.dataDir, config.secretFile, config.bootstrap.length > 0)
    if (source === 'created') log.info(`founded a new cluster; its secret is ${config.dataDir}/cluster.key — give joining peers a copy (--secret-file)`)

    const host = await createHost({ privateKey, listen: config.listen, bootstrap: config.bootstrap, clusterSecret: secret })
    this.libp2p = host.libp2p
    this.handshakes = host.handshakes
    try {
      await this.libp2p.start()
    } catch (err) {
      throw new UserError(`cannot listen on ${config.listen.map(String).join(', ')}: ${err instanceof Error ? err.message : String(err)}; pass a free --listen address`)
    }
    const addrs = this.libp2p.getMultiaddrs().map(String)

    this.membership = new Membership({
      libp2p: this.libp2p,
      host: this.hostRecord(addrs),
      bootstrap: config.bootstrap,
      log: log.child('membership'),
      onChange: (change, hostRecord) => {
        const name = hostRecord?.name ?? null
        if (change.peerId !== this.peerId) {
          const label = `${name ?? '?'} (${change.peerId})`
          if (change.previous === null) log.info(`peer ${label} joined as ${change.state}`)
          else log.info(`peer ${label} is ${change.state} (was ${change.previous})`)
        }
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
      isMember: (id) => {
        const state = this.membership?.stateOf(id)
        return state === 'alive' || state === 'suspect'
      },
      onEvent: (event) => this.hub.publish(event),
      debug: (m) => log.debug(m),
    })
    this.events.start()

    if (config.docker === 'none') {
      log.info(config.dockerDefaulted ? 'no Docker socket at /var/run/docker.sock: running without a container runtime' : 'running without a container runtime (--docker none)')
    } else {
      this.docker = new DockerProbe(config.docker, (status) => {
        if (status.degraded === null) log.info(`Docker engine ${status.engineVersion} reachable at ${status.socket}`)
        else log.warn(`container runtime degraded: ${status.degraded}; retrying with back-off`)
      })
      this.runtimeStatus = this.docker.status
      await this.docker.start()
    }

    this.api = await startApiServer(config.apiSocket, this.routes(), log.child('api'))
    log.info(`peer ${config.name} ${this.peerId} started; listening on ${addrs.join(' ')}; API ${config.apiSocket}`)
    if (config.bootstrap.length > 0) log.info(`joining through ${config.bootstrap.map(String).join(', ')}`)
  }

  /** Graceful stop: announce leaving, then close everything in reverse start order. */
  async stop(): Promise<void> {
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
    await this.membership?.stop(true)
    this.events?.stop()
    this.docker?.stop()
    await this.libp2p?.stop()
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
      // Consensus is not wired in yet: the contract's Raft fields report "no role".
      role: 'none',
      term: 0,
      leader: null,
      commitIndex: 0,
      appliedIndex: 0,
      voters: [],
      learners: [],
      runtime: this.runtimeStatus.runtime,
      runtimeStatus: this.runtimeStatus,
      startedAt: this.startedAt,
      dataDir: this.config.dataDir,
      members,
      security: this.handshakes ?? { rejectedInbound: 0, rejectedOutbound: 0, lastRejectedAddr: null, lastRejectedAt: null },
      gossip: {
        swim: this.membershipOrThrow().transportStats,
        events: { ...(this.events?.stats ?? { published: 0, received: 0, droppedNotMember: 0, droppedInvalid: 0 }), ...(this.events?.topology() ?? { subscribers: 0, mesh: 0 }) },
      },
    }
  }

  peers(): PeerView[] {
    return this.membershipOrThrow().members().map((m) => ({
      peerId: m.peerId,
      name: m.host?.name ?? null,
      addrs: m.host?.addrs ?? [],
      state: m.state,
      voter: false,
      self: m.self,
      incarnation: m.incarnation,
      stateSince: m.stateSince,
      version: m.host?.version ?? null,
      startedAt: m.host?.startedAt ?? null,
      cpus: m.host?.cpus ?? null,
      memoryBytes: m.host?.memoryBytes ?? null,
    }))
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
      ['GET /v1/events', (req) => ({ stream: (res, httpReq) => this.streamEvents(req.query.get('history') === '1', res, httpReq) })],
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
