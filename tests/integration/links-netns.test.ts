/**
 * The links' data path end to end (issue 13), on hosts whose container addresses do not route to
 * each other: each host is a network namespace of its own with a stock dockerd (docker0 is
 * 172.17.0.1/16 on both, as on real hosts) and a peer beside it that owns its `shoal0`; the hosts
 * meet only on a test LAN (tests/helpers/netns-lan.ts). A container on A first cannot reach a
 * container's address on B; through `shoal link` it reaches it by its alias, again after the
 * target restarts with a new address; another libp2p peer that hosts no source of the link is
 * refused by the target's peer; `link rm` takes the name and the address away.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'
import { NetnsLan } from '../helpers/netns-lan.ts'
import { HostPeer } from '../helpers/host-peer.ts'
import { runCli, tempDir, waitFor, NODE, REPO } from '../helpers/processes.ts'

interface RefusalCounts { unauthorized: number }
interface St {
  peerId: string
  addrs: string[]
  voters: string[]
  dns: { containers: { listen: string[] } } | null
  linkForwarder: { listeners: number; clientsRefused: number; connections: { local: number; remote: number; accepted: number }; refused: RefusalCounts } | null
}
interface LinkRow { source: string; target: string; alias: string; address: string | null; state: string }

/** Each host's peer listens on the LAN at this port (every namespace has its own port space). */
const P2P_PORT = 7946
const SERVICE_PORT = 8080
const REPLY = 'hello-from-b'
const LAN = { a: '10.78.0.11', b: '10.78.0.12' }

const st = (p: HostPeer): Promise<St> => p.status<St>()

async function links(peer: HostPeer): Promise<LinkRow[]> {
  const r = await runCli(['link', 'ls', '--json', '--api', peer.api])
  if (r.code !== 0) throw new Error(`shoal link ls failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as LinkRow[]
}

const addressLine = (ip: string): RegExp => new RegExp(`Address:\\s+${ip.replaceAll('.', '\\.')}(\\s|$)`)

describe('links across hosts in their own network namespaces (stock dockerd each, a test LAN between)', () => {
  const root = tempDir('shoal-links-netns-')
  let dockA: Dockerd
  let dockB: Dockerd
  let lan: NetnsLan | null = null
  const peers: HostPeer[] = []
  let a: HostPeer
  let b: HostPeer
  let targetIp = ''
  let linkAddress = ''
  let linkName = ''

  /** A shell line run inside the source container `client` on A. */
  const inClient = (script: string): Promise<{ code: number; stdout: string; stderr: string }> => dockA.docker(['exec', 'client', 'sh', '-c', script])
  const ipOf = async (engine: Dockerd, name: string): Promise<string> => engine.dockerOk(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', name])

  beforeAll(async () => {
    ;[dockA, dockB] = await Promise.all([startDockerd('lna', { stock: true }), startDockerd('lnb', { stock: true })])
    await Promise.all([buildTestImage(dockA.socket), buildTestImage(dockB.socket)])
    lan = new NetnsLan('links')
    lan.attach(dockA.netnsPath, LAN.a)
    lan.attach(dockB.netnsPath, LAN.b)

    a = new HostPeer('host-a', join(root, 'host-a'), dockA, ['--listen', `/ip4/${LAN.a}/tcp/${P2P_PORT}`])
    peers.push(a)
    await a.start()
    const idA = (await st(a)).peerId
    b = new HostPeer('host-b', join(root, 'host-b'), dockB, [
      '--listen', `/ip4/${LAN.b}/tcp/${P2P_PORT}`, '--bootstrap', `/ip4/${LAN.a}/tcp/${P2P_PORT}/p2p/${idA}`, '--secret-file', join(a.dataDir, 'cluster.key'),
    ])
    peers.push(b)
    await b.start()
    await waitFor('two voters', async () => ((await st(a)).voters.length === 2 ? true : undefined), 60_000)
    await waitFor('A to serve DNS on docker0', async () => ((await st(a)).dns?.containers.listen.includes(`${dockA.gateway}:53`) === true ? true : undefined), 30_000)

    // B holds more containers than A, so the target's address is one that no container on A has:
    // A's failure to reach it is the routing's, not a local container's refusal.
    for (const name of ['spacer', 'spacer2']) await dockB.dockerOk(['run', '-d', '--name', name, TEST_IMAGE, 'sleep', '3600'])
    await dockB.dockerOk(['run', '-d', '--name', 'store', TEST_IMAGE, 'nc', '-ll', '-p', String(SERVICE_PORT), '-e', 'echo', REPLY])
    for (const name of ['client', 'other']) await dockA.dockerOk(['run', '-d', '--name', name, '--dns', dockA.gateway, '--dns-search', 'shoal', TEST_IMAGE, 'sleep', '3600'])
    targetIp = await ipOf(dockB, 'store')
    await waitFor('both peers to know both containers', async () => {
      for (const p of [a, b]) {
        const r = await runCli(['ps', '--json', '--api', p.api])
        if (r.code !== 0) return undefined
        const names = (JSON.parse(r.stdout) as Array<{ name: string }>).map((c) => c.name)
        if (!names.includes('client') || !names.includes('store')) return undefined
      }
      return true
    }, 30_000)
  }, 240_000)

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()))
    await Promise.all([dockA?.stop(), dockB?.stop()])
    lan?.remove()
    spawnSync('rm', ['-rf', root])
  }, 90_000)

  it('a container on A cannot reach a container address on B: the hosts share only the LAN', async () => {
    for (const name of ['client', 'other']) expect(await ipOf(dockA, name)).not.toBe(targetIp)
    // From a container beside it on B the target answers (the server is up)...
    expect(await inClientOf(dockB, 'spacer', `echo x | nc -w 3 ${targetIp} ${SERVICE_PORT}`)).toContain(REPLY)
    // ...and from A it does not.
    const r = await inClient(`echo x | nc -w 2 ${targetIp} ${SERVICE_PORT}`)
    expect(r.stdout).not.toContain(REPLY)
    expect(r.code).not.toBe(0)
  })

  it('through a link, the source container reaches the target on B by its alias', async () => {
    const created = await runCli(['link', 'create', 'client', 'store', '--alias', 'db', '--port', String(SERVICE_PORT), '--api', a.api])
    expect(created.code, created.stderr).toBe(0)
    const row = await waitFor('the link address on A', async () => (await links(a)).find((l) => l.alias === 'db' && l.address !== null), 15_000)
    linkAddress = row.address as string
    linkName = `${row.source}/${row.alias}`
    expect(linkAddress).toMatch(/^100\.127\./)
    // A's peer put it on its own shoal0 in A's namespace.
    await waitFor('the address on shoal0', async () => (dockA.inNamespaceOk('ip', ['-4', '-o', 'addr', 'show', 'dev', 'shoal0']).includes(`${linkAddress}/32`) ? true : undefined), 15_000)

    const lookup = await inClient('nslookup db')
    expect(lookup.stdout).toMatch(addressLine(linkAddress))
    const before = { a: (await st(a)).linkForwarder, b: (await st(b)).linkForwarder }
    const reply = await waitFor('a reply through the link', async () => {
      const r = await inClient(`echo x | nc -w 3 db ${SERVICE_PORT}`)
      return r.stdout.includes(REPLY) ? r.stdout : undefined
    }, 15_000)
    expect(reply).toContain(REPLY)
    // Carried over libp2p: A dialled, B accepted.
    expect((await st(a)).linkForwarder?.connections.remote).toBeGreaterThan(before.a?.connections.remote ?? 0)
    expect((await st(b)).linkForwarder?.connections.accepted).toBeGreaterThan(before.b?.connections.accepted ?? 0)

    // Another container on A gets NXDOMAIN for the alias, and dialling the address it guessed is refused.
    const other = await dockA.docker(['exec', 'other', 'nslookup', 'db'])
    expect(`${other.stdout}${other.stderr}`).toMatch(/NXDOMAIN|can't find/i)
    const refusedBefore = (await st(a)).linkForwarder?.clientsRefused ?? 0
    const guessed = await inClientOf(dockA, 'other', `echo x | nc -w 3 ${linkAddress} ${SERVICE_PORT}`)
    expect(guessed).not.toContain(REPLY)
    expect((await st(a)).linkForwarder?.clientsRefused).toBe(refusedBefore + 1)
  })

  it('the target restarted with a new address is reached again at the same alias address', async () => {
    await dockB.dockerOk(['stop', '-t', '0', 'store'])
    // Take its old address, so it comes back with another one.
    await dockB.dockerOk(['run', '-d', '--name', 'squatter', TEST_IMAGE, 'sleep', '3600'])
    expect(await ipOf(dockB, 'squatter')).toBe(targetIp)
    await dockB.dockerOk(['start', 'store'])
    const moved = await ipOf(dockB, 'store')
    expect(moved).not.toBe(targetIp)
    const reply = await waitFor('a reply from the moved target', async () => {
      const r = await inClient(`echo x | nc -w 3 db ${SERVICE_PORT}`)
      return r.stdout.includes(REPLY) ? r.stdout : undefined
    }, 15_000)
    expect(reply).toContain(REPLY)
    expect((await inClient('nslookup db')).stdout).toMatch(addressLine(linkAddress))
  })

  it('the target\'s peer refuses a link stream from a peer that hosts no source of the link', async () => {
    const stB = await st(b)
    const addrB = stB.addrs.find((x) => x.includes(`/ip4/${LAN.b}/`))
    expect(addrB).toBeDefined()
    const before = stB.linkForwarder?.refused.unauthorized ?? 0
    // A peer holding the cluster secret, on A's LAN address, asking for the existing link and its port.
    const [cmd, args] = dockA.inNamespace(NODE, [join(REPO, 'tests', 'helpers', 'link-probe.ts'), join(a.dataDir, 'cluster.key'), (addrB as string).includes('/p2p/') ? (addrB as string) : `${addrB as string}/p2p/${stB.peerId}`, linkName, String(SERVICE_PORT)])
    const probe = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 })
    expect(probe.status, probe.stderr).toBe(0)
    expect(JSON.parse(probe.stdout) as unknown).toMatchObject({ status: { ok: false, reason: 'unauthorized' } })
    expect((await st(b)).linkForwarder?.refused.unauthorized).toBe(before + 1)
  })

  it('link rm: the alias is NXDOMAIN and the address refuses connections', async () => {
    const rm = await runCli(['link', 'rm', 'client', 'db', '--api', b.api])
    expect(rm.code, rm.stderr).toBe(0)
    await waitFor('NXDOMAIN for db', async () => {
      const r = await inClient('nslookup db')
      return /NXDOMAIN|can't find/i.test(`${r.stdout}${r.stderr}`) ? true : undefined
    }, 15_000)
    await waitFor('the address gone from shoal0', async () => (dockA.inNamespaceOk('ip', ['-4', '-o', 'addr', 'show', 'dev', 'shoal0']).includes(`${linkAddress}/`) ? undefined : true), 15_000)
    const r = await inClient(`echo x | nc -w 2 ${linkAddress} ${SERVICE_PORT}`)
    expect(r.stdout).not.toContain(REPLY)
    expect(r.code).not.toBe(0)
    expect((await st(a)).linkForwarder?.listeners).toBe(0)
  })

  /** A shell line inside container `name` on `engine`; its stdout. */
  async function inClientOf(engine: Dockerd, name: string, script: string): Promise<string> {
    return (await engine.docker(['exec', name, 'sh', '-c', script])).stdout
  }
})
