// The request-id dedup window: recent requests with the encoded result they produced. Past the
// byte bound the oldest results are dropped (the request is still known as applied); past the
// count bound the oldest requests are forgotten, and the window remembers the newest log index
// it forgot (its horizon). A retry first made before the horizon cannot be told from a new
// request, so the store refuses it instead of applying it twice (see StateStore.apply).

import { ENTRY_OVERHEAD_BYTES } from './limits.ts'

/** One remembered request. */
export interface DedupEntry {
  readonly requestId: string
  readonly fingerprint: string
  /** The encoded result; null once dropped for the byte bound. */
  readonly result: Uint8Array | null
  /** The log index the request was applied at. */
  readonly index: number
}

function entryBytes(entry: DedupEntry): number {
  return ENTRY_OVERHEAD_BYTES + entry.requestId.length + entry.fingerprint.length + (entry.result?.length ?? 0)
}

/**
 * Bounded map of request id to result. The newest entry always keeps its result, even alone
 * above the byte bound, so the request just applied is always answerable.
 */
export class DedupWindow {
  readonly maxEntries: number
  readonly maxBytes: number
  // A Map iterates in insertion order, which is apply order: eviction order is
  // deterministic and survives a snapshot (entries are restored in order).
  #entries = new Map<string, DedupEntry>()
  /** Ids whose entry still holds its result, oldest first. */
  #withResult = new Set<string>()
  #bytes = 0
  #horizon = 0

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

  /** The newest log index of a request the window forgot (0: none yet). */
  get horizon(): number {
    return this.#horizon
  }

  /** The entry for `requestId`, if still in the window. */
  get(requestId: string): DedupEntry | undefined {
    return this.#entries.get(requestId)
  }

  /** Remembers a request not yet in the window (applied at or after every entry in it), then trims to the bounds. */
  record(entry: DedupEntry): void {
    if (this.#entries.has(entry.requestId)) throw new Error(`dedup: ${entry.requestId} recorded twice`)
    this.#entries.set(entry.requestId, entry)
    if (entry.result !== null) this.#withResult.add(entry.requestId)
    this.#bytes += entryBytes(entry)
    while (this.#entries.size > this.maxEntries) this.#forgetOldest()
    while (this.#bytes > this.maxBytes && this.#entries.size > 1) {
      const oldest = this.#withResult.values().next()
      if (!oldest.done && oldest.value !== entry.requestId) this.#dropResult(oldest.value)
      else this.#forgetOldest()
    }
  }

  /** Restores a snapshot's horizon (before its entries are recorded). */
  restoreHorizon(horizon: number): void {
    this.#horizon = Math.max(this.#horizon, horizon)
  }

  /** Every entry, oldest first. */
  entries(): DedupEntry[] {
    return [...this.#entries.values()]
  }

  #dropResult(requestId: string): void {
    const entry = this.#entries.get(requestId)
    this.#withResult.delete(requestId)
    if (entry === undefined || entry.result === null) return
    const stub: DedupEntry = { requestId, fingerprint: entry.fingerprint, result: null, index: entry.index }
    // Map.set on a present key keeps its place in the iteration order.
    this.#entries.set(requestId, stub)
    this.#bytes += entryBytes(stub) - entryBytes(entry)
  }

  #forgetOldest(): void {
    const oldest = this.#entries.values().next()
    if (oldest.done) return
    const entry = oldest.value
    this.#entries.delete(entry.requestId)
    this.#withResult.delete(entry.requestId)
    this.#bytes -= entryBytes(entry)
    this.#horizon = Math.max(this.#horizon, entry.index)
  }
}
