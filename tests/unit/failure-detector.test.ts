import { describe, expect, it } from 'vitest'
import {
  FailureDetector,
  MAX_OUTSTANDING_PROBES,
  type FailureDetectorConfig,
  type MemberChange,
  type MemberState,
  type MemberUpdate,
  type Outbound,
  type Ready,
  type SwimMessage,
} from '../../protocols/gossip/failure-detector.ts'
import { suspicionMaxTimeoutMs, suspicionMinTimeoutMs } from '../../protocols/gossip/suspicion.ts'
import {
  SWIM_MAX_FRAME_BYTES,
  SWIM_MAX_META_BYTES,
  SWIM_MAX_UPDATES,
  decodeSwimMessage,
  encodeSwimMessage,
} from '../../protocols/gossip/swim-codec.ts'
import { mulberry32 } from '../../protocols/prng.ts'

// ------------------------------------------------------------------ helpers


const metaOf = (id: string, version = 1): string => JSON.stringify({ name: id, addrs: [`/ip4/10.0.0.1/tcp/7946/p2p/${id}`], v: version })
const upd = (peerId: string, incarnation: number, state: MemberState = 'alive', meta = metaOf(peerId)): MemberUpdate => ({ peerId, incarnation, state, meta })

/**
 * Pushpull is pushed far out in unit tests so ticks only do what each test looks at; probe
 * timings are pinned to the values the worked examples below compute with, so those tests
 * are about the algorithm, not about the production defaults (which the simulations use).
 */
const QUIET: Partial<FailureDetectorConfig> = { pushPullIntervalMs: 1e12, probeIntervalMs: 400, probeTimeoutMs: 200 }

function makeCore(selfId = 'A', extra: Partial<FailureDetectorConfig> = {}, seed = 1): FailureDetector {
  const fd = new FailureDetector({ selfId, meta: metaOf(selfId), nowMs: 0, random: mulberry32(seed), ...QUIET, ...extra })
  fd.assertInvariants()
  return fd
}

/** Drains outputs; every message must survive the wire codec. */
function take(fd: FailureDetector): Ready {
  fd.assertInvariants()
  const r = fd.ready()
  fd.assertInvariants()
  for (const out of r.messages) {
    const bytes = encodeSwimMessage(out.message)
    expect(decodeSwimMessage(bytes)).toEqual({ ok: true, message: out.message })
  }
  return r
}

function step(fd: FailureDetector, from: string, message: SwimMessage, nowMs: number): Ready {
  fd.step(from, message, nowMs)
  return take(fd)
}

function tick(fd: FailureDetector, nowMs: number): Ready {
  fd.tick(nowMs)
  return take(fd)
}

/** Teaches `fd` the given alive members (incarnation 1) through a sync that needs no answer. */
function learn(fd: FailureDetector, ids: string[], nowMs = 0): Ready {
  const from = ids[0] ?? 'Z'
  return step(fd, from, { type: 'sync', reply: false, members: ids.map((id) => upd(id, 1)) }, nowMs)
}

/** Delivers piggybacked updates without touching any probe state (ack with an unknown seq). */
function gossip(fd: FailureDetector, from: string, updates: MemberUpdate[], nowMs: number): Ready {
  return step(fd, from, { type: 'ack', seq: 999_999, updates }, nowMs)
}

function updatesOf(message: SwimMessage): MemberUpdate[] {
  return message.type === 'sync' ? message.members : message.updates
}

function ofType<T extends SwimMessage['type']>(messages: Outbound[], type: T): Array<{ to: string; message: Extract<SwimMessage, { type: T }> }> {
  const out: Array<{ to: string; message: Extract<SwimMessage, { type: T }> }> = []
  for (const m of messages) if (m.message.type === type) out.push(m as { to: string; message: Extract<SwimMessage, { type: T }> })
  return out
}

function only<T>(items: T[]): T {
  expect(items).toHaveLength(1)
  const first = items[0]
  if (first === undefined) throw new Error('empty')
  return first
}

// ------------------------------------------------------------ unit: basics

describe('FailureDetector basics', () => {
  it('lists self as alive from construction and reports it as learned', () => {
    const fd = makeCore('A', { incarnation: 2 })
    const r = take(fd)
    expect(r.changes).toEqual([{ peerId: 'A', previous: null, state: 'alive', incarnation: 2, meta: metaOf('A'), atMs: 0 }])
    expect(fd.members()).toEqual([{ peerId: 'A', incarnation: 2, state: 'alive', meta: metaOf('A'), stateSinceMs: 0 }])
    expect(fd.member('B')).toBeUndefined()
  })

  it('rejects invalid configuration (caller bugs)', () => {
    const base: FailureDetectorConfig = { selfId: 'A', meta: '', nowMs: 0, random: mulberry32(1) }
    expect(() => new FailureDetector({ ...base, selfId: 'not valid!' })).toThrow(RangeError)
    expect(() => new FailureDetector({ ...base, meta: 'x'.repeat(SWIM_MAX_META_BYTES + 1) })).toThrow(RangeError)
    expect(() => new FailureDetector({ ...base, incarnation: -1 })).toThrow(RangeError)
    expect(() => new FailureDetector({ ...base, probeTimeoutMs: 400, probeIntervalMs: 400 })).toThrow(RangeError)
    expect(() => new FailureDetector({ ...base, maxPiggyback: SWIM_MAX_UPDATES + 1 })).toThrow(RangeError)
    expect(() => new FailureDetector({ ...base, maxMembers: 0 })).toThrow(RangeError)
  })

  it('answers a ping with an ack of the same seq, even from an unknown peer, without adding it', () => {
    const fd = makeCore()
    take(fd)
    const r = step(fd, 'B', { type: 'ping', seq: 7, target: 'A', updates: [] }, 10)
    // The ack carries our own alive announcement (memberlist setAlive).
    expect(r.messages).toEqual([{ to: 'B', message: { type: 'ack', seq: 7, updates: [upd('A', 0)] } }])
    expect(fd.member('B')).toBeUndefined()
  })

  it('drops a ping addressed to another peer, updates included', () => {
    const fd = makeCore()
    take(fd)
    const r = step(fd, 'B', { type: 'ping', seq: 7, target: 'C', updates: [upd('D', 1)] }, 10)
    expect(r.messages).toEqual([])
    expect(fd.member('D')).toBeUndefined()
  })

  it('drops a message carrying more than 64 updates as a whole', () => {
    const fd = makeCore()
    take(fd)
    const updates = Array.from({ length: SWIM_MAX_UPDATES + 1 }, (_, i) => upd(`p${i}`, 1))
    expect(step(fd, 'B', { type: 'ping', seq: 1, target: 'A', updates }, 1).messages).toEqual([])
    expect(step(fd, 'B', { type: 'sync', reply: true, members: updates }, 1).messages).toEqual([])
    expect(fd.members()).toHaveLength(1)
  })

  it('ignores messages from itself or with an invalid sender id', () => {
    const fd = makeCore()
    take(fd)
    expect(step(fd, 'A', { type: 'ping', seq: 1, target: 'A', updates: [upd('B', 1)] }, 1).messages).toEqual([])
    expect(step(fd, 'b-c', { type: 'ping', seq: 1, target: 'A', updates: [upd('B', 1)] }, 1).messages).toEqual([])
    expect(fd.members()).toHaveLength(1)
  })

  it('learns members from updates, reporting each with previous null', () => {
    const fd = makeCore()
    take(fd)
    const r = gossip(fd, 'B', [upd('B', 1), upd('C', 4, 'suspect'), upd('D', 2, 'dead'), upd('E', 2, 'left')], 5)
    expect(r.changes.map((c) => [c.peerId, c.previous, c.state, c.incarnation])).toEqual([
      ['B', null, 'alive', 1],
      ['C', null, 'suspect', 4],
    ])
    // Gone members are not learned: nothing to probe, nothing to gain.
    expect(fd.members().map((m) => m.peerId)).toEqual(['A', 'B', 'C'])
  })

  it('bounds the member table by maxMembers', () => {
    const fd = makeCore('A', { maxMembers: 3 })
    take(fd)
    gossip(fd, 'B', ['B', 'C', 'D', 'E'].map((id) => upd(id, 1)), 1)
    expect(fd.members().map((m) => m.peerId)).toEqual(['A', 'B', 'C'])
  })

  it('returns copies from members() and member()', () => {
    const fd = makeCore()
    learn(fd, ['B'])
    const m = fd.member('B')
    if (m === undefined) throw new Error('missing')
    m.state = 'dead'
    expect(fd.member('B')?.state).toBe('alive')
    fd.assertInvariants()
  })
})

// ---------------------------------------------- unit: incarnation rules (SWIM §4.2)

describe('incarnation rules (SWIM §4.2)', () => {
  type Row = [current: MemberState, incoming: MemberState, incarnation: number, expected: MemberState, expectedIncarnation: number]
  // The member is known at incarnation 5 in state `current`.
  const rows: Row[] = [
    ['alive', 'alive', 4, 'alive', 5],
    ['alive', 'alive', 5, 'alive', 5],
    ['alive', 'alive', 6, 'alive', 6],
    ['alive', 'suspect', 4, 'alive', 5],
    ['alive', 'suspect', 5, 'suspect', 5],
    ['alive', 'suspect', 6, 'suspect', 6],
    ['alive', 'dead', 4, 'alive', 5],
    ['alive', 'dead', 5, 'dead', 5],
    ['alive', 'dead', 6, 'dead', 6],
    ['alive', 'left', 4, 'alive', 5],
    ['alive', 'left', 5, 'left', 5],
    ['alive', 'left', 6, 'left', 6],
    ['suspect', 'alive', 4, 'suspect', 5],
    ['suspect', 'alive', 5, 'suspect', 5],
    ['suspect', 'alive', 6, 'alive', 6],
    ['suspect', 'suspect', 4, 'suspect', 5],
    ['suspect', 'suspect', 5, 'suspect', 5],
    ['suspect', 'suspect', 6, 'suspect', 6],
    ['suspect', 'dead', 4, 'suspect', 5],
    ['suspect', 'dead', 5, 'dead', 5],
    ['suspect', 'dead', 6, 'dead', 6],
    ['suspect', 'left', 4, 'suspect', 5],
    ['suspect', 'left', 5, 'left', 5],
    ['suspect', 'left', 6, 'left', 6],
    ['dead', 'alive', 4, 'dead', 5],
    ['dead', 'alive', 5, 'dead', 5],
    ['dead', 'alive', 6, 'alive', 6],
    ['dead', 'suspect', 6, 'dead', 5],
    ['dead', 'dead', 4, 'dead', 5],
    ['dead', 'dead', 6, 'dead', 6],
    ['dead', 'left', 4, 'dead', 5],
    ['dead', 'left', 5, 'left', 5],
    ['dead', 'left', 6, 'left', 6],
    ['left', 'alive', 5, 'left', 5],
    ['left', 'alive', 6, 'alive', 6],
    ['left', 'suspect', 6, 'left', 5],
    ['left', 'dead', 5, 'left', 5],
    ['left', 'dead', 6, 'dead', 6],
    ['left', 'left', 6, 'left', 6],
  ]

  it.each(rows)('%s(5) + %s(%d) -> %s(%d)', (current, incoming, incarnation, expected, expectedIncarnation) => {
    const fd = makeCore()
    gossip(fd, 'B', [upd('B', 5)], 1)
    if (current !== 'alive') gossip(fd, 'C', [upd('B', 5, current)], 2)
    expect(fd.member('B')?.state).toBe(current)
    gossip(fd, 'D', [upd('B', incarnation, incoming, metaOf('B', incarnation))], 3)
    expect(fd.member('B')).toMatchObject({ state: expected, incarnation: expectedIncarnation })
    if (expected !== current) expect(fd.member('B')?.stateSinceMs).toBe(3)
  })

  it('reports every state transition with the previous state', () => {
    const fd = makeCore()
    take(fd)
    const changes: MemberChange[] = []
    for (const [at, u] of [
      [1, upd('B', 1)],
      [2, upd('B', 1, 'suspect')],
      [3, upd('B', 2)],
      [4, upd('B', 2, 'dead')],
      [5, upd('B', 3, 'alive', metaOf('B', 3))],
      [6, upd('B', 4, 'left', metaOf('B', 3))],
    ] as const) {
      changes.push(...gossip(fd, 'C', [u], at).changes)
    }
    expect(changes.map((c) => [c.previous, c.state, c.incarnation, c.atMs])).toEqual([
      [null, 'alive', 1, 1],
      ['alive', 'suspect', 1, 2],
      ['suspect', 'alive', 2, 3],
      ['alive', 'dead', 2, 4],
      ['dead', 'alive', 3, 5],
      ['alive', 'left', 4, 6],
    ])
  })

  it('reports a meta change at the same state as a change with previous === state', () => {
    const fd = makeCore()
    gossip(fd, 'B', [upd('B', 1)], 1)
    take(fd)
    const r = gossip(fd, 'B', [upd('B', 2, 'alive', '{"v":2}')], 2)
    expect(r.changes).toEqual([{ peerId: 'B', previous: 'alive', state: 'alive', incarnation: 2, meta: '{"v":2}', atMs: 2 }])
    // An incarnation bump with the same meta is not a change.
    expect(gossip(fd, 'B', [upd('B', 3, 'alive', '{"v":2}')], 3).changes).toEqual([])
  })
})

// ------------------------------------------------------ unit: refutation

describe('refuting updates about ourselves (SWIM §4.2)', () => {
  type Row = [state: MemberState, incarnation: number, sameMeta: boolean, expectedIncarnation: number]
  const rows: Row[] = [
    ['suspect', 2, true, 3],
    ['suspect', 3, true, 4],
    ['suspect', 7, true, 8],
    ['dead', 3, true, 4],
    ['dead', 9, true, 10],
    ['left', 3, true, 4],
    ['alive', 2, true, 3],
    ['alive', 3, true, 3],
    ['alive', 3, false, 4],
    ['alive', 4, true, 5],
  ]
  it.each(rows)('%s(%d) about us at 3 (same meta: %s) -> incarnation %d', (state, incarnation, sameMeta, expectedIncarnation) => {
    const fd = makeCore('A', { incarnation: 3 })
    learn(fd, ['B'])
    gossip(fd, 'B', [upd('A', incarnation, state, sameMeta ? metaOf('A') : '{}')], 1)
    const self = fd.member('A')
    expect(self).toMatchObject({ state: 'alive', incarnation: expectedIncarnation, meta: metaOf('A') })
    const refuted = expectedIncarnation !== 3
    expect(fd.awareness()).toBe(refuted ? 1 : 0)
    // The refutation rides on the next message we send.
    const ack = step(fd, 'B', { type: 'ping', seq: 1, target: 'A', updates: [] }, 2)
    const carried = updatesOf(only(ack.messages).message).filter((u) => u.peerId === 'A')
    if (refuted) expect(carried).toEqual([upd('A', expectedIncarnation)])
    else for (const u of carried) expect(u).toEqual(upd('A', 3))
  })

  it('a restarted peer at incarnation 0 that learns via sync it is dead at 5 comes back alive at 6', () => {
    const fd = makeCore('R')
    take(fd)
    const r = step(fd, 'S', { type: 'sync', reply: false, members: [upd('R', 5, 'dead', '{"old":true}'), upd('S', 1)] }, 10)
    expect(fd.member('R')).toMatchObject({ state: 'alive', incarnation: 6, meta: metaOf('R') })
    expect(r.changes.map((c) => c.peerId)).toEqual(['S'])
    const ack = step(fd, 'S', { type: 'ping', seq: 3, target: 'R', updates: [] }, 11)
    expect(updatesOf(only(ack.messages).message)).toContainEqual(upd('R', 6))
  })
})

// ---------------------------------------------------------- unit: probing

/** A core with members B, C, D, E (n = 5) and the first probe sent at 400 ms. */
function probing(seed = 1): { fd: FailureDetector; target: string; seq: number; others: string[] } {
  const fd = makeCore('A', {}, seed)
  learn(fd, ['B', 'C', 'D', 'E'])
  expect(tick(fd, 399).messages).toEqual([])
  const ping = only(ofType(tick(fd, 400).messages, 'ping'))
  expect(ping.message.target).toBe(ping.to)
  return { fd, target: ping.to, seq: ping.message.seq, others: ['B', 'C', 'D', 'E'].filter((id) => id !== ping.to) }
}

describe('probing (SWIM §3.1, §4.3)', () => {
  it('a direct ack completes the probe', () => {
    const { fd, target, seq } = probing()
    step(fd, target, { type: 'ack', seq, updates: [] }, 420)
    expect(tick(fd, 600).messages).toEqual([])
    expect(fd.member(target)?.state).toBe('alive')
    expect(fd.awareness()).toBe(0)
  })

  it('an ack from the wrong peer or with the wrong seq does not count', () => {
    const { fd, target, seq, others } = probing()
    step(fd, others[0] ?? 'X', { type: 'ack', seq, updates: [] }, 410)
    step(fd, target, { type: 'ack', seq: (seq + 1) % 2 ** 32, updates: [] }, 410)
    expect(ofType(tick(fd, 600).messages, 'ping-req')).toHaveLength(3)
  })

  it('probes every live member once per pass, in a fresh order each pass', () => {
    const fd = makeCore('A', {}, 3)
    learn(fd, ['B', 'C', 'D', 'E'])
    const passes: string[][] = []
    let now = 0
    for (let pass = 0; pass < 6; pass++) {
      const order: string[] = []
      for (let i = 0; i < 4; i++) {
        now += 400
        const ping = only(ofType(tick(fd, now).messages, 'ping'))
        order.push(ping.to)
        step(fd, ping.to, { type: 'ack', seq: ping.message.seq, updates: [] }, now + 5)
      }
      expect([...order].sort()).toEqual(['B', 'C', 'D', 'E'])
      passes.push(order)
    }
    expect(new Set(passes.map((p) => p.join())).size).toBeGreaterThan(1)
  })

  it('after probeTimeoutMs asks indirectChecks other alive members; their relayed ack counts', () => {
    const { fd, target, seq, others } = probing()
    expect(tick(fd, 599).messages).toEqual([])
    const reqs = ofType(tick(fd, 600).messages, 'ping-req')
    expect(reqs.map((r) => r.to).sort()).toEqual([...others].sort())
    for (const r of reqs) expect(r.message).toMatchObject({ seq, target })
    step(fd, reqs[0]?.to ?? 'X', { type: 'ack', seq, updates: [] }, 700)
    expect(tick(fd, 800).changes).toEqual([])
    expect(fd.member(target)?.state).toBe('alive')
  })

  it('without any ack, suspects the target at the end of the round and disseminates it', () => {
    const { fd, target, seq, others } = probing()
    tick(fd, 600)
    for (const id of others) step(fd, id, { type: 'nack', seq, updates: [] }, 760)
    expect(fd.member(target)?.state).toBe('alive')
    const r = tick(fd, 800)
    expect(r.changes).toEqual([{ peerId: target, previous: 'alive', state: 'suspect', incarnation: 1, meta: metaOf(target), atMs: 800 }])
    // Every nack arrived: the network, not us, is at fault.
    expect(fd.awareness()).toBe(0)
    const next = only(ofType(r.messages, 'ping'))
    expect(next.message.updates).toContainEqual(upd(target, 1, 'suspect'))
  })

  it('Lifeguard: missing nacks raise awareness, which stretches the probe interval and timeout', () => {
    const { fd, target, seq, others } = probing()
    tick(fd, 600)
    step(fd, others[0] ?? 'X', { type: 'nack', seq, updates: [] }, 760)
    const r = tick(fd, 800)
    expect(fd.member(target)?.state).toBe('suspect')
    expect(fd.awareness()).toBe(2)
    const next = only(ofType(r.messages, 'ping'))
    // Timeout now 200 * 3 = 600 ms, interval 400 * 3 = 1200 ms.
    expect(ofType(tick(fd, 1399).messages, 'ping-req')).toEqual([])
    const reqs = ofType(tick(fd, 1400).messages, 'ping-req')
    expect(reqs.length).toBeGreaterThan(0)
    for (const req of reqs) step(fd, req.to, { type: 'ack', seq: next.message.seq, updates: [] }, 1500)
    expect(fd.awareness()).toBe(1)
    expect(ofType(tick(fd, 1999).messages, 'ping')).toEqual([])
    expect(ofType(tick(fd, 2000).messages, 'ping')).toHaveLength(1)
  })

  it('with nobody to ask, a failed probe counts against our own health', () => {
    const fd = makeCore()
    learn(fd, ['B'])
    expect(only(ofType(tick(fd, 400).messages, 'ping')).to).toBe('B')
    expect(tick(fd, 600).messages).toEqual([])
    tick(fd, 800)
    expect(fd.member('B')?.state).toBe('suspect')
    expect(fd.awareness()).toBe(1)
  })

  it('pings a suspect with the suspicion attached so it can refute (Lifeguard buddy system)', () => {
    const fd = makeCore()
    learn(fd, ['B'])
    gossip(fd, 'C', [upd('B', 1, 'suspect')], 1)
    const ping = only(ofType(tick(fd, 400).messages, 'ping'))
    expect(ping.to).toBe('B')
    expect(ping.message.updates[0]).toEqual(upd('B', 1, 'suspect'))
  })

  it('onUnreachable: the direct probe fails at once, and when every intermediary nacks the target is suspected without waiting', () => {
    const { fd, target, seq, others } = probing()
    const reqs = ofType((fd.onUnreachable(target, 402), take(fd)).messages, 'ping-req')
    expect(reqs.map((r) => r.to).sort()).toEqual([...others].sort())
    for (const id of others.slice(0, 2)) step(fd, id, { type: 'nack', seq, updates: [] }, 405)
    expect(fd.member(target)?.state).toBe('alive')
    fd.onUnreachable(others[2] ?? 'X', 406)
    const r = take(fd)
    expect(r.changes.map((c) => [c.peerId, c.state])).toEqual([[target, 'suspect']])
    // One intermediary did not nack: Lifeguard counts it against us.
    expect(fd.awareness()).toBe(1)
  })

  it('onConnectionLost probes an alive member out of turn, once', () => {
    const fd = makeCore()
    learn(fd, ['B', 'C'])
    fd.onConnectionLost('C', 50)
    const ping = only(ofType(take(fd).messages, 'ping'))
    expect(ping).toMatchObject({ to: 'C', message: { target: 'C' } })
    fd.onConnectionLost('C', 60)
    expect(take(fd).messages).toEqual([])
    // The regular round skips C while its probe is out.
    expect(only(ofType(tick(fd, 400).messages, 'ping')).to).toBe('B')
    // Unknown or non-alive members are not probed.
    fd.onConnectionLost('Q', 70)
    gossip(fd, 'C', [upd('B', 1, 'suspect')], 70)
    fd.onConnectionLost('B', 70)
    expect(take(fd).messages).toEqual([])
  })

  it('bounds outstanding probes', () => {
    const fd = makeCore()
    const ids = Array.from({ length: MAX_OUTSTANDING_PROBES + 10 }, (_, i) => `p${i}`)
    for (let i = 0; i < ids.length; i += SWIM_MAX_UPDATES) learn(fd, ids.slice(i, i + SWIM_MAX_UPDATES))
    for (const id of ids) fd.onConnectionLost(id, 10)
    expect(ofType(take(fd).messages, 'ping')).toHaveLength(MAX_OUTSTANDING_PROBES)
  })
})

// ----------------------------------------------------- unit: intermediary

describe('intermediary (SWIM §3.1 ping-req, Lifeguard nack)', () => {
  function relaying(): { fd: FailureDetector; localSeq: number } {
    const fd = makeCore('M')
    learn(fd, ['A', 'T'])
    const r = step(fd, 'A', { type: 'ping-req', seq: 77, target: 'T', updates: [] }, 100)
    const ping = only(ofType(r.messages, 'ping'))
    expect(ping).toMatchObject({ to: 'T', message: { target: 'T' } })
    return { fd, localSeq: ping.message.seq }
  }

  it('relays the target ack to the requester under the requester seq', () => {
    const { fd, localSeq } = relaying()
    const r = step(fd, 'T', { type: 'ack', seq: localSeq, updates: [] }, 120)
    expect(only(r.messages)).toMatchObject({ to: 'A', message: { type: 'ack', seq: 77 } })
    expect(tick(fd, 400).messages.filter((m) => m.to === 'A' && m.message.type !== 'ping')).toEqual([])
  })

  it('nacks after nackTimeoutMs (80% of probeTimeoutMs) without an ack', () => {
    const { fd } = relaying()
    expect(tick(fd, 259).messages.filter((m) => m.message.type === 'nack')).toEqual([])
    const nack = only(ofType(tick(fd, 260).messages, 'nack'))
    expect(nack).toMatchObject({ to: 'A', message: { seq: 77 } })
  })

  it('nacks at once when the target is unreachable', () => {
    const { fd } = relaying()
    fd.onUnreachable('T', 101)
    expect(only(ofType(take(fd).messages, 'nack'))).toMatchObject({ to: 'A', message: { seq: 77 } })
    expect(ofType(tick(fd, 300).messages, 'nack')).toEqual([])
  })

  it('answers a ping-req about itself with an ack', () => {
    const fd = makeCore('M')
    const r = step(fd, 'A', { type: 'ping-req', seq: 5, target: 'M', updates: [] }, 1)
    expect(only(r.messages)).toMatchObject({ to: 'A', message: { type: 'ack', seq: 5 } })
  })

  it('serves a repeated ping-req only once', () => {
    const { fd } = relaying()
    expect(step(fd, 'A', { type: 'ping-req', seq: 77, target: 'T', updates: [] }, 101).messages).toEqual([])
  })
})

// ---------------------------------------------------------- unit: suspicion

describe('suspicion timeouts (Lifeguard §IV, Local Health Aware Suspicion)', () => {
  // n = 5 live members: min = 3 * 1 * 400 = 1200, max = 7200, k = 3.
  function suspected(): FailureDetector {
    const fd = makeCore()
    learn(fd, ['B', 'C', 'D', 'E'])
    gossip(fd, 'C', [upd('B', 1, 'suspect')], 1000)
    return fd
  }

  it('a lone accusation waits the maximum, then declares dead and disseminates it', () => {
    const fd = suspected()
    expect(tick(fd, 1000 + 7199).changes).toEqual([])
    const r = tick(fd, 1000 + 7200)
    expect(r.changes).toEqual([{ peerId: 'B', previous: 'suspect', state: 'dead', incarnation: 1, meta: metaOf('B'), atMs: 8200 }])
    const ack = step(fd, 'C', { type: 'ping', seq: 1, target: 'A', updates: [] }, 8201)
    expect(updatesOf(only(ack.messages).message)).toContainEqual(upd('B', 1, 'dead'))
  })

  it('each independent accuser shortens the timeout; repeats and the initiator do not count', () => {
    const fd = suspected()
    gossip(fd, 'C', [upd('B', 1, 'suspect')], 1010) // the initiator again
    gossip(fd, 'D', [upd('B', 1, 'suspect')], 1020) // c = 1 -> 4200
    gossip(fd, 'D', [upd('B', 1, 'suspect')], 1030) // repeat
    expect(tick(fd, 1000 + 4199).changes).toEqual([])
    gossip(fd, 'E', [upd('B', 1, 'suspect')], 1000 + 4199) // c = 2 -> 2445, already past
    expect(tick(fd, 1000 + 4199).changes.map((c) => c.state)).toEqual(['dead'])
  })

  it('k confirmations reach the minimum, and more do not go below it', () => {
    const fd = makeCore()
    learn(fd, ['B', 'C', 'D', 'E', 'F', 'G']) // n = 7: min 1200, max 7200, k = 3
    gossip(fd, 'C', [upd('B', 1, 'suspect')], 1000)
    for (const id of ['D', 'E', 'F', 'G']) gossip(fd, id, [upd('B', 1, 'suspect')], 1001)
    expect(tick(fd, 1000 + 1199).changes).toEqual([])
    expect(tick(fd, 1000 + 1200).changes.map((c) => [c.peerId, c.state])).toEqual([['B', 'dead']])
  })

  it('acks a ping from a member we hold suspect or dead with that accusation first, so it can refute', () => {
    const fd = makeCore()
    learn(fd, ['B', 'C'])
    gossip(fd, 'C', [upd('B', 1, 'dead')], 10)
    const r = step(fd, 'B', { type: 'ping', seq: 4, target: 'A', updates: [] }, 20)
    expect(updatesOf(only(r.messages).message)[0]).toEqual(upd('B', 1, 'dead'))
    // B refutes; it is alive again for us.
    gossip(fd, 'B', [upd('B', 2)], 30)
    expect(fd.member('B')).toMatchObject({ state: 'alive', incarnation: 2 })
  })

  it('a refutation ends the suspicion', () => {
    const fd = suspected()
    gossip(fd, 'B', [upd('B', 2)], 2000)
    expect(fd.member('B')).toMatchObject({ state: 'alive', incarnation: 2 })
    expect(tick(fd, 20_000).changes.filter((c) => c.peerId === 'B')).toEqual([])
  })

  it('relays suspicion only when our own probe confirmed it', () => {
    const fd = suspected()
    const ack = step(fd, 'D', { type: 'ping', seq: 1, target: 'A', updates: [] }, 1001)
    expect(updatesOf(only(ack.messages).message).filter((u) => u.state === 'suspect')).toEqual([])
    // Now A's own regular probe of B fails: B refuses connections, every intermediary nacks.
    let now = 1000
    let probeOfB: { to: string; message: Extract<SwimMessage, { type: 'ping' }> } | undefined
    while (probeOfB === undefined && now < 3000) {
      now += 400
      const ping = only(ofType(tick(fd, now).messages, 'ping'))
      if (ping.to === 'B') probeOfB = ping
      else step(fd, ping.to, { type: 'ack', seq: ping.message.seq, updates: [] }, now + 1)
    }
    if (probeOfB === undefined) throw new Error('B never probed')
    // Buddy system: the probe itself carries the accusation.
    expect(probeOfB.message.updates[0]).toEqual(upd('B', 1, 'suspect'))
    fd.onUnreachable('B', now + 1)
    const reqs = ofType(take(fd).messages, 'ping-req')
    expect(reqs).toHaveLength(3)
    for (const r of reqs) step(fd, r.to, { type: 'nack', seq: r.message.seq, updates: [] }, now + 2)
    const next = step(fd, 'D', { type: 'ping', seq: 2, target: 'A', updates: [] }, now + 3)
    expect(updatesOf(only(next.messages).message)).toContainEqual(upd('B', 1, 'suspect'))
  })

  it('uses the suspicion formulas for the cluster size at the time', () => {
    const fd = makeCore()
    const ids = Array.from({ length: 99 }, (_, i) => `p${i}`)
    for (let i = 0; i < ids.length; i += SWIM_MAX_UPDATES) learn(fd, ids.slice(i, i + SWIM_MAX_UPDATES))
    gossip(fd, 'p1', [upd('p0', 1, 'suspect')], 0)
    const maxMs = suspicionMaxTimeoutMs(6, suspicionMinTimeoutMs(3, 100, 400))
    expect(maxMs).toBe(14_400)
    expect(tick(fd, maxMs - 1).changes.filter((c) => c.peerId === 'p0')).toEqual([])
    expect(tick(fd, maxMs).changes.filter((c) => c.peerId === 'p0').map((c) => c.state)).toEqual(['dead'])
  })
})

// -------------------------------------------------------- unit: dissemination

describe('dissemination (SWIM §4.1)', () => {
  it('piggybacks an update retransmitMult * ceil(log10(n + 1)) times, then stops', () => {
    const fd = makeCore()
    const ids = Array.from({ length: 11 }, (_, i) => `p${i}`)
    learn(fd, ids) // n = 12 live members -> limit 4 * ceil(log10 13) = 8; queued with holders {p0, itself}
    let carried = 0
    for (let round = 0; round < 3; round++) {
      for (const id of ids) {
        const r = step(fd, id, { type: 'ping', seq: 1, target: 'A', updates: [] }, round)
        if (updatesOf(only(r.messages).message).some((u) => u.peerId === 'p5')) carried++
      }
    }
    expect(carried).toBe(8)
  })

  it('never spends an update on a peer known to hold it, and retires it once every live member has it', () => {
    const fd = makeCore()
    learn(fd, ['B', 'C', 'D', 'E']) // alive(C) came from B; C knows it is alive
    const receivedC: string[] = []
    for (let round = 0; round < 3; round++) {
      for (const id of ['B', 'C', 'D', 'E']) {
        const r = step(fd, id, { type: 'ping', seq: 1, target: 'A', updates: [] }, round)
        if (updatesOf(only(r.messages).message).some((u) => u.peerId === 'C')) receivedC.push(id)
      }
    }
    expect(receivedC).toEqual(['D', 'E'])
  })

  it('sends fewest-sent first, newest first among equals, at most maxPiggyback per message', () => {
    const fd = makeCore('A', { maxPiggyback: 3 })
    for (const id of ['B', 'C', 'D', 'E', 'F']) gossip(fd, 'B', [upd(id, 1)], 0)
    const ids = (r: Ready): string[] => updatesOf(only(r.messages).message).map((u) => u.peerId)
    expect(ids(step(fd, 'G', { type: 'ping', seq: 1, target: 'A', updates: [] }, 1))).toEqual(['F', 'E', 'D'])
    expect(ids(step(fd, 'G', { type: 'ping', seq: 2, target: 'A', updates: [] }, 2))).toEqual(['C', 'B', 'A'])
    expect(ids(step(fd, 'H', { type: 'ping', seq: 3, target: 'A', updates: [] }, 3))).toEqual(['F', 'E', 'D'])
  })

  it('a newer update about a member replaces the queued older one', () => {
    const fd = makeCore()
    gossip(fd, 'B', [upd('B', 1)], 0)
    gossip(fd, 'B', [upd('B', 2, 'alive', '{"v":2}')], 1)
    const r = step(fd, 'C', { type: 'ping', seq: 1, target: 'A', updates: [] }, 2)
    expect(updatesOf(only(r.messages).message).filter((u) => u.peerId === 'B')).toEqual([upd('B', 2, 'alive', '{"v":2}')])
  })

  it('re-sends our refutation to a peer that still accuses us of an older incarnation', () => {
    const fd = makeCore('A', { incarnation: 3 })
    learn(fd, ['B', 'C'])
    for (const id of ['B', 'C', 'B', 'C']) step(fd, id, { type: 'ping', seq: 1, target: 'A', updates: [] }, 1)
    // Our own alive has gone to both; a stale accusation from B brings it back for B.
    const r = step(fd, 'B', { type: 'ping', seq: 2, target: 'A', updates: [upd('A', 2, 'suspect')] }, 2)
    expect(updatesOf(only(r.messages).message)).toContainEqual(upd('A', 3))
    expect(fd.member('A')?.incarnation).toBe(3)
  })

  it('keeps every piggybacked message inside a frame even with worst-case metas', () => {
    const fd = makeCore('A', { maxPiggyback: SWIM_MAX_UPDATES })
    const heavy = '\u0001'.repeat(SWIM_MAX_META_BYTES) // 6 bytes each once JSON-escaped
    gossip(fd, 'B', Array.from({ length: 30 }, (_, i) => upd(`h${i}`, 1, 'alive', heavy)), 0)
    for (let i = 0; i < 10; i++) {
      const r = step(fd, 'B', { type: 'ping', seq: i, target: 'A', updates: [] }, i)
      expect(encodeSwimMessage(only(r.messages).message).length).toBeLessThanOrEqual(SWIM_MAX_FRAME_BYTES)
    }
  })

  it('updateMeta bumps our incarnation, reports it, and disseminates alive with the new meta', () => {
    const fd = makeCore('A', { incarnation: 4 })
    learn(fd, ['B'])
    take(fd)
    fd.updateMeta('{"v":2}', 50)
    expect(take(fd).changes).toEqual([{ peerId: 'A', previous: 'alive', state: 'alive', incarnation: 5, meta: '{"v":2}', atMs: 50 }])
    const r = step(fd, 'B', { type: 'ping', seq: 1, target: 'A', updates: [] }, 51)
    expect(updatesOf(only(r.messages).message)).toContainEqual(upd('A', 5, 'alive', '{"v":2}'))
    expect(() => fd.updateMeta('x'.repeat(SWIM_MAX_META_BYTES + 1), 52)).toThrow(RangeError)
  })
})

// ---------------------------------------------------------- unit: push-pull

describe('push-pull anti-entropy', () => {
  it('join sends our full state to each seed, asking for a reply', () => {
    const fd = makeCore('J')
    take(fd)
    fd.join(['S1', 'S2', 'S1', 'J', 'bad id'], 0)
    expect(take(fd).messages).toEqual([
      { to: 'S1', message: { type: 'sync', reply: true, members: [upd('J', 0)] } },
      { to: 'S2', message: { type: 'sync', reply: true, members: [upd('J', 0)] } },
    ])
  })

  it('merges a sync and answers a reply:true with full state, sorted', () => {
    const fd = makeCore('S')
    learn(fd, ['B'])
    const r = step(fd, 'J', { type: 'sync', reply: true, members: [upd('J', 0), upd('C', 3)] }, 10)
    expect(r.changes.map((c) => c.peerId)).toEqual(['J', 'C'])
    expect(r.messages).toEqual([
      { to: 'J', message: { type: 'sync', reply: false, members: [upd('B', 1), upd('C', 3), upd('J', 0), upd('S', 0)] } },
    ])
  })

  it('treats "dead" in a sync as a suspicion, and ignores it for unknown members (memberlist mergeState)', () => {
    const fd = makeCore()
    learn(fd, ['B'])
    step(fd, 'C', { type: 'sync', reply: false, members: [upd('B', 1, 'dead'), upd('X', 1, 'dead'), upd('Y', 1, 'left')] }, 10)
    expect(fd.member('B')?.state).toBe('suspect')
    expect(fd.member('X')).toBeUndefined()
    expect(fd.member('Y')).toBeUndefined()
  })

  it('splits full state into frames of at most 64 members and 64 KiB; only the first asks for a reply', () => {
    const fd = makeCore('A', { pushPullIntervalMs: 1000 })
    const heavy = '\u0001'.repeat(SWIM_MAX_META_BYTES)
    const ids = Array.from({ length: 150 }, (_, i) => `p${i}`)
    for (let i = 0; i < ids.length; i += 32) {
      gossip(fd, 'p0', ids.slice(i, i + 32).map((id, j) => upd(id, 1, 'alive', j % 2 === 0 ? heavy : '')), 0)
    }
    const syncs = ofType(tick(fd, 1000).messages, 'sync')
    expect(syncs.length).toBeGreaterThan(3)
    const to = syncs[0]?.to
    expect(syncs.map((s) => s.message.reply)).toEqual(syncs.map((_, i) => i === 0))
    const seen = new Set<string>()
    for (const s of syncs) {
      expect(s.to).toBe(to)
      expect(s.message.members.length).toBeLessThanOrEqual(SWIM_MAX_UPDATES)
      expect(encodeSwimMessage(s.message).length).toBeLessThanOrEqual(SWIM_MAX_FRAME_BYTES)
      for (const m of s.message.members) seen.add(m.peerId)
    }
    expect(seen.size).toBe(151)
  })

  it('syncs with one random alive member every pushPullIntervalMs', () => {
    const fd = makeCore('A', { pushPullIntervalMs: 1000 })
    learn(fd, ['B', 'C'])
    gossip(fd, 'B', [upd('C', 1, 'dead')], 0)
    const times: number[] = []
    for (let now = 10; now <= 5000; now += 10) {
      const r = tick(fd, now)
      for (const p of ofType(r.messages, 'ping')) step(fd, p.to, { type: 'ack', seq: p.message.seq, updates: [] }, now)
      for (const s of ofType(r.messages, 'sync')) {
        expect(s.to).toBe('B')
        expect(s.message.reply).toBe(true)
        times.push(now)
      }
    }
    expect(times).toHaveLength(5)
    for (let i = 1; i < times.length; i++) expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBe(1000)
  })
})

// ---------------------------------------------------- unit: leave and reaping

describe('join', () => {
  it('re-sends the join to the seeds while we know nobody else, and stops once we do', () => {
    const fd = makeCore('J', { joinRetryIntervalMs: 1000 })
    take(fd)
    fd.join(['S'], 0)
    expect(ofType(take(fd).messages, 'sync')).toHaveLength(1)
    expect(ofType(tick(fd, 999).messages, 'sync')).toEqual([])
    expect(ofType(tick(fd, 1000).messages, 'sync')).toEqual([{ to: 'S', message: { type: 'sync', reply: true, members: [upd('J', 0)] } }])
    step(fd, 'S', { type: 'sync', reply: false, members: [upd('S', 0), upd('J', 0)] }, 1500)
    for (let now = 1500; now < 6000; now += 100) {
      const r = tick(fd, now)
      expect(ofType(r.messages, 'sync')).toEqual([])
      for (const p of ofType(r.messages, 'ping')) step(fd, p.to, { type: 'ack', seq: p.message.seq, updates: [] }, now)
    }
  })
})

describe('leave', () => {
  it('sends the left update to every alive/suspect member, then stays silent and never refutes', () => {
    const fd = makeCore('A', { incarnation: 2 })
    learn(fd, ['B', 'C', 'D'])
    gossip(fd, 'C', [upd('D', 1, 'dead')], 0)
    gossip(fd, 'C', [upd('B', 1, 'suspect')], 0)
    take(fd)
    fd.leave(100)
    const r = take(fd)
    expect(r.changes).toEqual([{ peerId: 'A', previous: 'alive', state: 'left', incarnation: 3, meta: metaOf('A'), atMs: 100 }])
    expect(r.messages.map((m) => m.to).sort()).toEqual(['B', 'C'])
    for (const m of r.messages) expect(m.message).toEqual({ type: 'sync', reply: false, members: [upd('A', 3, 'left')] })

    expect(step(fd, 'B', { type: 'ping', seq: 1, target: 'A', updates: [upd('A', 9, 'dead')] }, 101).messages).toEqual([])
    expect(fd.member('A')).toMatchObject({ state: 'left', incarnation: 3 })
    expect(step(fd, 'B', { type: 'sync', reply: true, members: [upd('A', 3, 'suspect')] }, 102).messages).toEqual([])
    fd.onConnectionLost('C', 103)
    expect(take(fd).messages).toEqual([])
    fd.updateMeta('{}', 104)
    expect(take(fd)).toEqual({ messages: [], changes: [] })
    fd.join(['C'], 105)
    expect(take(fd).messages).toEqual([])
    fd.onUnreachable('C', 106)
    expect(take(fd).messages).toEqual([])
    for (let now = 200; now < 60_000; now += 100) expect(tick(fd, now).messages).toEqual([])
  })
})

describe('reaping', () => {
  it('lists dead/left members for deadRetentionMs, then forgets them; a newer life comes back', () => {
    const fd = makeCore('A', { deadRetentionMs: 10_000 })
    learn(fd, ['B', 'C', 'D'])
    gossip(fd, 'C', [upd('B', 1, 'dead')], 1000)
    gossip(fd, 'B', [upd('D', 1, 'left')], 2000)
    expect(fd.nextDeadlineMs()).toBeLessThanOrEqual(11_000)
    tick(fd, 10_999)
    expect(fd.members().map((m) => [m.peerId, m.state])).toEqual([
      ['A', 'alive'],
      ['B', 'dead'],
      ['C', 'alive'],
      ['D', 'left'],
    ])
    expect(tick(fd, 11_000).changes).toEqual([])
    expect(fd.members().map((m) => m.peerId)).toEqual(['A', 'C', 'D'])
    tick(fd, 12_000)
    expect(fd.members().map((m) => m.peerId)).toEqual(['A', 'C'])
    // Forgotten, so any alive announcement is news again.
    const r = gossip(fd, 'B', [upd('B', 0)], 12_001)
    expect(r.changes.map((c) => [c.peerId, c.previous, c.state])).toEqual([['B', null, 'alive']])
  })

  it('a dead member announcing a higher incarnation is alive again and probed', () => {
    const fd = makeCore()
    learn(fd, ['B'])
    gossip(fd, 'C', [upd('B', 1, 'dead')], 10)
    expect(tick(fd, 400).messages).toEqual([])
    gossip(fd, 'B', [upd('B', 2)], 500)
    expect(fd.member('B')).toMatchObject({ state: 'alive', incarnation: 2, stateSinceMs: 500 })
    expect(only(ofType(tick(fd, 800).messages, 'ping')).to).toBe('B')
  })
})

// ------------------------------------------------------------ cluster sim

interface SimNode {
  id: string
  fd: FailureDetector
  state: 'up' | 'crashed' | 'paused'
}

interface InFlight {
  atMs: number
  order: number
  from: string
  to: string
  bytes: Uint8Array
}

interface SimOptions {
  seed: number
  lossRate?: number
  latencyMinMs?: number
  latencyMaxMs?: number
  /** A crashed peer's host refuses connections: senders learn it through onUnreachable. */
  refuseToCrashed?: boolean
  config?: Partial<FailureDetectorConfig>
}

type ObservedChange = MemberChange & { observer: string }

const SIM_STEP_MS = 5

/**
 * Deterministic network of cores: one seeded PRNG draws loss and latency, each
 * core gets its own seeded PRNG, time advances in 5 ms steps. Every frame goes
 * through the real codec, and every core's invariants are checked after every
 * input.
 */
class Sim {
  nowMs = 0
  readonly nodes = new Map<string, SimNode>()
  readonly changes: ObservedChange[] = []
  readonly trace: string[] = []
  readonly sentBy = new Map<string, number>()
  lossRate: number
  onDeliver: ((from: string, to: string, message: SwimMessage) => void) | undefined
  private readonly options: SimOptions
  private readonly rng: () => number
  private readonly inFlight: InFlight[] = []
  private order = 0
  private starts = 0

  constructor(options: SimOptions) {
    this.options = options
    this.rng = mulberry32(options.seed)
    this.lossRate = options.lossRate ?? 0
    this.onDeliver = undefined
  }

  start(id: string, init: { incarnation?: number; seeds?: string[]; meta?: string } = {}): FailureDetector {
    this.starts++
    const fd = new FailureDetector({
      selfId: id,
      meta: init.meta ?? metaOf(id),
      nowMs: this.nowMs,
      random: mulberry32(this.options.seed * 7919 + this.starts * 104_729),
      incarnation: init.incarnation ?? 0,
      ...this.options.config,
    })
    const node: SimNode = { id, fd, state: 'up' }
    this.nodes.set(id, node)
    this.flush(node)
    if (init.seeds !== undefined) {
      fd.join(init.seeds, this.nowMs)
      this.flush(node)
    }
    return fd
  }

  core(id: string): FailureDetector {
    const node = this.nodes.get(id)
    if (node === undefined) throw new Error(`no node ${id}`)
    return node.fd
  }

  up(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.state === 'up')
  }

  stateAt(observer: string, peer: string): MemberState | undefined {
    return this.core(observer).member(peer)?.state
  }

  crash(id: string, hints: boolean): void {
    const node = this.nodes.get(id)
    if (node === undefined) throw new Error(`no node ${id}`)
    node.state = 'crashed'
    if (!hints) return
    // The transport closes every connection to the crashed process.
    for (const other of this.up()) {
      other.fd.onConnectionLost(id, this.nowMs)
      this.flush(other)
    }
  }

  /** Puts a message a driver drained by hand on the wire. */
  inject(from: string, out: Outbound, delayMs: number): void {
    this.insert({ atMs: this.nowMs + delayMs, order: this.order++, from, to: out.to, bytes: encodeSwimMessage(out.message) })
  }

  setState(id: string, state: SimNode['state']): void {
    const node = this.nodes.get(id)
    if (node === undefined) throw new Error(`no node ${id}`)
    node.state = state
  }

  run(durationMs: number): void {
    const endMs = this.nowMs + durationMs
    while (this.nowMs < endMs) this.advance()
  }

  /** Runs until `done` holds; returns the simulated time it took, or throws after `maxMs`. */
  runUntil(done: () => boolean, maxMs: number, what: string): number {
    const startMs = this.nowMs
    while (!done()) {
      if (this.nowMs - startMs > maxMs) throw new Error(`seed ${this.options.seed}: ${what} not reached within ${maxMs} ms`)
      this.advance()
    }
    return this.nowMs - startMs
  }

  private advance(): void {
    this.nowMs += SIM_STEP_MS
    while (this.inFlight.length > 0 && (this.inFlight[0]?.atMs ?? Infinity) <= this.nowMs) {
      const next = this.inFlight.shift()
      if (next !== undefined) this.deliver(next)
    }
    for (const node of this.up()) {
      node.fd.tick(this.nowMs)
      this.flush(node)
    }
  }

  private deliver(d: InFlight): void {
    const dest = this.nodes.get(d.to)
    if (dest === undefined || dest.state === 'crashed') {
      const sender = this.nodes.get(d.from)
      if (this.options.refuseToCrashed === true && sender !== undefined && sender.state === 'up') {
        sender.fd.onUnreachable(d.to, this.nowMs)
        this.flush(sender)
      }
      return
    }
    if (dest.state === 'paused') return
    const decoded = decodeSwimMessage(d.bytes)
    if (!decoded.ok) throw new Error(`undecodable frame from ${d.from}: ${decoded.error}`)
    dest.fd.step(d.from, decoded.message, this.nowMs)
    this.flush(dest)
    this.onDeliver?.(d.from, d.to, decoded.message)
  }

  private flush(node: SimNode): void {
    node.fd.assertInvariants()
    const ready = node.fd.ready()
    node.fd.assertInvariants()
    for (const change of ready.changes) {
      this.changes.push({ observer: node.id, ...change })
      this.trace.push(`${this.nowMs} ${node.id} sees ${change.peerId} ${change.previous}->${change.state}@${change.incarnation}`)
    }
    for (const out of ready.messages) {
      const bytes = encodeSwimMessage(out.message)
      this.sentBy.set(node.id, (this.sentBy.get(node.id) ?? 0) + 1)
      this.trace.push(`${this.nowMs} ${node.id}->${out.to} ${out.message.type}`)
      if (this.rng() < this.lossRate) continue
      const minMs = this.options.latencyMinMs ?? 1
      const maxMs = this.options.latencyMaxMs ?? 10
      const atMs = this.nowMs + minMs + Math.floor(this.rng() * (maxMs - minMs + 1))
      this.insert({ atMs, order: this.order++, from: node.id, to: out.to, bytes })
    }
  }

  private insert(item: InFlight): void {
    let lo = 0
    let hi = this.inFlight.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const other = this.inFlight[mid]
      if (other !== undefined && (other.atMs < item.atMs || (other.atMs === item.atMs && other.order < item.order))) lo = mid + 1
      else hi = mid
    }
    this.inFlight.splice(lo, 0, item)
  }
}

const IDS = ['n1', 'n2', 'n3', 'n4', 'n5']

/** Five peers, four of them joining through n1, run until everyone sees everyone alive. */
function cluster(seed: number, options: Omit<SimOptions, 'seed'> = {}): Sim {
  const sim = new Sim({ seed, ...options })
  sim.start('n1')
  for (const id of IDS.slice(1)) sim.start(id, { seeds: ['n1'] })
  sim.runUntil(() => IDS.every((a) => IDS.every((b) => sim.stateAt(a, b) === 'alive')), 10_000, 'initial convergence')
  return sim
}

function allSee(sim: Sim, peer: string, state: MemberState): boolean {
  return sim.up().every((n) => n.id === peer || n.fd.member(peer)?.state === state)
}

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]

describe('cluster simulation', () => {
  it('a quiet 5-node cluster has no suspicion over 10 simulated minutes', () => {
    for (const seed of SEEDS.slice(0, 3)) {
      const sim = cluster(seed)
      sim.run(10 * 60_000)
      expect(sim.changes.filter((c) => c.state !== 'alive')).toEqual([])
      for (const n of sim.up()) {
        expect(n.fd.awareness()).toBe(0)
        expect(n.fd.members().map((m) => m.state)).toEqual(['alive', 'alive', 'alive', 'alive', 'alive'])
      }
    }
  })

  it('with 5% message loss nobody is declared dead over 5 simulated minutes', () => {
    for (const seed of SEEDS.slice(0, 3)) {
      const sim = cluster(seed)
      sim.lossRate = 0.05
      sim.run(5 * 60_000)
      expect(sim.changes.filter((c) => c.state === 'dead')).toEqual([])
      sim.lossRate = 0
      sim.run(30_000)
      for (const n of sim.up()) expect(n.fd.members().every((m) => m.state === 'alive')).toBe(true)
    }
  })

  it('a crashed node is declared dead by everyone in under 2 s with connection hints', () => {
    const times: number[] = []
    for (const seed of SEEDS) {
      const sim = cluster(seed, { refuseToCrashed: true })
      sim.run(5_000)
      sim.crash('n3', true)
      times.push(sim.runUntil(() => allSee(sim, 'n3', 'dead'), 2_000, 'n3 dead everywhere'))
    }
    expect(Math.max(...times)).toBeLessThan(2_000)
  })

  it('a silently crashed node is declared dead by everyone within the computed bound', () => {
    // Defaults, n = 5. The first probe of the crashed node by some member comes
    // within one full round-robin pass of someone, at worst two passes of one
    // member (it was first in one permutation and last in the next):
    // 2 (n - 1) rounds, plus that probe's own round. The lone suspicion then
    // waits at most max = suspicionMaxMult * min. Declaring dead is gossip
    // relayed by everyone; one more pass of rounds covers it. Awareness stays 0
    // because the healthy intermediaries nack.
    const n = 5
    const intervalMs = 400
    const maxSuspicionMs = suspicionMaxTimeoutMs(6, suspicionMinTimeoutMs(3, n, intervalMs))
    const boundMs = (2 * (n - 1) + 1) * intervalMs + maxSuspicionMs + 2 * (n - 1) * intervalMs
    expect(boundMs).toBe(14_000)
    const times: number[] = []
    for (const seed of SEEDS) {
      const sim = cluster(seed)
      sim.run(5_000)
      sim.crash('n3', false)
      times.push(sim.runUntil(() => allSee(sim, 'n3', 'dead'), boundMs, 'n3 dead everywhere'))
      for (const node of sim.up()) expect(node.fd.awareness()).toBe(0)
    }
    expect(Math.max(...times)).toBeLessThanOrEqual(boundMs)
  })

  it('a briefly paused node is suspected, refutes, and is never declared dead', () => {
    for (const seed of SEEDS) {
      const sim = cluster(seed)
      sim.run(5_000)
      const before = sim.core('n2').member('n2')?.incarnation ?? -1
      sim.setState('n2', 'paused')
      sim.runUntil(() => sim.up().some((node) => node.fd.member('n2')?.state === 'suspect'), 10_000, 'n2 suspected')
      sim.setState('n2', 'up')
      sim.runUntil(() => IDS.every((a) => IDS.every((b) => sim.stateAt(a, b) === 'alive')), 10_000, 'all alive again')
      sim.run(20_000)
      expect(sim.changes.filter((c) => c.state === 'dead' || c.state === 'left')).toEqual([])
      expect(sim.core('n2').member('n2')?.incarnation).toBeGreaterThan(before)
      for (const id of IDS) expect(sim.core(id).member('n2')?.state).toBe('alive')
    }
  })

  it('after leave, others see "left" as soon as the message arrives, and the leaver stays silent', () => {
    const sim = cluster(11)
    sim.run(2_000)
    const fd = sim.core('n4')
    const sentBefore = sim.sentBy.get('n4') ?? 0
    const leftAt = sim.nowMs
    fd.leave(sim.nowMs)
    fd.assertInvariants()
    const r = fd.ready()
    expect(r.messages.map((m) => m.to).sort()).toEqual(['n1', 'n2', 'n3', 'n5'])
    expect(r.changes).toEqual([expect.objectContaining({ peerId: 'n4', previous: 'alive', state: 'left' })])
    // Hand the farewell to the network as the driver would.
    const seenLeft = new Map<string, number>()
    sim.onDeliver = (from, to, message) => {
      if (from === 'n4' && message.type === 'sync' && sim.stateAt(to, 'n4') === 'left' && !seenLeft.has(to)) seenLeft.set(to, sim.nowMs)
    }
    for (const out of r.messages) sim.inject('n4', out, 3)
    sim.run(60_000)
    expect([...seenLeft.keys()].sort()).toEqual(['n1', 'n2', 'n3', 'n5'])
    for (const at of seenLeft.values()) expect(at - leftAt).toBeLessThanOrEqual(SIM_STEP_MS)
    expect(sim.sentBy.get('n4') ?? 0).toBe(sentBefore)
    for (const id of ['n1', 'n2', 'n3', 'n5']) expect(sim.stateAt(id, 'n4')).toBe('left')
    expect(sim.changes.filter((c) => c.peerId === 'n4' && c.state === 'dead')).toEqual([])
  })

  it('a node known dead at incarnation 5 restarts at 0 and comes back alive at 6', () => {
    const sim = new Sim({ seed: 21 })
    sim.start('n1')
    sim.start('n2', { seeds: ['n1'] })
    sim.start('n3', { seeds: ['n1'] })
    sim.start('n4', { seeds: ['n1'] })
    sim.start('n5', { seeds: ['n1'], incarnation: 5 })
    sim.runUntil(() => IDS.every((a) => IDS.every((b) => sim.stateAt(a, b) === 'alive')), 10_000, 'convergence')
    sim.crash('n5', false)
    sim.runUntil(() => allSee(sim, 'n5', 'dead'), 20_000, 'n5 dead')
    for (const node of sim.up()) expect(node.fd.member('n5')?.incarnation).toBe(5)
    sim.run(1_000)
    const fd = sim.start('n5', { seeds: ['n1'], meta: metaOf('n5', 2) })
    expect(fd.member('n5')?.incarnation).toBe(0)
    sim.runUntil(() => allSee(sim, 'n5', 'alive'), 10_000, 'n5 alive again')
    expect(fd.member('n5')?.incarnation).toBe(6)
    for (const node of sim.up()) expect(node.fd.member('n5')).toMatchObject({ state: 'alive', incarnation: 6, meta: metaOf('n5', 2) })
  })

  it('a joiner learns every member from its seed sync alone, and everyone learns it', () => {
    const sim = new Sim({ seed: 31 })
    sim.start('n1')
    for (const id of ['n2', 'n3', 'n4']) sim.start(id, { seeds: ['n1'] })
    sim.run(5_000)
    let learnedAt: number | undefined
    sim.onDeliver = (from, to, message) => {
      if (to === 'n5' && from === 'n1' && message.type === 'sync' && learnedAt === undefined) {
        learnedAt = sim.nowMs
        expect(sim.core('n5').members().map((m) => [m.peerId, m.state])).toEqual(IDS.map((id) => [id, 'alive']))
      }
    }
    sim.start('n5', { seeds: ['n1'] })
    sim.runUntil(() => learnedAt !== undefined, 100, 'seed reply')
    sim.runUntil(() => allSee(sim, 'n5', 'alive'), 3_000, 'everyone knows n5')
  })

  it('a meta update reaches every member by gossip', () => {
    for (const seed of SEEDS.slice(0, 4)) {
      const sim = cluster(seed)
      sim.run(2_000)
      const meta = metaOf('n2', 9)
      sim.core('n2').updateMeta(meta, sim.nowMs)
      const took = sim.runUntil(() => IDS.every((id) => sim.core(id).member('n2')?.meta === meta), 5_000, 'meta everywhere')
      expect(took).toBeLessThan(5_000)
      for (const id of IDS.filter((x) => x !== 'n2')) {
        expect(sim.changes).toContainEqual(expect.objectContaining({ observer: id, peerId: 'n2', previous: 'alive', state: 'alive', meta }))
      }
    }
  })

  it('reaps a dead member after deadRetentionMs everywhere, and takes it back when it restarts', () => {
    const sim = cluster(41, { config: { deadRetentionMs: 60_000 } })
    sim.crash('n3', false)
    sim.runUntil(() => allSee(sim, 'n3', 'dead'), 20_000, 'n3 dead')
    const deadSince = Math.max(...sim.up().map((n) => n.fd.member('n3')?.stateSinceMs ?? 0))
    sim.run(deadSince + 59_000 - sim.nowMs)
    for (const node of sim.up()) expect(node.fd.member('n3')?.state).toBe('dead')
    sim.run(2_000)
    for (const node of sim.up()) expect(node.fd.members().map((m) => m.peerId)).toEqual(['n1', 'n2', 'n4', 'n5'])
    sim.start('n3', { seeds: ['n1'] })
    sim.runUntil(() => allSee(sim, 'n3', 'alive'), 10_000, 'n3 back')
  })

  it('a 20-node cluster joined through one seed converges, stays quiet, and detects a crash', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `m${i + 1}`)
    const sim = new Sim({ seed: 51 })
    sim.start('m1')
    for (const id of ids.slice(1)) {
      sim.start(id, { seeds: ['m1'] })
      sim.run(50)
    }
    sim.runUntil(() => ids.every((a) => ids.every((b) => sim.stateAt(a, b) === 'alive')), 10_000, 'convergence')
    sim.run(2 * 60_000)
    expect(sim.changes.filter((c) => c.state !== 'alive')).toEqual([])
    sim.crash('m7', false)
    // n = 20: min = floor(3 * log10(20) * 400) = 1561, max = 9366; one pass is 19 rounds.
    const boundMs = (2 * 19 + 1) * 400 + suspicionMaxTimeoutMs(6, suspicionMinTimeoutMs(3, 20, 400)) + 2 * 19 * 400
    sim.runUntil(() => allSee(sim, 'm7', 'dead'), boundMs, 'm7 dead everywhere')
    expect(sim.changes.filter((c) => c.state !== 'alive' && c.peerId !== 'm7')).toEqual([])
  })

  it('is deterministic: the same seed gives the same trace', () => {
    const traceOf = (seed: number): string[] => {
      const sim = cluster(seed, { lossRate: 0.02 })
      sim.run(20_000)
      sim.crash('n2', false)
      sim.run(20_000)
      return sim.trace
    }
    const a = traceOf(5)
    expect(traceOf(5)).toEqual(a)
    expect(traceOf(6)).not.toEqual(a)
  })
})
