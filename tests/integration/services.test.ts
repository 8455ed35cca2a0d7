/**
 * Services end to end: three real peers, each with its own private dockerd. The leader's
 * scheduler places a service's tasks, each host's agent runs its share in Docker, DNS answers
 * the running instances, and the cluster heals: a dead host's task runs elsewhere, the host
 * that comes back stops its stale container, a restarted peer adopts what it runs, scaling and
 * rolling updates converge, a failing update rolls back, bad specs change nothing.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, runCli, waitFor, type PeerProcess } from '../helpers/processes.ts'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'

interface ServiceRow { name: string; mode: string; replicas: number; running: number; healthy: number; image: string; ports: number[]; updateState: string | null; version: number; converged: boolean; message: string }
interface TaskRow { task: string; slot: string; host: string; hostName: string | null; state: string; desiredState: string; containerId: string | null; specVersion: number; error: string | null; retiring?: boolean }
interface DockerRow { ID: string; Names: string; Labels: string; State: string }

// A restarted peer is back within the reschedule grace, so it keeps its tasks (a dead host is
// still replaced, a few seconds later than with the default 1 s).
const FLAGS = ['--dead-grace', '2', '--reschedule-grace', '8']
/** Instances stop within a second (busybox sleep as PID 1 ignores SIGTERM, so the grace is what it takes). */
const QUICK = ['--stop-grace-period', '1s']

async function dig(server: string, ...args: string[]): Promise<string> {
  const [host, port] = [server.slice(0, server.lastIndexOf(':')), server.slice(server.lastIndexOf(':') + 1)]
  const { stdout } = await promisify(execFile)('dig', [`@${host}`, '-p', port, '+time=2', '+tries=1', '+short', ...args])
  return stdout
}

async function shoal(peer: PeerProcess, args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  // Before a `--`: what follows it is the instances' command.
  const split = args.indexOf('--')
  const own = split < 0 ? args : args.slice(0, split)
  return runCli([...own, '--api', peer.api, ...(split < 0 ? [] : args.slice(split))], {}, timeoutMs)
}

async function ok(peer: PeerProcess, args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await shoal(peer, args, timeoutMs)
  if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r.stdout
}

async function services(peer: PeerProcess): Promise<ServiceRow[]> {
  return JSON.parse(await ok(peer, ['service', 'ls', '--json'])) as ServiceRow[]
}

async function tasks(peer: PeerProcess, name: string): Promise<TaskRow[]> {
  return JSON.parse(await ok(peer, ['service', 'ps', name, '--json'])) as TaskRow[]
}

/** Containers of a service on one engine, running or not. */
async function instances(d: Dockerd, service: string, all = false): Promise<DockerRow[]> {
  const out = await d.dockerOk(['ps', ...(all ? ['-a'] : []), '--filter', `label=shoal.service=${service}`, '--format', '{{json .}}'])
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as DockerRow)
}

describe('services (three peers, a private dockerd each)', () => {
  const cluster = new TestCluster()
  const engines: Dockerd[] = []
  const peers: PeerProcess[] = []
  let dnsOfA = ''

  const running = async (service: string): Promise<Map<string, DockerRow[]>> => {
    const byHost = new Map<string, DockerRow[]>()
    for (const [i, d] of engines.entries()) byHost.set(peers[i]!.name, await instances(d, service))
    return byHost
  }
  const counts = async (service: string): Promise<number[]> => [...(await running(service)).values()].map((l) => l.length)

  beforeAll(async () => {
    engines.push(...(await Promise.all(['sa', 'sb', 'sc'].map((n) => startDockerd(n)))))
    await Promise.all(engines.map((d) => buildTestImage(d.socket)))
    const a = await cluster.add({ name: 'host-a', docker: engines[0]!.socket, dns: '127.0.0.1:0', extraArgs: [...FLAGS, '--label', 'zone=a'] })
    peers.push(a)
    const join_ = { bootstrap: [await cluster.addrOf(a)], secretFile: join(a.dataDir, 'cluster.key') }
    peers.push(await cluster.add({ name: 'host-b', docker: engines[1]!.socket, ...join_, extraArgs: [...FLAGS, '--label', 'zone=b'] }))
    peers.push(await cluster.add({ name: 'host-c', docker: engines[2]!.socket, ...join_, extraArgs: [...FLAGS, '--label', 'zone=c'] }))
    await waitFor('three voters and three host records', async () => {
      const st = await a.status<{ voters: string[] }>()
      const hosts = JSON.parse(await ok(a, ['hosts', '--json'])) as unknown[]
      return st.voters.length === 3 && hosts.length === 3 ? true : undefined
    }, 60_000)
    dnsOfA = (await a.status<{ dns: { listen: string[] } }>()).dns.listen[0]!
  }, 240_000)

  afterAll(async () => {
    await cluster.cleanup()
    await Promise.all(engines.map((d) => d.stop()))
  }, 90_000)

  it('create: one instance per host, each labelled, answered by web.shoal', async () => {
    const [a, b] = [peers[0]!, peers[1]!]
    const r = await shoal(b, ['service', 'create', 'web', '--image', TEST_IMAGE, '--replicas', '3', '--port', '8080', ...QUICK, '--', 'sleep', '3600'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/converged: web/)
    expect(await counts('web')).toEqual([1, 1, 1])
    const [row] = await services(a)
    expect(row).toMatchObject({ name: 'web', mode: 'replicated', replicas: 3, running: 3, healthy: 3, image: TEST_IMAGE, ports: [8080], converged: true })
    const ts = await tasks(a, 'web')
    expect(ts.map((t) => t.state)).toEqual(['running', 'running', 'running'])
    expect(new Set(ts.map((t) => t.hostName))).toEqual(new Set(['host-a', 'host-b', 'host-c']))
    const [first] = await instances(engines[0]!, 'web')
    expect(first!.Labels).toMatch(/shoal\.task=web\.\d\.1/)
    expect(first!.Labels).toMatch(/shoal\.spec-version=1/)
    const answers = await waitFor('web.shoal to answer three addresses', async () => {
      const out = (await dig(dnsOfA, 'web.shoal', 'A')).trim().split('\n').filter(Boolean)
      return out.length === 3 ? out : undefined
    })
    expect(answers.every((x) => /^10\.213\./.test(x))).toBe(true)
    // The instance's resolver is its own peer's DNS, with the shoal search domain.
    const resolv = await engines[0]!.dockerOk(['exec', '-i', first!.ID, 'cat', '/etc/resolv.conf'])
    expect(resolv).toContain(`nameserver ${engines[0]!.gateway}`)
    expect(resolv).toMatch(/search.*shoal/)
  })

  it('invalid specs and flags get clear errors and change nothing', async () => {
    const a = peers[0]!
    const before = await services(a)
    const bad = await shoal(a, ['service', 'create', 'Bad_Name', '--image', TEST_IMAGE])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toMatch(/name/i)
    const dup = await shoal(a, ['service', 'create', 'web', '--image', TEST_IMAGE])
    expect(dup.code).not.toBe(0)
    expect(dup.stderr).toMatch(/exists/)
    const flag = await shoal(a, ['service', 'create', 'x', '--image', TEST_IMAGE, '--replicas', 'many'])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toMatch(/--replicas/)
    const file = join(cluster.root, 'bad.yml')
    writeFileSync(file, `services:\n  good:\n    image: ${TEST_IMAGE}\n  worse:\n    image: ${TEST_IMAGE}\n    build: .\n`)
    const applied = await shoal(a, ['service', 'apply', '-f', file])
    expect(applied.code).toBe(1)
    expect(applied.stderr).toMatch(/bad\.yml:6:\d+: .*build/)
    expect(applied.stderr).toMatch(/nothing was applied/)
    // A valid file applies; applied again unchanged, it changes nothing.
    const good = join(cluster.root, 'good.yml')
    writeFileSync(good, `services:\n  cfg:\n    image: ${TEST_IMAGE}\n    command: ["sleep", "3600"]\n    deploy:\n      replicas: 0\n`)
    const first = await shoal(a, ['service', 'apply', '-f', good, '--detach'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toMatch(/cfg: version 1/)
    const again = await shoal(a, ['service', 'apply', '-f', good, '--detach'])
    expect(again.stderr).toMatch(/cfg: unchanged/)
    await ok(a, ['service', 'rm', 'cfg'])
    expect(await services(a)).toEqual(before)
  })

  it('a dead host: its instance runs elsewhere; back, its stale container is stopped and no slot runs twice', async () => {
    const [a, , c] = [peers[0]!, peers[1]!, peers[2]!]
    const cId = (await c.status()).peerId
    const onC = (await tasks(a, 'web')).find((t) => t.host === cId)!
    c.signal('SIGKILL')
    await c.exited
    await engines[2]!.kill()
    const moved = await waitFor('the slot of the dead host to run elsewhere', async () => {
      const t = (await tasks(a, 'web')).find((x) => x.slot === onC.slot)
      return t !== undefined && t.host !== cId && t.state === 'running' ? t : undefined
    }, 60_000)
    expect(moved.task).not.toBe(onC.task)
    const onLive = (await instances(engines[0]!, 'web')).length + (await instances(engines[1]!, 'web')).length
    expect(onLive, 'all three instances run on the two live hosts').toBe(3)
    // The engine comes back with the old container still running (live-restore), then the peer.
    await engines[2]!.start()
    expect((await instances(engines[2]!, 'web')).length).toBe(1)
    await c.start()
    await waitFor('the stale container on the returned host to stop', async () => ((await instances(engines[2]!, 'web')).length === 0 ? true : undefined), 60_000)
    const slots = (await tasks(a, 'web')).filter((t) => t.desiredState === 'running').map((t) => t.slot).sort()
    expect(slots).toEqual(['1', '2', '3'])
    const all = [...(await running('web')).values()].flat()
    expect(all.length).toBe(3)
    const ids = all.map((r) => /shoal\.task=([^,]+)/.exec(r.Labels)?.[1]?.split('.')[1])
    expect(new Set(ids).size, 'no slot runs twice').toBe(3)
  })

  it('a restarted peer adopts the containers it runs: none is recreated', async () => {
    const b = peers[1]!
    const before = (await instances(engines[1]!, 'web')).map((r) => r.ID).sort()
    expect(before.length).toBeGreaterThan(0)
    b.signal('SIGKILL')
    await b.exited
    await b.start()
    // Give the agent time to act on anything it wanted to: rounds run every second.
    await waitFor('B to report its tasks running again', async () => {
      const ts = (await tasks(peers[0]!, 'web')).filter((t) => t.hostName === 'host-b')
      return ts.length > 0 && ts.every((t) => t.state === 'running') ? true : undefined
    }, 30_000)
    await new Promise((r) => setTimeout(r, 3000))
    expect((await instances(engines[1]!, 'web')).map((r) => r.ID).sort()).toEqual(before)
    expect((await instances(engines[1]!, 'web', true)).length, 'no duplicate created, even stopped').toBe(before.length)
  })

  it('scale 3 → 6 → 2', async () => {
    const a = peers[0]!
    const up = await shoal(a, ['service', 'scale', 'web=6'])
    expect(up.code, up.stderr).toBe(0)
    expect((await counts('web')).reduce((x, y) => x + y, 0)).toBe(6)
    expect(await counts('web')).toEqual([2, 2, 2])
    const down = await shoal(a, ['service', 'scale', 'web', '2'])
    expect(down.code, down.stderr).toBe(0)
    await waitFor('two instances left', async () => ((await counts('web')).reduce((x, y) => x + y, 0) === 2 ? true : undefined), 30_000)
    expect((await tasks(a, 'web')).map((t) => t.slot).sort()).toEqual(['1', '2'])
  })

  it('a rolling update converges with DNS never empty', async () => {
    const a = peers[0]!
    await ok(a, ['service', 'scale', 'web=3'])
    let empty = 0
    let queries = 0
    let stop = false
    const probe = (async () => {
      while (!stop) {
        const out = (await dig(dnsOfA, 'web.shoal', 'A')).trim()
        queries++
        if (out === '') empty++
        await new Promise((r) => setTimeout(r, 100))
      }
    })()
    const r = await shoal(a, ['service', 'update', 'web', '--env-add', 'RELEASE=2', '--update-parallelism', '1'])
    stop = true
    await probe
    expect(r.code, r.stderr).toBe(0)
    const ts = await tasks(a, 'web')
    expect(ts.every((t) => t.state === 'running' && t.specVersion >= 2)).toBe(true)
    expect(queries).toBeGreaterThan(5)
    expect(empty, 'queries answered with no instance during the update').toBe(0)
    const [inst] = await instances(engines[0]!, 'web')
    if (inst !== undefined) expect(await engines[0]!.dockerOk(['exec', '-i', inst.ID, 'sh', '-c', 'echo $RELEASE'])).toBe('2')
  })

  it('drain moves a host\'s instances away; activate moves nothing back; rebalance evens the spread out', async () => {
    const a = peers[0]!
    const drained = await shoal(a, ['host', 'drain', 'host-c'])
    expect(drained.code, drained.stderr).toBe(0)
    await waitFor('no instance on the drained host, three elsewhere', async () => {
      const [onA, onB, onC] = await counts('web')
      return onC === 0 && onA! + onB! === 3 ? true : undefined
    }, 60_000)
    await ok(a, ['host', 'activate', 'host-c'])
    await new Promise((r) => setTimeout(r, 2000))
    expect((await counts('web'))[2], 'an activated host gets nothing moved to it by itself').toBe(0)
    const r = await shoal(a, ['service', 'rebalance', 'web'])
    expect(r.code, r.stderr).toBe(0)
    expect(await counts('web')).toEqual([1, 1, 1])
  })

  it('an update whose health check fails stops at the first batch and rolls back', async () => {
    const a = peers[0]!
    const before = (await services(a))[0]!
    const r = await shoal(a, ['service', 'update', 'web', '--health-cmd', 'false', '--health-interval', '1s', '--health-retries', '1', '--health-timeout', '1s',
      '--update-failure-action', 'rollback', '--update-monitor', '2s'], 180_000)
    expect(r.code, 'the command reports that the update was rolled back').toBe(1)
    expect(r.stderr).toMatch(/rolled back/)
    const after = (await services(a))[0]!
    expect(after.version).toBeGreaterThan(before.version + 1)
    expect(after.updateState).toBe('rollback-completed')
    const ts = await tasks(a, 'web')
    expect(ts.filter((t) => t.state === 'running').length).toBe(3)
    const inspect = JSON.parse(await ok(a, ['service', 'inspect', 'web', '--json'])) as { service: { healthCheck: unknown } }
    expect(inspect.service.healthCheck).toBeNull()
  })

  it('service rm removes every instance', async () => {
    const a = peers[0]!
    await ok(a, ['service', 'rm', 'web'])
    await waitFor('every instance gone', async () => ((await counts('web')).every((n) => n === 0) ? true : undefined), 60_000)
    expect(await services(a)).toEqual([])
    expect((await dig(dnsOfA, 'web.shoal', 'A')).trim()).toBe('')
  })
})
