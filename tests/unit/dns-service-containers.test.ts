/**
 * The peer's DNS for containers follows the runtime's status: it listens on port 53 of each
 * bridge gateway (real sockets on loopback addresses standing in for bridges), says where
 * containers should point, and warns with what to do when there is no gateway or one it
 * cannot listen on. The end-to-end case with a stock dockerd is tests/integration/docker-stock.test.ts.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { DnsService } from '../../node/dns-service.ts'
import { StoreMachine } from '../../node/store-machine.ts'
import { WatchHub } from '../../node/watch-hub.ts'
import { createLogger } from '../../node/logger.ts'
import type { RuntimeStatus } from '../../runtime/runtime.ts'
import { waitFor } from '../helpers/processes.ts'

/** Loopback addresses no other test uses for port 53; 192.0.2.1 (TEST-NET-1, RFC 5737) is on no host. */
const BRIDGE_A = '127.53.0.1'
const BRIDGE_B = '127.53.0.2'
const NOT_HERE = '192.0.2.1'

const docker = (gateways: string[], degraded: string | null = null): RuntimeStatus => ({ runtime: 'docker', socket: '/run/docker.sock', engineVersion: '20.10', degraded, gateways })

let service: DnsService | null = null
afterEach(async () => {
  await service?.stop()
  service = null
})

async function started(): Promise<{ dns: DnsService; lines: string[] }> {
  const lines: string[] = []
  const machine = new StoreMachine()
  const dns = new DnsService({
    listen: { host: '127.0.0.1', port: 0 }, forward: null, ttlSeconds: 5, loops: 1, machine,
    watches: new WatchHub(() => machine.store), log: createLogger('info', 'dns', (line) => lines.push(line)),
  })
  await dns.start()
  service = dns
  return { dns, lines }
}

describe('DNS for containers follows the runtime', () => {
  it('listens on every gateway in the runtime\'s order and names the first in the docker run flags', async () => {
    const { dns, lines } = await started()
    dns.runtimeChanged(docker([BRIDGE_B, BRIDGE_A]))
    const view = await waitFor('the bridge listener', () => (dns.view()!.containers.listen.length > 0 ? dns.view()!.containers : undefined))
    expect(view).toEqual({ listen: [`${BRIDGE_B}:53`, `${BRIDGE_A}:53`], dockerRunFlags: `--dns ${BRIDGE_B} --dns-search shoal`, error: null })
    expect(lines.join('')).toContain(`run containers with --dns ${BRIDGE_B} --dns-search shoal`)
  })

  it('says nothing before the engine answers, keeps listening while it is degraded', async () => {
    const { dns } = await started()
    dns.runtimeChanged(docker([], 'not connected yet'))
    dns.runtimeChanged(docker([BRIDGE_A]))
    await waitFor('the bridge listener', () => dns.view()!.containers.listen.length > 0)
    dns.runtimeChanged(docker([BRIDGE_A], 'engine unreachable'))
    expect(dns.view()!.containers).toMatchObject({ listen: [`${BRIDGE_A}:53`], error: null })
  })

  it('an engine with no bridge gateway: a warning that says what to do', async () => {
    const { dns, lines } = await started()
    dns.runtimeChanged(docker([]))
    const view = await waitFor('the warning', () => (dns.view()!.containers.error !== null ? dns.view()!.containers : undefined))
    expect(view.listen).toEqual([])
    expect(view.dockerRunFlags).toBeNull()
    expect(view.error).toMatch(/has no bridge network with a gateway address.*give the engine a bridge \(dockerd's default docker0, or docker network create NAME\)/)
    expect(lines.join('')).toMatch(/warn\s+dns: containers cannot use this peer's DNS: the container runtime at \/run\/docker.sock has no bridge network/)
    // A bridge appears (found with the next reconcile): the warning goes.
    dns.runtimeChanged(docker([BRIDGE_A]))
    await waitFor('the bridge listener', () => dns.view()!.containers.listen.length > 0)
    expect(dns.view()!.containers.error).toBeNull()
  })

  it('a gateway not on this host costs only itself, and says why', async () => {
    const { dns, lines } = await started()
    dns.runtimeChanged(docker([NOT_HERE, BRIDGE_A]))
    const view = await waitFor('the outcome', () => (dns.view()!.containers.error !== null ? dns.view()!.containers : undefined))
    expect(view.listen).toEqual([`${BRIDGE_A}:53`])
    expect(view.dockerRunFlags).toBe(`--dns ${BRIDGE_A} --dns-search shoal`)
    expect(view.error).toBe(`cannot listen on port 53 of ${NOT_HERE} (EADDRNOTAVAIL): the bridge is not in this peer's network namespace; run the peer on the Docker host itself (in a container only with --network host)`)
    expect(lines.join('')).toMatch(/warn\s+dns: containers cannot use this peer's DNS through 1 of 2 bridge gateway\(s\)/)
  })

  it('no container runtime: nothing to say', async () => {
    const { dns } = await started()
    dns.runtimeChanged({ runtime: 'none', socket: null, engineVersion: null, degraded: null, gateways: [] })
    expect(dns.view()!.containers).toEqual({ listen: [], dockerRunFlags: null, error: null })
  })
})
