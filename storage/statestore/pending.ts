// Events produced since the last drain, for the node layer to fan out.

import type { WatchEvent } from './kv.ts'

/**
 * Events with revision in (fromRevision, toRevision], in apply order. When
 * `complete` is false the buffer overflowed and `events` is empty: watchers
 * must read that range from StateStore.eventsSince instead.
 */
export interface EventBatch {
  readonly fromRevision: number
  readonly toRevision: number
  readonly events: readonly WatchEvent[]
  readonly complete: boolean
}

/** A bounded buffer of not-yet-drained events. */
export class PendingEvents {
  readonly maxEvents: number
  #events: WatchEvent[] = []
  #fromRevision: number
  #complete = true

  constructor(maxEvents: number, fromRevision: number) {
    this.maxEvents = maxEvents
    this.#fromRevision = fromRevision
  }

  /** Buffered events. */
  get length(): number {
    return this.#events.length
  }

  /** Buffers one revision's events; on overflow drops the batch's events and marks it incomplete. */
  push(events: readonly WatchEvent[]): void {
    if (!this.#complete) return
    if (this.#events.length + events.length > this.maxEvents) {
      this.#events = []
      this.#complete = false
      return
    }
    for (const e of events) this.#events.push(e)
  }

  /** Hands out everything since the last drain, up to `toRevision`, and starts a new batch there. */
  drain(toRevision: number): EventBatch {
    const batch: EventBatch = { fromRevision: this.#fromRevision, toRevision, events: this.#events, complete: this.#complete }
    this.#events = []
    this.#fromRevision = toRevision
    this.#complete = true
    return batch
  }
}
