/**
 * The container-runtime edge: what a peer learns about the containers of its own host.
 *
 * Two implementations share this interface: `DockerRuntime` (dockerode against a Docker
 * socket) and `MemoryRuntime` (deterministic, for unit tests and the simulator). The peer
 * subscribes, calls `start()`, and turns each change into gossip and a Raft proposal for
 * `containers/<host>/<id>`. Nothing above this layer imports dockerode.
 *
 * Ordering contract (both implementations):
 * - changes for one container id are emitted in the order the runtime observed them;
 * - a `reconciled` carries the whole truth at that moment: every `upsert`/`remove` emitted
 *   before it is superseded by it, so a consumer that missed anything converges by diffing;
 * - `status` with `degraded: null` is emitted only after the first `reconciled` of a
 *   connection, so "healthy" always means "the container view is fresh";
 * - nothing is emitted after `stop()` resolves.
 */
import type { Container, ContainerHealth, ContainerState, PortMapping } from '../storage/statestore/index.ts'

export type { Container, ContainerHealth, ContainerState, PortMapping }

/** What `shoal status` shows about the container runtime. */
export interface RuntimeStatus {
  runtime: 'docker' | 'none' | 'memory'
  /** The engine socket, or null when there is none. */
  socket: string | null
  /** Last engine version seen (kept while degraded, so the log can say what went away). */
  engineVersion: string | null
  /** Why the container view cannot be trusted right now, or null when it is current. */
  degraded: string | null
  /**
   * This host's addresses on its container bridges (Docker's bridge networks' gateways): where
   * containers reach the host, so where the peer's DNS listens for them. Kept while degraded.
   */
  gateways: string[]
}

/** One change of this host's containers. */
export type RuntimeChange =
  /** A container appeared or changed (from an event). */
  | { type: 'upsert'; container: Container }
  /** A container was destroyed. */
  | { type: 'remove'; id: string }
  /** Full truth after a list (start, every reconnect, periodic); the consumer diffs against what it stored. */
  | { type: 'reconciled'; containers: Container[] }
  /** Engine reachable/unreachable/version changed. */
  | { type: 'status'; status: RuntimeStatus }

/** A source of truth about the containers of one host. */
export interface ContainerRuntime {
  /** Current status (a copy; never throws). */
  status(): RuntimeStatus
  /** Connects; never throws for an unreachable engine: status says degraded, and it reconnects with back-off. */
  start(): Promise<void>
  /** Ends streams and timers; nothing is emitted afterwards. */
  stop(): Promise<void>
  /** Registers a listener; returns the unsubscribe function. Listeners run synchronously, in registration order. */
  subscribe(listener: (change: RuntimeChange) => void): () => void
  /** Last known truth of this host, sorted by name then id. */
  containers(): readonly Container[]
}

/** The peer id and name stamped into every Container record (`host`, `hostName`). */
export interface RuntimeIdentity {
  hostId: string
  hostName: string
}

/** Status of a peer started with `--docker none` (it constructs no runtime). */
export const NO_RUNTIME_STATUS: RuntimeStatus = Object.freeze({ runtime: 'none', socket: null, engineVersion: null, degraded: null, gateways: [] })

/** The subset of a logger the runtimes use; node/logger.ts's `Logger` fits. */
export interface RuntimeLog {
  warn(message: string): void
  info(message: string): void
  debug(message: string): void
}

/** A log that drops everything. */
export const SILENT_LOG: RuntimeLog = { warn: () => {}, info: () => {}, debug: () => {} }

/** Whether two statuses say the same thing (used to emit `status` only on a change). */
export function sameStatus(a: RuntimeStatus, b: RuntimeStatus): boolean {
  return a.runtime === b.runtime && a.socket === b.socket && a.engineVersion === b.engineVersion && a.degraded === b.degraded &&
    a.gateways.length === b.gateways.length && a.gateways.every((g, i) => g === b.gateways[i])
}

/** Orders containers by name, then id: the order of `containers()` and of `reconciled`. */
export function compareContainers(a: Container, b: Container): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/**
 * One task instance as the host agent asks the engine to run it (issue 12). Built from the
 * service spec by runtime/agent's pure `taskContainerSpec`; the engine maps it 1:1 onto its API.
 */
export interface TaskContainerSpec {
  /** Container name, `<service>.<slot>.<generation>` (Docker names allow dots; unique per instance). */
  readonly name: string
  readonly image: string
  /** Empty: the image's own entrypoint. */
  readonly entrypoint: readonly string[]
  /** Empty: the image's own command. */
  readonly cmd: readonly string[]
  readonly env: Readonly<Record<string, string>>
  /** The user's labels plus `shoal.service`, `shoal.task`, `shoal.spec-version`, `shoal.port`. */
  readonly labels: Readonly<Record<string, string>>
  /** Container ports the service answers on (exposed; SRV). */
  readonly exposed: readonly { readonly port: number; readonly protocol: 'tcp' | 'udp' }[]
  /** Published host ports. */
  readonly published: readonly { readonly hostPort: number; readonly containerPort: number; readonly protocol: 'tcp' | 'udp' }[]
  /** Limits: 0 = none. */
  readonly cpuLimit: number
  readonly memoryLimitBytes: number
  /** Soft memory reservation (Docker's MemoryReservation); 0 = none. */
  readonly memoryReservationBytes: number
  readonly healthCheck: { readonly cmd: readonly string[]; readonly intervalMs: number; readonly timeoutMs: number; readonly retries: number; readonly startPeriodMs: number } | null
  /** Resolvers for the container: its own peer's DNS on the bridge gateway (empty: the engine's default). */
  readonly dns: readonly string[]
  readonly dnsSearch: readonly string[]
  readonly stopGraceMs: number
}

/** Why an engine operation failed, so the agent can tell a user error from a transient one. */
export type EngineErrorKind = 'image-missing' | 'name-conflict' | 'not-found' | 'invalid' | 'unavailable'

/** An engine refusal, with a message that says what to do. */
export class EngineError extends Error {
  override readonly name = 'EngineError'
  readonly kind: EngineErrorKind
  constructor(kind: EngineErrorKind, message: string) {
    super(message)
    this.kind = kind
  }
}

/**
 * What the host agent asks of the engine. Implemented by DockerRuntime and MemoryRuntime.
 * Every call is idempotent where the engine allows it (stopping a stopped container and
 * removing a missing one succeed), and changes still arrive through `subscribe`.
 */
export interface TaskEngine {
  /** Creates and starts a container; resolves its id. Rejects with EngineError. */
  runTask(spec: TaskContainerSpec): Promise<string>
  /** Starts an existing (exited or created) container again (a restart-policy restart). */
  startTask(id: string): Promise<void>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has stopped. */
  stopTask(id: string, graceMs: number): Promise<void>
  /** Removes a stopped container (forced if still running). */
  removeTask(id: string): Promise<void>
}
