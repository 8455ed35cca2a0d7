/**
 * The host agent's core (runtime/agent/agent.ts) against the rules in runtime/scheduler/README.md:
 * a tiny simulated host applies the actions as an engine and the store would, so each test
 * reads as "given these tasks and containers, after this much time, expect this".
 */
import { describe, it, expect } from 'vitest'
import type { Container } from '../../storage/statestore/index.ts'
import { EngineError } from '../../runtime/runtime.ts'
import {
  TaskAgent, actionKey, parseEngineTimeMs, restartDelayMs, taskOfContainer,
  type AgentAction, type AgentInput,
} from '../../runtime/agent/agent.ts'
import type { ServiceRecord } from '../../runtime/scheduler/spec.ts'
import { taskId, taskStateKey, type Observed, type Task } from '../../runtime/scheduler/task.ts'
import { service, task } from '../helpers/scheduler-fixtures.ts'

const SELF = 'self'
const T0 = 1_700_000_000_000

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function mine(slot: number, over: Partial<Task> = {}): Task {
  return task('web', slot, SELF, over, null)
}

/** A container of task `id` (`web.1.1`) as the runtime reports it. */
function instance(cid: string, id: string, state: Container['state'] = 'running', over: Partial<Container> = {}): Container {
  const svc = id.split('.')[0] ?? ''
  return { id: cid, name: id, image: 'nginx:1.27', host: SELF, hostName: SELF, ips: [], ports: [], labels: { 'shoal.service': svc, 'shoal.task': id }, state, ...over }
}

/** One host: its containers, its reported task states, the tasks and services the replica holds. */
class Host {
  agent = new TaskAgent()
  /** The monotonic clock; the wall clock is it plus every step (stepWall). */
  nowMs = T0
  wallStepMs = 0
  tasks: Task[] = []
  services = new Map<string, ServiceRecord>()
  containers = new Map<string, Container>()
  reported = new Map<string, Observed>()
  busy = new Set<string>()
  leaderlessSinceMs: number | null = null
  drainMs = 1000
  dns: string[] = ['172.17.0.1']
  /** Every action handed out, in order. */
  log: AgentAction[] = []
  private serial = 0
  /** Exit code a stop gives (a well-behaved process exits 0 on SIGTERM). */
  stopExitCode = 0
  /** Makes the next runs fail with this error. */
  runError: Error | null = null

  constructor(services: ServiceRecord[] = [service({ name: 'web' })], tasks: Task[] = []) {
    for (const s of services) this.services.set(s.name, s)
    this.tasks = tasks
  }

  input(): AgentInput {
    return {
      selfId: SELF, nowMs: this.nowMs, wallMs: this.wallMs, tasks: this.tasks, services: this.services,
      containers: [...this.containers.values()], reported: this.reported, dns: this.dns,
      leaderlessSinceMs: this.leaderlessSinceMs, drainMs: this.drainMs, busy: this.busy,
    }
  }

  /** One step, without executing anything. */
  decide(): AgentAction[] {
    const actions = this.agent.step(this.input())
    this.log.push(...actions)
    return actions
  }

  /** One step whose actions complete at once; returns them. */
  step(): AgentAction[] {
    const actions = this.decide()
    for (const a of actions) this.execute(a)
    return actions
  }

  /** Steps until nothing is left to do (bounded). */
  settle(): void {
    for (let i = 0; i < 20; i++) if (this.step().length === 0) return
    throw new Error('the agent did not settle in 20 steps')
  }

  advance(ms: number): AgentAction[] {
    this.nowMs += ms
    return this.step()
  }

  /** The wall clock now: the engine stamps its containers with it. */
  get wallMs(): number {
    return this.nowMs + this.wallStepMs
  }

  /** NTP or an operator steps the wall clock; the monotonic clock goes on. */
  stepWall(ms: number): void {
    this.wallStepMs += ms
  }

  add(c: Container): Container {
    this.containers.set(c.id, c)
    return c
  }

  exit(cid: string, exitCode: number, over: Partial<Container> = {}): void {
    const c = this.containers.get(cid)
    if (c === undefined) throw new Error(`no container ${cid}`)
    this.containers.set(cid, { ...c, state: 'exited', exitCode, finishedAt: iso(this.wallMs), ...over })
  }

  byTask(id: string): Container[] {
    return [...this.containers.values()].filter((c) => c.labels['shoal.task'] === id)
  }

  state(slot: number | string, svc = 'web'): Observed | undefined {
    return this.reported.get(taskStateKey(SELF, svc, String(slot)))
  }

  execute(a: AgentAction): void {
    switch (a.kind) {
      case 'run': {
        if (this.runError !== null) {
          this.agent.runFailed(a.task, this.runError, this.nowMs)
          return
        }
        const id = `c${++this.serial}`
        this.add({ id, name: a.spec.name, image: a.spec.image, host: SELF, hostName: SELF, ips: [], ports: [], labels: { ...a.spec.labels }, state: 'running', startedAt: iso(this.wallMs) })
        return
      }
      case 'start': {
        const c = this.containers.get(a.containerId)
        if (c === undefined) throw new Error(`start of missing ${a.containerId}`)
        const { exitCode: _e, finishedAt: _f, ...rest } = c
        this.containers.set(c.id, { ...rest, state: 'running', startedAt: iso(this.wallMs) })
        return
      }
      case 'stop': {
        const c = this.containers.get(a.containerId)
        if (c !== undefined && c.state === 'running') this.exit(c.id, this.stopExitCode)
        return
      }
      case 'remove':
        this.containers.delete(a.containerId)
        return
      case 'report':
        this.reported.set(a.key, a.observed)
        return
      case 'unreport':
        this.reported.delete(a.key)
        return
    }
  }
}

const kinds = (actions: readonly AgentAction[]): string[] => actions.map((a) => {
  switch (a.kind) {
    case 'run': return `run ${a.task}`
    case 'start': return `start ${a.containerId}`
    case 'stop': return `stop ${a.containerId}`
    case 'remove': return `remove ${a.containerId}`
    case 'report': return `report ${a.key.split('/').slice(2).join('/')} ${a.observed.state}`
    case 'unreport': return `unreport ${a.key.split('/').slice(2).join('/')}`
  }
})
const engineOps = (actions: readonly AgentAction[]): string[] => kinds(actions).filter((k) => !k.startsWith('report') && !k.startsWith('unreport'))

describe('running assigned tasks', () => {
  it('runs a task with no container, reports pending, then running once it runs; then holds still', () => {
    const h = new Host(undefined, [mine(1)])
    const first = h.step()
    expect(kinds(first)).toEqual(['report web/1 pending', 'run web.1.1'])
    const run = first.find((a) => a.kind === 'run')
    expect(run?.kind === 'run' && run.spec.labels['shoal.task']).toBe('web.1.1')
    expect(run?.kind === 'run' && run.spec.dns).toEqual(['172.17.0.1'])
    expect(kinds(h.step())).toEqual(['report web/1 running'])
    expect(h.state(1)).toEqual({ generation: 1, state: 'running', sinceMs: T0, containerId: 'c1' })
    expect(h.advance(60_000)).toEqual([])
  })

  it('reports starting while the health check has not passed, unhealthy when it fails, running when healthy', () => {
    const h = new Host(undefined, [mine(1)])
    h.add(instance('c1', 'web.1.1', 'running', { health: 'starting' }))
    h.step()
    expect(h.state(1)?.state).toBe('starting')
    h.add(instance('c1', 'web.1.1', 'running', { health: 'unhealthy' }))
    h.advance(1000)
    expect(h.state(1)).toMatchObject({ state: 'unhealthy', sinceMs: T0 + 1000 })
    h.add(instance('c1', 'web.1.1', 'running', { health: 'healthy' }))
    h.advance(1000)
    expect(h.state(1)).toMatchObject({ state: 'running', sinceMs: T0 + 2000, containerId: 'c1' })
  })

  it('starts a created container instead of running a second one', () => {
    const h = new Host(undefined, [mine(1)])
    h.add(instance('c9', 'web.1.1', 'created'))
    expect(engineOps(h.step())).toEqual(['start c9'])
    expect(h.byTask('web.1.1')).toHaveLength(1)
  })

  it('does not start a created container while its run is still in flight', () => {
    const h = new Host(undefined, [mine(1)])
    h.add(instance('c9', 'web.1.1', 'created'))
    h.busy.add('task/web.1.1')
    expect(engineOps(h.decide())).toEqual([])
  })

  it('keeps reports unchanged when nothing changed, and keeps sinceMs while the state holds', () => {
    const h = new Host(undefined, [mine(1)])
    h.settle()
    const since = h.state(1)?.sinceMs
    h.advance(5000)
    expect(h.state(1)?.sinceMs).toBe(since)
  })
})

describe('adoption after a restart of the peer', () => {
  it('adopts the running container of its task by its labels: no run, no duplicate', () => {
    const h = new Host(undefined, [mine(1), mine(2)])
    h.add(instance('old1', 'web.1.1'))
    h.add(instance('old2', 'web.2.1'))
    h.reported.set(taskStateKey(SELF, 'web', '1'), { generation: 1, state: 'running', sinceMs: T0 - 50_000, containerId: 'old1' })
    const actions = h.step()
    expect(engineOps(actions)).toEqual([])
    expect(kinds(actions)).toEqual(['report web/2 running'])
    expect(h.state(1)?.sinceMs).toBe(T0 - 50_000)
  })

  it('a run refused for a name conflict is not a failure: the container is adopted once the runtime shows it', () => {
    const h = new Host(undefined, [mine(1)])
    h.runError = new EngineError('name-conflict', 'a container named web.1.1 already exists')
    h.step()
    expect(h.agent.attempts('web.1.1')).toBe(0)
    h.runError = null
    h.add(instance('late', 'web.1.1'))
    expect(engineOps(h.advance(1000))).toEqual([])
    expect(h.state(1)).toMatchObject({ state: 'running', containerId: 'late' })
  })

  it('removes a Shoal container squatting the task\'s name under another task label, then runs', () => {
    const h = new Host(undefined, [mine(1)])
    h.add({ ...instance('stale', 'web.1.9', 'exited', { exitCode: 0 }), name: 'web.1.1' })
    expect(engineOps(h.step())).toEqual(['remove stale'])
    expect(engineOps(h.step())).toEqual(['run web.1.1'])
  })

  it('never touches a user container holding the task\'s name; says what to do', () => {
    const h = new Host(undefined, [mine(1)])
    h.add({ ...instance('user', 'x.1.1'), name: 'web.1.1', labels: {} })
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)?.error).toMatch(/a container named web\.1\.1 exists and is not this task's; remove or rename it/)
  })
})

describe('update order', () => {
  it('stop-first: the slot\'s old instance drains and stops before the new one runs, then is removed', () => {
    const h = new Host(undefined, [mine(1, { generation: 2 })])
    h.add(instance('old', 'web.1.1'))
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)).toMatchObject({ generation: 2, state: 'pending' })
    expect(engineOps(h.advance(999))).toEqual([])
    const stop = h.advance(1)
    expect(engineOps(stop)).toEqual(['stop old'])
    expect(stop.find((a) => a.kind === 'stop')).toMatchObject({ graceMs: 10_000 })
    expect(engineOps(h.step())).toEqual(['remove old', 'run web.1.2'])
    h.settle()
    expect([...h.containers.values()].map((c) => c.name)).toEqual(['web.1.2'])
  })

  it('start-first: the new instance runs at once beside the previous one, which stays until the leader retires it', () => {
    const t = mine(1, { generation: 2, previous: { host: SELF, generation: 1, specVersion: 1 } })
    const h = new Host(undefined, [t])
    h.add(instance('old', 'web.1.1'))
    expect(engineOps(h.step())).toEqual(['run web.1.2'])
    h.advance(60_000)
    expect(h.containers.get('old')?.state).toBe('running')
    // The leader clears previous once the new instance is healthy: the old one drains, stops, goes.
    h.tasks = [{ ...t, previous: null }]
    expect(engineOps(h.advance(0))).toEqual([])
    expect(engineOps(h.advance(1000))).toEqual(['stop old'])
    expect(engineOps(h.step())).toEqual(['remove old'])
  })

  it('start-first from another host: runs at once; the other host\'s previous instance is none of its business', () => {
    const h = new Host(undefined, [mine(1, { generation: 2, previous: { host: 'other', generation: 1, specVersion: 1 } })])
    expect(engineOps(h.step())).toEqual(['run web.1.2'])
  })

  it('keeps a previous instance here while the task now runs elsewhere, and clears its own stale report', () => {
    const h = new Host(undefined, [task('web', 1, 'other', { generation: 2, previous: { host: SELF, generation: 1, specVersion: 1 } }, null)])
    h.add(instance('old', 'web.1.1'))
    h.reported.set(taskStateKey(SELF, 'web', '1'), { generation: 1, state: 'running', sinceMs: T0, containerId: 'old' })
    expect(kinds(h.step())).toEqual(['unreport web/1'])
    expect(h.advance(30_000)).toEqual([])
  })
})

describe('obsolete containers', () => {
  it('drain, then stop with the service\'s grace, then remove; and the stale report goes', () => {
    const h = new Host([service({ name: 'web', stopGracePeriodMs: 2500 })], [])
    h.add(instance('gone', 'web.3.1'))
    h.reported.set(taskStateKey(SELF, 'web', '3'), { generation: 1, state: 'running', sinceMs: T0, containerId: 'gone' })
    expect(kinds(h.step())).toEqual(['unreport web/3'])
    expect(h.advance(500)).toEqual([])
    const stop = h.advance(500)
    expect(stop).toEqual([{ kind: 'stop', containerId: 'gone', graceMs: 2500, reason: 'task web.3.1 is no longer assigned to this host' }])
    expect(h.step()).toEqual([{ kind: 'remove', containerId: 'gone' }])
    expect(h.step()).toEqual([])
  })

  it('a service that is gone stops with 10 s grace', () => {
    const h = new Host([], [])
    h.add(instance('gone', 'api.1.4'))
    h.step()
    expect(h.advance(1000)).toEqual([{ kind: 'stop', containerId: 'gone', graceMs: 10_000, reason: 'task api.1.4 is no longer assigned to this host' }])
  })

  it('an obsolete container that is not running is removed at once (it is in no DNS answer)', () => {
    const h = new Host(undefined, [])
    h.add(instance('x', 'web.1.1', 'exited', { exitCode: 1 }))
    h.add(instance('y', 'web.2.1', 'created'))
    expect(engineOps(h.step())).toEqual(['remove x', 'remove y'])
  })

  it('a task moved to another host: the container here drains and goes', () => {
    const h = new Host(undefined, [task('web', 1, 'other', { generation: 2 }, null)])
    h.add(instance('here', 'web.1.1'))
    h.step()
    expect(engineOps(h.advance(1000))).toEqual(['stop here'])
  })

  it('a duplicate container of the current task is stopped and removed; the running one stays', () => {
    const h = new Host(undefined, [mine(1)])
    h.add(instance('a', 'web.1.1', 'running'))
    h.add({ ...instance('b', 'web.1.1', 'running'), name: 'renamed' })
    h.step()
    expect(engineOps(h.advance(1000))).toEqual(['stop b'])
    expect(engineOps(h.step())).toEqual(['remove b'])
    expect(h.containers.get('a')?.state).toBe('running')
  })

  it('does not stop twice while a stop is in flight', () => {
    const h = new Host(undefined, [])
    h.add(instance('gone', 'web.1.1'))
    h.drainMs = 0
    expect(engineOps(h.decide())).toEqual(['stop gone'])
    h.busy.add('container/gone')
    expect(engineOps(h.decide())).toEqual([])
  })
})

describe('user containers', () => {
  it('are never touched: no labels, only shoal.service, or a malformed or mismatched shoal.task', () => {
    const h = new Host(undefined, [])
    h.drainMs = 0
    h.add({ ...instance('u1', 'x.1.1'), labels: {} })
    h.add({ ...instance('u2', 'x.1.1'), labels: { 'shoal.service': 'web' } })
    h.add({ ...instance('u3', 'x.1.1'), labels: { 'shoal.service': 'web', 'shoal.task': 'not a task' } })
    h.add({ ...instance('u4', 'x.1.1'), labels: { 'shoal.service': 'api', 'shoal.task': 'web.1.1' } })
    h.add({ ...instance('u5', 'x.1.1', 'exited'), labels: { 'shoal.task': 'web.1.1' } })
    expect(h.step()).toEqual([])
    expect(h.advance(3_600_000)).toEqual([])
  })

  it('taskOfContainer reads peer-id slots and refuses mismatches', () => {
    expect(taskOfContainer({ labels: { 'shoal.service': 'web', 'shoal.task': 'web.12D3KooWabc.3' } })).toEqual({ service: 'web', slot: '12D3KooWabc', generation: 3 })
    expect(taskOfContainer({ labels: { 'shoal.service': 'web', 'shoal.task': 'web.1.0' } })).toBeNull()
    expect(taskOfContainer({ labels: { 'shoal.service': 'Web', 'shoal.task': 'web.1.1' } })).toEqual({ service: 'web', slot: '1', generation: 1 })
  })
})

describe('restart policy', () => {
  it('any: restarts after delayMs·2^(attempt−1) from the exit, reporting pending with the reason meanwhile', () => {
    const h = new Host([service({ name: 'web', restart: { condition: 'any', delayMs: 1000 } })], [mine(1)])
    h.settle()
    h.exit('c1', 3)
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)).toMatchObject({ state: 'pending', containerId: 'c1', error: 'exited with code 3; restart 1 in 1s' })
    expect(engineOps(h.advance(999))).toEqual([])
    expect(engineOps(h.advance(1))).toEqual(['start c1'])
    expect(kinds(h.step())).toEqual(['report web/1 running'])
    h.exit('c1', 3)
    h.step()
    expect(h.state(1)?.error).toBe('exited with code 3; restart 2 in 2s')
    expect(engineOps(h.advance(1999))).toEqual([])
    expect(engineOps(h.advance(1))).toEqual(['start c1'])
    expect(h.agent.attempts('web.1.1')).toBe(2)
  })

  it('counts the wait from the engine\'s exit time, not from when the agent saw it', () => {
    const h = new Host([service({ name: 'web', restart: { delayMs: 5000 } })], [mine(1)])
    h.add(instance('c1', 'web.1.1', 'exited', { exitCode: 1, startedAt: iso(T0 - 9000), finishedAt: iso(T0 - 4000) }))
    expect(engineOps(h.step())).toEqual([])
    expect(engineOps(h.advance(1000))).toEqual(['start c1'])
  })

  it('a wall-clock step either way neither holds nor hastens a back-off, and the exit is counted once', () => {
    // Before the monotonic clock, the back-off ran on the wall clock from the engine's exit time:
    // a step back of an hour held the restart for an hour (found by the simulator, wall-clock-step).
    for (const stepMs of [-3_600_000, 3_600_000]) {
      const h = new Host([service({ name: 'web', restart: { condition: 'any', delayMs: 1000 } })], [mine(1)])
      h.settle()
      h.exit('c1', 3)
      h.step()
      h.stepWall(stepMs)
      expect(engineOps(h.advance(999))).toEqual([])
      expect(h.agent.attempts('web.1.1')).toBe(1)
      expect(engineOps(h.advance(1))).toEqual(['start c1'])
    }
  })

  it('an instance restarted and exited again between two steps waits its back-off from the new exit', () => {
    const h = new Host([service({ name: 'web', restart: { condition: 'any', delayMs: 1000 } })], [mine(1)])
    h.settle()
    h.exit('c1', 3)
    h.step()
    expect(engineOps(h.advance(1000))).toEqual(['start c1'])
    h.nowMs += 5000 // it runs, unseen, then exits again
    h.exit('c1', 3)
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)?.error).toBe('exited with code 3; restart 2 in 2s')
    expect(engineOps(h.advance(1999))).toEqual([])
    expect(engineOps(h.advance(1))).toEqual(['start c1'])
  })

  it('a wall-clock step does not hasten or hold a drain', () => {
    for (const stepMs of [-3_600_000, 3_600_000]) {
      const h = new Host([service({ name: 'web', stopGracePeriodMs: 2500 })], [])
      h.add(instance('gone', 'web.3.1'))
      h.step()
      h.stepWall(stepMs)
      expect(engineOps(h.advance(999))).toEqual([])
      expect(engineOps(h.advance(1))).toEqual(['stop gone'])
    }
  })

  it('reports carry the wall clock, and keep their time while the state holds across a step', () => {
    const h = new Host([service({ name: 'web' })], [mine(1)])
    h.settle()
    expect(h.state(1)).toMatchObject({ state: 'running', sinceMs: T0 })
    h.stepWall(-60_000)
    h.advance(10)
    expect(h.state(1)).toMatchObject({ state: 'running', sinceMs: T0 })
    h.exit('c1', 1)
    h.step()
    expect(h.state(1)).toMatchObject({ state: 'pending', sinceMs: T0 + 10 - 60_000 })
  })

  it('gives up after maxAttempts restarts: failed, with the reason, and nothing restarted', () => {
    const h = new Host([service({ name: 'web', restart: { maxAttempts: 2, delayMs: 100 } })], [mine(1)])
    h.settle()
    for (let i = 0; i < 2; i++) {
      h.exit('c1', 1)
      h.step()
      expect(engineOps(h.advance(100 * 2 ** i))).toEqual(['start c1'])
      h.step()
    }
    h.exit('c1', 1)
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)).toMatchObject({ state: 'failed', containerId: 'c1', error: 'exited with code 1; gave up after 2 restarts (restart.maxAttempts is 2)' })
    expect(engineOps(h.advance(600_000))).toEqual([])
    // The scheduler gives the slot a new generation: the failed container is obsolete and goes.
    h.tasks = [mine(1, { generation: 2 })]
    expect(engineOps(h.advance(0))).toEqual(['remove c1', 'run web.1.2'])
  })

  it.each([
    ['on-failure', 0, 'complete', undefined],
    ['none', 0, 'complete', undefined],
    ['none', 2, 'failed', 'exited with code 2 (restart condition none)'],
  ] as const)('condition %s, exit code %i → %s', (condition, code, state, error) => {
    const h = new Host([service({ name: 'web', restart: { condition } })], [mine(1)])
    h.settle()
    h.exit('c1', code)
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)).toEqual({ generation: 1, state, sinceMs: h.nowMs, containerId: 'c1', ...(error === undefined ? {} : { error }) })
    expect(engineOps(h.advance(600_000))).toEqual([])
  })

  it('on-failure restarts a non-zero exit', () => {
    const h = new Host([service({ name: 'web', restart: { condition: 'on-failure', delayMs: 0 } })], [mine(1)])
    h.settle()
    h.exit('c1', 137)
    expect(h.step().some((a) => a.kind === 'start')).toBe(false)
    expect(h.state(1)?.error).toBe('exited with code 137; restart 1 in 0.1s')
    expect(engineOps(h.advance(100))).toEqual(['start c1'])
  })

  it('counts attempts afresh once an instance ran longer than max(windowMs, 10 s)', () => {
    const h = new Host([service({ name: 'web', restart: { delayMs: 1000, windowMs: 0 } })], [mine(1)])
    h.settle()
    h.exit('c1', 1)
    h.step()
    h.advance(1000)
    h.advance(1000)
    h.exit('c1', 1)
    h.step()
    expect(h.state(1)?.error).toBe('exited with code 1; restart 2 in 2s')
    h.advance(2000)
    h.advance(10_001)
    expect(h.agent.attempts('web.1.1')).toBe(0)
    h.exit('c1', 1)
    h.step()
    expect(h.state(1)?.error).toBe('exited with code 1; restart 1 in 1s')
  })

  it('a dead container is removed and the task runs anew after the back-off', () => {
    const h = new Host([service({ name: 'web', restart: { delayMs: 500 } })], [mine(1)])
    h.add(instance('c0', 'web.1.1', 'dead', { exitCode: 255, finishedAt: iso(T0) }))
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)?.error).toBe('exited with code 255; restart 1 in 0.5s')
    expect(engineOps(h.advance(500))).toEqual(['remove c0'])
    expect(engineOps(h.step())).toEqual(['run web.1.1'])
  })

  it('back-off table: doubling, capped at max(delay, 60 s), at least 100 ms', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => restartDelayMs({ delayMs: 5000 }, n))).toEqual([5000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000])
    expect(restartDelayMs({ delayMs: 0 }, 1)).toBe(100)
    expect(restartDelayMs({ delayMs: 0 }, 5000)).toBe(100)
    expect(restartDelayMs({ delayMs: 90_000 }, 3)).toBe(90_000)
    expect(restartDelayMs({ delayMs: 5000 }, 1_000_000)).toBe(60_000)
  })
})

describe('failed runs', () => {
  it('a refused run counts as an attempt: pending with the engine\'s error, retried after the back-off, failed at maxAttempts', () => {
    const h = new Host([service({ name: 'web', restart: { maxAttempts: 3, delayMs: 1000 } })], [mine(1)])
    h.runError = new EngineError('image-missing', 'image nginx:1.27 not found; push it or fix the service image')
    h.step()
    h.step()
    expect(h.state(1)).toMatchObject({ state: 'pending', error: 'image nginx:1.27 not found; push it or fix the service image; attempt 1 failed, retrying in 1s' })
    expect(h.state(1)?.containerId).toBeUndefined()
    expect(engineOps(h.advance(999))).toEqual([])
    expect(engineOps(h.advance(1))).toEqual(['run web.1.1'])
    h.step()
    expect(engineOps(h.advance(2000))).toEqual(['run web.1.1'])
    h.step()
    expect(h.state(1)).toMatchObject({ state: 'failed', error: 'image nginx:1.27 not found; push it or fix the service image (gave up after 3 attempts; restart.maxAttempts is 3)' })
    expect(engineOps(h.advance(600_000))).toEqual([])
  })

  it('an unavailable engine delays the run but counts nothing', () => {
    const h = new Host([service({ name: 'web', restart: { maxAttempts: 1, delayMs: 1000 } })], [mine(1)])
    h.runError = new EngineError('unavailable', 'the Docker engine is not reachable')
    h.step()
    h.step()
    expect(h.agent.attempts('web.1.1')).toBe(0)
    expect(h.state(1)).toMatchObject({ state: 'pending', error: 'the Docker engine is not reachable; retrying in 1s' })
    h.runError = null
    expect(engineOps(h.advance(1000))).toEqual(['run web.1.1'])
    h.step()
    expect(h.state(1)).toMatchObject({ state: 'running' })
  })

  it('a plain Error (not an EngineError) counts as a failure too', () => {
    const h = new Host([service({ name: 'web', restart: { maxAttempts: 1 } })], [mine(1)])
    h.runError = new Error('socket hang up')
    h.step()
    h.step()
    expect(h.state(1)).toMatchObject({ state: 'failed' })
  })

  it('a refused restart of an exited container waits the next back-off', () => {
    const h = new Host([service({ name: 'web', restart: { delayMs: 1000 } })], [mine(1)])
    h.settle()
    h.exit('c1', 1)
    h.step()
    const start = h.advance(1000)
    expect(engineOps(start)).toEqual(['start c1'])
    // Undo the simulated start: the engine refused it.
    h.exit('c1', 1, { finishedAt: iso(T0) })
    h.agent.runFailed('web.1.1', new EngineError('invalid', 'port 8080 is already allocated'), h.nowMs)
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)?.error).toBe('port 8080 is already allocated; attempt 2 failed, retrying in 2s')
    expect(engineOps(h.advance(2000))).toEqual(['start c1'])
  })
})

describe('desired shutdown', () => {
  it('drains, stops (not removes), then reports shutdown', () => {
    const h = new Host(undefined, [mine(1, { desired: 'shutdown' })])
    h.add(instance('c1', 'web.1.1'))
    expect(engineOps(h.step())).toEqual([])
    expect(engineOps(h.advance(1000))).toEqual(['stop c1'])
    expect(kinds(h.step())).toEqual(['report web/1 shutdown'])
    expect(h.containers.get('c1')?.state).toBe('exited')
    expect(h.advance(60_000)).toEqual([])
  })

  it('with no container reports shutdown at once and runs nothing', () => {
    const h = new Host(undefined, [mine(1, { desired: 'shutdown' })])
    expect(kinds(h.step())).toEqual(['report web/1 shutdown'])
  })
})

describe('onDisconnect', () => {
  const stopAfter = (): ServiceRecord => service({ name: 'web', onDisconnect: { action: 'stop', afterMs: 5000 } })

  it('stop: after afterMs without a leader the containers stop (kept), and start again uncounted when it is back', () => {
    const h = new Host([stopAfter()], [mine(1)])
    h.settle()
    h.leaderlessSinceMs = h.nowMs
    expect(h.advance(4999)).toEqual([])
    const stop = h.advance(1)
    expect(engineOps(stop)).toEqual(['stop c1'])
    expect(kinds(stop)).toEqual(['stop c1'])
    expect(h.advance(60_000)).toEqual([])
    expect(h.containers.get('c1')?.state).toBe('exited')
    h.leaderlessSinceMs = null
    expect(engineOps(h.advance(1000))).toEqual(['start c1'])
    h.step()
    expect(h.state(1)).toMatchObject({ state: 'running', containerId: 'c1' })
    expect(h.agent.attempts('web.1.1')).toBe(0)
  })

  it('stop: runs nothing new while the leader is away', () => {
    const h = new Host([stopAfter()], [mine(1)])
    h.leaderlessSinceMs = h.nowMs - 10_000
    expect(h.step()).toEqual([])
  })

  it('keep (the default): nothing happens without a leader', () => {
    const h = new Host(undefined, [mine(1)])
    h.settle()
    h.leaderlessSinceMs = h.nowMs
    expect(h.advance(3_600_000)).toEqual([])
    expect(h.containers.get('c1')?.state).toBe('running')
  })

  it('stop applies to a previous instance kept here too', () => {
    const h = new Host([stopAfter()], [mine(1, { generation: 2, previous: { host: SELF, generation: 1, specVersion: 1 } })])
    h.add(instance('old', 'web.1.1'))
    h.add(instance('new', 'web.1.2'))
    h.leaderlessSinceMs = h.nowMs - 5000
    expect(engineOps(h.step())).toEqual(['stop new', 'stop old'])
    h.leaderlessSinceMs = null
    expect(engineOps(h.step())).toEqual(['start new', 'start old'])
  })
})

describe('reports', () => {
  it('unreports keys of slots no longer assigned here and undecodable stand-ins; keeps others\' keys', () => {
    const h = new Host(undefined, [mine(1)])
    h.add(instance('c1', 'web.1.1'))
    h.reported.set(taskStateKey(SELF, 'web', '1'), { generation: 1, state: 'running', sinceMs: T0, containerId: 'c1' })
    h.reported.set(taskStateKey(SELF, 'web', '2'), { generation: 1, state: 'running', sinceMs: T0 })
    h.reported.set(taskStateKey(SELF, 'gone', '1'), { generation: 3, state: 'failed', sinceMs: T0 })
    h.reported.set('task-states/self/bad', { generation: 0, state: 'pending', sinceMs: 0 })
    h.reported.set(taskStateKey('other', 'web', '1'), { generation: 1, state: 'running', sinceMs: T0 })
    expect(kinds(h.step())).toEqual(['unreport bad', 'unreport gone/1', 'unreport web/2'])
  })

  it('a report of an older generation is replaced with the current one', () => {
    const h = new Host(undefined, [mine(1, { generation: 4 })])
    h.add(instance('c1', 'web.1.4'))
    h.reported.set(taskStateKey(SELF, 'web', '1'), { generation: 3, state: 'running', sinceMs: T0 - 1, containerId: 'c1' })
    h.step()
    expect(h.state(1)).toEqual({ generation: 4, state: 'running', sinceMs: T0, containerId: 'c1' })
  })

  it('a report in flight is not repeated', () => {
    const h = new Host(undefined, [mine(1)])
    h.busy.add(`state/${taskStateKey(SELF, 'web', '1')}`)
    expect(kinds(h.decide())).toEqual(['run web.1.1'])
  })
})

describe('odd input', () => {
  it('a task of an unknown service runs nothing and says why; its containers are kept', () => {
    const h = new Host([], [mine(1), mine(2)])
    h.add(instance('c2', 'web.2.1', 'exited', { exitCode: 1 }))
    expect(engineOps(h.step())).toEqual([])
    expect(h.state(1)?.error).toBe('service web has no readable record at services/web; not starting its task')
    expect(h.state(2)?.error).toMatch(/^exited with code 1; service web has no readable record/)
  })

  it('never throws on strange containers and tasks', () => {
    const h = new Host(undefined, [mine(1), task('web', 'weird.slot', SELF, {}, null), task('other', 1, 'elsewhere', {}, null)])
    h.add({ ...instance('p', 'web.1.1', 'paused') })
    h.add({ ...instance('l', 'web.9.9', 'lost') })
    h.add({ ...instance('e', 'web.1.1', 'exited'), name: 'x', finishedAt: 'garbage', startedAt: '0001-01-01T00:00:00Z' })
    expect(() => h.step()).not.toThrow()
    expect(h.state(1)).toMatchObject({ state: 'unhealthy', containerId: 'p' })
  })
})

describe('determinism', () => {
  function busyHost(agent: TaskAgent): AgentAction[] {
    const tasks = [mine(3), mine(1, { generation: 2, previous: { host: SELF, generation: 1, specVersion: 1 } }), mine(2, { desired: 'shutdown' }), task('api', 1, SELF, {}, null)]
    const h = new Host([service({ name: 'web' }), service({ name: 'api' })], tasks)
    h.agent = agent
    h.drainMs = 0
    h.add(instance('z', 'web.2.1'))
    h.add(instance('y', 'web.1.1'))
    h.add(instance('x', 'web.7.1'))
    h.add(instance('w', 'api.1.1', 'exited', { exitCode: 0, finishedAt: iso(T0 - 60_000) }))
    h.reported.set(taskStateKey(SELF, 'web', '9'), { generation: 1, state: 'running', sinceMs: T0 })
    return h.decide()
  }

  it('the same input gives the same actions, in key order', () => {
    const a = busyHost(new TaskAgent())
    const b = busyHost(new TaskAgent())
    expect(a).toEqual(b)
    const keys = a.map(actionKey)
    expect(keys).toEqual([...keys].sort())
    expect(new Set(keys).size).toBe(keys.length)
    expect(kinds(a)).toEqual([
      'start w', 'stop x', 'stop z',
      'report api/1 pending', 'report web/1 pending', 'report web/3 pending', 'unreport web/9',
      'run web.1.2', 'run web.3.1',
    ])
  })
})

describe('next wake', () => {
  it('names the earliest back-off, drain or onDisconnect deadline, and null when nothing waits', () => {
    const h = new Host([service({ name: 'web', restart: { delayMs: 3000 }, onDisconnect: { action: 'stop', afterMs: 60_000 } })], [mine(1)])
    h.settle()
    expect(h.agent.nextWakeMs()).toBeNull()
    h.exit('c1', 1)
    h.step()
    expect(h.agent.nextWakeMs()).toBe(T0 + 3000)
    h.add(instance('gone', 'web.5.1'))
    h.step()
    expect(h.agent.nextWakeMs()).toBe(T0 + 1000)
    h.leaderlessSinceMs = T0 - 59_500
    h.step()
    expect(h.agent.nextWakeMs()).toBe(T0 + 500)
  })
})

describe('engine times', () => {
  it.each([
    '2024-05-01T12:00:00Z', '2024-05-01T12:00:00.123456789Z', '1999-12-31T23:59:59.9Z', '2024-02-29T00:00:00+02:00', '2030-01-01T00:00:00.5-05:30',
  ])('%s parses as Date.parse does', (text) => {
    expect(parseEngineTimeMs(text)).toBe(Date.parse(text))
  })
  it.each(['', 'garbage', '0001-01-01T00:00:00Z', '2024-13-01T00:00:00Z'])('%j is no time', (text) => {
    expect(parseEngineTimeMs(text)).toBeNull()
  })
})

describe('task ids', () => {
  it('labels and task ids agree', () => {
    expect(taskId(mine(4, { generation: 9 }))).toBe('web.4.9')
  })
})
