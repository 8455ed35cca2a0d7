// The simulated clock: a discrete-event queue ordered by (time, insertion).
// Nothing in the simulator waits for real time; an event runs the moment the
// previous one is done, which is where the speed-up over wall time comes from.
// Ties at one instant run in the order they were scheduled, so a seed always
// replays the same interleaving.

/** One scheduled callback, with up to three arguments (so hot paths need no closure). */
interface Event {
  readonly atUs: number
  readonly seq: number
  readonly run: (a: unknown, b: unknown, c: unknown) => void
  readonly a: unknown
  readonly b: unknown
  readonly c: unknown
}

/** Most events queued at once; more is a runaway feedback loop, not a workload. */
export const SCHEDULER_QUEUE_MAX = 2_000_000

/** Thrown when a run exceeds a bound of the scheduler (a livelock or a runaway loop). */
export class SchedulerBoundError extends Error {
  override readonly name = 'SchedulerBoundError'
}

/** A min-heap of events in simulated microseconds. */
export class Scheduler {
  /** Current simulated time, in microseconds since the run began. */
  nowUs = 0
  /** Events run so far. */
  executed = 0
  private readonly heap: Event[] = []
  private seq = 0

  /** Runs `run` at simulated time `atUs` (never before now). */
  at(atUs: number, run: () => void): void {
    this.call(atUs, run, undefined, undefined, undefined)
  }

  /** Runs `run(a, b, c)` at simulated time `atUs` (never before now); `run` is typically a long-lived function. */
  call<A, B, C>(atUs: number, run: (a: A, b: B, c: C) => void, a: A, b: B, c: C): void {
    if (this.heap.length >= SCHEDULER_QUEUE_MAX) throw new SchedulerBoundError(`more than ${SCHEDULER_QUEUE_MAX} events queued`)
    const event: Event = { atUs: atUs > this.nowUs ? atUs : this.nowUs, seq: this.seq++, run: run as (a: unknown, b: unknown, c: unknown) => void, a, b, c }
    const heap = this.heap
    let i = heap.length
    heap.push(event)
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = heap[parent] as Event
      if (before(p, event)) break
      heap[i] = p
      i = parent
    }
    heap[i] = event
  }

  /** Runs `run` after `delayUs` simulated microseconds. */
  after(delayUs: number, run: () => void): void {
    this.at(this.nowUs + delayUs, run)
  }

  /** Events still queued. */
  get pending(): number {
    return this.heap.length
  }

  /** Time of the next event, or Infinity. */
  nextAtUs(): number {
    return this.heap[0]?.atUs ?? Infinity
  }

  /**
   * Runs events in order until the next one is later than `untilUs`, the queue
   * is empty, or `stop()` holds after an event; time then stands at `untilUs`
   * (or at the stopping event). At most `maxEvents` run, past which it throws.
   */
  runUntil(untilUs: number, stop: () => boolean = () => false, maxEvents = Infinity): void {
    let budget = maxEvents
    while (this.heap.length > 0 && (this.heap[0] as Event).atUs <= untilUs) {
      if (budget-- <= 0) throw new SchedulerBoundError(`more than ${maxEvents} events before ${untilUs} µs`)
      const event = this.pop()
      this.nowUs = event.atUs
      this.executed++
      event.run(event.a, event.b, event.c)
      if (stop()) return
    }
    if (untilUs !== Infinity) this.nowUs = Math.max(this.nowUs, untilUs)
  }

  private pop(): Event {
    const heap = this.heap
    const top = heap[0] as Event
    const last = heap.pop() as Event
    if (heap.length === 0) return top
    let i = 0
    const n = heap.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && before(heap[r] as Event, heap[l] as Event) ? r : l
      const child = heap[c] as Event
      if (before(last, child)) break
      heap[i] = child
      i = c
    }
    heap[i] = last
    return top
  }
}

function before(a: Event, b: Event): boolean {
  return a.atUs < b.atUs || (a.atUs === b.atUs && a.seq < b.seq)
}
