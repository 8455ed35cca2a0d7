// A host's Docker engine as the task agent sees it in the simulator: the real
// MemoryRuntime (runtime/memory-runtime.ts), driven through its synchronous
// engine methods after a simulated delay, because the simulator has no
// Promises. The operations are TaskEngine's (runTask, startTask, stopTask,
// removeTask) with the same refusals and EngineError kinds: unavailable while
// the engine is down, name-conflict for a taken name, the spec checked by the
// pure Docker create-body mapping. The engine belongs to the host, not to the
// peer: an operation the peer asked for completes even if the peer crashes
// meanwhile (only the answer is lost), and health checks keep running.
//
// Health: a container with a health check starts `starting` and turns
// `healthy` 0.8-2.5 s later (a check every second that must pass once), or `unhealthy` when its image is a broken one
// (a tag starting with `bad`), which is how the services workload makes a
// rolling update fail its health check.

import { taskCreateBody } from '../runtime/docker-task-config.ts'
import type { MemoryRuntime } from '../runtime/memory-runtime.ts'
import { EngineError, type TaskContainerSpec } from '../runtime/runtime.ts'
import type { PortMapping } from '../storage/statestore/index.ts'
import type { Rng } from './random.ts'
import type { Scheduler } from './scheduler.ts'

/** Simulated engine latencies (ms). */
export const RUN_DELAY_MS: readonly [number, number] = [200, 800]
export const START_DELAY_MS: readonly [number, number] = [100, 400]
export const REMOVE_DELAY_MS: readonly [number, number] = [20, 100]
export const HEALTH_DELAY_MS: readonly [number, number] = [800, 2500]

/** Whether an image is one the workload made broken: its health check never passes. */
export function brokenImage(image: string): boolean {
  const tag = image.slice(image.lastIndexOf(':') + 1)
  return tag.startsWith('bad')
}

/** One host's engine, for the task agent (survives the peer's crashes, as dockerd does). */
export class SimEngine {
  readonly runtime: MemoryRuntime
  private readonly scheduler: Scheduler
  private readonly rng: Rng
  /** Called after every change this engine makes (the rolling-update checker samples then). */
  private readonly changed: () => void

  constructor(init: { runtime: MemoryRuntime; scheduler: Scheduler; rng: Rng; changed: () => void }) {
    this.runtime = init.runtime
    this.scheduler = init.scheduler
    this.rng = init.rng
    this.changed = init.changed
  }

  /** TaskEngine.runTask: `done(null)` once created and started, or `done(error)` when refused. */
  runTask(spec: TaskContainerSpec, done: (err: EngineError | null) => void): void {
    this.later(RUN_DELAY_MS, () => {
      const down = this.unavailable('create', spec.name)
      if (down !== null) return done(down)
      const mapped = taskCreateBody(spec)
      if (!mapped.ok) return done(mapped.error)
      const rt = this.runtime
      if (rt.engineContainers().some((c) => c.name === spec.name)) {
        return done(new EngineError('name-conflict', `the container name "/${spec.name}" is already in use; remove (or rename) that container to be able to reuse that name`))
      }
      const id = rt.create({ name: spec.name, image: spec.image, labels: spec.labels, ports: taskPorts(spec), ...(spec.healthCheck === null ? {} : { health: 'starting' as const }) }).id
      rt.startContainer(id)
      this.afterStart(id, spec.image)
      done(null)
    })
  }

  /** TaskEngine.startTask: a running container is success; a missing, paused or dead one is refused. */
  startTask(id: string, done: (err: EngineError | null) => void): void {
    this.later(START_DELAY_MS, () => {
      const down = this.unavailable('start', id)
      if (down !== null) return done(down)
      const c = this.runtime.engineContainers().find((x) => x.id === id)
      if (c === undefined) return done(new EngineError('not-found', `no such container: ${id}`))
      if (c.state === 'paused' || c.state === 'dead') return done(new EngineError('invalid', `cannot start a ${c.state} container ${id}`))
      if (c.state !== 'running') {
        this.runtime.startContainer(id)
        this.afterStart(id, c.image)
      }
      done(null)
    })
  }

  /** TaskEngine.stopTask: the process heeds SIGTERM within the grace (exit 0); stopped or missing is success. */
  stopTask(id: string, graceMs: number, done: (err: EngineError | null) => void): void {
    const down = this.unavailable('stop', id)
    if (down !== null) return this.later([1, 5], () => done(down))
    this.later([Math.min(50, graceMs), Math.max(0, graceMs)], () => {
      const c = this.runtime.engineContainers().find((x) => x.id === id)
      if (c !== undefined && (c.state === 'running' || c.state === 'paused')) {
        this.runtime.stopContainer(id, 0)
        this.changed()
      }
      done(null)
    })
  }

  /** TaskEngine.removeTask: `docker rm -f`; missing is success. */
  removeTask(id: string, done: (err: EngineError | null) => void): void {
    const down = this.unavailable('remove', id)
    if (down !== null) return this.later([1, 5], () => done(down))
    this.later(REMOVE_DELAY_MS, () => {
      if (this.runtime.engineContainers().some((x) => x.id === id)) {
        this.runtime.remove(id)
        this.changed()
      }
      done(null)
    })
  }

  /** A started container with a health check turns healthy (or unhealthy, for a broken image) a little later. */
  private afterStart(id: string, image: string): void {
    this.changed()
    const c = this.runtime.engineContainers().find((x) => x.id === id)
    if (c === undefined || c.health !== 'starting') return
    const startedAt = c.startedAt
    this.later(HEALTH_DELAY_MS, () => {
      const now = this.runtime.engineContainers().find((x) => x.id === id)
      // Only the same run of the same container: a restart begins its own check.
      if (now === undefined || now.state !== 'running' || now.startedAt !== startedAt || now.health !== 'starting') return
      this.runtime.setHealth(id, brokenImage(image) ? 'unhealthy' : 'healthy')
      this.changed()
    })
  }

  /** The runtime cannot reach its engine (dockerd restarting): every operation is refused as DockerRuntime refuses it. */
  private unavailable(op: string, container: string): EngineError | null {
    const degraded = this.runtime.status().degraded
    return degraded === null ? null : new EngineError('unavailable', `engine memory is not connected (${degraded}): cannot ${op} ${container}; the agent retries once it is back`)
  }

  private later(range: readonly [number, number], fn: () => void): void {
    const [lo, hi] = range
    this.scheduler.after(Math.round(this.rng.between(Math.round(lo), Math.max(Math.round(lo), Math.round(hi))) * 1000), fn)
  }
}

/** The ports Docker reports for a task container (MemoryRuntime's runTask does the same). */
function taskPorts(spec: TaskContainerSpec): PortMapping[] {
  const ports: PortMapping[] = []
  const published = new Set<string>()
  for (const p of spec.published) {
    published.add(`${p.containerPort}/${p.protocol}`)
    for (const hostIp of ['0.0.0.0', '::']) ports.push({ containerPort: p.containerPort, protocol: p.protocol, hostPort: p.hostPort, hostIp })
  }
  for (const p of spec.exposed) if (!published.has(`${p.port}/${p.protocol}`)) ports.push({ containerPort: p.port, protocol: p.protocol })
  return ports
}
