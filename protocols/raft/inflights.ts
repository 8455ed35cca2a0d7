// The sliding window of append messages sent to one follower and not yet
// acknowledged, used to pipeline replication (thesis §10.2.2) while bounding
// how much a slow follower can make the leader buffer. Modelled on etcd's
// tracker.Inflights.

import { invariant } from './types.ts'

interface Inflight {
  readonly index: number
  readonly bytes: number
}

/** Bounded FIFO of in-flight appends, identified by their last entry index. */
export class Inflights {
  /** Bound on messages in flight (maxInflightMsgs). */
  readonly maxMessages: number
  /** Bound on payload bytes in flight (maxInflightBytes); Infinity for none. */
  readonly maxBytes: number
  private queue: Inflight[] = []
  private totalBytes = 0

  /** An empty window with the given bounds. */
  constructor(maxMessages: number, maxBytes: number) {
    invariant(maxMessages > 0, 'maxInflightMsgs must be positive')
    invariant(maxBytes > 0, 'maxInflightBytes must be positive')
    this.maxMessages = maxMessages
    this.maxBytes = maxBytes
  }

  /** Records an append whose last entry is `index` carrying `bytes` of payload. */
  add(index: number, bytes: number): void {
    invariant(!this.full(), 'inflights: add to a full window')
    const last = this.queue[this.queue.length - 1]
    invariant(last === undefined || index > last.index, () => `inflights: index ${index} not increasing`)
    this.queue.push({ index, bytes })
    this.totalBytes += bytes
  }

  /** Frees every append whose last index is <= `index` (the follower acknowledged it). */
  freeLE(index: number): void {
    let n = 0
    while (n < this.queue.length && (this.queue[n] as Inflight).index <= index) {
      this.totalBytes -= (this.queue[n] as Inflight).bytes
      n++
    }
    if (n > 0) this.queue = this.queue.slice(n)
  }

  /** Whether no more appends may be sent until some are acknowledged. */
  full(): boolean {
    return this.queue.length >= this.maxMessages || this.totalBytes >= this.maxBytes
  }

  /** Number of appends in flight. */
  count(): number {
    return this.queue.length
  }

  /** Payload bytes in flight. */
  bytes(): number {
    return this.totalBytes
  }

  /** Forgets everything in flight (on a state change of the follower's progress). */
  reset(): void {
    this.queue = []
    this.totalBytes = 0
  }
}
