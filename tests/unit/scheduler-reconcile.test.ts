/**
 * The reconciler, as tables of "given these tasks, hosts and spec, expect these changes"
 * (nomad's reconciler tests), plus a few multi-step runs through the fixture cluster.
 */
import { describe, it, expect } from 'vitest'
import { reconcile, type Change, type ReconcileInput } from '../../runtime/scheduler/reconcile.ts'
import { rollbackRecord } from '../../runtime/scheduler/spec.ts'
import type { ServiceStatus } from '../../runtime/scheduler/task.ts'
import { Cluster, container, host, service, task, updated } from '../helpers/scheduler-fixtures.ts'

function run(over: Partial<ReconcileInput>): Change[] {
  return reconcile({ services: [], statuses: [], tasks: [], hosts: [], containers: [], nowMs: 100_000, deadGraceMs: 3000, ...over })
}

/** Compact view: kind service/slot@host (reason). */
function summary(changes: readonly Change[]): string[] {
  return changes.flatMap((c) => {
    switch (c.kind) {
      case 'place': case 'update': case 'retire':
        return [`${c.kind} ${c.task.service}/${c.task.slot}@${c.task.host}${c.task.previous === null ? '' : ` keep ${c.task.previous.host}`}`]
      case 'migrate':
        return [`migrate ${c.task.service}/${c.task.slot} ${c.from}->${c.task.host}${c.task.previous === null ? '' : ' keep'}`]
      case 'stop':
        return [`stop ${c.service}/${c.slot}`]
      case 'mark-lost':
        return [`lost ${c.container.id}`]
      case 'rollback':
        return [`rollback ${c.service} to ${c.record.image} v${c.record.version}`]
      case 'set-status':
        return []
    }
  })
}

function statusOf(changes: readonly Change[]): ServiceStatus | undefined {
  const s = changes.filter((c) => c.kind === 'set-status')
  const last = s[s.length - 1]
  return last?.kind === 'set-status' ? last.status : undefined
}

const abc = [host('a'), host('b'), host('c')]

describe('reconcile: placement', () => {
  it.each<[string, Partial<ReconcileInput>, string[]]>([
    ['3 replicas spread over 3 hosts, by host id', { services: [service({ name: 'web', replicas: 3 })], hosts: abc },
      ['place web/1@a', 'place web/2@b', 'place web/3@c']],
    ['5 replicas: spread first, then round again', { services: [service({ name: 'web', replicas: 5 })], hosts: abc },
      ['place web/1@a', 'place web/2@b', 'place web/3@c', 'place web/4@a', 'place web/5@b']],
    ['least loaded host first (other services count)', {
      services: [service({ name: 'api', replicas: 2 }), service({ name: 'web', replicas: 1 })], hosts: abc,
      tasks: [task('api', 1, 'a'), task('api', 2, 'b')],
    }, ['place web/1@c']],
    ['never on suspect, dead, left or drained hosts', {
      services: [service({ name: 'web', replicas: 2 })],
      hosts: [host('a', { liveness: 'suspect' }), host('b', { liveness: 'dead' }), host('c', { liveness: 'left' }), host('d', { drained: true }), host('e')],
    }, ['place web/1@e', 'place web/2@e']],
    ['constraints by label and name', {
      services: [service({ name: 'web', replicas: 2, constraints: ['host.label.zone==x', 'host.name!=b'] })],
      hosts: [host('a', { labels: { zone: 'x' } }), host('b', { labels: { zone: 'x' } }), host('c')],
    }, ['place web/1@a', 'place web/2@a']],
    ['cpu reservation against capacity minus other reservations', {
      services: [service({ name: 'big', replicas: 1, reservations: { cpus: 3 } }), service({ name: 'web', replicas: 2, reservations: { cpus: 1.5 } })],
      hosts: [host('a', { cpus: 4 }), host('b', { cpus: 2 })], tasks: [task('big', 1, 'a')],
    }, ['place web/1@b']],
    ['memory reservation', {
      services: [service({ name: 'web', replicas: 3, reservations: { memoryBytes: 600 } })],
      hosts: [host('a', { memoryBytes: 1000 }), host('b', { memoryBytes: 1300 })],
    }, ['place web/1@a', 'place web/2@b', 'place web/3@b']],
    ['host-mode published port conflicts: one per host', {
      services: [service({ name: 'web', replicas: 3, published: [{ published: 8080, target: 80, mode: 'host' }] })], hosts: [host('a'), host('b')],
    }, ['place web/1@a', 'place web/2@b']],
    ['a port on the routing mesh is no per-host conflict: every host answers it', {
      services: [service({ name: 'web', replicas: 3, published: [{ published: 8080, target: 80 }] })], hosts: [host('a'), host('b')],
    }, ['place web/1@a', 'place web/2@b', 'place web/3@a']],
    ['same port, other protocol, does not conflict', {
      services: [service({ name: 'dns', replicas: 1, published: [{ published: 53, target: 53, protocol: 'udp', mode: 'host' }] }), service({ name: 'web', replicas: 1, published: [{ published: 53, target: 53, mode: 'host' }] })],
      hosts: [host('a')],
    }, ['place dns/1@a', 'place web/1@a']],
  ])('%s', (_what, input, expected) => {
    expect(summary(run(input))).toEqual(expected)
  })

  it('says why nothing fits', () => {
    const changes = run({ services: [service({ name: 'web', replicas: 1, constraints: ['host.label.gpu==yes'] })], hosts: abc })
    expect(summary(changes)).toEqual([])
    expect(statusOf(changes)?.message).toMatch(/no host can take another instance: host a does not satisfy the constraints host.label.gpu==yes/)
  })

  it('is deterministic: the same inputs give the same changes', () => {
    const input: Partial<ReconcileInput> = { services: [service({ name: 'web', replicas: 7 }), service({ name: 'db', replicas: 2 })], hosts: [host('z'), host('m'), host('a')] }
    expect(run(input)).toEqual(run(input))
    expect(run({ ...input, hosts: [host('a'), host('m'), host('z')] })).toEqual(run(input))
  })
})

describe('reconcile: self-healing', () => {
  const web = service({ name: 'web', replicas: 3 })
  const placed = [task('web', 1, 'a'), task('web', 2, 'b'), task('web', 3, 'c')]
  const four = [...abc, host('d')]
  it.each<[string, Partial<ReconcileInput>, string[]]>([
    ['nothing to do when converged', { hosts: four, tasks: placed }, []],
    ['a suspect host keeps its tasks (a blip SWIM refutes moves nothing)', { hosts: [host('a', { liveness: 'suspect', livenessSinceMs: 0 }), host('b'), host('c'), host('d')], tasks: placed }, []],
    ['a host dead for less than the grace keeps its tasks', { hosts: [host('a', { liveness: 'dead', livenessSinceMs: 98_000 }), host('b'), host('c'), host('d')], tasks: placed, containers: [container('c1', 'a')] }, []],
    ['a host dead past the grace: its task moves, its containers are lost', {
      hosts: [host('a', { liveness: 'dead', livenessSinceMs: 97_000 }), host('b'), host('c'), host('d')], tasks: placed,
      containers: [container('c1', 'a'), container('c0', 'a', 'exited'), container('c2', 'b')],
    }, ['lost c1', 'migrate web/1 a->d']],
    ['a host that left: its task moves at once', { hosts: [host('a', { liveness: 'left', livenessSinceMs: 99_999 }), host('b'), host('c'), host('d')], tasks: placed }, ['migrate web/1 a->d']],
    ['a host nobody knows any more: its task moves', { hosts: [host('b'), host('c'), host('d')], tasks: placed }, ['migrate web/1 a->d']],
    ['a drained host: its task moves (stop-first: nothing kept)', { hosts: [host('a', { drained: true }), host('b'), host('c'), host('d')], tasks: placed }, ['migrate web/1 a->d']],
    ['a host whose labels no longer satisfy the constraint: its task moves', {
      services: [service({ name: 'web', replicas: 1, constraints: ['host.label.zone==x'] })],
      hosts: [host('a'), host('b', { labels: { zone: 'x' } })], tasks: [task('web', 1, 'a')],
    }, ['migrate web/1 a->b']],
    ['a failed task (restart policy gave up) gets a new instance', { hosts: four, tasks: [task('web', 1, 'a', {}, 'failed'), placed[1]!, placed[2]!] }, ['migrate web/1 a->d']],
    ['a failed task with restart none stays', {
      services: [service({ name: 'web', replicas: 1, restart: { condition: 'none' } })], hosts: four, tasks: [task('web', 1, 'a', {}, 'failed')],
    }, []],
    ['nowhere to go: the task stays', { hosts: [host('a', { liveness: 'dead', livenessSinceMs: 0 })], tasks: [task('web', 1, 'a')], services: [service({ name: 'web', replicas: 1 })] }, []],
    ['a removed service: every task stops', { services: [], hosts: four, tasks: placed }, ['stop web/1', 'stop web/2', 'stop web/3']],
  ])('%s', (_what, input, expected) => {
    expect(summary(run({ services: [web], ...input }))).toEqual(expected)
  })

  it('a drained host with start-first order keeps the old instance until the new one is healthy', () => {
    const svc = service({ name: 'web', replicas: 1, update: { order: 'start-first' } })
    const c = new Cluster([host('a', { drained: true }), host('b')], [svc], [task('web', 1, 'a')])
    c.healthyAfterMs = 1000
    c.nowMs = 100_000
    expect(summary(c.step(500))).toEqual(['migrate web/1 a->b keep'])
    expect(summary(c.step(500))).toEqual([]) // new instance still starting: old one keeps serving
    expect(c.instances('web')).toEqual({ running: 2, healthy: 1 })
    c.agent()
    expect(summary(c.step(500))).toEqual(['retire web/1@b'])
  })

  it('a new generation replaces the instance; the old container is told apart by it', () => {
    const changes = run({ services: [web], hosts: [host('a', { liveness: 'left' }), host('b')], tasks: [task('web', 1, 'a', { generation: 4 })] })
    const m = changes.find((c) => c.kind === 'migrate')
    expect(m?.kind === 'migrate' && m.task.generation).toBe(5)
    expect(m?.kind === 'migrate' && m.task.observed).toBeNull()
  })
  it('a service created again under the same name starts past the generations its old containers still carry', () => {
    // web was removed; its hosts still stop web.1.3 and web.2.1. The new web must not be named as
    // them, or a host would adopt the old container (old image) as the new instance.
    const old = [{ ...container('c1', 'a', 'running'), labels: { 'shoal.service': 'web', 'shoal.task': 'web.1.3' } }, { ...container('c2', 'b', 'exited'), labels: { 'shoal.service': 'web', 'shoal.task': 'web.2.1' } }]
    const placed = run({ services: [service({ name: 'web', replicas: 3 })], hosts: abc, containers: old }).flatMap((c) => (c.kind === 'place' ? [`${c.task.slot}.${c.task.generation}`] : []))
    expect(placed).toEqual(['1.4', '2.2', '3.1'])
  })
})

describe('reconcile: scale and global mode', () => {
  it.each<[string, Partial<ReconcileInput>, string[]]>([
    ['scale down removes the highest slots first', {
      services: [service({ name: 'web', replicas: 2 })], hosts: abc,
      tasks: [task('web', 1, 'a'), task('web', 2, 'b'), task('web', 3, 'c'), task('web', 4, 'a')],
    }, ['stop web/4', 'stop web/3']],
    ['scale up fills the lowest free slots, spread over hosts', {
      services: [service({ name: 'web', replicas: 4 })], hosts: abc, tasks: [task('web', 1, 'a'), task('web', 3, 'b')],
    }, ['place web/2@c', 'place web/4@a']],
    ['scale to zero', { services: [service({ name: 'web', replicas: 0 })], hosts: abc, tasks: [task('web', 1, 'a')] }, ['stop web/1']],
    ['global: one per eligible host', {
      services: [service({ name: 'agent', mode: 'global', constraints: ['host.name!=c'] })],
      hosts: [...abc, host('d', { drained: true }), host('e', { liveness: 'suspect' })],
    }, ['place agent/a@a', 'place agent/b@b']],
    ['global: ineligible hosts lose their task; a new host gets one', {
      services: [service({ name: 'agent', mode: 'global' })],
      hosts: [host('a', { drained: true }), host('b', { liveness: 'dead', livenessSinceMs: 0 }), host('c', { liveness: 'suspect' }), host('d')],
      tasks: [task('agent', 'a', 'a'), task('agent', 'b', 'b'), task('agent', 'c', 'c')],
    }, ['stop agent/a', 'stop agent/b', 'place agent/d@d']],
    ['global: a host without room is skipped', {
      services: [service({ name: 'agent', mode: 'global', reservations: { memoryBytes: 2000 } })], hosts: [host('a', { memoryBytes: 1000 }), host('b')],
    }, ['place agent/b@b']],
  ])('%s', (_what, input, expected) => {
    expect(summary(run(input))).toEqual(expected)
  })
})

describe('reconcile: rolling updates', () => {
  it('stop-first, parallelism 2: batches wait for the monitor window and the delay', () => {
    const v1 = service({ name: 'web', replicas: 5, update: { parallelism: 2, monitorMs: 3000, delayMs: 1000 } })
    const c = new Cluster(abc, [v1])
    c.converge(100)
    c.services.set('web', updated(v1, { image: 'nginx:1.28' }))
    c.healthyAfterMs = 1000
    const first = c.decide()
    expect(summary(first)).toEqual(['update web/1@a', 'update web/2@b'])
    expect(statusOf(first)?.state).toBe('updating')
    c.apply(first)
    c.agent() // starting
    c.nowMs += 1000
    expect(summary(c.decide())).toEqual([]) // not healthy yet
    c.agent() // healthy now
    c.nowMs += 2999
    expect(summary(c.decide())).toEqual([]) // healthy, but not for the whole monitor window
    c.nowMs += 1
    expect(summary(c.decide())).toEqual([]) // monitor passed; the delay has not
    c.nowMs += 1000
    expect(summary(c.decide())).toEqual(['update web/3@c', 'update web/4@a'])
  })

  it('a scale or an update-config change is a new version but restarts nothing (instanceVersion)', () => {
    const v1 = service({ name: 'web', replicas: 3 })
    const c = new Cluster(abc, [v1])
    c.converge(100)
    const v2 = updated(v1, { replicas: 4, update: { parallelism: 3 } })
    expect(v2.version).toBe(2)
    expect(v2.instanceVersion).toBe(1)
    c.services.set('web', v2)
    expect(summary(c.decide())).toEqual(['place web/4@a'])
    // A later change of the image rolls every instance, the ones placed at v2 included.
    const v3 = updated(v2, { image: 'nginx:1.28' })
    expect(v3.instanceVersion).toBe(3)
    const back = rollbackRecord(v3)
    expect(back?.instanceVersion).toBe(4)
  })

  it('start-first keeps the old instance until the new one is healthy, then retires it', () => {
    const v1 = service({ name: 'web', replicas: 2, update: { parallelism: 1, order: 'start-first', monitorMs: 0 } })
    const c = new Cluster(abc, [v1])
    c.converge(100)
    c.services.set('web', updated(v1, { image: 'nginx:1.28' }))
    c.healthyAfterMs = 500
    const first = c.decide()
    expect(summary(first)).toEqual(['update web/1@a keep a']) // both fit on a: no move
    c.apply(first)
    c.agent()
    expect(c.instances('web')).toEqual({ running: 3, healthy: 2 })
    c.nowMs += 500
    c.agent()
    expect(summary(c.decide())).toEqual(['retire web/1@a', 'update web/2@b keep b'])
  })

  it('start-first on a host that cannot hold both falls back to stop-first', () => {
    const v1 = service({ name: 'web', replicas: 1, published: [{ published: 80, target: 80, mode: 'host' }], update: { order: 'start-first' } })
    const c = new Cluster([host('a')], [v1], [task('web', 1, 'a')])
    c.services.set('web', updated(v1, { image: 'nginx:1.28' }))
    expect(summary(c.decide())).toEqual(['update web/1@a'])
  })

  it('failure action pause: a failed batch stops the rollout', () => {
    const v1 = service({ name: 'web', replicas: 3, update: { monitorMs: 0 } })
    const v2 = updated(v1, { image: 'nginx:broken' })
    const tasks = [task('web', 1, 'a', { specVersion: 2, reason: 'update', generation: 2 }, 'failed'), task('web', 2, 'b'), task('web', 3, 'c')]
    const changes = run({ services: [v2], hosts: abc, tasks, statuses: [{ service: 'web', version: 2, state: 'updating', message: '', rebalance: false }] })
    expect(statusOf(changes)?.state).toBe('paused')
    expect(summary(changes).filter((s) => s.startsWith('update'))).toEqual([])
    // Once paused, nothing else is rolled.
    const again = run({ services: [v2], hosts: abc, tasks: tasks.slice(1), statuses: [{ service: 'web', version: 2, state: 'paused', message: 'x', rebalance: false }] })
    expect(summary(again)).toEqual(['place web/1@a'])
  })

  it('failure action rollback: proposes the previous spec, then rolls back with the rollback config', () => {
    const v1 = service({ name: 'web', replicas: 3, update: { monitorMs: 0, failureAction: 'rollback' }, rollback: { parallelism: 0, monitorMs: 0 } })
    const c = new Cluster(abc, [v1])
    c.converge(100)
    c.services.set('web', updated(v1, { image: 'nginx:broken' }))
    c.failing = (t) => t.specVersion === 2
    const steps: string[][] = []
    for (let i = 0; i < 6; i++) steps.push(summary(c.step(100)))
    expect(steps[0]).toEqual(['update web/1@a'])
    // Nothing else is decided for the service until the rollback spec is written.
    expect(steps[1]).toEqual(['rollback web to nginx:1.27 v3'])
    // v3 (the old content): the failed instance is replaced on another host; the others already
    // run the old content and are left alone (a rollback restarts only what the update changed).
    expect(steps[2]).toEqual(['migrate web/1 a->b'])
    expect(steps.slice(3)).toEqual([[], [], []])
    expect(c.services.get('web')?.version).toBe(3)
    expect(c.statuses.get('web')?.state).toBe('rollback-completed')
    expect(c.tasksOf('web').map((t) => t.specVersion)).toEqual([3, 1, 1])
    expect(new Set(c.tasksOf('web').map((t) => t.instance)).size, 'every instance runs the same content again').toBe(1)
  })

  it('failure action continue: the rollout goes on', () => {
    const v1 = service({ name: 'web', replicas: 2, update: { monitorMs: 0, failureAction: 'continue' } })
    const v2 = updated(v1, { image: 'nginx:broken' })
    const tasks = [task('web', 1, 'a', { specVersion: 2, reason: 'update', generation: 2 }, 'unhealthy'), task('web', 2, 'b')]
    expect(summary(run({ services: [v2], hosts: abc, tasks }))).toEqual(['update web/2@b'])
  })

  it('max failure ratio tolerates some failures', () => {
    const v1 = service({ name: 'web', replicas: 4, update: { parallelism: 2, monitorMs: 0, maxFailureRatio: 0.5 } })
    const v2 = updated(v1, { image: 'nginx:1.28' })
    const tasks = [
      task('web', 1, 'a', { specVersion: 2, reason: 'update' }, 'unhealthy'), task('web', 2, 'b', { specVersion: 2, reason: 'update' }),
      task('web', 3, 'c'), task('web', 4, 'a'),
    ]
    const changes = run({ services: [v2], hosts: abc, tasks })
    expect(statusOf(changes)?.state).toBe('updating')
  })

  it('global services roll in place, host by host', () => {
    const v1 = service({ name: 'agent', mode: 'global', update: { monitorMs: 0 } })
    const c = new Cluster(abc, [v1])
    c.converge(100)
    c.services.set('agent', updated(v1, { image: 'agent:2' }))
    expect(summary(c.step(100))).toEqual(['update agent/a@a'])
    expect(summary(c.step(100))).toEqual(['update agent/b@b'])
    expect(summary(c.step(100))).toEqual(['update agent/c@c'])
    expect(summary(c.step(100))).toEqual([])
  })
})

describe('reconcile: rebalance', () => {
  it('a failed rebalance move is replaced, never rolls the spec back', () => {
    const v1 = service({ name: 'web', replicas: 2, update: { failureAction: 'rollback', monitorMs: 0 } })
    const v2 = updated(v1, { image: 'nginx:1.28' })
    const tasks = [task('web', 1, 'a', { specVersion: 2, reason: 'rebalance', generation: 2 }, 'failed'), task('web', 2, 'b', { specVersion: 2 })]
    const changes = run({ services: [v2], hosts: abc, tasks, statuses: [{ service: 'web', version: 2, state: 'completed', message: '', rebalance: true }] })
    expect(summary(changes)).toEqual(['migrate web/1 a->c'])
  })

  it('a manual rollback (rollbackRecord + rolling-back status) rolls back under the rollback config', () => {
    const v1 = service({ name: 'web', replicas: 3, update: { monitorMs: 0 }, rollback: { parallelism: 2, monitorMs: 0 } })
    const v2 = updated(v1, { image: 'nginx:1.28' })
    const c = new Cluster(abc, [v1])
    c.converge(100)
    c.services.set('web', v2)
    c.converge(100)
    const back = rollbackRecord(v2)
    if (back === null) throw new Error('v2 has a previous spec')
    c.services.set('web', back)
    c.statuses.set('web', { service: 'web', version: back.version, state: 'rolling-back', message: '', rebalance: false })
    expect(summary(c.step(100))).toEqual(['update web/1@a', 'update web/2@b'])
    c.converge(100)
    expect(c.tasksOf('web').map((t) => t.specVersion)).toEqual([3, 3, 3])
    expect(c.statuses.get('web')?.state).toBe('rollback-completed')
    expect(c.services.get('web')?.image).toBe('nginx:1.27')
  })

  it('a new host gets nothing moved until a rebalance is requested, then batches even it out', () => {
    const svc = service({ name: 'web', replicas: 6, update: { parallelism: 2, monitorMs: 0 } })
    const tasks = [1, 2, 3, 4, 5, 6].map((s) => task('web', s, s % 2 === 0 ? 'b' : 'a'))
    const c = new Cluster([host('a'), host('b'), host('c')], [svc], tasks)
    c.converge(100)
    expect(c.tasksOf('web').filter((t) => t.host === 'c')).toEqual([])
    c.statuses.set('web', { service: 'web', version: 1, state: 'completed', message: '', rebalance: true })
    // Fullest host first (ties: the larger host id), its highest slot.
    expect(summary(c.step(100))).toEqual(['migrate web/6 b->c', 'migrate web/5 a->c'])
    c.converge(100)
    const counts = ['a', 'b', 'c'].map((h) => c.tasksOf('web').filter((t) => t.host === h).length)
    expect(counts).toEqual([2, 2, 2])
    expect(c.statuses.get('web')?.rebalance).toBe(false)
  })
})
