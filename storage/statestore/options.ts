// The tunable bounds of one StateStore.

import { DEDUP_MAX_BYTES, DEDUP_MAX_ENTRIES, HISTORY_MAX_BYTES, HISTORY_MAX_REVISIONS, PENDING_EVENTS_MAX } from './limits.ts'

/**
 * Bounds of a store's history, dedup window and event buffer. They decide
 * eviction, and so what a replica answers, so every replica must use the same
 * values; a snapshot carries them and restore adopts them.
 */
export interface StateStoreOptions {
  /** Most revisions kept for watches; older ones are compacted away. */
  readonly historyMaxRevisions: number
  /** Most accounted bytes of history (the newest revision is kept even if larger). */
  readonly historyMaxBytes: number
  /** Most request ids remembered for dedup. */
  readonly dedupMaxEntries: number
  /** Most encoded result bytes remembered for dedup (the newest is kept even if larger). */
  readonly dedupMaxBytes: number
  /** Most events buffered between drainEvents() calls before the batch is marked incomplete. */
  readonly pendingEventsMax: number
}

/** The production bounds. */
export const DEFAULT_STATE_STORE_OPTIONS: StateStoreOptions = {
  historyMaxRevisions: HISTORY_MAX_REVISIONS,
  historyMaxBytes: HISTORY_MAX_BYTES,
  dedupMaxEntries: DEDUP_MAX_ENTRIES,
  dedupMaxBytes: DEDUP_MAX_BYTES,
  pendingEventsMax: PENDING_EVENTS_MAX,
}

/** The options as a list in canonical (snapshot) order. */
export function optionsToList(options: StateStoreOptions): number[] {
  return [options.historyMaxRevisions, options.historyMaxBytes, options.dedupMaxEntries, options.dedupMaxBytes, options.pendingEventsMax]
}

/** Options from a canonical list, or null when a value is not a positive safe integer. */
export function optionsFromList(values: readonly unknown[]): StateStoreOptions | null {
  if (values.length !== 5 || !values.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1)) return null
  const [historyMaxRevisions, historyMaxBytes, dedupMaxEntries, dedupMaxBytes, pendingEventsMax] = values as readonly number[]
  if (historyMaxRevisions === undefined || historyMaxBytes === undefined || dedupMaxEntries === undefined || dedupMaxBytes === undefined || pendingEventsMax === undefined) return null
  return { historyMaxRevisions, historyMaxBytes, dedupMaxEntries, dedupMaxBytes, pendingEventsMax }
}
