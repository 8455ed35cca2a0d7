/**
 * The host agent's daemon adapter (node/task-agent.ts) over a real StateStore, WatchHub and
 * MemoryRuntime (as TaskEngine): the replica's tasks become containers, reports land in
 * task-states/<self>/, a restarted agent adopts what runs, a removed task's container goes.
 * Waits are for conditions (vi.waitFor), never for a fixed time.
 */
import { describe, it, expect, afterEach, vi } from 'vitest'
import { StateStore, type Request } from '../../storage/statestore/index.ts'
import { WatchHub } from '../../node/watch-hub.ts'
import { TaskAgentDriver } from '../../node/task-agent.ts'
import { MemoryRuntime } from '../../runtime/memory-runtime.ts'
import type { TaskContainerSpec, TaskEngine } from '../../runtime/runtime.ts'
import { encodeServiceRecord } from '../../runtime/scheduler/spec.ts'
import { decodeObserved, encodeTask, taskKey, taskStateKey, type Observed, type Task } from '../../runtime/scheduler/task.ts'
import { service, task } from '../helpers/scheduler-fixtures.ts'

const SELF = '12D3KooWHostA'
const quiet = { debug: () => {}, info: () => {} }

/** One peer's replica: writes apply at once, as a one-voter cluster's would. */
class Replica {
  readonly machine = { store: new StateStore() }
  readonly watches = new WatchHub(() => this.machine.store)
  private index = 0
  private seq = 0
  writes: Request[] = []

  apply(request: Request, asLeader: boolean, origin = SELF): void {
    const r = this.machine.store.apply(++this.index, { origin, requestId: `r${++this.seq}`, request, ...(asLeader ? { asLeader } : {}) })
    this.watches.onApplied()
    if (!r.ok) throw new Error(`${r.code}: ${r.message}`)
  }

  readonly kv = {
    write: (request: Request): Promise<never> => {
      this.writes.push(request)
      this.apply(request, false)
      return Promise.resolve(undefined as never)
    },
  }

  putTask(t: Task): void {
    this.apply({ type: 'put', key: taskKey(t.service, t.slot), value: encodeTask(t) }, true)
  }

  deleteTask(svc: string, slot: string): void {
    this.apply({ type: 'delete', key: taskKey(svc, slot) }, true)
  }

  observed(svc: string, slot: string): Observed | null {
    const kv = this.machine.store.get(taskStateKey(SELF, svc, slot))
    if (kv === null) return null
    const r = decodeObserved(kv.value)
    return r.ok ? r.value : null
  }
}

const drivers: TaskAgentDriver[] = []
afterEach(() => {
  for (const d of drivers.splice(0)) d.stop()
})

function driver(replica: Replica, runtime: MemoryRuntime | null, engine: TaskEngine | null = runtime, ready = (): boolean => true): TaskAgentDriver {
  const d = new TaskAgentDriver({
    selfId: SELF, engine, runtime, machine: replica.machine, watches: replica.watches, kv: replica.kv,
    raftLeader: () => SELF, dns: () => ['10.0.0.1'], drainMs: 0, log: quiet, ready,
  })
  drivers.push(d)
  d.start()
  return d
}

async function setup(): Promise<{ replica: Replica; runtime: MemoryRuntime }> {
  const replica = new Replica()
  replica.apply({ type: 'put', key: 'services/web', value: encodeServiceRecord(service({ name: 'web', replicas: 2, ports: [80] })) }, false)
  const runtime = new MemoryRuntime({ identity: { hostId: SELF, hostName: 'host-a' }, now: () => Date.now() })
  await runtime.start()
  return { replica, runtime }
}

const names = (rt: MemoryRuntime): string[] => rt.containers().filter((c) => c.state === 'running').map((c) => c.name).sort()

describe('TaskAgentDriver', () => {
  it('runs the tasks assigned here with their labels and DNS, and reports them running', async () => {
    const { replica, runtime } = await setup()
    replica.putTask(task('web', 1, SELF, {}, null))
    replica.putTask(task('web', 2, SELF, {}, null))
    replica.putTask(task('web', 3, '12D3KooWOther', {}, null))
    driver(replica, runtime)
    await vi.waitFor(() => {
      expect(names(runtime)).toEqual(['web.1.1', 'web.2.1'])
      expect(replica.observed('web', '1')?.state).toBe('running')
      expect(replica.observed('web', '2')?.state).toBe('running')
    }, { timeout: 5000, interval: 10 })
    const c = runtime.containers().find((x) => x.name === 'web.1.1')
    expect(c?.labels).toMatchObject({ 'shoal.service': 'web', 'shoal.task': 'web.1.1', 'shoal.port': '80' })
    expect(c === undefined ? undefined : runtime.taskSpec(c.id)).toMatchObject({ dns: ['10.0.0.1'], dnsSearch: ['shoal'] })
    expect(replica.observed('web', '1')?.containerId).toBe(c?.id)
  })

  it('a restarted agent adopts the running containers: nothing is run again', async () => {
    const { replica, runtime } = await setup()
    replica.putTask(task('web', 1, SELF, {}, null))
    const first = driver(replica, runtime)
    await vi.waitFor(() => expect(replica.observed('web', '1')?.state).toBe('running'), { timeout: 5000, interval: 10 })
    first.stop()
    const ids = runtime.containers().map((c) => c.id)
    const second = driver(replica, runtime)
    await vi.waitFor(() => expect(second.stats.steps).toBeGreaterThanOrEqual(2), { timeout: 5000, interval: 10 })
    expect(runtime.containers().map((c) => c.id)).toEqual(ids)
    expect(second.stats.actions).toBe(0)
  })

  it('a run whose container the runtime does not list yet is not run again when another container changes', async () => {
    const { replica, runtime } = await setup()
    // Docker lists a new container only after its events arrive; under load, other containers'
    // events come first. The run must stay in flight until its own container shows.
    const runs: TaskContainerSpec[] = []
    const engine: TaskEngine = {
      runTask: (spec) => {
        runs.push(spec)
        return Promise.resolve('pending-id')
      },
      startTask: () => Promise.resolve(),
      stopTask: () => Promise.resolve(),
      removeTask: () => Promise.resolve(),
    }
    replica.putTask(task('web', 1, SELF, {}, null))
    const d = driver(replica, runtime, engine)
    await vi.waitFor(() => expect(runs.length).toBe(1), { timeout: 5000, interval: 10 })
    runtime.run({ name: 'users-own', image: 'x' })
    await vi.waitFor(() => expect(d.stats.steps).toBeGreaterThanOrEqual(3), { timeout: 5000, interval: 10 })
    expect(runs.length, 'no second run of web.1.1 before its container shows').toBe(1)
    const spec = runs[0]!
    runtime.run({ name: spec.name, image: spec.image, labels: spec.labels })
    await vi.waitFor(() => expect(replica.observed('web', '1')?.state).toBe('running'), { timeout: 5000, interval: 10 })
    expect(runs.length).toBe(1)
  })

  it('a task removed by the scheduler: its container stops and goes, its report is deleted', async () => {
    const { replica, runtime } = await setup()
    replica.putTask(task('web', 1, SELF, {}, null))
    driver(replica, runtime)
    await vi.waitFor(() => expect(replica.observed('web', '1')?.state).toBe('running'), { timeout: 5000, interval: 10 })
    replica.deleteTask('web', '1')
    await vi.waitFor(() => {
      expect(runtime.containers()).toEqual([])
      expect(replica.machine.store.get(taskStateKey(SELF, 'web', '1'))).toBeNull()
    }, { timeout: 5000, interval: 10 })
  })

  it('a container that exits is restarted by the policy', async () => {
    const { replica, runtime } = await setup()
    replica.apply({ type: 'put', key: 'services/web', value: encodeServiceRecord(service({ name: 'web', restart: { delayMs: 0 } })) }, false)
    replica.putTask(task('web', 1, SELF, {}, null))
    driver(replica, runtime)
    await vi.waitFor(() => expect(replica.observed('web', '1')?.state).toBe('running'), { timeout: 5000, interval: 10 })
    const id = runtime.containers()[0]?.id ?? ''
    runtime.stopContainer(id, 1)
    await vi.waitFor(() => expect(runtime.containers()[0]?.state).toBe('running'), { timeout: 5000, interval: 10 })
    expect(runtime.containers().map((c) => c.id)).toEqual([id])
  })

  it('a missing image is reported pending with the engine\'s error', async () => {
    const { replica, runtime } = await setup()
    runtime.setImageMissing('nginx:1.27', true)
    replica.putTask(task('web', 1, SELF, {}, null))
    driver(replica, runtime)
    await vi.waitFor(() => expect(replica.observed('web', '1')).toMatchObject({ state: 'pending', error: expect.stringMatching(/nginx:1\.27/) }), { timeout: 5000, interval: 10 })
    expect(runtime.containers()).toEqual([])
  })

  it('acts on nothing until the replica is ready, then runs what is assigned', async () => {
    const { replica, runtime } = await setup()
    replica.putTask(task('web', 1, SELF, {}, null))
    let ready = false
    const d = driver(replica, runtime, runtime, () => ready)
    await vi.waitFor(() => expect(d.stats.steps).toBeGreaterThanOrEqual(2), { timeout: 5000, interval: 10 })
    expect(runtime.containers()).toEqual([])
    expect(replica.writes).toEqual([])
    ready = true
    await vi.waitFor(() => expect(replica.observed('web', '1')?.state).toBe('running'), { timeout: 5000, interval: 10 })
  })

  it('without an engine it only deletes stale reports of this host', async () => {
    const replica = new Replica()
    replica.putTask(task('web', 1, SELF, {}, null))
    replica.apply({ type: 'put', key: taskStateKey(SELF, 'web', '7'), value: new TextEncoder().encode('{"generation":1,"state":"running","sinceMs":1}') }, false)
    const d = driver(replica, null, null)
    await vi.waitFor(() => expect(replica.machine.store.get(taskStateKey(SELF, 'web', '7'))).toBeNull(), { timeout: 5000, interval: 10 })
    await vi.waitFor(() => expect(d.stats.steps).toBeGreaterThanOrEqual(2), { timeout: 5000, interval: 10 })
    expect(replica.writes).toEqual([{ type: 'delete', key: taskStateKey(SELF, 'web', '7') }])
  })
})
