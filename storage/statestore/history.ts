// The watch history: every revision's events, oldest first, bounded by a count
// of revisions and by accounted bytes. It always holds exactly the revisions
// (compactRevision, revision] of its store, so a watcher's resume point maps to
// an index by subtraction.

import { utf8ByteLength } from './keys.ts'
import type { WatchEvent } from './kv.ts'
import { ENTRY_OVERHEAD_BYTES } from './limits.ts'

/** All events of one revision. */
export interface HistoryEntry {
  readonly revision: number
  readonly events: readonly WatchEvent[]
  readonly bytes: number
}

/** Accounted size of an event: key and both values, plus a fixed overhead. */
export function eventBytes(event: WatchEvent): number {
  return ENTRY_OVERHEAD_BYTES + utf8ByteLength(event.kv.key) + event.kv.value.length + (event.prevKv?.value.length ?? 0)
}

/** A FIFO of revisions with O(1) amortised push and drop. */
export class EventHistory {
  #entries: HistoryEntry[] = []
  #head = 0
  #bytes = 0

  /** Revisions held. */
  get length(): number {
    return this.#entries.length - this.#head
  }

  /** Accounted bytes held. */
  get bytes(): number {
    return this.#bytes
  }

  /** The i-th oldest entry held. */
  at(i: number): HistoryEntry | undefined {
    return i < 0 ? undefined : this.#entries[this.#head + i]
  }

  /** Appends a revision; the caller guarantees it is one more than the newest. */
  push(revision: number, events: readonly WatchEvent[]): void {
    const bytes = events.reduce((n, e) => n + eventBytes(e), 0)
    this.#entries.push({ revision, events, bytes })
    this.#bytes += bytes
  }

  /** Removes and returns the oldest revision. */
  dropOldest(): HistoryEntry | undefined {
    const entry = this.#entries[this.#head]
    if (!entry) return undefined
    this.#head++
    this.#bytes -= entry.bytes
    // Reclaim the dropped prefix once it is half the array, keeping drops O(1) amortised.
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
    return entry
  }

  /** Every entry held, oldest first. */
  entries(): HistoryEntry[] {
    return this.#entries.slice(this.#head)
  }
}
