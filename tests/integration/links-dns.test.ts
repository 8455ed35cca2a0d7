/**
 * Links in the cluster state and their DNS answers (issue 13), end to end: two real peers, each
 * with its own private dockerd. A link created on one peer is known to both; the source's host
 * gives it an address from the link subnet; inside a source container (resolver: its own peer's
 * DNS on the bridge gateway) busybox `nslookup ALIAS` gets that address, a container that is not
 * a source gets NXDOMAIN, and `link rm` takes the alias away. The data path (connections to the
 * address) is tests/integration/link-forwarder.test.ts's.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { TestCluster, runCli, waitFor, type PeerProcess } from '../helpers/processes.ts'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'

interface St { peerId: string; voters: string[]; dns: { listen: string[]; containers: { listen: string[] } } | null }
interface LinkRow { source: string; target: string; alias: string; ports: Array<{ port: number; protocol: string }>; address: string | null; state: string; sourceName: string | null }

async function dig(server: string, ...args: string[]): Promise<string> {
  const [host, port] = [server.slice(0, server.lastIndexOf(':')), server.slice(server.lastIndexOf(':') + 1)]
  const { stdout } = await promisify(execFile)('dig', [`@${host}`, '-p', port, '+time=2', '+tries=1', ...args])
  return stdout
}

async function links(peer: PeerProcess): Promise<LinkRow[]> {
  const r = await runCli(['link', 'ls', '--json', '--api', peer.api])
  if (r.code !== 0) throw new Error(`shoal link ls failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as LinkRow[]
}

const addressLine = (ip: string): RegExp => new RegExp(`Address:\\s+${ip.replaceAll('.', '\\.')}(\\s|$)`)

describe('links: cluster state, addresses and per-querier DNS (real dockerd per host)', () => {
  const cluster = new TestCluster()
  let dockA: Dockerd
  let dockB: Dockerd
  let a: PeerProcess
  let b: PeerProcess
  let dbId = ''
  let clientId = ''

  /** `nslookup NAME` inside container `name` on A (busybox; its resolver is A's DNS). */
  const lookup = (name: string, query: string): Promise<{ code: number; stdout: string; stderr: string }> => dockA.docker(['exec', name, 'nslookup', query])

  beforeAll(async () => {
    ;[dockA, dockB] = await Promise.all([startDockerd('la'), startDockerd('lb')])
    await Promise.all([buildTestImage(dockA.socket), buildTestImage(dockB.socket)])
    a = await cluster.add({ name: 'host-a', docker: dockA.socket, dns: '127.0.0.1:0' })
    b = await cluster.add({ name: 'host-b', docker: dockB.socket, dns: '127.0.0.1:0', bootstrap: [await cluster.addrOf(a)], secretFile: join(a.dataDir, 'cluster.key') })
    await waitFor('two voters', async () => ((await a.status<St>()).voters.length === 2 ? true : undefined), 60_000)
    await waitFor('A to serve DNS on its bridge gateway', async () => ((await a.status<St>()).dns?.containers.listen.includes(`${dockA.gateway}:53`) === true ? true : undefined), 30_000)
    const dns = ['--dns', dockA.gateway, '--dns-search', 'shoal']
    dbId = await dockB.dockerOk(['run', '-d', '--name', 'db', '-l', 'shoal.port=5432', TEST_IMAGE, 'sleep', '3600'])
    clientId = await dockA.dockerOk(['run', '-d', '--name', 'client', ...dns, TEST_IMAGE, 'sleep', '3600'])
    await dockA.dockerOk(['run', '-d', '--name', 'other', ...dns, TEST_IMAGE, 'sleep', '3600'])
    await dockA.dockerOk(['run', '-d', '--name', 'api-1', '-l', 'shoal.service=api', ...dns, TEST_IMAGE, 'sleep', '3600'])
    // Same name on both hosts: ambiguous as a link endpoint.
    await dockB.dockerOk(['run', '-d', '--name', 'other', TEST_IMAGE, 'sleep', '3600'])
    await waitFor('both peers to know every container', async () => {
      for (const p of [a, b]) {
        const r = await runCli(['ps', '--json', '--api', p.api])
        const names = (JSON.parse(r.stdout) as Array<{ name: string }>).map((c) => c.name)
        if (!['db', 'client', 'api-1'].every((n) => names.includes(n)) || names.filter((n) => n === 'other').length !== 2) return undefined
      }
      return true
    }, 30_000)
  }, 240_000)

  afterAll(async () => {
    await cluster.cleanup()
    await Promise.all([dockA?.stop(), dockB?.stop()])
  }, 60_000)

  it('bad links are refused with what to do', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['client', 'nobody', '--alias', 'x'], /target: no service, container or container id "nobody"/],
      [['other', 'db', '--alias', 'x'], /other names a container on 2 hosts .*give the id prefix/],
      [['client', 'db', '--alias', 'Bad_Name'], /lowercase DNS label/],
      [['client', 'db', '--alias', 'ns'], /reserved/],
      [['db', 'client', '--alias', 'c'], /announces no ports.*--port/],
      [['client', 'db'], /--alias ALIAS is required/],
    ]
    for (const [args, message] of cases) {
      const r = await runCli(['link', 'create', ...args, '--api', b.api])
      expect(r.code, args.join(' ')).not.toBe(0)
      expect(r.stderr, args.join(' ')).toMatch(message)
    }
  })

  it('a link made on B is known to A; A (the source host) gives it an address; the source container resolves the alias to it', async () => {
    const created = await runCli(['link', 'create', 'client', 'db', '--alias', 'pg', '--api', b.api])
    expect(created.code, created.stderr).toBe(0)
    expect(created.stdout).toMatch(/client -> db as pg \(5432\)/)
    const again = await runCli(['link', 'create', 'client', 'db', '--alias', 'pg', '--api', a.api])
    expect(again.stderr).toMatch(/already has a link named pg/)

    const row = await waitFor('A to allocate an address for pg', async () => (await links(a)).find((l) => l.alias === 'pg' && l.address !== null), 20_000)
    expect(row).toMatchObject({ source: clientId, target: dbId, ports: [{ port: 5432, protocol: 'tcp' }], address: '100.127.0.2', state: 'active', sourceName: 'client' })
    expect((await links(b)).find((l) => l.alias === 'pg')?.address, 'B hosts no source: no address there').toBeNull()

    // Bare and qualified, from inside the source container, through A's DNS.
    await waitFor('client to resolve pg', async () => (addressLine('100.127.0.2').test((await lookup('client', 'pg')).stdout) ? true : undefined), 20_000)
    expect((await lookup('client', 'pg.shoal')).stdout).toMatch(addressLine('100.127.0.2'))
    // A container that is not a source: NXDOMAIN (busybox prints "can't find" / NXDOMAIN and exits 1).
    const stranger = await lookup('other', 'pg.shoal')
    expect(stranger.stdout + stranger.stderr).toMatch(/NXDOMAIN|can't find/)
    expect(stranger.stdout).not.toMatch(addressLine('100.127.0.2'))
    // The host itself is not a source either; PTR of the link address names the alias, for anyone.
    const dnsA = (await a.status<St>()).dns!.listen[0]!
    expect(await dig(dnsA, 'pg.shoal')).toContain('status: NXDOMAIN')
    expect((await dig(dnsA, '+short', '-x', '100.127.0.2')).trim()).toBe('pg.shoal.')
    const table = await runCli(['link', 'ls', '--api', a.api])
    expect(table.stdout).toMatch(/SOURCE\s+TARGET\s+ALIAS\s+PORTS\s+ADDRESS\s+STATE/)
    expect(table.stdout).toMatch(new RegExp(`client \\(${clientId.slice(0, 12)}\\)\\s+db \\(${dbId.slice(0, 12)}\\)\\s+pg\\s+5432\\s+100\\.127\\.0\\.2\\s+active`))

    // docker restart keeps the container's id, so the link and its address stay.
    await dockA.dockerOk(['restart', '-t', '0', 'client'])
    await waitFor('client to resolve pg after its restart', async () => (addressLine('100.127.0.2').test((await lookup('client', 'pg')).stdout) ? true : undefined), 20_000)
    expect((await links(a)).find((l) => l.alias === 'pg')).toMatchObject({ address: '100.127.0.2', state: 'active' })
  })

  it('a service source: every instance on A resolves the alias; the alias may shadow a real name for the source only', async () => {
    const r = await runCli(['link', 'create', 'api', 'db', '--alias', 'other', '--api', a.api])
    expect(r.code, r.stderr).toBe(0)
    const row = await waitFor('an address for api/other', async () => (await links(a)).find((l) => l.source === 'api' && l.address !== null), 20_000)
    expect(row.address).toBe('100.127.0.3')
    await waitFor('api-1 to resolve other to the link', async () => (addressLine('100.127.0.3').test((await lookup('api-1', 'other.shoal')).stdout) ? true : undefined), 20_000)
    // client is not a source of this link: other.shoal stays the containers named other.
    expect((await lookup('client', 'other.shoal')).stdout).not.toMatch(addressLine('100.127.0.3'))
  })

  it('link rm takes the alias away; docker-config prints this host\'s settings', async () => {
    const rm = await runCli(['link', 'rm', 'client', 'pg', '--api', b.api])
    expect(rm.code, rm.stderr).toBe(0)
    await waitFor('pg to be gone on A', async () => ((await links(a)).some((l) => l.alias === 'pg') ? undefined : true), 10_000)
    await waitFor('client to get NXDOMAIN for pg', async () => {
      const out = await lookup('client', 'pg.shoal')
      return /NXDOMAIN|can't find/.test(out.stdout + out.stderr) ? true : undefined
    }, 20_000)
    expect((await runCli(['link', 'rm', 'client', 'pg', '--api', a.api])).stderr).toMatch(/no link pg of client/)

    const cfg = await runCli(['docker-config', '--json', '--api', a.api])
    expect(cfg.code, cfg.stderr).toBe(0)
    expect(JSON.parse(cfg.stdout)).toEqual({ daemonJson: { dns: [dockA.gateway], 'dns-search': ['shoal'] }, dockerRunFlags: `--dns ${dockA.gateway} --dns-search shoal` })
  })
})
