/**
 * How long this peer's event loop was held, for `status --json` (`eventLoop`). Raft's
 * heartbeats and SWIM's probes are timers on this loop: a request that holds it for longer
 * than an election timeout deposes the leader, so operators (and tests) need to see the
 * longest stall, not an average.
 */
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks'

/** `status --json` → `eventLoop`. */
export interface EventLoopView {
  /** Longest event-loop delay seen in the last `windowMs` (ms; 0 before the first sample). */
  delayMaxMs: number
  /** Longest delay since the peer started (ms). */
  delayMaxMsSinceStart: number
  /** The rolling window `delayMaxMs` covers. */
  windowMs: number
}

/** Sampling resolution of the delay histogram: finer costs more wake-ups for nothing. */
const RESOLUTION_MS = 10
/** One bucket of the rolling window. */
const BUCKET_MS = 1_000
/** Buckets kept: a minute, long enough that a scrape every 30 s or so misses no stall. */
const WINDOW_BUCKETS = 60

const NS_PER_MS = 1e6

/** The rolling maximum over the last WINDOW_BUCKETS buckets: a pure ring, fed with each bucket's max. */
export class RollingMax {
  readonly #ring: number[]
  #next = 0

  constructor(buckets: number) {
    this.#ring = new Array<number>(buckets).fill(0)
  }

  push(value: number): void {
    this.#ring[this.#next] = value
    this.#next = (this.#next + 1) % this.#ring.length
  }

  max(): number {
    return Math.max(...this.#ring)
  }
}

/** Reads libuv's loop delay (perf_hooks) and keeps a rolling and an all-time maximum. */
export class EventLoopMonitor {
  readonly #histogram: ELDHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
  readonly #window = new RollingMax(WINDOW_BUCKETS)
  #sinceStartMs = 0
  #timer: ReturnType<typeof setInterval> | null = null

  start(): this {
    this.#histogram.enable()
    this.#timer = setInterval(() => this.#roll(), BUCKET_MS)
    this.#timer.unref() // never what keeps the process alive
    return this
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#histogram.disable()
  }

  view(): EventLoopView {
    const current = this.#currentMs()
    return {
      delayMaxMs: round(Math.max(this.#window.max(), current)),
      delayMaxMsSinceStart: round(Math.max(this.#sinceStartMs, current)),
      windowMs: BUCKET_MS * WINDOW_BUCKETS,
    }
  }

  #currentMs(): number {
    // max is 0 until the first sample; the histogram reports nanoseconds.
    return this.#histogram.count === 0 ? 0 : this.#histogram.max / NS_PER_MS
  }

  #roll(): void {
    const current = this.#currentMs()
    this.#window.push(current)
    this.#sinceStartMs = Math.max(this.#sinceStartMs, current)
    this.#histogram.reset()
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
