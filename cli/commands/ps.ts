/** `shoal ps` (every container of the cluster, as `docker ps` lists one host's, plus the host) and `shoal hosts`. */
import { parseCommandArgs, stringFlag, boolFlag } from '../args.ts'
import { apiCall, resolveApiSocket } from '../client.ts'
import { formatTable, age } from '../table.ts'
import type { ContainerView, HostView } from '../../node/container-views.ts'

export const PS_USAGE = `Usage: shoal ps [--all] [--host NAME] [--json] [--api SOCKET]

Lists the containers of every host in the cluster, from this peer's replica.
  -a, --all        also created, exited and dead containers (default: running, paused, lost)
  --host NAME      only the containers of this host (name or peer id)
  --json           one JSON array, full ids

A container is "lost" when its host has been dead longer than the grace period; it comes
back to its real state when the host returns.`

function status(c: ContainerView): string {
  switch (c.state) {
    case 'running': return `Up ${c.startedAt === undefined ? '' : age(c.startedAt)}${c.health !== undefined && c.health !== 'none' ? ` (${c.health})` : ''}`.trimEnd()
    case 'paused': return 'Up (Paused)'
    case 'exited': return `Exited (${c.exitCode ?? '?'})${c.finishedAt === undefined ? '' : ` ${age(c.finishedAt)} ago`}`
    case 'lost': return 'Lost (host gone)'
    default: return c.state[0]!.toUpperCase() + c.state.slice(1)
  }
}

function ports(c: ContainerView): string {
  return c.ports.map((p) => (p.hostPort === undefined ? `${p.containerPort}/${p.protocol}` : `${p.hostIp ?? '0.0.0.0'}:${p.hostPort}->${p.containerPort}/${p.protocol}`)).join(', ')
}

export async function psCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('ps', argv, {
    api: { type: 'string' }, json: { type: 'boolean' }, all: { type: 'boolean', short: 'a' }, host: { type: 'string' },
  }, { min: 0, max: 0 })
  const query = new URLSearchParams()
  if (boolFlag(p, 'all')) query.set('all', '1')
  const host = stringFlag(p, 'host')
  if (host !== undefined) query.set('host', host)
  const q = query.toString()
  const containers = await apiCall<ContainerView[]>(resolveApiSocket(stringFlag(p, 'api')), 'GET', `/v1/containers${q === '' ? '' : `?${q}`}`)
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify(containers, null, 2)}\n`)
    return 0
  }
  process.stdout.write(formatTable(
    ['container id', 'image', 'status', 'ports', 'ips', 'host', 'names'],
    containers.map((c) => [c.id.slice(0, 12), c.image, status(c), ports(c), c.ips.join(','), c.hostName, c.name]),
  ))
  return 0
}

/** `shoal hosts`: every host of the cluster with its liveness, address and containers. */
export async function hostsCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('hosts', argv, { api: { type: 'string' }, json: { type: 'boolean' } }, { min: 0, max: 0 })
  const hosts = await apiCall<HostView[]>(resolveApiSocket(stringFlag(p, 'api')), 'GET', '/v1/hosts')
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify(hosts, null, 2)}\n`)
    return 0
  }
  process.stdout.write(formatTable(
    ['name', 'state', 'containers', 'cpus', 'memory', 'version', 'address'],
    hosts.map((h) => [h.name, h.state, `${h.containers.running} running / ${h.containers.total}`, String(h.cpus), `${Math.round(h.memoryBytes / 2 ** 30)} GiB`, h.version, (h.addrs[0] ?? '-').replace(/\/p2p\/.*$/, '')]),
  ))
  return 0
}
