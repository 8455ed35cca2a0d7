/**
 * DockerRuntime as a TaskEngine (issue 12) against a real private dockerd: what the host
 * agent asks of it (run, start, stop with a grace, remove) and the EngineError kinds it gets
 * back. The containers it runs are seen through the runtime's ordinary event/inspect path.
 * Waits poll with generous timeouts; nothing asserts on elapsed time.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { connect, createServer as createTcpServer } from 'node:net'
import { DockerRuntime } from '../../runtime/docker-runtime.ts'
import { EngineError, type Container, type TaskContainerSpec } from '../../runtime/runtime.ts'
import { buildTestImage, startDockerd, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'
import { waitFor } from '../helpers/processes.ts'

const identity = { hostId: '12D3KooWHostT', hostName: 'host-t' }

function spec(name: string, overrides: Partial<TaskContainerSpec> = {}): TaskContainerSpec {
  return {
    name, image: TEST_IMAGE, entrypoint: [], cmd: ['sleep', '3600'], env: {}, labels: { 'shoal.service': name.split('.')[0] ?? name },
    exposed: [], published: [], cpuLimit: 0, memoryLimitBytes: 0, memoryReservationBytes: 0, healthCheck: null,
    dns: [], dnsSearch: [], stopGraceMs: 1000, ...overrides,
  }
}

/** The subset of `docker inspect` these tests read. */
interface Inspect {
  Id: string
  Name: string
  State: { Status: string; ExitCode: number; Health?: { Status: string } }
  Config: { Env: string[]; Cmd: string[] | null; Entrypoint: string[] | null; Labels: Record<string, string>; StopTimeout?: number; Healthcheck?: { Test: string[]; Interval: number; Timeout: number; StartPeriod: number; Retries: number } }
  HostConfig: { RestartPolicy: { Name: string }; NanoCpus: number; Memory: number; MemoryReservation: number; Dns: string[]; DnsSearch: string[]; PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> }
}

async function engineErrorOf(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p
  } catch (err) {
    if (err instanceof EngineError) return err
    throw err
  }
  throw new Error('expected an EngineError, but the call succeeded')
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** Connects to 127.0.0.1:port and reads until the peer closes; resolves what it said. */
function readFrom(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setTimeout(2_000, () => socket.destroy(new Error('no answer within 2 s')))
    socket.on('data', (d: Buffer) => (text += d.toString()))
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
}

describe('DockerRuntime as a TaskEngine against a private dockerd', () => {
  let d: Dockerd
  let rt: DockerRuntime

  const inspect = async (idOrName: string): Promise<Inspect> => {
    const parsed = JSON.parse(await d.dockerOk(['inspect', '--type', 'container', idOrName])) as Inspect[]
    const first = parsed[0]
    if (first === undefined) throw new Error(`docker inspect ${idOrName} gave nothing`)
    return first
  }
  const exists = async (idOrName: string): Promise<boolean> => (await d.docker(['inspect', '--type', 'container', idOrName])).code === 0
  const reported = (id: string, test: (c: Container) => boolean = () => true) => () => rt.containers().find((c) => c.id === id && test(c))

  beforeAll(async () => {
    d = await startDockerd('task')
    await buildTestImage(d.socket)
    rt = new DockerRuntime({ socket: d.socket, identity })
    await rt.start()
    expect(rt.status().degraded).toBeNull()
  })
  afterAll(async () => {
    await rt?.stop()
    await d?.stop()
  })

  it('runs a task with its labels, env, command, limits and health check, seen through the event path; health turns healthy', async () => {
    const id = await rt.runTask(spec('web.1.1', {
      env: { GREETING: 'hello world', EMPTY: '' },
      labels: { 'shoal.service': 'web', 'shoal.task': 'web.1', 'shoal.spec-version': '3', tier: 'front' },
      cmd: ['sh', '-c', 'exec sleep 3600'],
      cpuLimit: 0.5,
      memoryLimitBytes: 64 * 1024 * 1024,
      memoryReservationBytes: 32 * 1024 * 1024,
      healthCheck: { cmd: ['sh', '-c', 'test -f /tmp/ok'], intervalMs: 200, timeoutMs: 1000, retries: 2, startPeriodMs: 100 },
      dns: [d.gateway],
      dnsSearch: ['shoal'],
      stopGraceMs: 2500,
    }))
    expect(id).toMatch(/^[0-9a-f]{64}$/)

    const info = await inspect(id)
    expect(info.Name).toBe('/web.1.1')
    expect(info.State.Status).toBe('running')
    expect(info.Config.Labels).toEqual({ 'shoal.service': 'web', 'shoal.task': 'web.1', 'shoal.spec-version': '3', tier: 'front' })
    expect(info.Config.Env).toEqual(expect.arrayContaining(['GREETING=hello world', 'EMPTY=']))
    expect(info.Config.Cmd).toEqual(['sh', '-c', 'exec sleep 3600'])
    expect(info.Config.StopTimeout).toBe(3)
    expect(info.Config.Healthcheck).toEqual({ Test: ['CMD', 'sh', '-c', 'test -f /tmp/ok'], Interval: 200_000_000, Timeout: 1_000_000_000, StartPeriod: 100_000_000, Retries: 2 })
    expect(info.HostConfig).toMatchObject({
      RestartPolicy: { Name: 'no' }, NanoCpus: 500_000_000, Memory: 64 * 1024 * 1024, MemoryReservation: 32 * 1024 * 1024, Dns: [d.gateway], DnsSearch: ['shoal'],
    })
    // The process really sees the environment it was given.
    expect(await d.dockerOk(['exec', id, 'sh', '-c', 'echo "$GREETING"'])).toBe('hello world')

    // The ordinary path reports it: running, labelled, health starting (the file is not there yet).
    const running = await waitFor('web.1.1 reported running', reported(id, (c) => c.state === 'running'))
    expect(running).toMatchObject({ name: 'web.1.1', image: TEST_IMAGE, host: identity.hostId, labels: { 'shoal.task': 'web.1', tier: 'front' } })
    await waitFor('web.1.1 reported unhealthy or starting', reported(id, (c) => c.health === 'starting' || c.health === 'unhealthy'))
    await d.dockerOk(['exec', '-i', id, 'touch', '/tmp/ok'])
    await waitFor('web.1.1 reported healthy', reported(id, (c) => c.health === 'healthy'))
    expect((await inspect(id)).State.Health?.Status).toBe('healthy')
    await rt.removeTask(id)
  })

  it('stops with the grace (sleep as PID 1 ignores SIGTERM and is killed after it), starts again, and removes; each call is idempotent', async () => {
    const id = await rt.runTask(spec('stopper.1.1'))
    await waitFor('stopper reported running', reported(id, (c) => c.state === 'running'))

    await rt.stopTask(id, 1000)
    const stopped = await inspect(id)
    expect(stopped.State.Status).toBe('exited')
    expect(stopped.State.ExitCode).toBe(137)
    await waitFor('stopper reported exited', reported(id, (c) => c.state === 'exited' && c.exitCode === 137))
    await rt.stopTask(id, 1000) // already stopped (304): success

    await rt.startTask(id)
    expect((await inspect(id)).State.Status).toBe('running')
    await rt.startTask(id) // already running (304): success
    await waitFor('stopper reported running again', reported(id, (c) => c.state === 'running'))

    // Removing a running container forces it.
    await rt.removeTask(id)
    expect(await exists(id)).toBe(false)
    await waitFor('stopper reported removed', () => !rt.containers().some((c) => c.id === id))
    await rt.removeTask(id) // already gone (404): success
    await rt.stopTask(id, 1000) // missing: success
    const start = await engineErrorOf(rt.startTask(id))
    expect(start.kind).toBe('not-found')
    expect(start.message).toContain(id)
  })

  it('waits out a grace longer than its request timeout: the stop request gets the grace on top', async () => {
    // Started by the other runtime: starting a container can itself take longer than 500 ms here.
    const id = await rt.runTask(spec('patient.1.1'))
    const quick = new DockerRuntime({ socket: d.socket, identity, requestTimeoutMs: 1500 })
    await quick.start()
    try {
      // docker stop -t 4 says nothing for 4 s: a 1.5 s bound alone would cut it off. The bound
      // on top of the grace leaves the engine 1.5 s to kill and reap, plenty even under load.
      await quick.stopTask(id, 4000)
      expect((await inspect(id)).State).toMatchObject({ Status: 'exited', ExitCode: 137 })
      await quick.removeTask(id)
    } finally {
      await quick.stop()
    }
  })

  it('refuses a missing image without pulling it, with what to do', async () => {
    const err = await engineErrorOf(rt.runTask(spec('ghost.1.1', { image: 'shoal-test/not-loaded:9' })))
    expect(err.kind).toBe('image-missing')
    expect(err.message).toContain('image shoal-test/not-loaded:9 is not on this host\'s Docker engine: docker pull or docker load it on every host that may run the service')
    expect(await exists('ghost.1.1')).toBe(false)
    // Nothing was pulled (no registry is reachable here anyway).
    expect((await d.docker(['image', 'inspect', 'shoal-test/not-loaded:9'])).code).not.toBe(0)
  })

  it('refuses a name in use and leaves the running container alone', async () => {
    const id = await rt.runTask(spec('twin.1.1'))
    const err = await engineErrorOf(rt.runTask(spec('twin.1.1', { env: { OTHER: '1' } })))
    expect(err.kind).toBe('name-conflict')
    expect(err.message).toContain('twin.1.1')
    const info = await inspect('twin.1.1')
    expect(info.Id).toBe(id)
    expect(info.State.Status).toBe('running')
    await rt.removeTask(id)
  })

  it('removes the container again when it cannot start, and says why (invalid)', async () => {
    const err = await engineErrorOf(rt.runTask(spec('broken.1.1', { cmd: ['/no/such/program'] })))
    expect(err.kind).toBe('invalid')
    expect(err.message).toMatch(/no such file|not found/i)
    expect(await exists('broken.1.1')).toBe(false)
    // Bad input is refused before the engine is asked.
    const bad = await engineErrorOf(rt.runTask(spec('bad.1.1', { published: [{ hostPort: 70_000, containerPort: 80, protocol: 'tcp' }] })))
    expect(bad.kind).toBe('invalid')
    expect(bad.message).toContain('70000')
  })

  it('publishes a port on every host address, as docker run -p does: it answers on 127.0.0.1', async () => {
    const hostPort = await freeLoopbackPort()
    const id = await rt.runTask(spec('echo.1.1', {
      entrypoint: ['nc'],
      // busybox nc: -ll keeps listening with -e.
      cmd: ['-ll', '-p', '8080', '-e', 'echo', 'hi'],
      exposed: [{ port: 8080, protocol: 'tcp' }],
      published: [{ hostPort, containerPort: 8080, protocol: 'tcp' }],
    }))
    const info = await inspect(id)
    expect(info.Config.Entrypoint).toEqual(['nc'])
    expect(info.HostConfig.PortBindings).toEqual({ '8080/tcp': [{ HostIp: '', HostPort: String(hostPort) }] })
    // docker-proxy accepts before nc listens: retry until the container itself answers.
    expect(await waitFor('the published port to answer', async () => ((await readFrom(hostPort)).trim() === 'hi' ? true : undefined))).toBe(true)
    const record = await waitFor('echo reported with its port', reported(id, (c) => c.ports.some((p) => p.hostPort === hostPort)))
    // Docker binds HostIp '' on both families; MemoryRuntime reports the same two mappings.
    expect(record.ports).toEqual([
      { containerPort: 8080, protocol: 'tcp', hostPort, hostIp: '0.0.0.0' },
      { containerPort: 8080, protocol: 'tcp', hostPort, hostIp: '::' },
    ])
    await rt.removeTask(id)
  })

  it('says unavailable when there is no engine connection to ask', async () => {
    const idle = new DockerRuntime({ socket: d.socket, identity })
    expect((await engineErrorOf(idle.runTask(spec('idle.1.1')))).kind).toBe('unavailable')
    const nowhere = new DockerRuntime({ socket: `${d.root}/no-such.sock`, identity, backoffMinMs: 60_000 })
    await nowhere.start()
    try {
      expect(nowhere.status().degraded).not.toBeNull()
      for (const call of [nowhere.runTask(spec('idle.1.1')), nowhere.startTask('abc'), nowhere.stopTask('abc', 0), nowhere.removeTask('abc')]) {
        const err = await engineErrorOf(call)
        expect(err.kind).toBe('unavailable')
        expect(err.message).toContain('no-such.sock')
      }
    } finally {
      await nowhere.stop()
    }
    expect(await exists('idle.1.1')).toBe(false)
  })
})
