/**
 * Fans committed StateStore changes out to watchers. Each watcher is a revision cursor: it has
 * seen every event up to `cursor` and nothing after. After each apply the hub hands the drained
 * batch to watchers whose cursor is where the batch starts; any other watcher (new, resuming,
 * or after a snapshot install) catches up from the store's history. So no event is missed or
 * repeated, and a client resuming from its last revision continues exactly where it stopped.
 */
import type { StateStore, WatchEvent } from '../storage/statestore/index.ts'

/** Catch-up reads this many events at a time. */
const CATCH_UP_BATCH = 1000
/**
 * ...and about this many bytes of keys and values (a revision is never split): a watch from an
 * old revision over large values must not encode tens of MB in one turn of the event loop.
 */
const CATCH_UP_BATCH_BYTES = 1024 * 1024
/** Bound on concurrent watchers per peer. */
export const WATCHERS_MAX = 1024

export interface WatchSink {
  /** Delivers events in revision order; returns false when the watcher is gone. */
  deliver(events: readonly WatchEvent[]): boolean
  /** The history no longer reaches back to the cursor: the client must re-list, then watch. */
  compacted(compactRevision: number, revision: number): void
}

interface Watcher {
  prefix: string
  cursor: number
  sink: WatchSink
}

export class WatchHub {
  private readonly watchers = new Set<Watcher>()
  private readonly store: () => StateStore

  constructor(store: () => StateStore) {
    this.store = store
  }

  get size(): number {
    return this.watchers.size
  }

  /** Watches keys under `prefix` after `fromRevision`; returns the function that stops it. */
  add(prefix: string, fromRevision: number, sink: WatchSink): () => void {
    if (this.watchers.size >= WATCHERS_MAX) throw new Error(`this peer already serves ${WATCHERS_MAX} watches; close some or watch through another peer`)
    const w: Watcher = { prefix, cursor: fromRevision, sink }
    this.watchers.add(w)
    this.catchUp(w)
    return () => this.watchers.delete(w)
  }

  /** After entries were applied: hand out what they changed. */
  onApplied(): void {
    const batch = this.store().drainEvents()
    if (batch.events.length === 0 && batch.complete) return
    for (const w of this.watchers) {
      if (batch.complete && w.cursor === batch.fromRevision) {
        const mine = batch.events.filter((e) => e.kv.key.startsWith(w.prefix))
        if (mine.length > 0 && !w.sink.deliver(mine)) {
          this.watchers.delete(w)
          continue
        }
        w.cursor = batch.toRevision
      } else {
        this.catchUp(w)
      }
    }
  }

  /** After a snapshot replaced the store: every watcher re-reads from its cursor. */
  onRestored(): void {
    this.store().drainEvents()
    for (const w of this.watchers) this.catchUp(w)
  }

  private catchUp(w: Watcher): void {
    const store = this.store()
    while (w.cursor < store.revision) {
      const r = store.eventsSince(w.cursor, w.prefix, CATCH_UP_BATCH, CATCH_UP_BATCH_BYTES)
      if (!r.ok) {
        this.watchers.delete(w)
        w.sink.compacted(r.compactRevision, r.revision)
        return
      }
      if (r.events.length > 0 && !w.sink.deliver(r.events)) {
        this.watchers.delete(w)
        return
      }
      // r.revision is the last revision examined; a revision is never split across pages.
      if (r.revision <= w.cursor) {
        w.cursor = store.revision // nothing left in the history past the cursor
        return
      }
      w.cursor = r.revision
    }
  }
}
