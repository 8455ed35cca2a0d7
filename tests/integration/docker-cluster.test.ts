/**
 * Containers in the cluster state, end to end: two real peers, each with its own private
 * dockerd, and a third without Docker so the cluster keeps a Raft quorum when one host dies. What one host runs is listed on the other with its host, address and labels,
 * follows its lifecycle, survives a dockerd crash and missed events, turns `lost` when its host
 * dies, and comes back when the host does.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { TestCluster, runCli, waitFor, NODE, MAIN, type PeerProcess } from '../helpers/processes.ts'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'

interface Row { id: string; name: string; image: string; host: string; hostName: string; ips: string[]; state: string; ports: unknown[]; labels: Record<string, string>; exitCode?: number }
interface St {
  peerId: string; runtime: string; voters: string[]
  runtimeStatus: { degraded: string | null; engineVersion: string | null; gateways: string[] }
  dns: { listen: string[]; containers: { listen: string[]; error: string | null }; stats: { udp: { eventLoops: number } } } | null
}

/** Real `dig` against a peer's DNS (`host:port` from its status); returns dig's output. */
async function dig(server: string, ...args: string[]): Promise<string> {
  const [host, port] = [server.slice(0, server.lastIndexOf(':')), server.slice(server.lastIndexOf(':') + 1)]
  const { stdout } = await promisify(execFile)('dig', [`@${host}`, '-p', port, '+time=2', '+tries=1', ...args])
  return stdout
}

const FLAGS = ['--dead-grace', '2']

async function ps(peer: PeerProcess, ...args: string[]): Promise<Row[]> {
  const r = await runCli(['ps', '--json', '--api', peer.api, ...args])
  if (r.code !== 0) throw new Error(`shoal ps failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as Row[]
}

/** Waits until `peer` lists a container named `name` (with --all) that satisfies `check`. */
function seen(peer: PeerProcess, name: string, check: (row: Row) => boolean, what: string): Promise<Row> {
  return waitFor(`${peer.name} to list ${name} ${what}`, async () => (await ps(peer, '--all')).find((r) => r.name === name && check(r)), 30_000, 150)
}

describe('containers across hosts (real dockerd per host)', () => {
  const cluster = new TestCluster()
  let dockA: Dockerd
  let dockB: Dockerd
  let a: PeerProcess
  let b: PeerProcess
  let c: PeerProcess
  let aId = ''

  beforeAll(async () => {
    ;[dockA, dockB] = await Promise.all([startDockerd('a'), startDockerd('b')])
    await Promise.all([buildTestImage(dockA.socket), buildTestImage(dockB.socket)])
    // A container that exists before its peer starts is found by the first reconcile.
    await dockA.dockerOk(['run', '-d', '--name', 'early', TEST_IMAGE, 'sleep', '3600'])
    a = await cluster.add({ name: 'host-a', docker: dockA.socket, dns: '127.0.0.1:0', extraArgs: FLAGS })
    aId = (await a.status<St>()).peerId
    const join_ = { bootstrap: [await cluster.addrOf(a)], secretFile: join(a.dataDir, 'cluster.key'), extraArgs: FLAGS }
    // B answers DNS on two event loops (a worker thread shares its UDP port).
    b = await cluster.add({ name: 'host-b', docker: dockB.socket, dns: '127.0.0.1:0', ...join_, extraArgs: [...FLAGS, '--dns-loops', '2'] })
    c = await cluster.add({ name: 'host-c', ...join_ })
    await waitFor('three voters, and A gossiping to both others', async () => {
      const st = await a.status<St & { gossip: { events: { subscribers: number } } }>()
      return st.voters.length === 3 && st.gossip.events.subscribers === 2 ? true : undefined
    }, 60_000)
  }, 180_000)

  afterAll(async () => {
    await cluster.cleanup()
    await Promise.all([dockA?.stop(), dockB?.stop()])
  }, 60_000)

  it('status shows the engine; a container present before start is listed', async () => {
    const st = await a.status<St>()
    expect(st.runtime).toBe('docker')
    expect(st.runtimeStatus.degraded).toBeNull()
    expect(st.runtimeStatus.engineVersion).toMatch(/^\d+\./)
    expect(st.runtimeStatus.gateways, 'the bridge address containers reach the host on').toEqual([dockA.gateway])
    const early = await seen(b, 'early', (r) => r.state === 'running', 'running')
    expect(early.host).toBe(aId)
    // Every host registers itself; `shoal hosts` joins that with liveness and container counts.
    const hosts = await waitFor('three host records', async () => {
      const r = await runCli(['hosts', '--json', '--api', b.api])
      const list = JSON.parse(r.stdout) as Array<{ peerId: string; name: string; state: string; addrs: string[]; containers: { running: number; total: number } }>
      return list.length === 3 ? list : undefined
    })
    expect(hosts.map((h) => [h.name, h.state])).toEqual([['host-a', 'alive'], ['host-b', 'alive'], ['host-c', 'alive']])
    expect(hosts[0]).toMatchObject({ peerId: aId, containers: { running: 1, total: 1 } })
    expect(hosts[0]!.addrs.some((x) => x.includes('/ip4/127.0.0.1/'))).toBe(true)
  })

  it('a container started on A appears on B with its host, address, labels and ports; B sees the event', async () => {
    // --history replays B's recent events first, so the stream needs no head start.
    const events = spawn(NODE, [MAIN, 'events', '--json', '--history', '--api', b.api], { stdio: ['ignore', 'pipe', 'ignore'] })
    let lines = ''
    events.stdout.on('data', (d: Buffer) => { lines += d.toString() })
    try {
      const id = (await dockA.dockerOk(['run', '-d', '--name', 'web', '-l', 'shoal.service=web', '-l', 'tier=front', '-p', '127.0.0.1:18081:80', TEST_IMAGE, 'sleep', '3600'])).trim()
      const row = await seen(b, 'web', (r) => r.state === 'running', 'running')
      expect(row.id).toBe(id)
      expect(row.host).toBe(aId)
      expect(row.hostName).toBe('host-a')
      expect(row.image).toBe(TEST_IMAGE)
      expect(row.labels).toMatchObject({ 'shoal.service': 'web', tier: 'front' })
      expect(row.ips.length).toBeGreaterThan(0)
      expect(row.ips[0]!.startsWith(dockA.gateway.slice(0, dockA.gateway.lastIndexOf('.') + 1))).toBe(true)
      expect(row.ports).toContainEqual(expect.objectContaining({ containerPort: 80, protocol: 'tcp', hostPort: 18081, hostIp: '127.0.0.1' }))
      await waitFor('the container event on B', () => {
        const evs = lines.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; action?: string; id?: string; host?: string })
        return evs.some((e) => e.type === 'container' && e.action === 'running' && e.id === id && e.host === aId) ? true : undefined
      }, 10_000)
    } finally {
      events.kill()
    }
    // --host filters by name or id, and the table has the host column.
    expect((await ps(b, '--host', 'host-b')).map((r) => r.name)).not.toContain('web')
    expect((await ps(b, '--host', aId)).map((r) => r.name)).toContain('web')
    const table = await runCli(['ps', '--api', b.api])
    expect(table.stdout).toMatch(/CONTAINER ID\s+IMAGE\s+STATUS\s+PORTS\s+IPS\s+HOST\s+NAMES/)
    expect(table.stdout).toMatch(/host-a\s+web/)
  })

  it('DNS: every peer answers for containers on other hosts; a container on A resolves one on B by name', async () => {
    const dnsA = (await a.status<St>()).dns!.listen[0]!
    const dnsB = (await b.status<St>()).dns!.listen[0]!
    expect((await a.status<St>()).dns!.stats.udp.eventLoops).toBe(1)
    expect((await b.status<St>()).dns!.stats.udp.eventLoops).toBe(2)
    await dockB.dockerOk(['run', '-d', '--name', 'db', TEST_IMAGE, 'sleep', '3600'])
    const db = await seen(a, 'db', (r) => r.state === 'running', 'running')
    const web = (await ps(a)).find((r) => r.name === 'web')!
    await waitFor('A to answer db.shoal', async () => ((await dig(dnsA, '+short', 'db.shoal')).trim() === db.ips[0] ? true : undefined), 10_000)
    expect((await dig(dnsB, '+short', 'WEB.shoal')).trim(), 'names are case-insensitive').toBe(web.ips[0])
    expect((await dig(dnsB, '+short', '+tcp', 'host-a.host.shoal')).trim()).toBe('127.0.0.1')
    // web carries shoal.service=web and publishes port 80: an SRV whose target resolves.
    const srv = (await dig(dnsB, '+short', '_80._tcp.web.shoal', 'SRV')).trim().split(/\s+/)
    expect(srv.slice(0, 3)).toEqual(['1', '1', '80'])
    expect((await dig(dnsB, '+short', srv[3]!)).trim()).toBe(web.ips[0])
    const missing = await dig(dnsB, 'nobody.shoal')
    expect(missing).toContain('status: NXDOMAIN')
    expect(missing).toMatch(/AUTHORITY SECTION:\s+shoal\.\s+\d+\s+IN\s+SOA/)
    expect(await dig(dnsB, 'web.shoal', 'AAAA')).toMatch(/status: NOERROR[\s\S]*ANSWER: 0/)
    expect(await dig(dnsB, 'example.com')).toContain('status: REFUSED')

    // Inside a container on A, the resolver is A's bridge gateway (dockerd --dns): the peer listens there.
    await waitFor('A to serve DNS on its bridge gateway', async () => ((await a.status<St>()).dns!.containers.listen.includes(`${dockA.gateway}:53`) ? true : undefined), 20_000)
    const lookup = await dockA.docker(['run', '--rm', TEST_IMAGE, 'nslookup', 'db.shoal'])
    expect(lookup.stdout, lookup.stderr).toMatch(new RegExp(`Address:\\s+${db.ips[0]!.replaceAll('.', '\\.')}(\\s|$)`))

    // A stopped container leaves the answers as soon as its record changes.
    await dockB.dockerOk(['stop', '-t', '0', 'db'])
    await waitFor('db.shoal to be NXDOMAIN on A', async () => ((await dig(dnsA, 'db.shoal')).includes('status: NXDOMAIN') ? true : undefined), 10_000)
    await dockB.dockerOk(['rm', 'db'])
  })

  it('stopping a container updates it everywhere with its exit code; removing it removes it', async () => {
    await dockA.dockerOk(['run', '-d', '--name', 'job', TEST_IMAGE, 'sh', '-c', 'sleep 0.5; exit 3'])
    const exited = await seen(b, 'job', (r) => r.state === 'exited', 'exited')
    expect(exited.exitCode).toBe(3)
    expect((await ps(b)).map((r) => r.name), 'exited containers only with --all').not.toContain('job')
    await dockA.dockerOk(['rm', 'job'])
    await waitFor('job to vanish from B', async () => ((await ps(b, '--all')).some((r) => r.name === 'job') ? undefined : true), 30_000, 150)
  })

  it('a dockerd crash makes A degraded; back, it reconciles and recovers by itself', async () => {
    await dockA.kill()
    await waitFor('A to report the runtime degraded', async () => ((await a.status<St>()).runtimeStatus.degraded !== null ? true : undefined), 30_000)
    await dockA.start()
    await waitFor('A to recover', async () => ((await a.status<St>()).runtimeStatus.degraded === null ? true : undefined), 60_000)
    // live-restore kept web running; after the reconcile B still lists it as running.
    await seen(b, 'web', (r) => r.state === 'running', 'still running')
  })

  it('changes A missed while its peer was down are reconciled when it restarts', async () => {
    a.signal('SIGKILL')
    await a.exited
    await dockA.dockerOk(['run', '-d', '--name', 'while-away', TEST_IMAGE, 'sleep', '3600'])
    await dockA.dockerOk(['rm', '-f', 'early'])
    await a.start()
    await seen(b, 'while-away', (r) => r.state === 'running', 'running')
    await waitFor('early to vanish from B', async () => ((await ps(b, '--all')).some((r) => r.name === 'early') ? undefined : true), 30_000, 150)
  })

  it('kill -9 of peer A: its containers become lost on B after the grace period, and come back with it', async () => {
    a.signal('SIGKILL')
    await a.exited
    const lost = await seen(b, 'web', (r) => r.state === 'lost', 'lost')
    expect(lost.host).toBe(aId)
    expect((await ps(b)).map((r) => r.name), 'lost containers are listed by default').toContain('web')
    await a.start()
    await seen(b, 'web', (r) => r.state === 'running', 'running again')
  })

  it('a graceful stop of A removes its containers from the cluster state', async () => {
    a.signal('SIGTERM')
    await a.exited
    expect(a.log()).toMatch(/removed this host's \d+ container record\(s\) from the cluster/)
    await waitFor('A\'s containers to vanish from C', async () => ((await ps(c, '--all')).some((r) => r.host === aId) ? undefined : true), 30_000, 150)
  })

  it('--docker none and an unreachable socket: the peer runs and says so', async () => {
    const none = await cluster.add({ name: 'no-docker' })
    const st = await none.status<St>()
    expect(st.runtime).toBe('none')
    expect(await ps(none)).toEqual([])
    const away = await cluster.add({ name: 'gone-docker', docker: join(cluster.root, 'no-such.sock') })
    const st2 = await away.status<St>()
    expect(st2.runtime).toBe('docker')
    expect(st2.runtimeStatus.degraded).toMatch(/unreachable|ENOENT/)
    const text = await runCli(['status', '--api', away.api])
    expect(text.stdout).toMatch(/Runtime:\s+docker, degraded/)
  })
})
