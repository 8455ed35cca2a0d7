/**
 * The leader's scheduler loop (runtime/scheduler/loop.ts), the one the daemon and the simulator
 * both run, on a real StateStore with a hand-driven clock, timers and writes: only the leader
 * runs rounds, a kick during a round runs one more after it, and how long this peer has led is
 * timed on the monotonic clock, so a wall-clock step does not make an unheard-of host look dead
 * long enough to lose its tasks.
 */
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import { encodeRecord, hostKey, type TxnRequest } from '../../storage/statestore/index.ts'
import { SchedulerRounds, type ProposalOutcome, type SchedulerLoopEnv } from '../../runtime/scheduler/loop.ts'
import { encodeServiceRecord } from '../../runtime/scheduler/spec.ts'
import { encodeTask, taskKey } from '../../runtime/scheduler/task.ts'
import type { MemberLiveness } from '../../runtime/scheduler/state.ts'
import { service, task } from '../helpers/scheduler-fixtures.ts'

const A = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
const B = '12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'

/** A leader A and a store holding both hosts' records; writes wait until `settle()`. */
function rig(options: { leader?: boolean; members?: MemberLiveness[]; graceMs?: number } = {}) {
  const d = new StoreDriver(undefined, A)
  for (const id of [A, B]) {
    d.run({ type: 'put', key: hostKey(id), value: encodeRecord({ peerId: id, name: id.slice(-1), addrs: [], version: 't', cpus: 4, memoryBytes: 8e9 }) }, { origin: id })
  }
  const clock = { wall: 1_000_000, mono: 5_000 }
  const timers: Array<() => void> = []
  const pending: Array<() => void> = []
  const written: TxnRequest[] = []
  let leader = options.leader ?? true
  const env: SchedulerLoopEnv = {
    wallMs: () => clock.wall,
    monotonicMs: () => clock.mono,
    isLeader: () => leader,
    store: () => d.store,
    members: () => options.members ?? [{ peerId: A, state: 'alive', stateSinceMs: 0 }, { peerId: B, state: 'alive', stateSinceMs: 0 }],
    rescheduleGraceMs: options.graceMs ?? 1000,
    write: (txn, done) => {
      pending.push(() => {
        written.push(txn)
        const r = d.run(txn, { origin: A, asLeader: true })
        const outcome: ProposalOutcome = !r.ok ? 'failed' : r.response.type === 'txn' && !r.response.succeeded ? 'conflict' : 'applied'
        done(outcome)
      })
    },
    after: (_ms, fn) => {
      timers.push(fn)
    },
  }
  const loop = new SchedulerRounds(env)
  /** Completes every pending write and timer, until nothing is left. */
  const settle = (): void => {
    for (let guard = 0; guard < 1000 && (pending.length > 0 || timers.length > 0); guard++) (pending.shift() ?? timers.shift())?.()
  }
  return { d, loop, clock, written, pending, settle, setLeader: (v: boolean) => { leader = v } }
}

describe('SchedulerRounds', () => {
  it('runs rounds on the leader only', () => {
    const r = rig({ leader: false })
    r.d.run({ type: 'put', key: 'services/web', value: encodeServiceRecord(service({ name: 'web', replicas: 2 })) })
    r.loop.kick()
    r.settle()
    expect(r.loop.stats.rounds).toBe(0)
    r.setLeader(true)
    r.loop.kick()
    r.settle()
    expect(r.loop.stats.rounds).toBeGreaterThan(0)
    expect(r.loop.stats.proposed).toBeGreaterThan(0)
    expect(r.d.store.range('tasks/web/').kvs.length).toBe(2)
  })

  it('never overlaps rounds: kicks during one make exactly one more after it', () => {
    const r = rig()
    r.d.run({ type: 'put', key: 'services/web', value: encodeServiceRecord(service({ name: 'web', replicas: 2 })) })
    r.loop.kick()
    expect(r.loop.stats.rounds).toBe(1)
    expect(r.pending.length).toBe(1)
    r.loop.kick()
    r.loop.kick()
    expect(r.loop.stats.rounds).toBe(1)
    r.settle()
    // The first round's txn, then one follow-up round (which may propose a status change), and no more.
    expect(r.loop.stats.rounds).toBeGreaterThanOrEqual(2)
    const rounds = r.loop.stats.rounds
    r.settle()
    expect(r.loop.stats.rounds).toBe(rounds)
  })

  it('times its leadership on the monotonic clock: a wall-clock step does not move an unheard-of host\'s tasks', () => {
    // B is in the store but this leader's failure detector has not heard of it yet: dead since the leadership began.
    const r = rig({ members: [{ peerId: A, state: 'alive', stateSinceMs: 0 }], graceMs: 10_000 })
    r.d.run({ type: 'put', key: 'services/web', value: encodeServiceRecord(service({ name: 'web', replicas: 1 })) })
    r.d.run({ type: 'put', key: taskKey('web', '1'), value: encodeTask(task('web', 1, B, {}, null)) }, { origin: A, asLeader: true })
    r.loop.kick()
    r.settle()
    // One second later by the monotonic clock, an hour later by the wall clock.
    r.clock.mono += 1000
    r.clock.wall += 3_600_000
    r.loop.kick()
    r.settle()
    expect(r.written.flatMap((t) => t.success).filter((op) => op.type === 'put' && op.key === taskKey('web', '1'))).toEqual([])
    // Past the grace by the monotonic clock, the task moves to A.
    r.clock.mono += 10_000
    r.loop.kick()
    r.settle()
    expect(r.written.flatMap((t) => t.success).some((op) => op.type === 'put' && op.key === taskKey('web', '1'))).toBe(true)
  })
})
