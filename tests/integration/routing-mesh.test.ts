/**
 * Services reached across hosts (issue 13): a link whose target is a service spreads its
 * connections over every instance, wherever it runs, and a port published through the routing
 * mesh is answered on every host, the ones without an instance too; a `mode=host` port only
 * where an instance runs. Three hosts, each a network namespace of its own with a stock dockerd,
 * meet only on a test LAN (tests/helpers/netns-lan.ts), so nothing here works by the machine
 * routing between Docker bridges.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'
import { NetnsLan } from '../helpers/netns-lan.ts'
import { HostPeer } from '../helpers/host-peer.ts'
import { runCli, tempDir, waitFor } from '../helpers/processes.ts'

interface St { peerId: string; voters: string[]; linkForwarder: { listeners: number } | null }
interface TaskRow { host: string; hostName: string | null; state: string; containerId: string | null }

const P2P_PORT = 7946
const LAN = ['10.78.1.11', '10.78.1.12', '10.78.1.13'] as const
const ECHO_PORT = 8080
const MESH_PORT = 9091
const HOST_MODE_PORT = 9092
const MESH_REPLY = 'hello-from-the-mesh'

describe('services across hosts: links spread over instances, published ports on the routing mesh', () => {
  const root = tempDir('shoal-mesh-')
  const engines: Dockerd[] = []
  const peers: HostPeer[] = []
  let lan: NetnsLan | null = null

  const st = (p: HostPeer): Promise<St> => p.status<St>()
  const cli = async (args: string[], via: HostPeer = peers[0] as HostPeer): Promise<string> => {
    // --api goes before a service's command (`-- CMD ARGS`), which takes everything after it.
    const dash = args.indexOf('--')
    const r = await runCli(dash < 0 ? [...args, '--api', via.api] : [...args.slice(0, dash), '--api', via.api, ...args.slice(dash)])
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return r.stdout
  }
  const tasks = async (service: string): Promise<TaskRow[]> => JSON.parse(await cli(['service', 'ps', service, '--json'])) as TaskRow[]
  /** Every task of `service` running, `n` of them; their rows. */
  const running = (service: string, n: number): Promise<TaskRow[]> => waitFor(`${n} running tasks of ${service}`, async () => {
    const rows = (await tasks(service)).filter((t) => t.state === 'running' && t.containerId !== null)
    return rows.length === n ? rows : undefined
  }, 120_000)
  /** A TCP connection from host `from`'s namespace to `address:port`; what came back, and nc's exit code. */
  const dial = (from: number, address: string, port: number): { code: number; out: string } => {
    const [cmd, args] = (engines[from] as Dockerd).inNamespace('sh', ['-c', `echo x | busybox nc -w 3 ${address} ${port}`])
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 })
    return { code: r.status ?? -1, out: r.stdout ?? '' }
  }

  beforeAll(async () => {
    engines.push(...await Promise.all(['msa', 'msb', 'msc'].map((n) => startDockerd(n, { stock: true }))))
    await Promise.all(engines.map((e) => buildTestImage(e.socket)))
    lan = new NetnsLan('mesh')
    engines.forEach((e, i) => (lan as NetnsLan).attach(e.netnsPath, LAN[i] as string))

    const first = new HostPeer('host-a', join(root, 'host-a'), engines[0] as Dockerd, ['--listen', `/ip4/${LAN[0]}/tcp/${P2P_PORT}`])
    peers.push(first)
    await first.start()
    const bootstrap = `/ip4/${LAN[0]}/tcp/${P2P_PORT}/p2p/${(await st(first)).peerId}`
    for (const i of [1, 2]) {
      const p = new HostPeer(`host-${'abc'[i]}`, join(root, `host-${'abc'[i]}`), engines[i] as Dockerd, [
        '--listen', `/ip4/${LAN[i]}/tcp/${P2P_PORT}`, '--bootstrap', bootstrap, '--secret-file', join(first.dataDir, 'cluster.key'),
      ])
      peers.push(p)
      await p.start()
    }
    await waitFor('three voters', async () => ((await st(first)).voters.length === 3 ? true : undefined), 90_000)
    await (engines[0] as Dockerd).dockerOk(['run', '-d', '--name', 'client', '--dns', (engines[0] as Dockerd).gateway, '--dns-search', 'shoal', TEST_IMAGE, 'sleep', '3600'])
    await waitFor('every peer to know the client container', async () => {
      for (const p of peers) {
        const names = (JSON.parse(await cli(['ps', '--json'], p)) as Array<{ name: string }>).map((c) => c.name)
        if (!names.includes('client')) return undefined
      }
      return true
    }, 30_000)
  }, 300_000)

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()))
    await Promise.all(engines.map((e) => e.stop()))
    lan?.remove()
    spawnSync('rm', ['-rf', root])
  }, 120_000)

  it('a link to a service spreads its connections over all three instances, one on each host', async () => {
    // Each instance answers with its hostname, which Docker sets to the container id's first 12 characters.
    await cli(['service', 'create', 'echo', '--image', TEST_IMAGE, '--replicas', '3', '--port', String(ECHO_PORT), '-d', '--', 'nc', '-ll', '-p', String(ECHO_PORT), '-e', 'hostname'])
    const rows = await running('echo', 3)
    expect(new Set(rows.map((t) => t.host)).size).toBe(3)
    const instances = new Set(rows.map((t) => (t.containerId as string).slice(0, 12)))

    await cli(['link', 'create', 'client', 'echo', '--alias', 'app', '--port', String(ECHO_PORT)])
    const seen = await waitFor('replies from every instance through the link', async () => {
      const got = new Set<string>()
      for (let i = 0; i < 9; i++) {
        const r = await (engines[0] as Dockerd).docker(['exec', 'client', 'sh', '-c', `echo x | nc -w 3 app ${ECHO_PORT}`])
        const line = r.stdout.trim()
        if (line !== '') got.add(line)
      }
      return got.size === 3 ? got : undefined
    }, 60_000)
    expect(seen).toEqual(instances)
  })

  it('a port published through the mesh answers on every host, and only one service may have it', async () => {
    const before = await Promise.all(peers.map(async (p) => (await st(p)).linkForwarder?.listeners ?? 0))
    await cli(['service', 'create', 'web', '--image', TEST_IMAGE, '--publish', `${MESH_PORT}:${ECHO_PORT}`, '-d', '--', 'nc', '-ll', '-p', String(ECHO_PORT), '-e', 'echo', MESH_REPLY])
    const [task] = await running('web', 1)
    const runsOn = peers.findIndex((p) => p.name === task?.hostName)
    expect(runsOn).toBeGreaterThanOrEqual(0)
    // Every host listens on the port, the two without the instance too.
    await waitFor('a mesh listener on every host', async () => {
      const now = await Promise.all(peers.map(async (p) => (await st(p)).linkForwarder?.listeners ?? 0))
      return now.every((n, i) => n === (before[i] as number) + 1) ? true : undefined
    }, 30_000)
    for (let h = 0; h < 3; h++) {
      const reply = await waitFor(`the mesh port to answer on host ${h}`, async () => {
        const r = dial((h + 1) % 3, LAN[h] as string, MESH_PORT)
        return r.out.includes(MESH_REPLY) ? r.out : undefined
      }, 30_000)
      expect(reply).toContain(MESH_REPLY)
    }
    // The instance's own host forwards nothing: Docker published no port there.
    const [cmd, args] = (engines[runsOn] as Dockerd).inNamespace('sh', ['-c', `ss -ltn 'sport = :${MESH_PORT}' | tail -n +2 | wc -l`])
    expect(spawnSync(cmd, args, { encoding: 'utf8' }).stdout.trim()).toBe('1')

    const clash = await runCli(['service', 'create', 'other', '--image', TEST_IMAGE, '--publish', `published=${MESH_PORT},target=80,mode=host`, '-d', '--api', (peers[1] as HostPeer).api, '--', 'sleep', '3600'])
    expect(clash.code).not.toBe(0)
    expect(clash.stderr).toMatch(new RegExp(`port ${MESH_PORT}/tcp.*routing mesh`))
    expect((JSON.parse(await cli(['service', 'ls', '--json'])) as Array<{ name: string }>).map((s) => s.name)).not.toContain('other')
  })

  it('a mode=host port answers only where an instance runs', async () => {
    await cli(['service', 'create', 'pinned', '--image', TEST_IMAGE, '--publish', `published=${HOST_MODE_PORT},target=${ECHO_PORT},mode=host`, '-d', '--', 'nc', '-ll', '-p', String(ECHO_PORT), '-e', 'echo', 'pinned'])
    const [task] = await running('pinned', 1)
    const runsOn = peers.findIndex((p) => p.name === task?.hostName)
    expect(runsOn).toBeGreaterThanOrEqual(0)
    const from = (runsOn + 1) % 3
    const reply = await waitFor('the host-mode port on the instance\'s host', async () => {
      const r = dial(from, LAN[runsOn] as string, HOST_MODE_PORT)
      return r.out.includes('pinned') ? r.out : undefined
    }, 30_000)
    expect(reply).toContain('pinned')
    for (let h = 0; h < 3; h++) {
      if (h === runsOn) continue
      const r = dial(from, LAN[h] as string, HOST_MODE_PORT)
      expect(r.out).not.toContain('pinned')
      expect(r.code).not.toBe(0)
    }
  })

  it('service rm: no host answers the mesh port any more', async () => {
    await cli(['service', 'rm', 'web'])
    for (let h = 0; h < 3; h++) {
      await waitFor(`host ${h} to stop answering ${MESH_PORT}`, async () => {
        const r = dial((h + 1) % 3, LAN[h] as string, MESH_PORT)
        return r.code !== 0 && !r.out.includes(MESH_REPLY) ? true : undefined
      }, 30_000)
    }
  })
})
