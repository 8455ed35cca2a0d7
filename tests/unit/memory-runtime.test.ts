/** MemoryRuntime: the deterministic runtime of unit tests and the simulator, same contract as DockerRuntime. */
import { describe, it, expect } from 'vitest'
import { encodeRecord, parseContainer, type Container } from '../../storage/statestore/index.ts'
import { MemoryRuntime, MemoryRuntimeError } from '../../runtime/memory-runtime.ts'
import type { RuntimeChange } from '../../runtime/runtime.ts'

const identity = { hostId: '12D3KooWHostA', hostName: 'host-a' }

function setup(): { rt: MemoryRuntime; changes: RuntimeChange[]; clock: { ms: number } } {
  const clock = { ms: Date.UTC(2026, 0, 1) }
  const rt = new MemoryRuntime({ identity, now: () => clock.ms })
  const changes: RuntimeChange[] = []
  rt.subscribe((c) => changes.push(c))
  return { rt, changes, clock }
}

function summary(changes: RuntimeChange[]): string[] {
  return changes.map((c) => {
    switch (c.type) {
      case 'upsert':
        return `upsert ${c.container.name} ${c.container.state}`
      case 'remove':
        return `remove ${c.id.slice(0, 4)}`
      case 'reconciled':
        return `reconciled ${c.containers.map((x) => x.name).join(',')}`
      case 'status':
        return `status ${c.status.degraded ?? 'ok'}`
    }
  })
}

function expectStorable(c: Container): void {
  const parsed = parseContainer(encodeRecord(c))
  expect(parsed.ok ? parsed.record : parsed.error).toEqual(c)
}

describe('MemoryRuntime', () => {
  it('reports existing containers on start, then every change as it happens', async () => {
    const { rt, changes, clock } = setup()
    const pre = rt.run({ name: 'pre', image: 'img:1' })
    expect(rt.status()).toMatchObject({ runtime: 'memory', degraded: 'not started' })
    expect(changes).toEqual([]) // nothing before start
    await rt.start()
    expect(summary(changes)).toEqual(['reconciled pre', 'status ok'])

    clock.ms += 1000
    const web = rt.run({ name: 'web', image: 'img:1', labels: { 'shoal.service': 'web' }, ips: ['10.213.1.2'], ports: [{ containerPort: 80, protocol: 'tcp', hostPort: 8080, hostIp: '127.0.0.1' }] })
    expect(web).toMatchObject({ state: 'running', host: identity.hostId, hostName: 'host-a', startedAt: '2026-01-01T00:00:01.000Z', ips: ['10.213.1.2'] })
    clock.ms += 1000
    rt.stopContainer(web.id, 143)
    rt.remove(pre.id)
    expect(summary(changes.slice(2))).toEqual(['upsert web created', 'upsert web running', 'upsert web exited', `remove ${pre.id.slice(0, 4)}`])
    const stopped = rt.containers().find((c) => c.id === web.id)
    expect(stopped).toMatchObject({ state: 'exited', exitCode: 143, finishedAt: '2026-01-01T00:00:02.000Z' })
    expect(rt.containers().map((c) => c.name)).toEqual(['web'])
    for (const c of rt.containers()) expectStorable(c)
  })

  it('kill, pause, health and rename are upserts with the matching record', async () => {
    const { rt, changes } = setup()
    await rt.start()
    const c = rt.run({ name: 'db', image: 'pg:16', health: 'starting' })
    expect(c.health).toBe('starting')
    expect(rt.setHealth(c.id, 'healthy').health).toBe('healthy')
    expect(rt.pause(c.id).state).toBe('paused')
    expect(rt.unpause(c.id).state).toBe('running')
    expect(rt.rename(c.id, 'db2').name).toBe('db2')
    expect(rt.kill(c.id)).toMatchObject({ state: 'exited', exitCode: 137 })
    expect(rt.startContainer(c.id)).toMatchObject({ state: 'running', health: 'starting' })
    expect(rt.startContainer(c.id).exitCode).toBeUndefined()
    expect(rt.markDead(c.id)).toMatchObject({ state: 'dead', exitCode: 255 })
    expect(changes.filter((x) => x.type === 'upsert')).toHaveLength(10)
  })

  it('hides changes while the engine is down and reports the whole truth when it is back', async () => {
    const { rt, changes } = setup()
    await rt.start()
    const a = rt.run({ name: 'a', image: 'img' })
    const b = rt.run({ name: 'b', image: 'img' })
    changes.length = 0
    rt.engineDown('dockerd killed')
    expect(rt.status().degraded).toBe('dockerd killed')
    rt.kill(a.id) // died with the engine
    rt.remove(b.id) // event lost
    rt.run({ name: 'c', image: 'img' })
    expect(summary(changes)).toEqual(['status dockerd killed'])
    // The view is the last known truth until the engine answers again.
    expect(rt.containers().map((c) => `${c.name} ${c.state}`)).toEqual(['a running', 'b running'])
    expect(rt.engineContainers().map((c) => `${c.name} ${c.state}`)).toEqual(['a exited', 'c running'])
    rt.engineUp()
    expect(summary(changes.slice(1))).toEqual(['reconciled a,c', 'status ok'])
    expect(rt.containers()).toEqual(rt.engineContainers())
  })

  it('starting while the engine is down says degraded and reports nothing until it is up', async () => {
    const { rt, changes } = setup()
    rt.run({ name: 'a', image: 'img' })
    rt.engineDown('no socket')
    await rt.start()
    expect(summary(changes)).toEqual(['status no socket'])
    rt.engineUp()
    expect(summary(changes)).toEqual(['status no socket', 'reconciled a', 'status ok'])
  })

  it('emits nothing after stop, and unsubscribed listeners hear nothing', async () => {
    const { rt, changes } = setup()
    const other: RuntimeChange[] = []
    const unsubscribe = rt.subscribe((c) => other.push(c))
    await rt.start()
    unsubscribe()
    rt.run({ name: 'a', image: 'img' })
    expect(other).toHaveLength(2)
    await rt.stop()
    const before = changes.length
    rt.run({ name: 'b', image: 'img' })
    rt.reconcile()
    rt.engineDown()
    rt.engineUp()
    expect(changes).toHaveLength(before)
  })

  it('derives distinct 64-hex ids from the host id, the same on every run', () => {
    const ids = (hostId: string): string[] => {
      const rt = new MemoryRuntime({ identity: { hostId, hostName: 'h' } })
      return [rt.create({ name: 'a', image: 'i' }).id, rt.create({ name: 'b', image: 'i' }).id]
    }
    const first = ids('12D3KooWHostA')
    expect(first).toEqual(ids('12D3KooWHostA'))
    expect(first[0]).toMatch(/^[0-9a-f]{64}$/)
    expect(new Set([...first, ...ids('12D3KooWHostB')]).size).toBe(4)
  })

  it('refuses what an engine refuses, and a bad identity', () => {
    const { rt } = setup()
    const a = rt.create({ name: 'a', image: 'img' })
    expect(() => rt.create({ name: 'a', image: 'img' })).toThrow(MemoryRuntimeError)
    expect(() => rt.create({ name: 'x', image: 'img', id: a.id })).toThrow(/already exists/)
    expect(() => rt.startContainer('nope')).toThrow(/no such container/)
    expect(() => rt.pause(a.id)).toThrow(/not running/)
    expect(() => new MemoryRuntime({ identity: { hostId: 'bad/id', hostName: 'h' } })).toThrow(/peer id/)
    expect(() => new MemoryRuntime({ identity: { hostId: 'ok', hostName: '' } })).toThrow(/host name/)
  })

  it('clamps odd input into records the StateStore accepts', async () => {
    const { rt } = setup()
    await rt.start()
    const labels = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`l${i}`, 'v'.repeat(5000)]))
    const c = rt.run({ name: '/weird name!', image: '', labels: { ...labels, 'shoal.service': 'web' }, ips: ['fd00::2', 'garbage', '10.0.0.2'] })
    expect(c.name).toBe('weird-name-')
    expect(c.image).toBe('unknown')
    expect(c.ips).toEqual(['fd00::2', '10.0.0.2'])
    expect(c.labels['shoal.service']).toBe('web')
    expectStorable(c)
  })

  it('a periodic reconcile repeats the truth', async () => {
    const { rt, changes } = setup()
    await rt.start()
    rt.run({ name: 'b', image: 'img' })
    rt.run({ name: 'a', image: 'img' })
    changes.length = 0
    rt.reconcile()
    expect(summary(changes)).toEqual(['reconciled a,b'])
  })
})
