/**
 * The loop that keeps a host's records converged on the truth, pure so the daemon (HostSync)
 * and the simulator run the very same one: write the next difference, then the next, until
 * there is none; a change while a write is in flight runs the loop again afterwards; a failed
 * write is retried after a back-off that doubles from 250 ms to 5 s and resets on success.
 * Callbacks in, callbacks out: no clock, timer or promise of its own.
 */
import type { Request } from '../storage/statestore/index.ts'

/** The back-off between retries of a failed write. */
export const CONVERGE_RETRY_MIN_MS = 250
export const CONVERGE_RETRY_MAX_MS = 5000

/** What the loop drives. */
export interface ConvergeDriver {
  /** The next write toward the truth, or undefined when the records already match it. */
  next(): Request | undefined
  /** Writes `txn`; `done(null)` once it applied, `done(reason)` when it did not. */
  write(txn: Request, done: (error: string | null) => void): void
  /** Runs `fn` after `ms` (a timer in the daemon, simulated time in the simulator). */
  after(ms: number, fn: () => void): void
  /** The records matched the truth at the end of a pass. */
  converged?(): void
  /** A write failed; the loop runs again in `retryMs`. */
  failed?(error: string, retryMs: number): void
}

/** One host's convergence loop. */
export class ConvergeLoop {
  private readonly driver: ConvergeDriver
  private running = false
  private again = false
  private retryDue = false
  private retryMs = CONVERGE_RETRY_MIN_MS
  private stopped = false

  constructor(driver: ConvergeDriver) {
    this.driver = driver
  }

  /** Something may have moved the records off the truth: converge (now, after the write in flight, or at the due retry). */
  schedule(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    if (this.retryDue) return
    this.running = true
    this.step()
  }

  /** Whether a write is in flight. */
  get busy(): boolean {
    return this.running
  }

  /** Whether a retry is waiting for its back-off. */
  get waiting(): boolean {
    return this.retryDue
  }

  /** No more writes; callbacks still in flight are ignored. */
  stop(): void {
    this.stopped = true
  }

  private step(): void {
    if (this.stopped) return
    const txn = this.driver.next()
    if (txn === undefined) {
      this.retryMs = CONVERGE_RETRY_MIN_MS
      this.driver.converged?.()
      this.finish()
      return
    }
    this.driver.write(txn, (error) => {
      if (this.stopped) return
      if (error === null) {
        this.step()
        return
      }
      const retryMs = this.retryMs
      this.retryDue = true
      this.retryMs = Math.min(this.retryMs * 2, CONVERGE_RETRY_MAX_MS)
      this.driver.failed?.(error, retryMs)
      this.driver.after(retryMs, () => {
        this.retryDue = false
        this.schedule()
      })
      this.finish()
    })
  }

  private finish(): void {
    this.running = false
    if (this.again) {
      this.again = false
      this.schedule()
    }
  }
}
