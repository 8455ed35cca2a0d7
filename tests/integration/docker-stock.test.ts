/**
 * Container DNS on a Docker host as installed: a stock engine (its own docker0, no --bip, no
 * --bridge) lists no gateway for its default bridge, yet `docker run --dns <gateway> --dns-search
 * shoal` must reach the peer's DNS. The engine runs in a network namespace of its own
 * (tests/helpers/dockerd.ts, `stock: true`), and so does the peer beside it, as a peer runs beside
 * the machine's Docker. A second peer in an empty namespace cannot listen on the bridge: it says
 * so, and what to do, in `status`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startDockerd, buildTestImage, TEST_IMAGE, type Dockerd } from '../helpers/dockerd.ts'
import { apiGet, runCli, tempDir, waitFor, NODE, MAIN } from '../helpers/processes.ts'

interface St {
  peerId: string
  runtimeStatus: { degraded: string | null; gateways: string[] }
  dns: { listen: string[]; containers: { listen: string[]; dockerRunFlags: string | null; error: string | null } } | null
}
interface Row { name: string; ips: string[]; state: string }

/** A user-defined network made with --subnet alone: its IPAM config lists no gateway either. */
const USER_NET = 'bar'
const USER_SUBNET = '10.77.0.0/24'

/** A `shoal start` running through `inNamespace` (PeerProcess spawns only in the test's own namespace). */
class NamespacedPeer {
  readonly name: string
  readonly dataDir: string
  readonly api: string
  readonly logFile: string
  private readonly command: (cmd: string, args: string[]) => [string, string[]]
  private readonly docker: string
  private proc: ChildProcess | null = null
  private exitCode: number | null = null

  constructor(name: string, dataDir: string, command: (cmd: string, args: string[]) => [string, string[]], docker: string) {
    this.name = name
    this.dataDir = dataDir
    this.command = command
    this.docker = docker
    this.api = join(dataDir, 'shoal.sock')
    this.logFile = `${dataDir}.log`
  }

  async start(): Promise<this> {
    const [cmd, args] = this.command(NODE, [
      MAIN, 'start', '--data-dir', this.dataDir, '--name', this.name, '--listen', '/ip4/127.0.0.1/tcp/0',
      '--dns', '127.0.0.1:0', '--docker', this.docker, '--log-level', 'debug',
    ])
    const fd = openSync(this.logFile, 'a')
    const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    this.proc = proc
    proc.on('exit', (code, signal) => { this.exitCode = code ?? (signal === null ? -1 : 128) })
    await waitFor(`${this.name} to serve its API`, async () => {
      if (this.exitCode !== null) throw new Error(`${this.name} exited with ${this.exitCode}: ${this.log().slice(-2000)}`)
      return existsSync(this.api) && (await this.status()).peerId !== undefined
    }, 30_000)
    return this
  }

  status(): Promise<St> {
    return apiGet<St>(this.api, '/v1/status')
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : ''
  }

  async stop(): Promise<void> {
    const proc = this.proc
    if (proc === null || this.exitCode !== null) return
    const exited = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await exited
  }
}

const PEERS = new Set<NamespacedPeer>()
process.once('exit', () => {
  for (const p of PEERS) void p.stop()
})

describe('container DNS on a stock Docker engine (own docker0, no --bip)', () => {
  const root = tempDir('shoal-stock-')
  /** An empty namespace: no docker0, so the peer there cannot listen on the bridge gateway. */
  const emptyNs = `shoal-stock-empty-${process.pid}`
  let engine: Dockerd
  let peer: NamespacedPeer
  let webIp = ''

  beforeAll(async () => {
    engine = await startDockerd('stock', { stock: true })
    await buildTestImage(engine.socket)
    await engine.dockerOk(['network', 'create', '--subnet', USER_SUBNET, USER_NET])
    await engine.dockerOk(['run', '-d', '--name', 'web', TEST_IMAGE, 'sleep', '3600'])
    webIp = await engine.dockerOk(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'web'])
    peer = new NamespacedPeer('stock-host', join(root, 'stock-host'), (c, a) => engine.inNamespace(c, a), engine.socket)
    PEERS.add(peer)
    await peer.start()
  }, 180_000)

  afterAll(async () => {
    await Promise.all([...PEERS].map((p) => p.stop()))
    if (existsSync(join('/run/netns', emptyNs))) spawnSync('ip', ['netns', 'del', emptyNs])
    await engine?.stop()
    spawnSync('rm', ['-rf', root])
  }, 60_000)

  it('finds docker0\'s gateway that the engine does not list, listens there, and says where containers point', async () => {
    // The premise: a stock engine's default bridge lists a subnet and no gateway.
    const ipam = JSON.parse(await engine.dockerOk(['network', 'inspect', 'bridge', '--format', '{{json .IPAM.Config}}'])) as Array<{ Subnet?: string; Gateway?: string }>
    expect(ipam.map((c) => c.Gateway ?? null)).toEqual([null])
    const docker0 = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(engine.inNamespaceOk('ip', ['-4', '-o', 'addr', 'show', 'dev', 'docker0']))?.[1]
    expect(docker0).toBe(engine.gateway)

    const st = await waitFor('the peer to listen for containers on docker0', async () => {
      const s = await peer.status()
      return s.dns !== null && s.dns.containers.listen.includes(`${engine.gateway}:53`) ? s : undefined
    }, 30_000)
    // The default bridge first (where `docker run` puts containers), then the user network, found on its br- interface.
    expect(st.runtimeStatus.gateways).toEqual([engine.gateway, '10.77.0.1'])
    expect(st.dns!.containers).toEqual({ listen: [`${engine.gateway}:53`, '10.77.0.1:53'], dockerRunFlags: `--dns ${engine.gateway} --dns-search shoal`, error: null })
    expect(peer.log()).toContain(`run containers with --dns ${engine.gateway} --dns-search shoal`)
    expect(peer.log()).toContain('bridge (docker0): 172.17.0.1, the address of docker0')

    const text = await runCli(['status', '--api', peer.api])
    expect(text.stdout).toMatch(/Docker DNS:\s+172\.17\.0\.1:53, 10\.77\.0\.1:53: docker run --dns 172\.17\.0\.1 --dns-search shoal/)
    expect(text.stdout).not.toContain('WARNING')
  })

  it('a plain `docker run --dns <gateway> --dns-search shoal` resolves another container by its name', async () => {
    const flags = (await peer.status()).dns!.containers.dockerRunFlags!.split(' ')
    await waitFor('the peer to list web', async () => {
      const r = await runCli(['ps', '--json', '--api', peer.api])
      return (JSON.parse(r.stdout) as Row[]).some((c) => c.name === 'web' && c.state === 'running' && c.ips.includes(webIp)) ? true : undefined
    }, 30_000)
    // The README's command; the answer can only come from the peer (nothing else serves shoal. there).
    const lookup = await engine.docker(['run', '--rm', ...flags, TEST_IMAGE, 'nslookup', 'web'])
    expect(lookup.stdout, lookup.stderr).toMatch(new RegExp(`Server:\\s+${engine.gateway.replaceAll('.', '\\.')}\\s`))
    expect(lookup.stdout, lookup.stderr).toMatch(new RegExp(`Name:\\s+web\\.shoal\\s+Address:\\s+${webIp.replaceAll('.', '\\.')}(\\s|$)`))

    // A user-defined network's gateway works the same (Docker's embedded DNS forwards to it).
    const onUserNet = await engine.docker(['run', '--rm', '--network', USER_NET, '--dns', '10.77.0.1', '--dns-search', 'shoal', TEST_IMAGE, 'nslookup', 'web'])
    expect(onUserNet.stdout, onUserNet.stderr).toMatch(new RegExp(`Address:\\s+${webIp.replaceAll('.', '\\.')}(\\s|$)`))
  })

  it('a peer that cannot listen on the bridge warns in status and the log, with what to do', async () => {
    // Same engine, but the peer runs in an empty namespace: no docker0 there, so the gateway is
    // found from the subnet and cannot be listened on.
    const add = spawnSync('ip', ['netns', 'add', emptyNs], { encoding: 'utf8' })
    expect(add.status, add.stderr).toBe(0)
    expect(spawnSync('nsenter', [`--net=/run/netns/${emptyNs}`, 'ip', 'link', 'set', 'lo', 'up']).status).toBe(0)
    const away = new NamespacedPeer('elsewhere', join(root, 'elsewhere'), (c, a) => ['nsenter', [`--net=/run/netns/${emptyNs}`, c, ...a]], engine.socket)
    PEERS.add(away)
    await away.start()
    const st = await waitFor('the peer to say it cannot serve containers', async () => {
      const s = await away.status()
      return s.dns?.containers.error != null ? s : undefined
    }, 30_000)
    expect(st.runtimeStatus.degraded).toBeNull()
    expect(st.dns!.containers.listen).toEqual([])
    expect(st.dns!.containers.dockerRunFlags).toBeNull()
    expect(st.dns!.containers.error).toBe("cannot listen on port 53 of 172.17.0.1, 10.77.0.1 (EADDRNOTAVAIL): the bridge is not in this peer's network namespace; run the peer on the Docker host itself (in a container only with --network host)")
    expect(away.log()).toMatch(/warn\s+shoal\/dns: containers cannot use this peer's DNS through 2 of 2 bridge gateway\(s\): cannot listen/)
    const text = await runCli(['status', '--api', away.api])
    expect(text.stdout).toMatch(/Docker DNS:\s+WARNING: cannot listen on port 53 of 172\.17\.0\.1/)
    await away.stop()
  })
})
