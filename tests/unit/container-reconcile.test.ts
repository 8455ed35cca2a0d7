/** The host's convergence on its runtime's truth, and the leader's marking of lost containers. */
import { describe, it, expect } from 'vitest'
import { batchOps, convergeOps, lostContainerTxns, type HostLiveness } from '../../runtime/container-reconcile.ts'
import { ConvergeLoop } from '../../runtime/converge-loop.ts'
import { StateStore, containerKey, encodeRecord, parseContainer, TXN_MAX_OPS, type Container, type Request } from '../../storage/statestore/index.ts'

const HOST = '12D3KooWHostAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const OTHER = '12D3KooWHostBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'

function container(host: string, n: number, state: Container['state'] = 'running'): Container {
  return { id: n.toString(16).padStart(64, '0'), name: `c${n}`, image: 'busybox', host, hostName: host === HOST ? 'a' : 'b', ips: [`10.0.0.${n}`], ports: [], labels: {}, state }
}

/** Applies requests through the real StateStore, as every replica would. */
function applyAll(store: StateStore, origin: string, requests: Request[], asLeader = false): void {
  for (const [i, request] of requests.entries()) {
    const r = store.apply(store.appliedIndex + 1, { origin, requestId: `${origin.slice(-4)}-${store.revision}-${i}`, request, ...(asLeader ? { asLeader } : {}) })
    expect(r.ok, JSON.stringify(r)).toBe(true)
  }
}

describe('convergeOps', () => {
  it('writes only what differs, and after applying it nothing is left to write', () => {
    const store = new StateStore()
    const first = [container(HOST, 1), container(HOST, 2), container(HOST, 3)]
    applyAll(store, HOST, batchOps(convergeOps(HOST, first, []), 1 << 20))
    expect(convergeOps(HOST, first, store.range(`containers/${HOST}/`).kvs)).toEqual([])

    const next = [{ ...container(HOST, 1), state: 'exited' as const, exitCode: 3 }, container(HOST, 3), container(HOST, 4)]
    const ops = convergeOps(HOST, next, store.range(`containers/${HOST}/`).kvs)
    expect(ops.map((o) => `${o.type} ${o.type === 'deletePrefix' ? o.prefix : o.key.slice(-2)}`).sort()).toEqual(['delete 02', 'put 01', 'put 04'])
    applyAll(store, HOST, batchOps(ops, 1 << 20))
    const stored = store.range(`containers/${HOST}/`).kvs.map((kv) => parseContainer(kv.value)).map((r) => (r.ok ? r.record : null))
    expect(stored).toEqual(next)
  })

  it('splits large convergences into txns the store accepts', () => {
    const many = Array.from({ length: 300 }, (_, i) => container(HOST, i + 1))
    const txns = batchOps(convergeOps(HOST, many, []), 1 << 20)
    expect(txns.length).toBe(Math.ceil(300 / TXN_MAX_OPS))
    const store = new StateStore()
    applyAll(store, HOST, txns)
    expect(store.range(`containers/${HOST}/`).kvs.length).toBe(300)
    expect(batchOps(convergeOps(HOST, many, []), 2000).length).toBeGreaterThan(txns.length) // the byte bound splits too
  })
})

describe('lostContainerTxns', () => {
  function storeWith(): StateStore {
    const store = new StateStore()
    applyAll(store, HOST, batchOps(convergeOps(HOST, [container(HOST, 1), container(HOST, 2, 'exited')], []), 1 << 20))
    applyAll(store, OTHER, batchOps(convergeOps(OTHER, [container(OTHER, 3)], []), 1 << 20))
    return store
  }

  it('marks the containers of a host dead past the grace period lost, and no others', () => {
    const store = storeWith()
    const hosts = new Map<string, HostLiveness>([[HOST, { state: 'dead', sinceMs: 1000 }], [OTHER, { state: 'alive', sinceMs: 0 }]])
    expect(lostContainerTxns(1000 + 29_999, 30_000, hosts, store.range('containers/').kvs)).toEqual([])
    const txns = lostContainerTxns(1000 + 30_000, 30_000, hosts, store.range('containers/').kvs)
    expect(txns.length).toBe(2)
    applyAll(store, OTHER, txns, true) // the leader's write
    const states = store.range('containers/').kvs.map((kv) => { const r = parseContainer(kv.value); return r.ok ? `${r.record.name}:${r.record.state}` : '?' })
    expect(states.sort()).toEqual(['c1:lost', 'c2:lost', 'c3:running'])
    // Already lost: nothing more to do.
    expect(lostContainerTxns(1e9, 30_000, hosts, store.range('containers/').kvs)).toEqual([])
  })

  it('treats a host no longer known at all as gone, and spares suspects', () => {
    const store = storeWith()
    expect(lostContainerTxns(1e9, 30_000, new Map([[OTHER, { state: 'suspect', sinceMs: 0 }]]), store.range('containers/').kvs).length).toBe(2)
  })

  it('never overwrites a write the host made after the leader looked', () => {
    const store = storeWith()
    const hosts = new Map<string, HostLiveness>([[HOST, { state: 'dead', sinceMs: 0 }]])
    const txns = lostContainerTxns(1e9, 30_000, hosts, store.range(`containers/${HOST}/`).kvs)
    // The host comes back and rewrites c1 before the leader's txns apply.
    applyAll(store, HOST, [{ type: 'put', key: containerKey(HOST, container(HOST, 1).id), value: encodeRecord({ ...container(HOST, 1), ips: ['10.0.0.99'] }) }])
    applyAll(store, OTHER, txns, true)
    const c1 = parseContainer(store.get(containerKey(HOST, container(HOST, 1).id))!.value)
    expect(c1.ok && c1.record.state).toBe('running')
    const c2 = parseContainer(store.get(containerKey(HOST, container(HOST, 2).id))!.value)
    expect(c2.ok && c2.record.state).toBe('lost')
  })
})

describe('ConvergeLoop (HostSync and the simulator run this one)', () => {
  /** A loop over a counter that must reach `target`; writes complete when `release` is called. */
  function setup() {
    const state = { value: 0, target: 0, pending: [] as Array<(error: string | null) => void>, timers: [] as Array<[number, () => void]>, fail: false, converged: 0 }
    const loop = new ConvergeLoop({
      next: () => (state.value < state.target ? { type: 'put', key: 'k', value: new Uint8Array([state.value + 1]) } : undefined),
      write: (_txn, done) => state.pending.push((e) => {
        if (e === null) state.value++
        done(e)
      }),
      after: (ms, fn) => state.timers.push([ms, fn]),
      converged: () => state.converged++,
    })
    const release = () => state.pending.shift()?.(state.fail ? 'no leader' : null)
    return { loop, state, release }
  }

  it('writes one difference at a time until none is left; a change during a write runs again afterwards', () => {
    const { loop, state, release } = setup()
    state.target = 2
    loop.schedule()
    loop.schedule() // while busy: runs again after, never in parallel
    expect(state.pending).toHaveLength(1)
    state.target = 3
    release()
    release()
    release()
    expect(state.value).toBe(3)
    expect(state.pending).toHaveLength(0)
    expect(state.converged).toBeGreaterThanOrEqual(1)
    expect(loop.busy).toBe(false)
  })

  it('retries a failed write after 250 ms, doubling up to 5 s, and resets after a success', () => {
    const { loop, state, release } = setup()
    state.target = 1
    state.fail = true
    const delays: number[] = []
    loop.schedule()
    for (let i = 0; i < 7; i++) {
      release()
      const [ms, fn] = state.timers.shift()!
      delays.push(ms)
      loop.schedule() // a change while the retry is due waits for it
      expect(state.pending).toHaveLength(0)
      fn()
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000])
    state.fail = false
    release()
    expect(state.value).toBe(1)
    state.target = 2
    state.fail = true
    loop.schedule()
    release()
    expect(state.timers[0]?.[0]).toBe(250)
  })

  it('after stop, nothing is written and late callbacks are ignored', () => {
    const { loop, state, release } = setup()
    state.target = 2
    loop.schedule()
    loop.stop()
    release()
    expect(state.value).toBe(1)
    expect(state.pending).toHaveLength(0)
    loop.schedule()
    expect(state.pending).toHaveLength(0)
  })
})
