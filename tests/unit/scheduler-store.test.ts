/**
 * The services keyspace on a real StateStore: who may write assignments and observations,
 * what the scheduler reads back (reports joined to their own host's task only), how its
 * proposals are guarded, and which scheduled containers DNS keeps out of their service.
 */
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import { containerKey, encodeRecord, type ApplyResult } from '../../storage/statestore/index.ts'
import { readSchedulerState } from '../../runtime/scheduler/state.ts'
import { changeTxns } from '../../runtime/scheduler/proposals.ts'
import { encodeObserved, encodeTask, taskKey, taskStateKey, type Task } from '../../runtime/scheduler/task.ts'
import { encodeServiceRecord } from '../../runtime/scheduler/spec.ts'
import { zoneRecordsFromStore } from '../../runtime/dns-records.ts'
import { container } from '../../protocols/dns/testing.ts'
import { service, task } from '../helpers/scheduler-fixtures.ts'

const A = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
const B = '12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'

function failed(r: ApplyResult): string {
  return r.ok ? 'ok' : r.code
}

function putTask(d: StoreDriver, t: Task): ApplyResult {
  return d.run({ type: 'put', key: taskKey(t.service, t.slot), value: encodeTask(t) }, { origin: A, asLeader: true })
}

describe('services keyspace ownership', () => {
  it('only the leader writes assignments; only a host writes its own observations', () => {
    const d = new StoreDriver(undefined, A)
    const t = task('web', 1, B, {}, null)
    expect(failed(d.run({ type: 'put', key: taskKey('web', '1'), value: encodeTask(t) }, { origin: B }))).toBe('permission-denied')
    expect(failed(putTask(d, t))).toBe('ok')
    expect(failed(d.run({ type: 'delete', key: taskKey('web', '1') }, { origin: B }))).toBe('permission-denied')
    const report = encodeObserved({ generation: 1, state: 'running', sinceMs: 5 })
    expect(failed(d.run({ type: 'put', key: taskStateKey(B, 'web', '1'), value: report }, { origin: A }))).toBe('permission-denied')
    expect(failed(d.run({ type: 'put', key: taskStateKey(B, 'web', '1'), value: report }, { origin: B }))).toBe('ok')
    expect(failed(d.run({ type: 'deletePrefix', prefix: 'task' }, { origin: B }))).toBe('permission-denied')
    expect(failed(d.run({ type: 'deletePrefix', prefix: `task-states/${B}/` }, { origin: B }))).toBe('ok')
  })
})

describe('readSchedulerState', () => {
  it("joins each task with its own host's report and ignores another host's", () => {
    const d = new StoreDriver(undefined, A)
    d.run({ type: 'put', key: 'services/web', value: encodeServiceRecord(service({ name: 'web', replicas: 2 })) })
    putTask(d, task('web', 1, A, { generation: 2 }, null))
    putTask(d, task('web', 2, B, {}, null))
    d.run({ type: 'put', key: taskStateKey(A, 'web', '1'), value: encodeObserved({ generation: 2, state: 'running', sinceMs: 1 }) }, { origin: A })
    // B still reports slot 1 from before it moved to A: it must not count for A's instance.
    d.run({ type: 'put', key: taskStateKey(B, 'web', '1'), value: encodeObserved({ generation: 1, state: 'failed', sinceMs: 1 }) }, { origin: B })
    const s = readSchedulerState(d.store)
    expect(s.services.map((x) => x.name)).toEqual(['web'])
    expect(s.tasks.map((t) => [t.slot, t.observed?.state ?? null])).toEqual([['1', 'running'], ['2', null]])
    expect(s.revisions.get(taskKey('web', '1'))).toBeGreaterThan(0)
    expect(s.unreadable).toEqual([])
  })
})

describe('changeTxns', () => {
  it('guards each write by the revision it was decided on: a state that moved on refuses it', () => {
    const d = new StoreDriver(undefined, A)
    const t = task('web', 1, A, {}, null)
    putTask(d, t)
    const read = readSchedulerState(d.store)
    const moved = { ...t, host: B, generation: 2 }
    const [txn] = changeTxns([{ kind: 'migrate', key: taskKey('web', '1'), task: moved, from: A }], read.revisions)
    // Someone else (a late proposal of a former leader) changes the task first.
    putTask(d, { ...t, generation: 3 })
    const r = d.run(txn!, { origin: A, asLeader: true })
    expect(r.ok && r.response.type === 'txn' && r.response.succeeded).toBe(false)
    // Decided again on the fresh state, it applies.
    const [again] = changeTxns([{ kind: 'migrate', key: taskKey('web', '1'), task: moved, from: A }], readSchedulerState(d.store).revisions)
    const ok = d.run(again!, { origin: A, asLeader: true })
    expect(ok.ok && ok.response.type === 'txn' && ok.response.succeeded).toBe(true)
  })

  it('splits a large round into txns of at most 64 writes, never one key twice in a txn', () => {
    const changes = Array.from({ length: 130 }, (_, i) => ({ kind: 'place' as const, key: taskKey('web', String(i + 1)), task: task('web', i + 1, A, {}, null) }))
    const txns = changeTxns(changes, new Map())
    expect(txns.map((x) => x.success.length)).toEqual([64, 64, 2])
    const twice = changeTxns([changes[0]!, changes[0]!], new Map())
    expect(twice.length).toBe(2)
  })

  it('never writes a task record that would not read back; hands the change to `invalid` instead', () => {
    // A leader whose clock read before 1970 once wrote such records: every reader skipped them
    // and every round placed the slots again (found by the simulator's wall-clock-step).
    const good = { kind: 'place' as const, key: taskKey('web', '1'), task: task('web', 1, A, {}, null) }
    const bad = { kind: 'place' as const, key: taskKey('web', '2'), task: task('web', 2, A, { createdAtMs: -5 }, null) }
    const invalid: string[] = []
    const txns = changeTxns([good, bad], new Map(), (_c, error) => invalid.push(error))
    expect(txns.flatMap((x) => x.success.map((op) => (op.type === 'put' ? op.key : '')))).toEqual([taskKey('web', '1')])
    expect(invalid).toEqual([`task ${taskKey('web', '2')}: task times must be non-negative integer milliseconds`])
  })
})

describe('DNS: scheduled containers out of their service', () => {
  it('a container whose task moved on (new generation, moved, removed) is listed as out of service', () => {
    const d = new StoreDriver(undefined, A)
    putTask(d, task('web', 1, A, { generation: 2 }, null))
    putTask(d, task('web', 2, A, { generation: 1, previous: { host: A, generation: 4, specVersion: 1 } }, null))
    const c = (id: string, label: string) => container({ id: id.repeat(64), host: A, labels: { 'shoal.service': 'web', 'shoal.task': label } })
    const records = [
      c('1', 'web.1.2'), // current
      c('2', 'web.1.1'), // replaced by generation 2
      c('3', 'web.2.4'), // start-first: the retiring instance serves until its replacement is healthy
      c('4', 'web.3.1'), // slot removed (scaled down)
      container({ id: '5'.repeat(64), host: A, labels: { 'shoal.service': 'web' } }), // the user's own: never filtered
    ]
    for (const r of records) d.run({ type: 'put', key: containerKey(A, r.id), value: encodeRecord(r) }, { origin: A })
    const zone = zoneRecordsFromStore(d.store)
    expect([...(zone.outOfService ?? [])].sort()).toEqual(['2'.repeat(64), '4'.repeat(64)])
  })
})
