/** MemoryRuntime as a TaskEngine: the simulator's and unit tests' stand-in for DockerRuntime's runTask/startTask/stopTask/removeTask. */
import { describe, it, expect } from 'vitest'
import { encodeRecord, parseContainer } from '../../storage/statestore/index.ts'
import { MemoryRuntime, type MemoryRuntimeOptions } from '../../runtime/memory-runtime.ts'
import { EngineError, type RuntimeChange, type TaskContainerSpec } from '../../runtime/runtime.ts'

const identity = { hostId: '12D3KooWHostA', hostName: 'host-a' }

function setup(options: Partial<MemoryRuntimeOptions> = {}): { rt: MemoryRuntime; changes: RuntimeChange[] } {
  const rt = new MemoryRuntime({ identity, now: () => Date.UTC(2026, 0, 1), ...options })
  const changes: RuntimeChange[] = []
  rt.subscribe((c) => changes.push(c))
  return { rt, changes }
}

async function started(options: Partial<MemoryRuntimeOptions> = {}): Promise<{ rt: MemoryRuntime; changes: RuntimeChange[] }> {
  const s = setup(options)
  await s.rt.start()
  s.changes.length = 0
  return s
}

function spec(name: string, overrides: Partial<TaskContainerSpec> = {}): TaskContainerSpec {
  return {
    name, image: 'app:1', entrypoint: [], cmd: ['serve'], env: { A: '1' }, labels: { 'shoal.service': 'web', 'shoal.task': 'web.1', 'shoal.spec-version': '2' },
    exposed: [], published: [], cpuLimit: 0, memoryLimitBytes: 0, memoryReservationBytes: 0, healthCheck: null,
    dns: [], dnsSearch: [], stopGraceMs: 10_000, ...overrides,
  }
}

async function refusal(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p
  } catch (err) {
    if (err instanceof EngineError) return err
    throw err
  }
  throw new Error('expected an EngineError, but the call succeeded')
}

const summary = (changes: RuntimeChange[]): string[] =>
  changes.map((c) => (c.type === 'upsert' ? `upsert ${c.container.name} ${c.container.state}${c.container.health === undefined ? '' : ` ${c.container.health}`}` : c.type))

describe('MemoryRuntime as a TaskEngine', () => {
  it('runs a task: created then running, with its labels, ports and health starting; the spec is kept for tests', async () => {
    const { rt, changes } = await started()
    const s = spec('web.1.1', {
      exposed: [{ port: 8080, protocol: 'tcp' }, { port: 53, protocol: 'udp' }],
      published: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }],
      healthCheck: { cmd: ['true'], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 },
    })
    const id = await rt.runTask(s)
    expect(summary(changes)).toEqual(['upsert web.1.1 created starting', 'upsert web.1.1 running starting'])
    const c = rt.containers().find((x) => x.id === id)
    expect(c).toMatchObject({ name: 'web.1.1', image: 'app:1', state: 'running', health: 'starting', host: identity.hostId, labels: s.labels })
    // As Docker reports them: a published port on both address families, an exposed-only one without a host side.
    expect(c?.ports).toEqual([
      { containerPort: 53, protocol: 'udp' },
      { containerPort: 8080, protocol: 'tcp', hostPort: 80, hostIp: '0.0.0.0' },
      { containerPort: 8080, protocol: 'tcp', hostPort: 80, hostIp: '::' },
    ])
    if (c !== undefined) {
      const parsed = parseContainer(encodeRecord(c))
      expect(parsed.ok ? parsed.record : parsed.error).toEqual(c)
    }
    expect(rt.taskSpec(id)).toBe(s)

    // Without a health check there is no health; ids are deterministic per host.
    const plain = await rt.runTask(spec('web.2.1'))
    expect(rt.containers().find((x) => x.id === plain)?.health).toBeUndefined()
    const again = await started()
    expect([await again.rt.runTask(spec('web.1.1')), await again.rt.runTask(spec('web.2.1'))]).toEqual([id, plain])
  })

  it('settles without timers: every call is resolved after a microtask', async () => {
    const { rt } = await started()
    const settled: string[] = []
    const id = 'f'.repeat(64)
    void rt.runTask(spec('web.1.1')).then(() => settled.push('run'))
    void rt.stopTask(id, 1000).then(() => settled.push('stop'))
    void rt.removeTask(id).then(() => settled.push('remove'))
    void rt.startTask(id).catch(() => settled.push('start refused'))
    await Promise.resolve()
    await Promise.resolve()
    expect(settled).toEqual(['run', 'stop', 'remove', 'start refused'])
  })

  it('refuses a name in use (name-conflict) and leaves the first container alone', async () => {
    const { rt, changes } = await started()
    const id = await rt.runTask(spec('web.1.1'))
    changes.length = 0
    const err = await refusal(rt.runTask(spec('web.1.1', { image: 'app:2' })))
    expect(err.kind).toBe('name-conflict')
    expect(err.message).toContain('container name web.1.1 is already in use on this host')
    expect(changes).toEqual([])
    expect(rt.containers().map((c) => `${c.id === id} ${c.image} ${c.state}`)).toEqual(['true app:1 running'])
  })

  it('refuses images marked missing (option or setImageMissing) with the same words as Docker', async () => {
    const { rt, changes } = await started({ missingImages: ['app:404'] })
    const err = await refusal(rt.runTask(spec('web.1.1', { image: 'app:404' })))
    expect(err.kind).toBe('image-missing')
    expect(err.message).toContain("image app:404 is not on this host's Docker engine: docker pull or docker load it on every host that may run the service")
    rt.setImageMissing('app:1', true)
    expect((await refusal(rt.runTask(spec('web.1.1')))).kind).toBe('image-missing')
    expect(changes).toEqual([])
    rt.setImageMissing('app:1', false)
    rt.setImageMissing('app:404', false)
    await rt.runTask(spec('web.1.1'))
    await rt.runTask(spec('web.2.1', { image: 'app:404' }))
    expect(rt.containers().map((c) => c.name)).toEqual(['web.1.1', 'web.2.1'])
  })

  it('refuses an invalid spec as DockerRuntime does, creating nothing', async () => {
    const { rt, changes } = await started()
    for (const bad of [spec('x'), spec('web.1.1', { published: [{ hostPort: 0, containerPort: 80, protocol: 'tcp' }] }), spec('web.1.1', { cpuLimit: -1 })]) {
      expect((await refusal(rt.runTask(bad))).kind).toBe('invalid')
    }
    expect(changes).toEqual([])
    expect(rt.engineContainers()).toEqual([])
  })

  it('stop, start and remove are idempotent where Docker is: stopped or missing is success', async () => {
    const { rt, changes } = await started()
    const id = await rt.runTask(spec('web.1.1', { healthCheck: { cmd: ['true'], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 } }))
    rt.setHealth(id, 'healthy')
    changes.length = 0

    await rt.stopTask(id, 1000)
    await rt.stopTask(id, 1000)
    expect(summary(changes)).toEqual(['upsert web.1.1 exited healthy'])
    expect(rt.containers()[0]).toMatchObject({ state: 'exited', exitCode: 0 })

    await rt.startTask(id)
    await rt.startTask(id)
    // A restart begins its health check over.
    expect(summary(changes.slice(1))).toEqual(['upsert web.1.1 running starting'])

    expect((await refusal(rt.stopTask(id, -1))).kind).toBe('invalid')
    expect((await refusal(rt.stopTask(id, Number.NaN))).kind).toBe('invalid')

    rt.pause(id)
    expect((await refusal(rt.startTask(id))).kind).toBe('invalid')
    await rt.stopTask(id, 0) // a paused container stops too
    expect(rt.containers()[0]?.state).toBe('exited')

    changes.length = 0
    await rt.removeTask(id)
    await rt.removeTask(id)
    await rt.stopTask(id, 1000)
    expect(summary(changes)).toEqual(['remove'])
    expect(rt.taskSpec(id)).toBeUndefined()
    const missing = await refusal(rt.startTask(id))
    expect(missing.kind).toBe('not-found')
    expect(missing.message).toContain(id)
  })

  it('says unavailable while not started or while the engine is down, and works again once it is back', async () => {
    const { rt } = setup()
    expect((await refusal(rt.runTask(spec('web.1.1')))).kind).toBe('unavailable')
    await rt.start()
    const id = await rt.runTask(spec('web.1.1'))
    rt.engineDown('dockerd crashed')
    for (const call of [rt.runTask(spec('web.2.1')), rt.startTask(id), rt.stopTask(id, 0), rt.removeTask(id)]) {
      const err = await refusal(call)
      expect(err.kind).toBe('unavailable')
      expect(err.message).toContain('dockerd crashed')
    }
    expect(rt.engineContainers().map((c) => `${c.name} ${c.state}`)).toEqual(['web.1.1 running'])
    rt.engineUp()
    await rt.stopTask(id, 0)
    expect(rt.containers()[0]?.state).toBe('exited')
  })
})
