import { describe, it, expect } from 'vitest'
import {
  compareTasks, decodeServiceStatus, decodeTask, encodeServiceStatus, encodeTask, serviceStatusKey, taskId, taskKey, type Task,
} from '../../runtime/scheduler/task.ts'
import { task } from '../helpers/scheduler-fixtures.ts'

const enc = new TextEncoder()
const full: Task = {
  ...task('web', 3, 'peerA', { generation: 4, specVersion: 2, previous: { host: 'peerB', generation: 3, specVersion: 1 }, reason: 'update', createdAtMs: 10, updatedAtMs: 20 }),
  observed: { generation: 4, state: 'starting', sinceMs: 15, containerId: 'abc123', error: 'exit 1' },
}

describe('task records', () => {
  it('keys mirror containers/<host>/<id>: tasks/<service>/<slot>', () => {
    expect(taskKey('web', '3')).toBe('tasks/web/3')
    expect(taskKey('agent', 'peerA')).toBe('tasks/agent/peerA')
    expect(serviceStatusKey('web')).toBe('service-status/web')
    expect(taskId(full)).toBe('web.3.4')
  })

  it('round-trips every field, stable bytes', () => {
    const bytes = encodeTask(full)
    const d = decodeTask(bytes, 'tasks/web/3')
    expect(d).toEqual({ ok: true, value: full })
    if (d.ok) expect(encodeTask(d.value)).toEqual(bytes)
    const bare = task('web', 1, 'peerA', {}, null)
    expect(decodeTask(encodeTask(bare))).toEqual({ ok: true, value: bare })
  })

  const base = JSON.parse(new TextDecoder().decode(encodeTask(full))) as Record<string, unknown>
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['bad service', { service: 'Web' }, /service/],
    ['slot 0', { slot: '0' }, /slot/],
    ['generation 0', { generation: 0 }, /generation/],
    ['host not a peer id', { host: 'a b' }, /host/],
    ['desired unknown', { desired: 'paused' }, /desired/],
    ['negative time', { createdAtMs: -1 }, /times/],
    ['observed state unknown', { observed: { generation: 1, state: 'weird', sinceMs: 0 } }, /observed/],
    ['bad container id', { observed: { generation: 1, state: 'running', sinceMs: 0, containerId: 'a/b' } }, /containerId/],
    ['bad previous', { previous: { host: 'x' } }, /previous/],
  ])('rejects %s', (_what, patch, message) => {
    const d = decodeTask(enc.encode(JSON.stringify({ ...base, ...patch })))
    expect(d.ok).toBe(false)
    if (!d.ok) expect(d.error).toMatch(message)
  })

  it('rejects garbage and a record stored under another key, without throwing', () => {
    expect(decodeTask(new Uint8Array([0xc3])).ok).toBe(false)
    expect(decodeTask(enc.encode('[]')).ok).toBe(false)
    const wrong = decodeTask(encodeTask(full), 'tasks/web/4')
    expect(wrong.ok).toBe(false)
    if (!wrong.ok) expect(wrong.error).toMatch(/tasks\/web\/3/)
  })

  it('orders slots numerically', () => {
    const sorted = [task('web', 10, 'a'), task('web', 2, 'a'), task('api', 5, 'a')].sort(compareTasks).map((t) => `${t.service}/${t.slot}`)
    expect(sorted).toEqual(['api/5', 'web/2', 'web/10'])
  })

  it('service status round-trips and is validated', () => {
    const s = { service: 'web', version: 2, state: 'updating' as const, message: '', rebalance: true }
    expect(decodeServiceStatus(encodeServiceStatus(s))).toEqual({ ok: true, value: s })
    expect(decodeServiceStatus(enc.encode(JSON.stringify({ ...s, state: 'done' }))).ok).toBe(false)
  })
})
