/**
 * DockerRuntime against a real private dockerd (tests/helpers/dockerd.ts), and against a fake
 * engine on a Unix socket for what a real one will not do on demand: garbage in the event
 * stream, a stream that just ends, slow inspections under a burst of events.
 * Waits poll with generous timeouts; nothing asserts on elapsed time.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import { join } from 'node:path'
import { rmSync } from 'node:fs'
import { encodeRecord, parseContainer, type Container } from '../../storage/statestore/index.ts'
import { DockerRuntime } from '../../runtime/docker-runtime.ts'
import type { RuntimeChange, RuntimeStatus } from '../../runtime/runtime.ts'
import type { DockerInspect } from '../../runtime/docker-mapping.ts'
import { buildTestImage, startDockerd, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'
import { tempDir, waitFor } from '../helpers/processes.ts'

const identity = { hostId: '12D3KooWHostA', hostName: 'host-a' }

/** Collects a runtime's changes; the waits poll it. */
class Recorder {
  readonly changes: RuntimeChange[] = []
  constructor(rt: DockerRuntime) {
    rt.subscribe((c) => {
      if (c.type === 'upsert' || c.type === 'reconciled') for (const x of c.type === 'upsert' ? [c.container] : c.containers) expectStorable(x)
      this.changes.push(c)
    })
  }
  mark(): number {
    return this.changes.length
  }
  since(mark: number): RuntimeChange[] {
    return this.changes.slice(mark)
  }
  upsert(from: number, test: (c: Container) => boolean): Container | undefined {
    for (const c of this.since(from)) if (c.type === 'upsert' && test(c.container)) return c.container
    return undefined
  }
  reconciled(from: number, test: (cs: Container[]) => boolean = () => true): Container[] | undefined {
    for (const c of this.since(from)) if (c.type === 'reconciled' && test(c.containers)) return c.containers
    return undefined
  }
  status(from: number, test: (s: RuntimeStatus) => boolean): RuntimeStatus | undefined {
    for (const c of this.since(from)) if (c.type === 'status' && test(c.status)) return c.status
    return undefined
  }
  removed(from: number, id: string): boolean {
    return this.since(from).some((c) => c.type === 'remove' && c.id === id)
  }
}

function expectStorable(c: Container): void {
  const parsed = parseContainer(encodeRecord(c))
  if (!parsed.ok) throw new Error(`runtime emitted an invalid record (${parsed.error}): ${JSON.stringify(c)}`)
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

describe('DockerRuntime against a private dockerd', () => {
  let d: Dockerd
  let rt: DockerRuntime
  let rec: Recorder
  const byName = (name: string) => (c: Container) => c.name === name

  beforeAll(async () => {
    d = await startDockerd('rt')
    await buildTestImage(d.socket)
  })
  afterAll(async () => {
    await rt?.stop()
    await d?.stop()
  })

  it('reports the containers that existed before it started, then says healthy', async () => {
    await d.dockerOk(['run', '-d', '--name', 'pre', '-l', 'shoal.service=pre', TEST_IMAGE, 'sleep', '3600'])
    await d.dockerOk(['create', '--name', 'fresh', TEST_IMAGE, 'true'])
    rt = new DockerRuntime({ socket: d.socket, identity, backoffMinMs: 6_000 })
    rec = new Recorder(rt)
    await rt.start()
    const first = rec.reconciled(0)
    expect(first?.map((c) => `${c.name} ${c.state}`)).toEqual(['fresh created', 'pre running'])
    expect(rt.status()).toMatchObject({ runtime: 'docker', socket: d.socket, degraded: null, engineVersion: expect.stringMatching(/^\d+\.\d+/) })
    // Healthy only once the view is fresh: the reconciled comes first.
    const order = rec.changes.map((c) => c.type)
    expect(order.indexOf('reconciled')).toBeLessThan(order.indexOf('status'))
    expect(rt.containers().map((c) => c.name)).toEqual(['fresh', 'pre'])
    const pre = rt.containers().find(byName('pre'))
    expect(pre).toMatchObject({ host: identity.hostId, hostName: 'host-a', image: TEST_IMAGE, labels: { 'shoal.service': 'pre' } })
    expect(pre?.id).toMatch(/^[0-9a-f]{64}$/)
  })

  it('follows run, stop and rm as upserts and a remove', async () => {
    const hostPort = await freeLoopbackPort()
    const mark = rec.mark()
    const id = await d.dockerOk(['run', '-d', '--name', 'web', '-l', 'shoal.service=web', '-l', 'tier=front', '-p', `127.0.0.1:${hostPort}:80`, TEST_IMAGE, 'sleep', '3600'])
    const running = await waitFor('an upsert of web running', () => rec.upsert(mark, (c) => c.name === 'web' && c.state === 'running'))
    expect(running.id).toBe(id)
    expect(running.ips).toHaveLength(1)
    expect(running.ips[0]?.startsWith(`10.213.${d.slot}.`)).toBe(true)
    expect(running.labels).toEqual({ 'shoal.service': 'web', tier: 'front' })
    expect(running.ports).toEqual([{ containerPort: 80, protocol: 'tcp', hostPort, hostIp: '127.0.0.1' }])
    expect(running.startedAt).toMatch(/^\d{4}-/)

    const beforeStop = rec.mark()
    // sleep as PID 1 ignores SIGTERM: after 1 s docker stop kills it.
    await d.dockerOk(['stop', '-t', '1', 'web'])
    const exited = await waitFor('an upsert of web exited', () => rec.upsert(beforeStop, (c) => c.name === 'web' && c.state === 'exited'))
    expect(exited.exitCode).toBe(137)
    expect(exited.finishedAt).toMatch(/^\d{4}-/)
    expect(exited.ips).toEqual([])
    // kill, die and stop events for one stop: never the same record twice in a row.
    const webUpserts = rec.since(mark).flatMap((c) => (c.type === 'upsert' && c.container.id === id ? [JSON.stringify(c.container)] : []))
    for (let i = 1; i < webUpserts.length; i++) expect(webUpserts[i]).not.toBe(webUpserts[i - 1])

    const beforeRm = rec.mark()
    await d.dockerOk(['rm', 'web'])
    await waitFor('a remove of web', () => rec.removed(beforeRm, id))
    expect(rt.containers().map((c) => c.name)).toEqual(['fresh', 'pre'])
  })

  it('degrades when dockerd dies and reconciles what changed meanwhile once it is back', async () => {
    const goneId = await d.dockerOk(['run', '-d', '--name', 'gone', TEST_IMAGE, 'sleep', '3600'])
    await waitFor('gone to be reported', () => rt.containers().some(byName('gone')))
    const pre = rt.containers().find(byName('pre'))
    const mark = rec.mark()

    await d.kill()
    const degraded = await waitFor('a degraded status', () => rec.status(mark, (s) => s.degraded !== null))
    expect(degraded.degraded).toMatch(/event stream|unreachable/)
    expect(degraded.engineVersion).not.toBeNull()
    // The last known truth stays until the engine answers again.
    expect(rt.containers().map((c) => c.name)).toEqual(['fresh', 'gone', 'pre'])

    // The runtime retries after 6 s: change things while it is not looking.
    await d.start()
    await d.dockerOk(['rm', '-f', 'gone'])
    await d.dockerOk(['run', '-d', '--name', 'during', TEST_IMAGE, 'sleep', '3600'])
    expect(rt.status().degraded).not.toBeNull() // still backing off: what follows comes from the reconcile

    const afterRestart = rec.mark()
    const truth = await waitFor('a reconcile after the restart', () => rec.reconciled(afterRestart), 30_000)
    expect(truth.map((c) => `${c.name} ${c.state}`)).toEqual(['during running', 'fresh created', 'pre running'])
    expect(truth.some((c) => c.id === goneId)).toBe(false)
    // live-restore: the same container, still running since before the crash.
    expect(truth.find(byName('pre'))).toEqual(pre)
    await waitFor('a healthy status', () => rec.status(afterRestart, (s) => s.degraded === null))
    expect(rt.status().degraded).toBeNull()

    // And events flow again.
    const beforeEvent = rec.mark()
    await d.dockerOk(['kill', 'during'])
    await waitFor('an upsert of during exited', () => rec.upsert(beforeEvent, (c) => c.name === 'during' && c.state === 'exited'))
  })

})

describe('DockerRuntime without an engine', () => {
  it('an unreachable socket says degraded and start() does not throw', async () => {
    const dir = tempDir('shoal-rt-')
    const rt = new DockerRuntime({ socket: join(dir, 'docker.sock'), identity })
    const statuses: RuntimeStatus[] = []
    rt.subscribe((c) => c.type === 'status' && statuses.push(c.status))
    await expect(rt.start()).resolves.toBeUndefined()
    expect(rt.status()).toMatchObject({ runtime: 'docker', engineVersion: null, degraded: expect.stringMatching(/unreachable at .*docker\.sock.*ENOENT/) })
    expect(statuses).toHaveLength(1)
    expect(rt.containers()).toEqual([])
    await rt.stop()
    rmSync(dir, { recursive: true, force: true })
  })
})

/** Just enough of the Engine API for DockerRuntime, on a Unix socket, driven by the test. */
class FakeEngine {
  readonly socket: string
  readonly containers = new Map<string, DockerInspect>()
  readonly streams: ServerResponse[] = []
  inspections = 0
  inFlightById = new Map<string, number>()
  maxInFlightPerId = 0
  inspectDelayMs = 0
  private readonly server: Server
  private readonly dir = tempDir('shoal-fake-engine-')

  constructor() {
    this.socket = join(this.dir, 'docker.sock')
    this.server = createServer((req, res) => void this.handle(req, res))
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socket, resolve))
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** Writes raw bytes to every open event stream. */
  send(text: string): void {
    for (const s of this.streams) if (!s.writableEnded) s.write(text)
  }

  /** Open connections from clients (the event stream and idle keep-alive sockets included). */
  connections(): Promise<number> {
    return new Promise((resolve, reject) => this.server.getConnections((err, n) => (err ? reject(err) : resolve(n))))
  }

  endStreams(): void {
    for (const s of this.streams.splice(0)) s.end()
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? ''
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (path === '/version') return json(200, { Version: '99.0.0-fake', ApiVersion: '1.41' })
    if (path === '/networks') return json(200, [{ Name: 'bridge', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.99.0.0/24', Gateway: '10.99.0.1' }] } }])
    if (path === '/events') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.flushHeaders()
      this.streams.push(res)
      return
    }
    if (path === '/containers/json') return json(200, [...this.containers.keys()].map((Id) => ({ Id })))
    const match = /^\/containers\/([^/]+)\/json$/.exec(path)
    if (match !== null) {
      const id = match[1] ?? ''
      this.inspections++
      const inFlight = (this.inFlightById.get(id) ?? 0) + 1
      this.inFlightById.set(id, inFlight)
      this.maxInFlightPerId = Math.max(this.maxInFlightPerId, inFlight)
      if (this.inspectDelayMs > 0) await new Promise((r) => setTimeout(r, this.inspectDelayMs))
      this.inFlightById.set(id, (this.inFlightById.get(id) ?? 1) - 1)
      const info = this.containers.get(id)
      return info === undefined ? json(404, { message: `No such container: ${id}` }) : json(200, info)
    }
    json(404, { message: 'page not found' })
  }
}

const hex = (n: number): string => n.toString(16).padStart(64, '0')

function fakeContainer(n: number, name: string, status = 'running'): DockerInspect {
  return {
    Id: hex(n), Name: `/${name}`, Config: { Image: 'img:1', Labels: { 'shoal.service': name } },
    State: { Status: status, Running: status === 'running', ExitCode: status === 'exited' ? 1 : 0, StartedAt: '2026-01-01T00:00:00Z', FinishedAt: status === 'exited' ? '2026-01-01T00:01:00Z' : '0001-01-01T00:00:00Z' },
    NetworkSettings: { Networks: { bridge: { IPAddress: `10.213.250.${n}` } } },
  }
}

function eventLine(n: number, action: string): string {
  return `${JSON.stringify({ status: action, id: hex(n), Type: 'container', Action: action, Actor: { ID: hex(n), Attributes: { name: `c${n}` } }, time: 1, timeNano: 1 })}\n`
}

describe('DockerRuntime against a fake engine', () => {
  let engine: FakeEngine
  let rt: DockerRuntime
  let rec: Recorder

  beforeAll(async () => {
    engine = new FakeEngine()
    await engine.listen()
  })
  afterAll(async () => {
    await engine.close()
  })
  afterEach(async () => {
    await rt.stop()
  })

  async function startRuntime(): Promise<void> {
    rt = new DockerRuntime({ socket: engine.socket, identity, backoffMinMs: 200 })
    rec = new Recorder(rt)
    await rt.start()
    expect(rt.status().degraded).toBeNull()
    await waitFor('the event stream to be open', () => engine.streams.length > 0)
  }

  it('reads events cut anywhere, counts garbage lines and carries on', async () => {
    engine.containers.clear()
    engine.containers.set(hex(1), fakeContainer(1, 'one'))
    await startRuntime()
    expect(rec.reconciled(0)?.map((c) => c.name)).toEqual(['one'])
    engine.containers.set(hex(2), fakeContainer(2, 'two'))
    const line = eventLine(2, 'start')
    engine.send('this is not json\n{"Type":"container","Action":"start"}\n')
    engine.send(line.slice(0, 17))
    await new Promise((r) => setTimeout(r, 50))
    engine.send(line.slice(17))
    await waitFor('an upsert of two', () => rec.upsert(0, (c) => c.name === 'two'))
    expect(rt.stats().garbageEventLines).toBe(2)
    expect(rt.status().degraded).toBeNull()

    engine.containers.delete(hex(2))
    engine.send(eventLine(2, 'destroy'))
    await waitFor('a remove of two', () => rec.removed(0, hex(2)))
    // A 404 on inspect is a removal too (the destroy event was missed).
    engine.containers.delete(hex(1))
    engine.send(eventLine(1, 'die'))
    await waitFor('a remove of one', () => rec.removed(0, hex(1)))
    expect(rt.containers()).toEqual([])
  })

  it('coalesces a burst: one inspection in flight per id, the last state wins', async () => {
    engine.containers.clear()
    await startRuntime()
    engine.inspectDelayMs = 100
    engine.maxInFlightPerId = 0
    const before = engine.inspections
    engine.containers.set(hex(3), fakeContainer(3, 'three'))
    engine.send(eventLine(3, 'create') + eventLine(3, 'start'))
    await new Promise((r) => setTimeout(r, 20))
    for (let i = 0; i < 20; i++) engine.send(eventLine(3, 'health_status: healthy'))
    engine.containers.set(hex(3), fakeContainer(3, 'three', 'exited'))
    engine.send(eventLine(3, 'die'))
    await waitFor('three exited', () => rt.containers().find((c) => c.name === 'three')?.state === 'exited')
    await waitFor('the inspections to drain', () => [...engine.inFlightById.values()].every((n) => n === 0))
    engine.inspectDelayMs = 0
    expect(engine.maxInFlightPerId).toBe(1)
    expect(engine.inspections - before).toBeLessThanOrEqual(3)
    // Upserts for one id come in order: never running after exited.
    const states = rec.changes.flatMap((c) => (c.type === 'upsert' ? [c.container.state] : []))
    expect(states.at(-1)).toBe('exited')
    expect(states.slice(states.indexOf('exited'))).toEqual(['exited'])
  })

  it('stop() closes every connection, even with an inspection in flight, and emits nothing afterwards', async () => {
    engine.containers.clear()
    await startRuntime()
    engine.inspectDelayMs = 1_000
    engine.containers.set(hex(6), fakeContainer(6, 'six'))
    const before = engine.inspections
    engine.send(eventLine(6, 'start'))
    await waitFor('the inspection to start', () => engine.inspections > before)
    const mark = rec.mark()
    await rt.stop()
    await waitFor('every connection to close', async () => (await engine.connections()) === 0)
    await new Promise((r) => setTimeout(r, 1_200)) // the slow answer would have arrived by now
    engine.inspectDelayMs = 0
    expect(rec.since(mark)).toEqual([])
  })

  it('a stream that ends degrades the status; the reconnect reconciles', async () => {
    engine.containers.clear()
    engine.containers.set(hex(4), fakeContainer(4, 'four'))
    await startRuntime()
    const mark = rec.mark()
    engine.containers.delete(hex(4))
    engine.containers.set(hex(5), fakeContainer(5, 'five'))
    engine.endStreams()
    const degraded = await waitFor('a degraded status', () => rec.status(mark, (s) => s.degraded !== null))
    expect(degraded.degraded).toMatch(/event stream .* ended/)
    const truth = await waitFor('the reconcile after reconnecting', () => rec.reconciled(mark))
    expect(truth.map((c) => c.name)).toEqual(['five'])
    await waitFor('healthy again', () => rec.status(mark, (s) => s.degraded === null))
    expect(rt.stats()).toMatchObject({ connects: 2, disconnects: 1 })
  })
})
