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
