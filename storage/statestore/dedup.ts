// The request-id dedup window: recent requests with the encoded result they
// produced, evicted oldest first beyond a count and a byte bound.

import { ENTRY_OVERHEAD_BYTES } from './limits.ts'

/** One remembered request. */
export interface DedupEntry {
  readonly requestId: string
  readonly fingerprint: string
  readonly result: Uint8Array
}

function entryBytes(entry: DedupEntry): number {
  return ENTRY_OVERHEAD_BYTES + entry.requestId.length + entry.fingerprint.length + entry.result.length
}

/**
 * Bounded map of request id to result. The newest entry is always kept, even
 * alone above the byte bound, so the request just applied is always answerable.
 */
export class DedupWindow {
  readonly maxEntries: number
  readonly maxBytes: number
  // A Map iterates in insertion order, which is apply order: eviction order is
  // deterministic and survives a snapshot (entries are restored in order).
  #entries = new Map<string, DedupEntry>()
  #bytes = 0

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }

  /** Remembered requests. */
  get size(): number {
    return this.#entries.size
  }

  /** Accounted bytes. */
  get bytes(): number {
    return this.#bytes
  }

  /** The entry for `requestId`, if still in the window. */
  get(requestId: string): DedupEntry | undefined {
    return this.#entries.get(requestId)
  }

  /** Remembers a request not yet in the window, then evicts down to the bounds. */
  record(entry: DedupEntry): void {
    if (this.#entries.has(entry.requestId)) throw new Error(`dedup: ${entry.requestId} recorded twice`)
    this.#entries.set(entry.requestId, entry)
    this.#bytes += entryBytes(entry)
    while (this.#entries.size > this.maxEntries || (this.#bytes > this.maxBytes && this.#entries.size > 1)) {
      const oldest = this.#entries.values().next()
      if (oldest.done) break
      this.#entries.delete(oldest.value.requestId)
      this.#bytes -= entryBytes(oldest.value)
    }
  }

  /** Every entry, oldest first. */
  entries(): DedupEntry[] {
    return [...this.#entries.values()]
  }
}
