/**
 * Watches whether the Docker engine behind a socket answers, with back-off, so `shoal status`
 * can say `docker` + engine version, or `degraded` with the reason. Container tracking itself
 * lives in the Docker runtime; this is the liveness half of it.
 */
import Docker from 'dockerode'

/** What `shoal status` shows about the container runtime. */
export interface RuntimeStatus {
  runtime: 'docker' | 'none'
  socket: string | null
  engineVersion: string | null
  degraded: string | null
}

const PROBE_TIMEOUT_MS = 2000
const BACKOFF_MIN_MS = 500
const BACKOFF_MAX_MS = 30_000
const HEALTHY_RECHECK_MS = 15_000

/** Probes the engine now and then; `status` is always current and never throws. */
export class DockerProbe {
  readonly status: RuntimeStatus
  private readonly docker: Docker
  private timer: ReturnType<typeof setTimeout> | null = null
  private backoffMs = BACKOFF_MIN_MS
  private stopped = false
  private readonly onChange: (status: RuntimeStatus) => void

  constructor(socket: string, onChange: (status: RuntimeStatus) => void) {
    this.docker = new Docker({ socketPath: socket, timeout: PROBE_TIMEOUT_MS })
    this.status = { runtime: 'docker', socket, engineVersion: null, degraded: 'not probed yet' }
    this.onChange = onChange
  }

  /** Probes once (awaited, so the start-up log is accurate), then keeps probing in the background. */
  async start(): Promise<void> {
    await this.probe()
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
  }

  private async probe(): Promise<void> {
    const before = `${this.status.engineVersion}|${this.status.degraded}`
    try {
      const version = await this.docker.version()
      this.status.engineVersion = version.Version
      this.status.degraded = null
      this.backoffMs = BACKOFF_MIN_MS
    } catch (err) {
      this.status.degraded = `engine unreachable at ${this.status.socket}: ${err instanceof Error ? err.message : String(err)}`
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS)
    }
    if (`${this.status.engineVersion}|${this.status.degraded}` !== before) this.onChange(this.status)
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.probe(), this.status.degraded === null ? HEALTHY_RECHECK_MS : this.backoffMs)
      this.timer.unref()
    }
  }
}
