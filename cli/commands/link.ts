/**
 * `shoal link create|ls|rm` (issue 13): links between containers and services on any host, as
 * Docker's `--link` between containers on one; and `shoal docker-config`, the one step that
 * points containers a user starts at this peer's DNS (where their aliases are answered).
 */
import { parseCommandArgs, stringFlag, listFlag, boolFlag } from '../args.ts'
import { apiCall, resolveApiSocket } from '../client.ts'
import { formatTable } from '../table.ts'
import { UsageError, UserError } from '../../node/errors.ts'
import type { LinkCreated, LinkRow } from '../../node/link-api.ts'

export const LINK_USAGE = `Usage: shoal link create SOURCE TARGET --alias ALIAS [--port PORT[/udp]]...
       shoal link ls [--json]
       shoal link rm SOURCE ALIAS

SOURCE and TARGET: a service name (every instance, on every host, now and later), a container
name, or a container id prefix (at least 4 hex characters). Inside every container of SOURCE,
ALIAS and ALIAS.shoal resolve to an address on its own host where TARGET's ports answer; other
containers get NXDOMAIN for it. Ports default to TARGET's (its shoal.port label, exposed ports,
or its service's ports). A container is linked by its id: 'docker restart' keeps it, a container
removed and run again is a new one (link a service to follow replacements).
Containers you start yourself must use this peer's DNS: see 'shoal docker-config'.`

export const DOCKER_CONFIG_USAGE = `Usage: shoal docker-config [--json]
Prints what makes containers on this host use this peer's DNS (so service names and link
aliases resolve): the lines for /etc/docker/daemon.json (every container; restart dockerd after),
or the flags for one 'docker run'.`

const FLAGS = { api: { type: 'string' }, json: { type: 'boolean' }, alias: { type: 'string' }, port: { type: 'string', multiple: true } } as const

export async function linkCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  switch (sub) {
    case 'create': {
      const p = parseCommandArgs('link create', rest, FLAGS, { min: 2, max: 2 })
      const alias = stringFlag(p, 'alias')
      if (alias === undefined) throw new UsageError(`shoal link create: --alias ALIAS is required (the name SOURCE's containers will use)\n${LINK_USAGE}`)
      const [source, target] = p.positionals as [string, string]
      const r = await apiCall<LinkCreated>(resolveApiSocket(stringFlag(p, 'api')), 'POST', '/v1/links', { source, target, alias, ports: listFlag(p, 'port') })
      if (boolFlag(p, 'json')) process.stdout.write(`${JSON.stringify(r.link)}\n`)
      else process.stdout.write(`${source} -> ${target} as ${alias} (${r.link.ports.map(portText).join(', ')})\n`)
      return 0
    }
    case 'ls':
    case 'list': {
      const p = parseCommandArgs('link ls', rest, FLAGS, { min: 0, max: 0 })
      const rows = await apiCall<LinkRow[]>(resolveApiSocket(stringFlag(p, 'api')), 'GET', '/v1/links')
      if (boolFlag(p, 'json')) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`)
        return 0
      }
      const endpoint = (value: string, name: string | null, kind: string): string => (kind === 'service' ? value : `${name ?? '?'} (${value.slice(0, 12)})`)
      process.stdout.write(formatTable(['SOURCE', 'TARGET', 'ALIAS', 'PORTS', 'ADDRESS', 'STATE'], rows.map((r) => [
        endpoint(r.source, r.sourceName, r.sourceKind), endpoint(r.target, r.targetName, r.targetKind), r.alias,
        r.ports.map(portText).join(','), r.address ?? '-', r.state,
      ])))
      return 0
    }
    case 'rm':
    case 'remove': {
      const p = parseCommandArgs('link rm', rest, FLAGS, { min: 2, max: 2 })
      const [source, alias] = p.positionals as [string, string]
      const r = await apiCall<{ removed: string }>(resolveApiSocket(stringFlag(p, 'api')), 'DELETE', `/v1/links?source=${encodeURIComponent(source)}&alias=${encodeURIComponent(alias)}`)
      process.stdout.write(boolFlag(p, 'json') ? `${JSON.stringify(r)}\n` : `${alias}\n`)
      return 0
    }
    default:
      throw new UsageError(`link needs a subcommand: create, ls or rm\n${LINK_USAGE}`)
  }
}

function portText(p: { port: number; protocol: string }): string {
  return p.protocol === 'tcp' ? String(p.port) : `${p.port}/${p.protocol}`
}

interface StatusDns {
  dns: { containers: { listen: string[]; dockerRunFlags: string | null; error: string | null } } | null
}

export async function dockerConfigCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('docker-config', argv, { api: { type: 'string' }, json: { type: 'boolean' } }, { min: 0, max: 0 })
  const status = await apiCall<StatusDns>(resolveApiSocket(stringFlag(p, 'api')), 'GET', '/v1/status')
  if (status.dns === null) throw new UserError('this peer runs without DNS (--dns off); restart it with --dns HOST:PORT so containers can resolve names and link aliases')
  const first = status.dns.containers.listen[0]
  if (first === undefined) {
    throw new UserError(`containers on this host cannot reach this peer's DNS: ${status.dns.containers.error ?? 'the peer has no container runtime (--docker); start it with the Docker socket'}`)
  }
  // The listen address is HOST:53 (or [v6]:53): Docker's --dns takes the address alone.
  const gateway = first.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')
  const daemon = { dns: [gateway], 'dns-search': ['shoal'] }
  const flags = `--dns ${gateway} --dns-search shoal`
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify({ daemonJson: daemon, dockerRunFlags: flags })}\n`)
    return 0
  }
  process.stdout.write(`# Every container on this host: merge into /etc/docker/daemon.json, then restart dockerd
${JSON.stringify(daemon, null, 2)}
# One container:
docker run ${flags} IMAGE
`)
  return 0
}
