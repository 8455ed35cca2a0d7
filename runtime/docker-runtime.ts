/**
 * The Docker runtime: follows the containers of the engine behind one socket with dockerode.
 *
 * A connection ("session") goes: version → open the event stream → reconcile (list all,
 * inspect each, emit `reconciled`) → healthy status → follow events, with a periodic
 * reconcile that also looks at the bridge networks again (their gateways are where containers
 * reach this host's DNS; `bridgeGatewaysOf` says how they are found). The stream is opened before the list so no change falls between the two;
 * events that arrive meanwhile wait and are inspected after `reconciled`.
 *
 * Ordering per container id: at most one inspection in flight per id; events arriving while
 * one is in flight coalesce into one more inspection after it. A reconcile first pauses new
 * inspections and waits for running ones, so a `reconciled` never overtakes (or is overtaken
 * by) an older inspection of the same id. Upserts that would not change the record are not
 * emitted (a `docker stop` gives kill, die and stop events: one upsert).
 *
 * Failures: an unreachable engine, a broken stream or a failed reconcile closes the session
 * (status degraded, with the reason) and reconnects after a back-off of 500 ms doubling to
 * 30 s; the back-off starts over once a connection has stayed up for STABLE_CONNECTION_MS.
 * Each session has its own HTTP agent: closing it destroys every socket, so `stop()` leaves
 * no handles behind and a late answer of an old session is ignored.
 */
import { Agent } from 'node:http'
import { networkInterfaces } from 'node:os'
import { Readable } from 'node:stream'
import Docker from 'dockerode'
import type { Container } from '../storage/statestore/index.ts'
import { checkIdentity, toContainerRecord } from './container-record.ts'
import { bridgeGatewaysOf, describeGateway, draftFromInspect, eventEffect, EventLineParser, type DockerInspect } from './docker-mapping.ts'
import { engineErrorOf, stopTimeoutSeconds, taskCreateBody, type EngineOp, type EngineSubject } from './docker-task-config.ts'
import {
  compareContainers, EngineError, sameStatus, SILENT_LOG,
  type ContainerRuntime, type RuntimeChange, type RuntimeIdentity, type RuntimeLog, type RuntimeStatus, type TaskContainerSpec, type TaskEngine,
} from './runtime.ts'

/** Default period of the full reconcile that catches anything the events missed. */
export const RECONCILE_INTERVAL_MS = 30_000
/** Default bound on one API request (not the event stream, which is idle for long stretches). */
export const REQUEST_TIMEOUT_MS = 10_000
/** First reconnect delay. */
export const BACKOFF_MIN_MS = 500
/** Longest reconnect delay. */
export const BACKOFF_MAX_MS = 30_000
/** A connection that lasted this long resets the back-off; a flapping engine keeps doubling it. */
export const STABLE_CONNECTION_MS = 10_000
/** Most inspections in flight at once (events and reconcile alike). */
export const INSPECT_CONCURRENCY_MAX = 8
/** Most distinct container ids waiting for an inspection; beyond it the queue is dropped for one full reconcile. */
export const PENDING_IDS_MAX = 10_000
/** Most HTTP sockets per session: the event stream plus the inspections. */
const AGENT_MAX_SOCKETS = INSPECT_CONCURRENCY_MAX + 4
/** How long `stop()` waits for in-flight work of the closed session to unwind. */
const STOP_DRAIN_MS = 2_000

export interface DockerRuntimeOptions {
  /** Path of the engine's Unix socket. */
  socket: string
  identity: RuntimeIdentity
  reconcileIntervalMs?: number
  requestTimeoutMs?: number
  backoffMinMs?: number
  backoffMaxMs?: number
  log?: RuntimeLog
}

/** Counters for logs and tests. */
export interface DockerRuntimeStats {
  /** Connections that reached a healthy status. */
  connects: number
  /** Connections closed by a failure, failed connection attempts included. */
  disconnects: number
  reconciles: number
  inspections: number
  containerEvents: number
  garbageEventLines: number
  clampedRecords: number
  droppedRecords: number
}

/** The next reconnect delay after `currentMs`: doubled, within [minMs, maxMs]. */
export function nextBackoffMs(currentMs: number, minMs = BACKOFF_MIN_MS, maxMs = BACKOFF_MAX_MS): number {
  return Math.min(maxMs, Math.max(minMs, currentMs * 2))
}

type Work = 'inspect' | 'remove'

/** One connection to the engine; everything it started checks `closed` before acting. */
interface Session {
  closed: boolean
  readonly agent: Agent
  /** Requests, bounded by requestTimeoutMs. */
  readonly api: Docker
  /** The event stream only (no timeout). */
  readonly events: Docker
  readonly abort: AbortController
  readonly parser: EventLineParser
  stream: Readable | null
  /** Ids waiting for work, in arrival order; the latest work for an id wins. */
  readonly pending: Map<string, Work>
  readonly active: Map<string, Promise<void>>
  /** No new work starts while true (until the first reconcile, and during every reconcile). */
  paused: boolean
  reconciling: Promise<void> | null
  reconcileAgain: boolean
  timer: ReturnType<typeof setTimeout> | null
  connectedAtMs: number | null
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message
  }
  return String(err)
}

/** The HTTP status of a dockerode error (the engine answered), or null for a transport failure. */
function httpStatusOf(err: unknown): number | null {
  if (typeof err !== 'object' || err === null) return null
  const status = (err as { statusCode?: unknown }).statusCode
  return typeof status === 'number' ? status : null
}

/** Docker's own message of a refusal (the JSON body's `message`), else the error's text. */
function engineMessageOf(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const json = (err as { json?: unknown }).json
    if (typeof json === 'object' && json !== null) {
      const message = (json as { message?: unknown }).message
      if (typeof message === 'string' && message !== '') return message
    }
  }
  return errorText(err)
}

/** Records from toContainerRecord list their fields in one order, so equal JSON means equal records. */
function sameRecord(a: Container, b: Container): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

export class DockerRuntime implements ContainerRuntime, TaskEngine {
  private readonly socket: string
  private readonly identity: RuntimeIdentity
  private readonly reconcileIntervalMs: number
  private readonly requestTimeoutMs: number
  private readonly backoffMinMs: number
  private readonly backoffMaxMs: number
  private readonly log: RuntimeLog
  private readonly listeners: Array<(change: RuntimeChange) => void> = []
  private known = new Map<string, Container>()
  private sorted: Container[] | null = null
  private currentStatus: RuntimeStatus
  private session: Session | null = null
  private backoffMs: number
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null
  private running = false
  private connecting: Promise<void> | null = null
  /** What the log last said about the bridge gateways (said again only when it changes). */
  private gatewaySummary: string | null = null
  private readonly counters: DockerRuntimeStats = {
    connects: 0, disconnects: 0, reconciles: 0, inspections: 0, containerEvents: 0, garbageEventLines: 0, clampedRecords: 0, droppedRecords: 0,
  }

  constructor(options: DockerRuntimeOptions) {
    checkIdentity(options.identity)
    this.socket = options.socket
    this.identity = { ...options.identity }
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    this.backoffMinMs = options.backoffMinMs ?? BACKOFF_MIN_MS
    this.backoffMaxMs = options.backoffMaxMs ?? BACKOFF_MAX_MS
    this.backoffMs = this.backoffMinMs
    this.log = options.log ?? SILENT_LOG
    this.currentStatus = { runtime: 'docker', socket: this.socket, engineVersion: null, degraded: 'not connected yet', gateways: [] }
  }

  // --- ContainerRuntime ---

  status(): RuntimeStatus {
    return { ...this.currentStatus }
  }

  /** Connects once (awaited, so the start-up log is accurate); on failure keeps retrying in the background. */
  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.backoffMs = this.backoffMinMs
    await this.connect()
  }

  async stop(): Promise<void> {
    this.running = false
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    const session = this.session
    const waits: Array<Promise<unknown>> = []
    if (this.connecting !== null) waits.push(this.connecting)
    if (session !== null) {
      waits.push(...session.active.values())
      if (session.reconciling !== null) waits.push(session.reconciling)
      this.closeSession(session)
    }
    this.session = null
    // Closing destroyed every socket, so these settle at once; the bound is only a guard.
    let guard: ReturnType<typeof setTimeout> | null = null
    await Promise.race([
      Promise.allSettled(waits),
      new Promise<void>((resolve) => { guard = setTimeout(resolve, STOP_DRAIN_MS) }),
    ])
    if (guard !== null) clearTimeout(guard)
  }

  subscribe(listener: (change: RuntimeChange) => void): () => void {
    this.listeners.push(listener)
    return () => {
      const i = this.listeners.indexOf(listener)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }

  containers(): readonly Container[] {
    this.sorted ??= [...this.known.values()].sort(compareContainers)
    return this.sorted
  }

  /** Counters since construction (a copy). */
  stats(): DockerRuntimeStats {
    return { ...this.counters }
  }

  // --- TaskEngine ---
  // Requests go over the current session's connection (so stop() cancels them and a degraded
  // engine answers at once); they never pull an image: no registry need be reachable, and a
  // missing image is the operator's to load. Changes they cause arrive through the event
  // stream like any other, so subscribers see task containers exactly as they see the rest.

  /** Creates and starts a task container; resolves its id. A container whose start fails is removed again. */
  async runTask(spec: TaskContainerSpec): Promise<string> {
    const mapped = taskCreateBody(spec)
    if (!mapped.ok) throw mapped.error
    const session = this.taskSession('create', spec.name)
    const subject: EngineSubject = { socket: this.socket, container: spec.name, image: spec.image }
    let id: string
    try {
      // `_query`/`_body` tell docker-modem to send only the name in the URL; by default it
      // copies the whole body (environment included) into the query string as well.
      const request = { _query: { name: spec.name }, _body: mapped.body, abortSignal: session.abort.signal }
      id = (await session.api.createContainer(request as Docker.ContainerCreateOptions)).id
    } catch (err) {
      throw this.taskError('create', err, subject)
    }
    const container = session.api.getContainer(id)
    try {
      await container.start({ abortSignal: session.abort.signal })
    } catch (err) {
      const error = engineErrorOf('start', { status: httpStatusOf(err), message: engineMessageOf(err) }, { ...subject, container: `${spec.name} (${id.slice(0, 12)})` })
      if (error === null) return id
      // No half-made task container is left behind: the agent would otherwise find a created one to adopt.
      await container.remove({ force: true, v: true, abortSignal: session.abort.signal }).catch((removeErr: unknown) => {
        if (httpStatusOf(removeErr) !== 404) this.log.warn(`container ${spec.name} (${id.slice(0, 12)}) failed to start and could not be removed: ${errorText(removeErr)}; remove it with docker rm -f ${id.slice(0, 12)}`)
      })
      throw error
    }
    return id
  }

  /** Starts a stopped task container again; one already running is success (304). */
  async startTask(id: string): Promise<void> {
    const session = this.taskSession('start', id)
    try {
      await session.api.getContainer(id).start({ abortSignal: session.abort.signal })
    } catch (err) {
      const error = this.taskErrorOrNull('start', err, id)
      if (error !== null) throw error
    }
  }

  /**
   * `docker stop -t ceil(graceMs / 1000)`: SIGTERM, SIGKILL after the grace. A stopped or
   * missing container is success. The request may stay silent for the whole grace, so its
   * timeout is the grace plus the usual request bound.
   */
  async stopTask(id: string, graceMs: number): Promise<void> {
    if (!Number.isFinite(graceMs) || graceMs < 0) throw new EngineError('invalid', `stop grace ${graceMs} ms for container ${id} is not a duration >= 0`)
    const session = this.taskSession('stop', id)
    const t = stopTimeoutSeconds(graceMs)
    const { agent } = session
    const api = new Docker({ socketPath: this.socket, timeout: t * 1000 + this.requestTimeoutMs, agent } as Docker.DockerOptions & { agent: Agent })
    try {
      await api.getContainer(id).stop({ t, abortSignal: session.abort.signal })
    } catch (err) {
      const error = this.taskErrorOrNull('stop', err, id)
      if (error !== null) throw error
    }
  }

  /** `docker rm -f -v` (anonymous volumes go with the task, as Swarm does); a missing container is success. */
  async removeTask(id: string): Promise<void> {
    const session = this.taskSession('remove', id)
    try {
      await session.api.getContainer(id).remove({ force: true, v: true, abortSignal: session.abort.signal })
    } catch (err) {
      const error = this.taskErrorOrNull('remove', err, id)
      if (error !== null) throw error
    }
  }

  /** The open session, or 'unavailable' when there is none (not started, stopped, or waiting to reconnect). */
  private taskSession(op: EngineOp, container: string): Session {
    const session = this.session
    if (session === null || session.closed || !this.running) {
      const why = this.running ? this.currentStatus.degraded ?? 'reconnecting' : 'the runtime is not started'
      throw new EngineError('unavailable', `Docker engine at ${this.socket} is not connected (${why}): cannot ${op} ${container}; the agent retries once it is back`)
    }
    return session
  }

  private taskErrorOrNull(op: EngineOp, err: unknown, container: string): EngineError | null {
    return engineErrorOf(op, { status: httpStatusOf(err), message: engineMessageOf(err) }, { socket: this.socket, container })
  }

  /** For operations where no failure counts as success (create). */
  private taskError(op: EngineOp, err: unknown, subject: EngineSubject): EngineError {
    return engineErrorOf(op, { status: httpStatusOf(err), message: engineMessageOf(err) }, subject) ??
      new EngineError('invalid', `Docker answered ${op} of ${subject.container} with ${errorText(err)}`)
  }

  // --- connection ---

  private connect(): Promise<void> {
    const attempt = this.openSession().finally(() => {
      if (this.connecting === attempt) this.connecting = null
    })
    this.connecting = attempt
    return attempt
  }

  private async openSession(): Promise<void> {
    const agent = new Agent({ keepAlive: true, maxSockets: AGENT_MAX_SOCKETS })
    // docker-modem takes an `agent` option its typings do not list.
    const clientOptions = (timeout: number | undefined): Docker.DockerOptions => ({ socketPath: this.socket, ...(timeout === undefined ? {} : { timeout }), agent } as Docker.DockerOptions & { agent: Agent })
    const session: Session = {
      closed: false,
      agent,
      api: new Docker(clientOptions(this.requestTimeoutMs)),
      events: new Docker(clientOptions(undefined)),
      abort: new AbortController(),
      parser: new EventLineParser(),
      stream: null,
      pending: new Map(),
      active: new Map(),
      paused: true,
      reconciling: null,
      reconcileAgain: false,
      timer: null,
      connectedAtMs: null,
    }
    this.session = session
    try {
      const version = await session.api.version()
      if (session.closed) return
      const engineVersion = typeof version.Version === 'string' ? version.Version : 'unknown'
      const gateways = await this.bridgeGateways(session)
      const body = await session.events.getEvents({ filters: { type: ['container'] }, abortSignal: session.abort.signal })
      if (!(body instanceof Readable)) throw new Error('event stream is not a readable stream')
      if (session.closed) {
        body.destroy()
        return
      }
      this.followEvents(session, body)
      await this.reconcile(session)
      if (session.closed) return
      session.connectedAtMs = performance.now()
      this.counters.connects++
      if (this.currentStatus.engineVersion !== engineVersion || this.currentStatus.degraded !== null) {
        this.log.info(`Docker engine ${engineVersion} at ${this.socket}: following ${this.known.size} containers`)
      }
      this.setStatus(null, engineVersion, gateways)
      this.scheduleReconcile(session)
    } catch (err) {
      this.fail(session, `engine unreachable at ${this.socket}: ${errorText(err)}`)
    }
  }

  /**
   * Gateway addresses of the engine's bridge networks, the default bridge's first (see
   * `bridgeGatewaysOf`). The interfaces read are this process's network namespace's: right
   * when the peer runs on the Docker host itself, as it must to listen on the bridges.
   * Says in the log how each was found whenever the answer changes.
   */
  private async bridgeGateways(session: Session): Promise<string[]> {
    const networks = await session.api.listNetworks({ filters: { driver: ['bridge'] }, abortSignal: session.abort.signal })
    const result = bridgeGatewaysOf(networks, networkInterfaces())
    const summary = [...result.found.map(describeGateway), ...result.unresolved.map((u) => `${u.network}: no gateway, ${u.reason}`)].join('; ')
    if (summary !== this.gatewaySummary) {
      this.gatewaySummary = summary
      if (result.found.length > 0) this.log.info(`bridge gateways of the engine at ${this.socket}: ${result.found.map(describeGateway).join('; ')}`)
      for (const u of result.unresolved) this.log.warn(`bridge network ${u.network} of the engine at ${this.socket} has no gateway address: ${u.reason}; containers on it cannot reach this peer`)
      if (networks.length === 0) this.log.warn(`the engine at ${this.socket} has no bridge network: containers on this host cannot reach this peer's DNS; create one (docker network create NAME) or start dockerd without --bridge=none`)
    }
    return result.addresses
  }

  /** Closes a failed session, says why in the status, and schedules the reconnect. */
  private fail(session: Session, reason: string): void {
    if (session.closed || session !== this.session) return
    this.closeSession(session)
    this.session = null
    if (!this.running) return
    this.counters.disconnects++
    if (session.connectedAtMs !== null && performance.now() - session.connectedAtMs >= STABLE_CONNECTION_MS) this.backoffMs = this.backoffMinMs
    const delayMs = this.backoffMs
    this.backoffMs = nextBackoffMs(this.backoffMs, this.backoffMinMs, this.backoffMaxMs)
    if (this.currentStatus.degraded !== reason) this.log.warn(`container runtime degraded: ${reason}; reconnecting in ${delayMs} ms`)
    else this.log.debug(`still degraded: ${reason}; reconnecting in ${delayMs} ms`)
    this.setStatus(reason, this.currentStatus.engineVersion, this.currentStatus.gateways)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      if (this.running) void this.connect()
    }, delayMs)
    this.reconnectTimer.unref()
  }

  private closeSession(session: Session): void {
    if (session.closed) return
    session.closed = true
    if (session.timer !== null) clearTimeout(session.timer)
    session.timer = null
    session.pending.clear()
    session.abort.abort()
    session.stream?.destroy()
    session.agent.destroy()
  }

  // --- events ---

  private followEvents(session: Session, stream: Readable): void {
    session.stream = stream
    let failure: string | null = null
    stream.on('data', (chunk: Buffer | string) => {
      if (session.closed) return
      this.onEvents(session, session.parser.push(chunk))
    })
    stream.on('error', (err: unknown) => {
      failure = errorText(err)
    })
    stream.on('close', () => {
      if (session.closed) return
      this.onEvents(session, session.parser.end())
      this.fail(session, failure === null ? `event stream from ${this.socket} ended` : `event stream from ${this.socket} failed: ${failure}`)
    })
  }

  private onEvents(session: Session, events: ReturnType<EventLineParser['push']>): void {
    const garbage = session.parser.garbageLines
    if (garbage > 0) {
      this.counters.garbageEventLines += garbage
      session.parser.garbageLines = 0
      this.log.debug(`skipped ${garbage} unreadable event line(s) from ${this.socket}`)
    }
    for (const event of events) {
      this.counters.containerEvents++
      const effect = eventEffect(event.action)
      if (effect !== 'ignore') this.enqueue(session, event.id, effect)
    }
  }

  private enqueue(session: Session, id: string, work: Work): void {
    if (!session.pending.has(id) && session.pending.size >= PENDING_IDS_MAX) {
      // Too far behind to catch up one id at a time: one list is cheaper and complete.
      this.log.warn(`more than ${PENDING_IDS_MAX} containers waiting for inspection: reconciling instead`)
      session.pending.clear()
      this.reconcileInBackground(session)
      return
    }
    session.pending.set(id, work)
    this.pump(session)
  }

  /** Starts waiting work while there is room; one piece of work per id at a time. */
  private pump(session: Session): void {
    if (session.closed || session.paused) return
    for (const [id, work] of session.pending) {
      if (session.active.size >= INSPECT_CONCURRENCY_MAX) return
      if (session.active.has(id)) continue
      session.pending.delete(id)
      const done = this.runWork(session, id, work).finally(() => {
        session.active.delete(id)
        this.pump(session)
      })
      session.active.set(id, done)
    }
  }

  /** Never rejects: failures close the session or are logged. */
  private async runWork(session: Session, id: string, work: Work): Promise<void> {
    if (work === 'remove') {
      this.applyRemove(id)
      return
    }
    const result = await this.inspect(session, id)
    if (session.closed) return
    if (result === 'gone') this.applyRemove(id)
    else if (result !== 'skip') this.applyUpsert(result)
  }

  /** Inspects one container: its record, 'gone' (404), or 'skip' (the engine refused; logged). Transport failures close the session. */
  private async inspect(session: Session, id: string): Promise<Container | 'gone' | 'skip'> {
    this.counters.inspections++
    let info: DockerInspect
    try {
      info = await session.api.getContainer(id).inspect({ abortSignal: session.abort.signal })
    } catch (err) {
      if (session.closed) return 'skip'
      const status = httpStatusOf(err)
      if (status === 404) return 'gone'
      if (status !== null) {
        this.log.warn(`inspect ${id.slice(0, 12)} failed: ${errorText(err)}`)
        return 'skip'
      }
      this.fail(session, `engine unreachable at ${this.socket}: ${errorText(err)}`)
      return 'skip'
    }
    return this.toRecord(info) ?? 'skip'
  }

  private toRecord(info: DockerInspect): Container | null {
    const outcome = toContainerRecord(draftFromInspect(info), this.identity)
    if (!outcome.ok) {
      this.counters.droppedRecords++
      this.log.warn(`container ${String(info.Id ?? '?').slice(0, 12)} not reported: ${outcome.error}`)
      return null
    }
    if (outcome.clamped.length > 0) {
      this.counters.clampedRecords++
      this.log.debug(`container ${outcome.container.name}: clamped ${outcome.clamped.join(', ')} to the record limits`)
    }
    return outcome.container
  }

  private applyUpsert(container: Container): void {
    const previous = this.known.get(container.id)
    if (previous !== undefined && sameRecord(previous, container)) return
    this.known.set(container.id, container)
    this.sorted = null
    this.emit({ type: 'upsert', container })
  }

  private applyRemove(id: string): void {
    if (!this.known.delete(id)) return
    this.sorted = null
    this.emit({ type: 'remove', id })
  }

  // --- reconcile ---

  /**
   * Lists every container, inspects each, replaces the view and emits `reconciled`.
   * Rejects on a transport failure (the caller fails the session). Concurrent calls share one
   * run, followed by one more if requested meanwhile.
   */
  private reconcile(session: Session): Promise<void> {
    if (session.reconciling !== null) {
      session.reconcileAgain = true
      return session.reconciling
    }
    const run = (async () => {
      try {
        do {
          session.reconcileAgain = false
          session.paused = true
          await Promise.all(session.active.values())
          if (session.closed) return
          await this.reconcileOnce(session)
          if (session.closed) return
        } while (session.reconcileAgain)
      } finally {
        session.reconciling = null
        session.paused = false
      }
      this.pump(session)
    })()
    session.reconciling = run
    return run
  }

  private async reconcileOnce(session: Session): Promise<void> {
    const list = await session.api.listContainers({ all: true, abortSignal: session.abort.signal })
    if (session.closed) return
    const ids = list.map((c) => c.Id).filter((id): id is string => typeof id === 'string')
    const records = new Map<string, Container>()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < ids.length && !session.closed) {
        const id = ids[next++] as string
        const result = await this.inspect(session, id)
        if (result === 'gone') continue // removed between the list and the inspect
        if (result === 'skip') {
          // The engine would not describe it, but it exists: keep what we knew rather than report it gone.
          const previous = this.known.get(id)
          if (previous !== undefined) records.set(id, previous)
          continue
        }
        records.set(id, result)
      }
    }
    await Promise.all(Array.from({ length: Math.min(INSPECT_CONCURRENCY_MAX, ids.length) }, worker))
    if (session.closed) return
    this.known = records
    this.sorted = null
    this.counters.reconciles++
    this.emit({ type: 'reconciled', containers: [...this.containers()] })
  }

  private async refreshGateways(session: Session): Promise<void> {
    if (session.closed) return
    const gateways = await this.bridgeGateways(session)
    if (session.closed || session !== this.session) return
    this.setStatus(this.currentStatus.degraded, this.currentStatus.engineVersion, gateways)
  }

  private reconcileInBackground(session: Session): void {
    this.reconcile(session).catch((err: unknown) => this.fail(session, `reconcile failed: ${errorText(err)}`))
  }

  private scheduleReconcile(session: Session): void {
    if (session.closed) return
    session.timer = setTimeout(() => {
      session.timer = null
      // Networks have no events here: a bridge created since the last look is found with the reconcile.
      this.reconcile(session).then(() => this.refreshGateways(session)).then(
        () => this.scheduleReconcile(session),
        (err: unknown) => this.fail(session, `engine unreachable at ${this.socket}: ${errorText(err)}`),
      )
    }, this.reconcileIntervalMs)
    session.timer.unref()
  }

  // --- output ---

  private setStatus(degraded: string | null, engineVersion: string | null, gateways: string[]): void {
    const next: RuntimeStatus = { runtime: 'docker', socket: this.socket, engineVersion, degraded, gateways }
    if (sameStatus(next, this.currentStatus)) return
    this.currentStatus = next
    this.emit({ type: 'status', status: { ...next } })
  }

  private emit(change: RuntimeChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change)
      } catch (err) {
        // A listener bug must not break the stream handling that called it.
        this.log.warn(`runtime listener threw on ${change.type}: ${errorText(err)}`)
      }
    }
  }
}
