import { describe, it, expect } from 'vitest'
import { StateStore, type Command, type WatchEvent } from '../../storage/statestore/index.ts'
import { WatchHub } from '../../node/watch-hub.ts'

const utf8 = new TextEncoder()
let seq = 0
function cmd(request: Command['request']): Command {
  return { origin: '12D3KooWtest', requestId: `r${++seq}`, request }
}

/** A store plus a hub wired as the peer wires them, and an apply helper. */
function setup(): { store: () => StateStore; hub: WatchHub; put(key: string, value: string): void; del(key: string): void; replace(s: StateStore): void } {
  let current = new StateStore()
  let index = 0
  const hub = new WatchHub(() => current)
  return {
    store: () => current,
    hub,
    put(key, value) {
      current.apply(++index, cmd({ type: 'put', key, value: utf8.encode(value) }))
      hub.onApplied()
    },
    del(key) {
      current.apply(++index, cmd({ type: 'delete', key }))
      hub.onApplied()
    },
    replace(s) {
      current = s
      index = s.appliedIndex
      hub.onRestored()
    },
  }
}

function collector(): { seen: Array<[string, string, number]>; sink: { deliver(e: readonly WatchEvent[]): boolean; compacted(c: number, r: number): void }; compactedAt: number | null } {
  const out = { seen: [] as Array<[string, string, number]>, compactedAt: null as number | null, sink: null as never as { deliver(e: readonly WatchEvent[]): boolean; compacted(c: number, r: number): void } }
  out.sink = {
    deliver: (events) => {
      for (const e of events) out.seen.push([e.type, e.kv.key, e.kv.modRevision])
      return true
    },
    compacted: (c) => {
      out.compactedAt = c
    },
  }
  return out
}

describe('WatchHub', () => {
  it('delivers live changes under the prefix, in order, once', () => {
    const t = setup()
    const c = collector()
    t.hub.add('kv/a/', t.store().revision, c.sink)
    t.put('kv/a/1', 'x')
    t.put('kv/b/1', 'y')
    t.put('kv/a/2', 'z')
    t.del('kv/a/1')
    expect(c.seen).toEqual([['put', 'kv/a/1', 1], ['put', 'kv/a/2', 3], ['delete', 'kv/a/1', 4]])
  })

  it('a watcher resuming from any revision gets exactly the events after it', () => {
    const t = setup()
    for (let i = 1; i <= 20; i++) t.put(`kv/k${i % 3}`, `v${i}`)
    for (let from = 0; from <= 20; from++) {
      const c = collector()
      const stop = t.hub.add('kv/', from, c.sink)
      t.put('kv/live', `after-${from}`)
      stop()
      const revisions = c.seen.map(([, , r]) => r)
      const expected = Array.from({ length: t.store().revision - from }, (_, i) => from + 1 + i)
      expect(revisions).toEqual(expected)
    }
  })

  it('watchers at different cursors each get what they miss, then share the live stream', () => {
    const t = setup()
    t.put('kv/x', '1')
    t.put('kv/x', '2')
    const early = collector()
    const late = collector()
    t.hub.add('kv/', 0, early.sink)
    t.hub.add('kv/', 2, late.sink)
    t.put('kv/x', '3')
    expect(early.seen.map((e) => e[2])).toEqual([1, 2, 3])
    expect(late.seen.map((e) => e[2])).toEqual([3])
  })

  it('a cursor behind the compacted history is told so, not given a gap', () => {
    const t = setup()
    for (let i = 0; i < 5; i++) t.put('kv/x', String(i))
    t.store().apply(6, cmd({ type: 'compact', revision: 4 }))
    const c = collector()
    t.hub.add('kv/', 1, c.sink)
    expect(c.compactedAt).toBe(4)
    expect(c.seen).toEqual([])
    expect(t.hub.size).toBe(0)
  })

  it('after a snapshot replaces the store, watchers continue from their cursor', () => {
    const t = setup()
    const c = collector()
    t.hub.add('kv/', 0, c.sink)
    t.put('kv/x', '1')
    // Another replica went further; this one installs its snapshot.
    const other = StateStore.restore(t.store().snapshot())
    if (!other.ok) throw new Error(other.message)
    other.store.apply(2, cmd({ type: 'put', key: 'kv/y', value: utf8.encode('2') }))
    other.store.apply(3, cmd({ type: 'put', key: 'kv/z', value: utf8.encode('3') }))
    other.store.drainEvents()
    t.replace(other.store)
    t.put('kv/w', '4')
    expect(c.seen.map((e) => [e[1], e[2]])).toEqual([['kv/x', 1], ['kv/y', 2], ['kv/z', 3], ['kv/w', 4]])
  })
})
