/** docker-task-config: TaskContainerSpec → Docker create body, and engine answers → EngineError kinds. */
import { describe, it, expect } from 'vitest'
import { engineErrorOf, healthTest, stopTimeoutSeconds, taskCreateBody, type EngineFailure, type EngineOp } from '../../runtime/docker-task-config.ts'
import type { EngineErrorKind, TaskContainerSpec } from '../../runtime/runtime.ts'

function spec(overrides: Partial<TaskContainerSpec> = {}): TaskContainerSpec {
  return {
    name: 'web.1.1', image: 'app:1', entrypoint: [], cmd: [], env: {}, labels: {}, exposed: [], published: [],
    cpuLimit: 0, memoryLimitBytes: 0, memoryReservationBytes: 0, healthCheck: null, dns: [], dnsSearch: [], stopGraceMs: 10_000,
    ...overrides,
  }
}

function body(s: TaskContainerSpec) {
  const r = taskCreateBody(s)
  if (!r.ok) throw new Error(`expected a body, got: ${r.error.message}`)
  return r.body
}

function refusal(s: TaskContainerSpec): string {
  const r = taskCreateBody(s)
  if (r.ok) throw new Error('expected the spec to be refused')
  expect(r.error.kind).toBe('invalid')
  return r.error.message
}

describe('taskCreateBody', () => {
  it('maps every field of a full spec', () => {
    const b = body(spec({
      name: 'web.2.7',
      image: 'registry.local/app:1.4',
      entrypoint: ['/bin/app'],
      cmd: ['serve', '--port', '8080'],
      env: { ZED: 'last', A: '1', EQ: 'x=y', EMPTY: '' },
      labels: { 'shoal.service': 'web', 'shoal.task': 'web.2', 'shoal.spec-version': '4', 'shoal.port': '8080', tier: 'front' },
      exposed: [{ port: 8080, protocol: 'tcp' }, { port: 53, protocol: 'udp' }],
      published: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }, { hostPort: 8443, containerPort: 8443, protocol: 'tcp' }, { hostPort: 81, containerPort: 8080, protocol: 'tcp' }],
      cpuLimit: 1.5,
      memoryLimitBytes: 256 * 1024 * 1024,
      memoryReservationBytes: 128 * 1024 * 1024,
      healthCheck: { cmd: ['curl', '-f', 'http://localhost:8080/'], intervalMs: 5_000, timeoutMs: 2_000, retries: 3, startPeriodMs: 1_500 },
      dns: ['10.213.1.1'],
      dnsSearch: ['shoal'],
      stopGraceMs: 2_500,
    }))
    expect(b).toEqual({
      Image: 'registry.local/app:1.4',
      Entrypoint: ['/bin/app'],
      Cmd: ['serve', '--port', '8080'],
      Env: ['A=1', 'EMPTY=', 'EQ=x=y', 'ZED=last'],
      Labels: { 'shoal.service': 'web', 'shoal.task': 'web.2', 'shoal.spec-version': '4', 'shoal.port': '8080', tier: 'front' },
      ExposedPorts: { '8080/tcp': {}, '53/udp': {}, '8443/tcp': {} },
      StopTimeout: 3,
      Healthcheck: { Test: ['CMD', 'curl', '-f', 'http://localhost:8080/'], Interval: 5_000_000_000, Timeout: 2_000_000_000, StartPeriod: 1_500_000_000, Retries: 3 },
      HostConfig: {
        RestartPolicy: { Name: 'no' },
        PortBindings: {
          '8080/tcp': [{ HostIp: '', HostPort: '80' }, { HostIp: '', HostPort: '81' }],
          '8443/tcp': [{ HostIp: '', HostPort: '8443' }],
        },
        NanoCpus: 1_500_000_000,
        Memory: 256 * 1024 * 1024,
        MemoryReservation: 128 * 1024 * 1024,
        Dns: ['10.213.1.1'],
        DnsSearch: ['shoal'],
      },
    })
  })

  it('leaves out what is empty or zero, so the image and the engine decide', () => {
    expect(body(spec({ stopGraceMs: 0 }))).toEqual({ Image: 'app:1', Env: [], Labels: {}, StopTimeout: 0, HostConfig: { RestartPolicy: { Name: 'no' } } })
  })

  it('copies what it is given: changing the body does not change the spec', () => {
    const s = spec({ cmd: ['a'], entrypoint: ['b'], labels: { k: 'v' }, dns: ['1.1.1.1'] })
    const b = body(s)
    b.Cmd?.push('x')
    b.Entrypoint?.push('x')
    b.Labels['k'] = 'changed'
    b.HostConfig.Dns?.push('x')
    expect(s).toMatchObject({ cmd: ['a'], entrypoint: ['b'], labels: { k: 'v' }, dns: ['1.1.1.1'] })
  })

  it('rounds the stop grace up to whole seconds and fractional CPUs to nanoCPUs', () => {
    expect([0, 1, 999, 1000, 1001, 10_000].map(stopTimeoutSeconds)).toEqual([0, 1, 1, 1, 2, 10])
    expect(body(spec({ cpuLimit: 0.1 })).HostConfig.NanoCpus).toBe(100_000_000)
    expect(body(spec({ cpuLimit: 1 / 3 })).HostConfig.NanoCpus).toBe(333_333_333)
  })

  it('health check: exec form as CMD, a single string as CMD-SHELL, Docker forms passed through', () => {
    expect(healthTest(['pg_isready', '-U', 'postgres'])).toEqual(['CMD', 'pg_isready', '-U', 'postgres'])
    expect(healthTest(['curl -f http://localhost/ || exit 1'])).toEqual(['CMD-SHELL', 'curl -f http://localhost/ || exit 1'])
    expect(healthTest(['CMD', 'true'])).toEqual(['CMD', 'true'])
    expect(healthTest(['CMD-SHELL', 'true'])).toEqual(['CMD-SHELL', 'true'])
    expect(healthTest(['NONE'])).toEqual(['NONE'])
    const hc = { cmd: ['test -f /tmp/ok'], intervalMs: 200, timeoutMs: 100, retries: 0, startPeriodMs: 0 }
    expect(body(spec({ healthCheck: hc })).Healthcheck).toEqual({ Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 200_000_000, Timeout: 100_000_000, StartPeriod: 0, Retries: 0 })
  })

  it('refuses bad input with the field and what to do, before the engine is asked', () => {
    const hc = { cmd: ['true'], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 }
    const cases: Array<[Partial<TaskContainerSpec>, string]> = [
      [{ name: '' }, 'container name'],
      [{ name: 'x' }, 'container name'],
      [{ name: '-web' }, 'container name'],
      [{ name: 'web/1' }, 'container name'],
      [{ image: ' ' }, 'image is empty'],
      [{ cpuLimit: -1 }, 'cpuLimit -1'],
      [{ cpuLimit: Number.NaN }, 'cpuLimit NaN'],
      [{ memoryLimitBytes: 1.5 }, 'memoryLimitBytes 1.5'],
      [{ memoryReservationBytes: -1 }, 'memoryReservationBytes -1'],
      [{ stopGraceMs: Number.POSITIVE_INFINITY }, 'stopGraceMs Infinity'],
      [{ env: { 'A=B': '1' } }, '"A=B"'],
      [{ env: { '': '1' } }, '""'],
      [{ exposed: [{ port: 0, protocol: 'tcp' }] }, 'exposed port 0'],
      [{ published: [{ hostPort: 80, containerPort: 65_536, protocol: 'tcp' }] }, 'published port 80:65536'],
      [{ published: [{ hostPort: 8.5, containerPort: 80, protocol: 'udp' }] }, 'published port 8.5:80'],
      [{ healthCheck: { ...hc, cmd: [] } }, 'health check has no command'],
      [{ healthCheck: { ...hc, intervalMs: -5 } }, 'healthCheck.intervalMs -5'],
      [{ healthCheck: { ...hc, timeoutMs: Number.NaN } }, 'healthCheck.timeoutMs NaN'],
      [{ healthCheck: { ...hc, startPeriodMs: -1 } }, 'healthCheck.startPeriodMs -1'],
      [{ healthCheck: { ...hc, retries: 1.5 } }, 'healthCheck.retries 1.5'],
    ]
    for (const [overrides, needle] of cases) {
      const message = refusal(spec(overrides))
      expect(message, JSON.stringify(overrides)).toContain(needle)
      expect(message).toContain('fix the service spec')
    }
  })
})

describe('engineErrorOf', () => {
  const subject = { socket: '/run/docker.sock', container: 'web.1.1', image: 'app:1' }
  const kind = (op: EngineOp, failure: EngineFailure): EngineErrorKind | 'ok' => engineErrorOf(op, failure, subject)?.kind ?? 'ok'

  it('maps each engine answer to the kind the agent acts on', () => {
    const table: Array<[EngineOp, number | null, string, EngineErrorKind | 'ok']> = [
      ['create', 404, 'No such image: app:1', 'image-missing'],
      ['create', 409, 'Conflict. The container name "/web.1.1" is already in use by container "abc"', 'name-conflict'],
      ['create', 400, 'invalid reference format', 'invalid'],
      ['create', 400, 'Minimum memory limit allowed is 6MB', 'invalid'],
      ['create', 404, 'network nope not found', 'invalid'],
      ['create', 500, 'mkdir /var/lib/docker/x: read-only file system', 'invalid'],
      ['create', 500, 'connection error: desc = "transport: Error while dialing: dial unix /run/containerd/containerd.sock: connect: connection refused"', 'unavailable'],
      ['create', 503, 'the engine is shutting down', 'unavailable'],
      ['create', null, 'connect ECONNREFUSED /run/docker.sock', 'unavailable'],
      ['create', null, 'socket hang up', 'unavailable'],
      ['start', 304, 'container already started', 'ok'],
      ['start', 404, 'No such container: abc', 'not-found'],
      ['start', 400, 'exec: "/nope": stat /nope: no such file or directory', 'invalid'],
      ['start', 500, 'driver failed programming external connectivity: port is already allocated', 'invalid'],
      ['start', 500, 'context deadline exceeded', 'unavailable'],
      ['stop', 304, 'container already stopped', 'ok'],
      ['stop', 404, 'No such container: abc', 'ok'],
      ['stop', null, 'The operation was aborted', 'unavailable'],
      ['remove', 404, 'No such container: abc', 'ok'],
      ['remove', 409, 'removal of container abc is already in progress', 'ok'],
      ['remove', 409, 'You cannot remove a running container', 'invalid'],
      ['remove', 500, 'unable to remove filesystem', 'invalid'],
    ]
    for (const [op, status, message, expected] of table) expect(kind(op, { status, message }), `${op} ${status} ${message}`).toBe(expected)
  })

  it('says what to do, and keeps Docker\'s own words', () => {
    const missing = engineErrorOf('create', { status: 404, message: 'No such image: app:1' }, subject)
    expect(missing?.message).toBe("image app:1 is not on this host's Docker engine: docker pull or docker load it on every host that may run the service (Shoal does not pull images) (No such image: app:1)")
    const conflict = engineErrorOf('create', { status: 409, message: 'Conflict.' }, subject)
    expect(conflict?.message).toContain('container name web.1.1 is already in use on this host (Conflict.)')
    const bad = engineErrorOf('create', { status: 400, message: 'invalid reference format' }, subject)
    expect(bad?.message).toBe('Docker refused to create container web.1.1 (HTTP 400): invalid reference format')
    const down = engineErrorOf('stop', { status: null, message: 'connect ENOENT /run/docker.sock' }, subject)
    expect(down?.message).toContain('Docker engine at /run/docker.sock did not answer (stop web.1.1): connect ENOENT /run/docker.sock')
    expect(down?.name).toBe('EngineError')
  })
})
