/**
 * Invariants of the scheduler core over random clusters (fast-check):
 * - nothing is ever placed, moved or updated onto a dead, drained, suspect or ineligible host,
 *   nor beyond a host's reservations or onto a taken published port;
 * - on a static cluster, applying the reconciler's output repeatedly reaches a fixed point
 *   with exactly `replicas` tasks (one per eligible host for global), all on eligible hosts;
 * - during a rolling update, never fewer than replicas − parallelism healthy instances
 *   (stop-first) nor more than replicas + parallelism running ones (start-first).
 */
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { matchAll } from '../../runtime/scheduler/constraint.ts'
import type { SchedHost } from '../../runtime/scheduler/feasible.ts'
import { reconcile } from '../../runtime/scheduler/reconcile.ts'
import type { ServiceRecord } from '../../runtime/scheduler/spec.ts'
import type { Task } from '../../runtime/scheduler/task.ts'
import { Cluster, host, service, task, updated } from '../helpers/scheduler-fixtures.ts'

const NOW = 100_000
const GRACE = 3000
const HOST_IDS = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5']

const hostArb = (id: string): fc.Arbitrary<SchedHost> =>
  fc.record({
    liveness: fc.constantFrom('alive', 'alive', 'alive', 'suspect', 'dead', 'left'),
    deadLong: fc.boolean(),
    drained: fc.boolean().map((b) => b && id !== 'h0'),
    zone: fc.constantFrom('x', 'y'),
    cpus: fc.constantFrom(0, 2, 8),
  }).map((h) => host(id, {
    liveness: h.liveness as SchedHost['liveness'], livenessSinceMs: h.deadLong ? 0 : NOW - 1000, drained: h.drained, labels: { zone: h.zone }, cpus: h.cpus,
  }))

const hostsArb = fc.integer({ min: 1, max: HOST_IDS.length }).chain((n) => fc.tuple(...HOST_IDS.slice(0, n).map(hostArb)))

const serviceArb = (name: string): fc.Arbitrary<ServiceRecord> =>
  fc.record({
    global: fc.boolean().map((b) => b && name === 's2'),
    replicas: fc.integer({ min: 0, max: 8 }),
    constraint: fc.constantFrom(null, 'host.label.zone==x', 'host.label.zone!=x', 'host.name!=h1'),
    cpus: fc.constantFrom(0, 0, 1, 1.5),
    port: fc.constantFrom(null, 8080),
  }).map((s) => service({
    name, ...(s.global ? { mode: 'global' } : { replicas: s.replicas }),
    constraints: s.constraint === null ? [] : [s.constraint], reservations: { cpus: s.cpus },
    published: s.port === null ? [] : [{ published: s.port, target: 80, mode: 'host' }],
  }))

const tasksArb = (services: readonly string[]): fc.Arbitrary<Task[]> =>
  fc.array(fc.record({ svc: fc.constantFrom(...services), slot: fc.integer({ min: 1, max: 10 }), host: fc.constantFrom(...HOST_IDS), state: fc.constantFrom('running', 'failed', 'starting', null) }), { maxLength: 12 })
    .map((list) => {
      const byKey = new Map<string, Task>()
      for (const t of list) byKey.set(`${t.svc}/${t.slot}`, task(t.svc, t.slot, t.host, {}, t.state))
      return [...byKey.values()]
    })

const clusterArb = fc.tuple(hostsArb, serviceArb('s1'), serviceArb('s2')).chain(([hosts, s1, s2]) =>
  tasksArb(['s1', 's2', 'gone']).map((tasks) => ({ hosts: [...hosts], services: [s1, s2], tasks })))

function eligible(h: SchedHost | undefined, spec: ServiceRecord): boolean {
  return h !== undefined && h.liveness === 'alive' && !h.drained && matchAll(spec.constraints, h)
}

describe('scheduler invariants (fast-check)', () => {
  it('never places, moves or updates onto a host that is not alive, drained or ineligible', () => {
    fc.assert(fc.property(clusterArb, ({ hosts, services, tasks }) => {
      const changes = reconcile({ services, statuses: [], tasks, hosts, containers: [], nowMs: NOW, deadGraceMs: GRACE })
      for (const c of changes) {
        if (c.kind !== 'place' && c.kind !== 'migrate' && c.kind !== 'update') continue
        const spec = services.find((s) => s.name === c.task.service)
        expect(spec).toBeDefined()
        if (spec === undefined) continue
        expect(eligible(hosts.find((h) => h.id === c.task.host), spec), `${c.kind} ${c.task.service}/${c.task.slot} on ${c.task.host}`).toBe(true)
      }
    }), { numRuns: 400 })
  })

  it('converges on a static cluster to exactly the desired tasks, on eligible hosts, within reservations and ports', () => {
    fc.assert(fc.property(clusterArb, ({ hosts, services, tasks }) => {
      const c = new Cluster(hosts, services, tasks)
      c.nowMs = NOW
      c.deadGraceMs = GRACE
      c.converge(1000)
      // Hosts dead for less than the grace keep their tasks until it runs out; then converge again.
      c.nowMs += GRACE
      c.converge(1000)
      expect(c.decide()).toEqual([]) // a fixed point
      const byId = new Map(hosts.map((h) => [h.id, h]))
      expect(c.tasksOf('gone')).toEqual([])
      for (const spec of services) {
        const own = c.tasksOf(spec.name)
        // Without reservations or ports any eligible host has room for everything.
        const unconstrained = spec.reservations.cpus === 0 && spec.published.length === 0
        const someEligible = hosts.some((h) => eligible(h, spec))
        for (const t of own) {
          const h = byId.get(t.host)
          // Suspect (or recently dead) hosts keep what they have; a task whose host is gone,
          // drained or ineligible stays only when no eligible host has room for it.
          const kept = h !== undefined && h.liveness === 'suspect' && !h.drained && matchAll(spec.constraints, h)
          if (unconstrained && someEligible) expect(eligible(h, spec) || kept, `${spec.name}/${t.slot} on ${t.host}`).toBe(true)
          expect(t.specVersion).toBe(spec.version)
          expect(t.previous).toBeNull()
        }
        if (spec.mode === 'global') {
          expect(new Set(own.map((t) => t.host)).size).toBe(own.length)
          expect(own.every((t) => t.slot === t.host)).toBe(true)
        } else {
          expect(own.length).toBeLessThanOrEqual(spec.replicas)
          if (unconstrained && someEligible) expect(own.length).toBe(spec.replicas)
        }
      }
      // Reservations and ports hold on every host the scheduler put something on (the random
      // starting tasks may overbook a host; the scheduler must never add to that).
      for (const h of hosts) {
        const here = [...c.tasks.values()].filter((t) => t.host === h.id)
        const specOf = (t: Task): ServiceRecord | undefined => services.find((x) => x.name === t.service)
        const placedHere = (pick: (s: ServiceRecord) => boolean): boolean => here.some((t) => t.updatedAtMs >= NOW && pick(specOf(t) ?? services[0]!))
        const cpus = here.reduce((sum, t) => sum + (specOf(t)?.reservations.cpus ?? 0), 0)
        if (h.cpus > 0 && placedHere((s) => s.reservations.cpus > 0)) expect(cpus, `cpus reserved on ${h.id}`).toBeLessThanOrEqual(h.cpus)
        const withPort = here.filter((t) => (specOf(t)?.published.length ?? 0) > 0)
        if (placedHere((s) => s.published.length > 0)) expect(withPort.length, `port 8080 on ${h.id}`).toBeLessThanOrEqual(1)
      }
    }), { numRuns: 300 })
  })

  it('rolling updates keep within replicas ± parallelism and finish at the new version', () => {
    const arb = fc.record({
      hosts: fc.integer({ min: 1, max: 5 }),
      replicas: fc.integer({ min: 1, max: 9 }),
      parallelism: fc.integer({ min: 1, max: 4 }),
      order: fc.constantFrom('stop-first', 'start-first'),
      monitorMs: fc.constantFrom(0, 500, 2000),
      delayMs: fc.constantFrom(0, 700),
      healthyAfterMs: fc.constantFrom(0, 300, 1500),
      stepMs: fc.constantFrom(100, 250, 1000),
    })
    fc.assert(fc.property(arb, (p) => {
      const v1 = service({ name: 'web', replicas: p.replicas, update: { parallelism: p.parallelism, order: p.order, monitorMs: p.monitorMs, delayMs: p.delayMs } })
      const c = new Cluster(HOST_IDS.slice(0, p.hosts).map((id) => host(id)), [v1])
      c.converge(p.stepMs)
      c.services.set('web', updated(v1, { image: 'nginx:1.28' }))
      c.healthyAfterMs = p.healthyAfterMs
      const check = (): void => {
        const { running, healthy } = c.instances('web')
        if (p.order === 'stop-first') expect(healthy).toBeGreaterThanOrEqual(p.replicas - p.parallelism)
        else {
          expect(running).toBeLessThanOrEqual(p.replicas + p.parallelism)
          expect(healthy).toBeGreaterThanOrEqual(p.replicas)
        }
      }
      const finished = (): boolean => c.statuses.get('web')?.version === 2 && c.statuses.get('web')?.state === 'completed'
      for (let i = 0; i < 5000 && !finished(); i++) {
        c.apply(c.decide())
        check()
        c.agent()
        check()
        c.nowMs += p.stepMs
      }
      expect(finished()).toBe(true)
      expect(c.decide()).toEqual([])
      const tasks = c.tasksOf('web')
      expect(tasks.length).toBe(p.replicas)
      expect(tasks.every((t) => t.specVersion === 2 && t.previous === null)).toBe(true)
      expect(c.statuses.get('web')?.state).toBe('completed')
    }), { numRuns: 300 })
  })
})
