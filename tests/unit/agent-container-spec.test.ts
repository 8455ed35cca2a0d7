/**
 * The host agent's container spec (runtime/agent/container-spec.ts): what a task's container
 * is created with, and which version of the service it runs.
 */
import { describe, it, expect } from 'vitest'
import { servicePortsOf, serviceOf } from '../../storage/statestore/container-labels.ts'
import { specForTask, taskContainerSpec } from '../../runtime/agent/container-spec.ts'
import { service, updated } from '../helpers/scheduler-fixtures.ts'

const task = { service: 'web', slot: '2', generation: 7 }

describe('taskContainerSpec', () => {
  const record = service({
    name: 'web', image: 'app:1', entrypoint: ['/bin/app'], cmd: ['serve', '--port', '80'], env: { MODE: 'prod' },
    labels: { team: 'a', 'com.example/x': 'y' }, ports: [80], published: [{ published: 8053, target: 53, protocol: 'udp', mode: 'host' }, { published: 8080, target: 80, mode: 'host' }, { published: 9000, target: 80 }],
    limits: { cpus: 0.5, memoryBytes: 256 * 2 ** 20 }, reservations: { cpus: 0.25, memoryBytes: 64 * 2 ** 20 },
    healthCheck: { cmd: ['curl', '-f', 'http://localhost/'], intervalMs: 2000, retries: 2 }, stopGracePeriodMs: 3000,
  })

  it('names the container after the task and labels it so a restarted peer can adopt it', () => {
    const spec = taskContainerSpec(record, task, ['172.17.0.1'])
    expect(spec.name).toBe('web.2.7')
    expect(spec.labels).toEqual({
      team: 'a', 'com.example/x': 'y',
      'shoal.service': 'web', 'shoal.task': 'web.2.7', 'shoal.spec-version': '1', 'shoal.port': '53/udp,80',
    })
    // The DNS layer reads these labels back as the service and its SRV ports.
    expect(serviceOf(spec)).toBe('web')
    expect(servicePortsOf({ labels: spec.labels, ports: [] })).toEqual([{ port: 53, protocol: 'udp' }, { port: 80, protocol: 'tcp' }])
  })

  it('carries the command, environment, ports, resources, health check and grace of the spec', () => {
    const spec = taskContainerSpec(record, task, ['172.17.0.1'])
    expect(spec).toMatchObject({
      image: 'app:1', entrypoint: ['/bin/app'], cmd: ['serve', '--port', '80'], env: { MODE: 'prod' },
      exposed: [{ port: 53, protocol: 'udp' }, { port: 80, protocol: 'tcp' }],
      published: [{ hostPort: 8053, containerPort: 53, protocol: 'udp' }, { hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      cpuLimit: 0.5, memoryLimitBytes: 256 * 2 ** 20, memoryReservationBytes: 64 * 2 ** 20,
      healthCheck: { cmd: ['curl', '-f', 'http://localhost/'], intervalMs: 2000, timeoutMs: 30_000, retries: 2, startPeriodMs: 0 },
      stopGraceMs: 3000,
    })
  })

  it('points DNS at the peer with search domain shoal, or leaves the engine default without resolvers', () => {
    expect(taskContainerSpec(record, task, ['172.17.0.1'])).toMatchObject({ dns: ['172.17.0.1'], dnsSearch: ['shoal'] })
    expect(taskContainerSpec(record, task, [])).toMatchObject({ dns: [], dnsSearch: [] })
  })

  it('has no shoal.port label and no exposed ports when the service has no ports', () => {
    const spec = taskContainerSpec(service({ name: 'worker' }), { service: 'worker', slot: '1', generation: 1 }, [])
    expect(Object.hasOwn(spec.labels, 'shoal.port')).toBe(false)
    expect(spec.exposed).toEqual([])
    expect(spec.healthCheck).toBeNull()
  })

  it('never lets a stored user label override Shoal\'s own', () => {
    const forged = { ...record, labels: { 'shoal.task': 'other.1.1', 'shoal.service': 'other', 'shoal.port': '9' } }
    const spec = taskContainerSpec(forged, task, [])
    expect(spec.labels['shoal.task']).toBe('web.2.7')
    expect(spec.labels['shoal.service']).toBe('web')
    expect(spec.labels['shoal.port']).toBe('53/udp,80')
  })
})

describe('specForTask', () => {
  const v1 = service({ name: 'web', image: 'app:1' })
  const v2 = updated(v1, { image: 'app:2' })
  const v3 = updated(v2, { replicas: 3 })

  it('runs the record at its own version', () => {
    expect(specForTask(v2, 2).image).toBe('app:2')
  })
  it('runs the previous spec for a task still at the previous version (an update in progress)', () => {
    expect(specForTask(v2, 1).image).toBe('app:1')
    expect(specForTask(v2, 1).version).toBe(1)
  })
  it('runs the newest record for a task at an older version with the same instance content (a scale)', () => {
    expect(v3.instanceVersion).toBe(2)
    expect(specForTask(v3, 2)).toBe(v3)
  })
  it('falls back to the record for a version it does not know', () => {
    expect(specForTask(v2, 9)).toBe(v2)
  })
})
