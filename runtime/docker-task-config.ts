/**
 * Pure translation between the host agent's `TaskContainerSpec` and the Docker Engine API:
 * the body of `POST /containers/create` (what `docker run` would send for the same flags),
 * and which `EngineError` kind an engine answer means. No I/O here; `docker-runtime.ts`
 * does the talking.
 */
import { EngineError, type TaskContainerSpec } from './runtime.ts'

/** Nanoseconds per millisecond: Docker's health-check durations are in nanoseconds. */
const NS_PER_MS = 1_000_000
/** Docker's NanoCpus: 1 CPU = 1e9. */
const NANO_CPUS_PER_CPU = 1_000_000_000
/** Docker's container name rule (daemon/names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`). */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/
const PORT_MAX = 65_535

/** One host side of a published port, as `HostConfig.PortBindings` takes it. */
export interface DockerPortBinding {
  HostIp: string
  HostPort: string
}

/** The `POST /containers/create` body fields Shoal sets (the container name goes in the query). */
export interface DockerCreateBody {
  Image: string
  Entrypoint?: string[]
  Cmd?: string[]
  Env: string[]
  Labels: Record<string, string>
  ExposedPorts?: Record<string, Record<string, never>>
  StopTimeout: number
  Healthcheck?: {
    Test: string[]
    Interval: number
    Timeout: number
    StartPeriod: number
    Retries: number
  }
  HostConfig: {
    RestartPolicy: { Name: 'no' }
    PortBindings?: Record<string, DockerPortBinding[]>
    NanoCpus?: number
    Memory?: number
    MemoryReservation?: number
    Dns?: string[]
    DnsSearch?: string[]
  }
}

export type TaskCreateBody = { ok: true; body: DockerCreateBody } | { ok: false; error: EngineError }

/** Seconds Docker waits between SIGTERM and SIGKILL for a grace of `graceMs` (rounded up: never less grace than asked). */
export function stopTimeoutSeconds(graceMs: number): number {
  return Math.ceil(graceMs / 1000)
}

/**
 * The health check's `Test`: an exec form runs without a shell (`CMD`); a single string is a
 * shell command line (`CMD-SHELL`), as in a Dockerfile's HEALTHCHECK and a Compose file's
 * `test:`. A command already in Docker's form (first word `CMD`, `CMD-SHELL` or `NONE`, as a
 * Compose file writes it) is passed through, so it is never wrapped twice.
 */
export function healthTest(cmd: readonly string[]): string[] {
  const first = cmd[0]
  if (first === 'CMD' || first === 'CMD-SHELL' || first === 'NONE') return [...cmd]
  if (cmd.length === 1 && first !== undefined) return ['CMD-SHELL', first]
  return ['CMD', ...cmd]
}

function invalid(spec: TaskContainerSpec, what: string): TaskCreateBody {
  return { ok: false, error: new EngineError('invalid', `task container ${JSON.stringify(spec.name)}: ${what}; fix the service spec`) }
}

const wholeAtLeast = (n: number, min: number): boolean => Number.isSafeInteger(n) && n >= min
const finiteAtLeast = (n: number, min: number): boolean => Number.isFinite(n) && n >= min
const validPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= PORT_MAX

/**
 * The create body for `spec`, or an `invalid` EngineError naming the field (bad input gets a
 * clear answer here rather than a 400 from the engine). Zero limits, empty lists and a null
 * health check are left out, so the engine's (or the image's) defaults apply.
 * RestartPolicy is always `no`: the host agent owns restarts (policy, back-off, giving up).
 */
export function taskCreateBody(spec: TaskContainerSpec): TaskCreateBody {
  if (!CONTAINER_NAME.test(spec.name)) return invalid(spec, 'the container name must be at least 2 characters of letters, digits, _ . - and start with a letter or digit')
  if (spec.image.trim() === '') return invalid(spec, 'the image is empty')
  if (!finiteAtLeast(spec.cpuLimit, 0)) return invalid(spec, `cpuLimit ${spec.cpuLimit} is not a number of CPUs >= 0`)
  if (!wholeAtLeast(spec.memoryLimitBytes, 0)) return invalid(spec, `memoryLimitBytes ${spec.memoryLimitBytes} is not a whole number of bytes >= 0`)
  if (!wholeAtLeast(spec.memoryReservationBytes, 0)) return invalid(spec, `memoryReservationBytes ${spec.memoryReservationBytes} is not a whole number of bytes >= 0`)
  if (!finiteAtLeast(spec.stopGraceMs, 0)) return invalid(spec, `stopGraceMs ${spec.stopGraceMs} is not a duration >= 0`)
  for (const key of Object.keys(spec.env)) {
    if (key === '' || key.includes('=')) return invalid(spec, `environment variable name ${JSON.stringify(key)} is empty or contains '='`)
  }

  const exposed: Record<string, Record<string, never>> = {}
  for (const p of spec.exposed) {
    if (!validPort(p.port)) return invalid(spec, `exposed port ${p.port} is not in 1..${PORT_MAX}`)
    exposed[`${p.port}/${p.protocol}`] = {}
  }
  const bindings: Record<string, DockerPortBinding[]> = {}
  for (const p of spec.published) {
    if (!validPort(p.hostPort) || !validPort(p.containerPort)) return invalid(spec, `published port ${p.hostPort}:${p.containerPort} is not in 1..${PORT_MAX}`)
    const key = `${p.containerPort}/${p.protocol}`
    // As `docker run -p`: a published port is exposed too; HostIp '' binds every address.
    exposed[key] = {}
    ;(bindings[key] ??= []).push({ HostIp: '', HostPort: String(p.hostPort) })
  }

  const body: DockerCreateBody = {
    Image: spec.image,
    // Sorted so one spec always gives one body (the env is a record; its key order is incidental).
    Env: Object.keys(spec.env).sort().map((k) => `${k}=${spec.env[k] ?? ''}`),
    Labels: { ...spec.labels },
    StopTimeout: stopTimeoutSeconds(spec.stopGraceMs),
    HostConfig: { RestartPolicy: { Name: 'no' } },
  }
  // An empty list would tell Docker "no entrypoint"; left out, the image's own applies.
  if (spec.entrypoint.length > 0) body.Entrypoint = [...spec.entrypoint]
  if (spec.cmd.length > 0) body.Cmd = [...spec.cmd]
  if (Object.keys(exposed).length > 0) body.ExposedPorts = exposed
  if (Object.keys(bindings).length > 0) body.HostConfig.PortBindings = bindings
  if (spec.cpuLimit > 0) body.HostConfig.NanoCpus = Math.round(spec.cpuLimit * NANO_CPUS_PER_CPU)
  if (spec.memoryLimitBytes > 0) body.HostConfig.Memory = spec.memoryLimitBytes
  if (spec.memoryReservationBytes > 0) body.HostConfig.MemoryReservation = spec.memoryReservationBytes
  if (spec.dns.length > 0) body.HostConfig.Dns = [...spec.dns]
  if (spec.dnsSearch.length > 0) body.HostConfig.DnsSearch = [...spec.dnsSearch]

  const hc = spec.healthCheck
  if (hc !== null) {
    if (hc.cmd.length === 0) return invalid(spec, 'the health check has no command')
    for (const [field, ms] of [['intervalMs', hc.intervalMs], ['timeoutMs', hc.timeoutMs], ['startPeriodMs', hc.startPeriodMs]] as const) {
      if (!finiteAtLeast(ms, 0)) return invalid(spec, `healthCheck.${field} ${ms} is not a duration >= 0`)
    }
    if (!wholeAtLeast(hc.retries, 0)) return invalid(spec, `healthCheck.retries ${hc.retries} is not a whole number >= 0`)
    body.Healthcheck = {
      Test: healthTest(hc.cmd),
      Interval: Math.round(hc.intervalMs * NS_PER_MS),
      Timeout: Math.round(hc.timeoutMs * NS_PER_MS),
      StartPeriod: Math.round(hc.startPeriodMs * NS_PER_MS),
      Retries: hc.retries,
    }
  }
  return { ok: true, body }
}

/** The engine operations the host agent calls. */
export type EngineOp = 'create' | 'start' | 'stop' | 'remove'

/** How a request failed: the HTTP status when the engine answered (null: no answer), and the text. */
export interface EngineFailure {
  status: number | null
  /** Docker's own message (the JSON `message`), or the transport error. */
  message: string
}

/** What the messages name. */
export interface EngineSubject {
  /** The engine's socket, for "unreachable" messages. */
  socket: string
  /** The container name or id the call was about. */
  container: string
  /** The image (create only). */
  image?: string
}

/**
 * A 500 that says the engine itself is in trouble (its containerd gone, a deadline passed)
 * rather than that the request was wrong: transient, so 'unavailable', not 'invalid'.
 */
const ENGINE_TROUBLE = /connection refused|context deadline exceeded|transport is closing|error reading from server|code = Unavailable|containerd\.sock|connection reset|broken pipe|i\/o timeout/i

/**
 * Which EngineError an engine failure of `op` means, or null when it is success in disguise:
 * start of a running container (304), stop of a stopped or missing one (304, 404), removal of
 * a missing one or of one already being removed (404, 409 "in progress"). Docker's message is
 * kept in every error, after what Shoal knows about it.
 */
export function engineErrorOf(op: EngineOp, failure: EngineFailure, subject: EngineSubject): EngineError | null {
  const { status, message } = failure
  const name = subject.container
  if (status === null) {
    return new EngineError('unavailable', `Docker engine at ${subject.socket} did not answer (${op} ${name}): ${message}; the agent retries once the engine is back`)
  }
  if (status === 304 && (op === 'start' || op === 'stop')) return null
  if (status === 404 && (op === 'stop' || op === 'remove')) return null
  if (status === 409 && op === 'remove' && /in progress/i.test(message)) return null
  if (status === 404) {
    if (op === 'create' && /no such image/i.test(message)) {
      const image = subject.image ?? '?'
      return new EngineError('image-missing', `image ${image} is not on this host's Docker engine: docker pull or docker load it on every host that may run the service (Shoal does not pull images) (${message})`)
    }
    if (op === 'create') return new EngineError('invalid', `creating container ${name} failed: ${message}`)
    return new EngineError('not-found', `no container ${name} on the Docker engine at ${subject.socket} (${message})`)
  }
  if (status === 409 && op === 'create') {
    return new EngineError('name-conflict', `container name ${name} is already in use on this host (${message}); remove that container or pick another name`)
  }
  if (status === 503 || (status >= 500 && ENGINE_TROUBLE.test(message))) {
    return new EngineError('unavailable', `Docker engine at ${subject.socket} cannot ${op} ${name} now: ${message}; the agent retries`)
  }
  return new EngineError('invalid', `Docker refused to ${op} container ${name} (HTTP ${status}): ${message}`)
}
