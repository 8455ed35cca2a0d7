/**
 * An in-memory container runtime with the same contract as `DockerRuntime`, for unit tests
 * and the simulator. Deterministic: no clock of its own (times come from the `now` option,
 * which the simulator wires to its simulated clock), ids derived from the host id and a
 * counter, and every change emitted synchronously inside the call that caused it.
 *
 * It models the two halves a real host has: the engine (what containers really exist) and
 * the runtime's view of it (what was reported). While the engine is up and the runtime
 * started, every change is reported as it happens. `engineDown()` cuts the view off: changes
 * made meanwhile (containers that die with the engine, events that were lost) are not
 * reported until `engineUp()`, which reports the whole truth as `reconciled` — exactly what
 * DockerRuntime does after a reconnect.
 *
 * As a `TaskEngine` it answers as DockerRuntime would: the same validation and the same
 * EngineError kinds and messages (both from docker-task-config.ts), `unavailable` while the
 * engine is down or the runtime not started, images "missing" on demand (`missingImages`,
 * `setImageMissing`). Calls settle through Promise.resolve/reject, with no timer, and their
 * changes are emitted synchronously inside the call.
 */
import { fnv1a64, type Container, type ContainerHealth, type PortMapping } from '../storage/statestore/index.ts'
import { checkIdentity, toContainerRecord, type ContainerDraft } from './container-record.ts'
import { engineErrorOf, taskCreateBody, type EngineOp } from './docker-task-config.ts'
import {
  compareContainers, EngineError, sameStatus,
  type ContainerRuntime, type RuntimeChange, type RuntimeIdentity, type RuntimeStatus, type TaskContainerSpec, type TaskEngine,
} from './runtime.ts'

export interface MemoryRuntimeOptions {
  identity: RuntimeIdentity
  /** Milliseconds since the epoch, read for startedAt/finishedAt; default always 0. */
  now?: () => number
  /** Shown as the status socket (default null). */
  socket?: string | null
  /** The host's bridge gateway addresses, as a Docker engine would report them (default none). */
  gateways?: string[]
  /** Images `runTask` finds missing ('image-missing'), as on a host that never loaded them. */
  missingImages?: string[]
}

/** What `create`/`run` take; everything but name and image has a default. */
export interface MemoryContainerSpec {
  name: string
  image: string
  /** Default: derived from the host id and a per-runtime counter (64 hex digits). */
  id?: string
  labels?: Readonly<Record<string, string>>
  ips?: readonly string[]
  ports?: readonly PortMapping[]
  /** Set for an image with a health check ('starting' until `setHealth`). */
  health?: ContainerHealth
}

const utf8 = new TextEncoder()

/** Thrown for an operation a real engine would refuse (unknown id, duplicate name...): a test bug. */
export class MemoryRuntimeError extends Error {
  override readonly name = 'MemoryRuntimeError'
}

/** Shown in engine error messages in place of a socket path. */
const MEMORY_SOCKET = 'memory'

export class MemoryRuntime implements ContainerRuntime, TaskEngine {
  private readonly identity: RuntimeIdentity
  private readonly now: () => number
  private readonly listeners: Array<(change: RuntimeChange) => void> = []
  /** The engine's truth, by id. */
  private readonly engine = new Map<string, ContainerDraft>()
  /** What has been reported, by id. */
  private known = new Map<string, Container>()
  private sorted: Container[] | null = null
  private currentStatus: RuntimeStatus
  private started = false
  private up = true
  private downReason = 'engine stopped'
  private nextSerial = 1
  private readonly missingImages: Set<string>
  /** What each task container was created from, by id (for tests of the agent). */
  private readonly taskSpecs = new Map<string, TaskContainerSpec>()

  constructor(options: MemoryRuntimeOptions) {
    checkIdentity(options.identity)
    this.identity = { ...options.identity }
    this.now = options.now ?? (() => 0)
    this.currentStatus = { runtime: 'memory', socket: options.socket ?? null, engineVersion: null, degraded: 'not started', gateways: [...(options.gateways ?? [])] }
    this.missingImages = new Set(options.missingImages ?? [])
  }

  // --- ContainerRuntime ---

  status(): RuntimeStatus {
    return { ...this.currentStatus, gateways: [...this.currentStatus.gateways] }
  }

  /** Reports the whole truth (`reconciled`), then healthy status; degraded if the engine is down. */
  start(): Promise<void> {
    if (!this.started) {
      this.started = true
      if (this.up) this.reconcile()
      this.setStatus(this.up ? null : this.downReason)
    }
    return Promise.resolve()
  }

  stop(): Promise<void> {
    this.started = false
    return Promise.resolve()
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

  // --- TaskEngine ---

  /** Creates and starts a task container: labels from the spec, published ports bound, health 'starting' with a health check. */
  runTask(spec: TaskContainerSpec): Promise<string> {
    const down = this.unavailable('create', spec.name)
    if (down !== null) return Promise.reject(down)
    // The engine-independent half of Docker's answer: the same bad specs are refused here.
    const mapped = taskCreateBody(spec)
    if (!mapped.ok) return Promise.reject(mapped.error)
    const subject = { socket: MEMORY_SOCKET, container: spec.name, image: spec.image }
    if (this.missingImages.has(spec.image)) {
      return Promise.reject(engineErrorOf('create', { status: 404, message: `No such image: ${spec.image}` }, subject))
    }
    for (const c of this.engine.values()) {
      if (c.name === spec.name) {
        return Promise.reject(engineErrorOf('create', { status: 409, message: `Conflict. The container name "/${spec.name}" is already in use by container "${c.id}". You have to remove (or rename) that container to be able to reuse that name.` }, subject))
      }
    }
    let id: string
    try {
      id = this.create({ name: spec.name, image: spec.image, labels: spec.labels, ports: taskPorts(spec), ...(spec.healthCheck === null ? {} : { health: 'starting' as const }) }).id
    } catch (err) {
      // The record would not fit the StateStore's limits (labels too long...): Docker would have run it, but nobody could see it.
      return Promise.reject(new EngineError('invalid', `task container ${spec.name}: ${err instanceof Error ? err.message : String(err)}`))
    }
    this.taskSpecs.set(id, spec)
    this.startContainer(id)
    return Promise.resolve(id)
  }

  /** Starts a created or exited container; a running one is success, a paused or dead one is refused, as by Docker. */
  startTask(id: string): Promise<void> {
    const down = this.unavailable('start', id)
    if (down !== null) return Promise.reject(down)
    const c = this.engine.get(id)
    if (c === undefined) return Promise.reject(engineErrorOf('start', { status: 404, message: `No such container: ${id}` }, { socket: MEMORY_SOCKET, container: id }))
    if (c.state === 'paused' || c.state === 'dead') {
      return Promise.reject(engineErrorOf('start', { status: 409, message: `cannot start a ${c.state} container` }, { socket: MEMORY_SOCKET, container: id }))
    }
    if (c.state !== 'running') this.startContainer(id)
    return Promise.resolve()
  }

  /** The container exits (code 0, a process that heeds SIGTERM); stopped or missing is success. */
  stopTask(id: string, graceMs: number): Promise<void> {
    if (!Number.isFinite(graceMs) || graceMs < 0) return Promise.reject(new EngineError('invalid', `stop grace ${graceMs} ms for container ${id} is not a duration >= 0`))
    const down = this.unavailable('stop', id)
    if (down !== null) return Promise.reject(down)
    const c = this.engine.get(id)
    if (c !== undefined && (c.state === 'running' || c.state === 'paused')) this.stopContainer(id, 0)
    return Promise.resolve()
  }

  /** `docker rm -f`; a missing container is success. */
  removeTask(id: string): Promise<void> {
    const down = this.unavailable('remove', id)
    if (down !== null) return Promise.reject(down)
    if (this.engine.has(id)) this.remove(id)
    return Promise.resolve()
  }

  /** Makes `runTask` of `image` fail with 'image-missing' (or succeed again). */
  setImageMissing(image: string, missing: boolean): void {
    if (missing) this.missingImages.add(image)
    else this.missingImages.delete(image)
  }

  /** The spec a task container was created from (undefined for other containers and removed ones). */
  taskSpec(id: string): TaskContainerSpec | undefined {
    return this.taskSpecs.get(id)
  }

  // --- the engine, driven by the test or simulator ---

  /** Creates a container in state `created`; returns its record. */
  create(spec: MemoryContainerSpec): Container {
    const id = spec.id ?? this.deriveId()
    if (this.engine.has(id)) throw new MemoryRuntimeError(`container ${id} already exists`)
    for (const c of this.engine.values()) if (c.name === spec.name) throw new MemoryRuntimeError(`container name ${spec.name} is in use`)
    const draft: ContainerDraft = {
      id,
      name: spec.name,
      image: spec.image,
      ips: [...(spec.ips ?? [])],
      ports: [...(spec.ports ?? [])],
      labels: { ...(spec.labels ?? {}) },
      state: 'created',
      health: spec.health ?? null,
    }
    return this.change(draft)
  }

  /** `docker run`: create, then start. */
  run(spec: MemoryContainerSpec): Container {
    return this.startContainer(this.create(spec).id)
  }

  /** Starts (or restarts) a container. */
  startContainer(id: string): Container {
    const c = this.get(id)
    return this.change({ ...c, state: 'running', startedAt: this.isoNow(), finishedAt: null, exitCode: null, health: c.health === null || c.health === undefined ? null : 'starting' })
  }

  /** The main process exits with `exitCode` (`docker stop` of a well-behaved process gives 0). */
  stopContainer(id: string, exitCode = 0): Container {
    const c = this.get(id)
    return this.change({ ...c, state: 'exited', finishedAt: this.isoNow(), exitCode })
  }

  /** `docker kill`: exit code 128 + SIGKILL. */
  kill(id: string): Container {
    return this.stopContainer(id, 137)
  }

  pause(id: string): Container {
    const c = this.get(id)
    if (c.state !== 'running') throw new MemoryRuntimeError(`container ${id} is not running`)
    return this.change({ ...c, state: 'paused' })
  }

  unpause(id: string): Container {
    const c = this.get(id)
    if (c.state !== 'paused') throw new MemoryRuntimeError(`container ${id} is not paused`)
    return this.change({ ...c, state: 'running' })
  }

  /** Marks a container dead (Docker: failed removal or a broken engine). */
  markDead(id: string, exitCode = 255): Container {
    const c = this.get(id)
    return this.change({ ...c, state: 'dead', finishedAt: this.isoNow(), exitCode })
  }

  setHealth(id: string, health: ContainerHealth): Container {
    return this.change({ ...this.get(id), health })
  }

  rename(id: string, name: string): Container {
    for (const c of this.engine.values()) if (c.name === name && c.id !== id) throw new MemoryRuntimeError(`container name ${name} is in use`)
    return this.change({ ...this.get(id), name })
  }

  /** `docker rm -f`. */
  remove(id: string): void {
    this.get(id)
    this.engine.delete(id)
    this.taskSpecs.delete(id)
    if (!this.reporting()) return
    if (this.known.delete(id)) {
      this.sorted = null
      this.emit({ type: 'remove', id })
    }
  }

  /** The engine becomes unreachable: status degraded; changes from now on are not reported. */
  engineDown(reason = 'engine stopped'): void {
    this.up = false
    this.downReason = reason
    if (this.started) this.setStatus(reason)
  }

  /** The engine is back: the whole truth as `reconciled`, then healthy status. */
  engineUp(): void {
    this.up = true
    if (!this.started) return
    this.reconcile()
    this.setStatus(null)
  }

  /** A periodic reconcile: reports the whole truth now (nothing while down or stopped). */
  reconcile(): void {
    if (!this.reporting()) return
    const known = new Map<string, Container>()
    for (const draft of this.engine.values()) known.set(draft.id, this.record(draft))
    this.known = known
    this.sorted = null
    this.emit({ type: 'reconciled', containers: [...this.containers()] })
  }

  /** The engine's truth, which may differ from `containers()` while the engine is down. */
  engineContainers(): Container[] {
    return [...this.engine.values()].map((d) => this.record(d)).sort(compareContainers)
  }

  // --- internals ---

  private reporting(): boolean {
    return this.started && this.up
  }

  /** DockerRuntime has no connection to ask while not started or while the engine is down: the same here. */
  private unavailable(op: EngineOp, container: string): EngineError | null {
    if (this.reporting()) return null
    const why = this.started ? this.downReason : 'the runtime is not started'
    return new EngineError('unavailable', `engine ${MEMORY_SOCKET} is not connected (${why}): cannot ${op} ${container}; the agent retries once it is back`)
  }

  private get(id: string): ContainerDraft {
    const c = this.engine.get(id)
    if (c === undefined) throw new MemoryRuntimeError(`no such container: ${id}`)
    return c
  }

  private change(draft: ContainerDraft): Container {
    const container = this.record(draft)
    this.engine.set(draft.id, draft)
    if (this.reporting()) {
      this.known.set(draft.id, container)
      this.sorted = null
      this.emit({ type: 'upsert', container })
    }
    return container
  }

  private record(draft: ContainerDraft): Container {
    const outcome = toContainerRecord(draft, this.identity)
    if (!outcome.ok) throw new MemoryRuntimeError(outcome.error)
    return outcome.container
  }

  private deriveId(): string {
    const seed = `${this.identity.hostId}/${this.nextSerial++}`
    return [0, 1, 2, 3].map((i) => fnv1a64(utf8.encode(`${seed}/${i}`))).join('')
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString()
  }

  private setStatus(degraded: string | null): void {
    const next: RuntimeStatus = { ...this.currentStatus, degraded }
    if (sameStatus(next, this.currentStatus)) return
    this.currentStatus = next
    this.emit({ type: 'status', status: { ...next } })
  }

  private emit(change: RuntimeChange): void {
    for (const listener of [...this.listeners]) listener(change)
  }
}

/**
 * The ports a Docker engine reports for a running task container: each published port bound
 * on 0.0.0.0 and :: (HostIp '' binds every address, and Docker lists both families), each
 * port that is only exposed without a host side.
 */
function taskPorts(spec: TaskContainerSpec): PortMapping[] {
  const ports: PortMapping[] = []
  const published = new Set<string>()
  for (const p of spec.published) {
    published.add(`${p.containerPort}/${p.protocol}`)
    for (const hostIp of ['0.0.0.0', '::']) ports.push({ containerPort: p.containerPort, protocol: p.protocol, hostPort: p.hostPort, hostIp })
  }
  for (const p of spec.exposed) if (!published.has(`${p.port}/${p.protocol}`)) ports.push({ containerPort: p.port, protocol: p.protocol })
  return ports
}
