/** Service and task changes as `shoal events` lines (node/service-events.ts). */
import { describe, it, expect } from 'vitest'
import { StoreDriver } from '../../storage/statestore/testing.ts'
import type { WatchEvent } from '../../storage/statestore/index.ts'
import { serviceEventsOf } from '../../node/service-events.ts'
import { encodeServiceRecord, nextRecord } from '../../runtime/scheduler/spec.ts'
import { encodeObserved, encodeTask, taskKey, taskStateKey } from '../../runtime/scheduler/task.ts'
import { service, task } from '../helpers/scheduler-fixtures.ts'

const A = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'

describe('serviceEventsOf', () => {
  it('names service writes, scheduler decisions and host reports, in commit order', () => {
    const d = new StoreDriver(undefined, A)
    const events: WatchEvent[] = []
    const v1 = service({ name: 'web', replicas: 1 })
    const step = (r: ReturnType<StoreDriver['run']>): void => {
      if (!r.ok) throw new Error(r.message)
      const w = d.store.eventsSince(r.response.revision - 1)
      if (!w.ok) throw new Error('compacted')
      events.push(...w.events)
    }
    step(d.run({ type: 'put', key: 'services/web', value: encodeServiceRecord(v1) }))
    const v2 = nextRecord(v1, { ...v1, replicas: 2 })
    if (!v2.changed) throw new Error('unreachable')
    step(d.run({ type: 'put', key: 'services/web', value: encodeServiceRecord(v2.record) }))
    step(d.run({ type: 'put', key: taskKey('web', '1'), value: encodeTask(task('web', 1, A, { reason: 'place' }, null)) }, { asLeader: true }))
    step(d.run({ type: 'put', key: taskStateKey(A, 'web', '1'), value: encodeObserved({ generation: 1, state: 'failed', sinceMs: 1, error: 'exit 1' }) }))
    step(d.run({ type: 'delete', key: taskKey('web', '1') }, { asLeader: true }))
    step(d.run({ type: 'delete', key: 'services/web' }))
    step(d.run({ type: 'put', key: 'kv/x', value: new Uint8Array([49]) }))
    const lines = events.flatMap((e) => serviceEventsOf(e, 'T'))
    expect(lines.map((l) => (l.type === 'service' ? `service ${l.action} ${l.service} v${l.version}` : `task ${l.action} ${l.task ?? `${l.service}.${l.slot}`}${l.error === null ? '' : ` (${l.error})`}`))).toEqual([
      'service created web v1',
      'service updated web v2',
      'task place web.1.1',
      'task failed web.1.1 (exit 1)',
      'task stopped web.1',
      'service removed web vnull',
    ])
  })
})
