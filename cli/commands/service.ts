/**
 * `shoal service ...` (as `docker service`) and `shoal host drain|activate`. Commands that
 * change a service wait, showing each task's progress, until the service has converged (or
 * its rollout paused or rolled back), unless `--detach`.
 */
import { readFileSync, statSync } from 'node:fs'
import { parseCommandArgs, stringFlag, boolFlag, type FlagSpec } from '../args.ts'
import { apiCall, resolveApiSocket } from '../client.ts'
import { formatTable, shortId } from '../table.ts'
import { UsageError, UserError } from '../../node/errors.ts'
import type { ServiceRow, TaskRow, ServiceWriteResult } from '../../node/service-api.ts'
import type { ServiceRecord } from '../../runtime/scheduler/spec.ts'
import { parseServiceCreate, parseServiceUpdate, parseScaleArgs, SERVICE_CREATE_USAGE, SERVICE_UPDATE_USAGE, SERVICE_SCALE_USAGE } from '../service-flags.ts'
import { parseComposeFile, formatComposeError } from '../../runtime/scheduler/compose.ts'

export const SERVICE_USAGE = `Usage: shoal service COMMAND

  create NAME --image IMG [--replicas N] [--port P]... [--publish HP:P]... [--env K=V]...
         [--constraint EXPR]... [--health-cmd CMD] [--update-parallelism N] ... [--detach] [-- CMD ARGS...]
  apply -f FILE [--prune] [--detach]   create or change the services of a Compose file
  ls [--json]                          services: replicas, running, healthy, rollout
  ps NAME [--json]                     tasks of a service: host, state, container, error
  inspect NAME [--json]                the spec, its previous version and the rollout
  scale NAME=N [NAME=N...] | scale NAME N
  update NAME [--image IMG] [--replicas N] [--env-add K=V] [--env-rm K] ... [--detach]
  rollback NAME [--detach]             back to the previous spec, batch by batch
  rebalance NAME [--detach]            even out the spread over hosts, batch by batch
  rm NAME...

Every command takes --api SOCKET (or env SHOAL_API). 'shoal service create --help' lists the flags.`

/** `shoal service SUB --help`. */
export function serviceUsage(sub: string | undefined): string {
  if (sub === 'create') return SERVICE_CREATE_USAGE
  if (sub === 'update') return SERVICE_UPDATE_USAGE
  if (sub === 'scale') return SERVICE_SCALE_USAGE
  return SERVICE_USAGE
}

export const HOST_USAGE = `Usage: shoal host drain NAME | host activate NAME
  drain: no new tasks go to the host and its tasks move away; activate: it takes tasks again.`

const COMMON: Record<string, FlagSpec> = { api: { type: 'string' }, json: { type: 'boolean' }, detach: { type: 'boolean', short: 'd' } }

/** Most a compose file may weigh: a spec file, not a data file. */
const COMPOSE_MAX_BYTES = 1024 * 1024
/** How often the progress display polls the peer. */
const PROGRESS_POLL_MS = 500

export async function serviceCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  switch (sub) {
    case 'create': return create(rest)
    case 'apply': return apply(rest)
    case 'ls': case 'list': return list(rest)
    case 'ps': return ps(rest)
    case 'inspect': return inspect(rest)
    case 'scale': return scale(rest)
    case 'update': return update(rest)
    case 'rollback': return named(rest, 'rollback')
    case 'rebalance': return named(rest, 'rebalance')
    case 'rm': case 'remove': return remove(rest)
    case undefined:
      process.stdout.write(`${SERVICE_USAGE}\n`)
      return 2
    default:
      throw new UsageError(`unknown service command ${JSON.stringify(sub)}; one of create, apply, ls, ps, inspect, scale, update, rollback, rebalance, rm`)
  }
}

export async function hostCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub !== 'drain' && sub !== 'activate') throw new UsageError(`shoal host: expected drain or activate, e.g. shoal host drain host-1`)
  const p = parseCommandArgs(`host ${sub}`, rest, COMMON, { min: 1, max: 1 })
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  const r = await apiCall<{ peerId: string; name: string; availability: string }>(socket, 'POST', '/v1/hosts/availability', { host: p.positionals[0], availability: sub === 'drain' ? 'drain' : 'active' })
  if (boolFlag(p, 'json')) process.stdout.write(`${JSON.stringify(r)}\n`)
  else process.stdout.write(`host ${r.name} (${shortId(r.peerId)}) is ${r.availability === 'drain' ? 'drained: its tasks move to other hosts' : 'active'}\n`)
  return 0
}

/** Splits the command's own flags from the service flags (which service-flags.ts parses). */
function commonFlags(command: string, argv: string[]): { socket: string; json: boolean; detach: boolean; rest: string[] } {
  const rest: string[] = []
  let socket: string | undefined
  let json = false
  let detach = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--') {
      rest.push(...argv.slice(i))
      break
    }
    if (a === '--api') {
      socket = argv[++i]
      if (socket === undefined) throw new UsageError(`shoal service ${command}: --api needs a socket path`)
    } else if (a.startsWith('--api=')) socket = a.slice('--api='.length)
    else if (a === '--json') json = true
    else if (a === '--detach' || a === '-d') detach = true
    else rest.push(a)
  }
  return { socket: resolveApiSocket(socket), json, detach, rest }
}

async function create(argv: string[]): Promise<number> {
  const c = commonFlags('create', argv)
  const parsed = parseServiceCreate(c.rest)
  if (!parsed.ok) throw new UsageError(parsed.error)
  const [r] = await apiCall<ServiceWriteResult[]>(c.socket, 'POST', '/v1/services', { mode: 'create', specs: [parsed.input] })
  return finish(c, r === undefined ? [] : [r], c.detach || parsed.detach)
}

async function update(argv: string[]): Promise<number> {
  const c = commonFlags('update', argv)
  const name = c.rest.find((a) => !a.startsWith('-'))
  if (name === undefined) throw new UsageError('shoal service update: missing NAME')
  const current = await apiCall<{ service: ServiceRecord }>(c.socket, 'GET', `/v1/services/inspect?name=${encodeURIComponent(name)}`)
  const parsed = parseServiceUpdate(c.rest, current.service)
  if (!parsed.ok) throw new UsageError(parsed.error)
  const [r] = await apiCall<ServiceWriteResult[]>(c.socket, 'POST', '/v1/services', { mode: 'update', specs: [parsed.input] })
  if (r !== undefined && !r.changed) process.stderr.write(`service ${name}: nothing changed\n`)
  return finish(c, r === undefined ? [] : [r], c.detach || parsed.detach)
}

async function apply(argv: string[]): Promise<number> {
  const p = parseCommandArgs('service apply', argv, { ...COMMON, file: { type: 'string', short: 'f' }, prune: { type: 'boolean' } }, { min: 0, max: 0 })
  const file = stringFlag(p, 'file')
  if (file === undefined) throw new UsageError('shoal service apply: give the file with -f FILE (a Compose file with a services: section)')
  let text: string
  try {
    if (statSync(file).size > COMPOSE_MAX_BYTES) throw new UserError(`${file} is over ${COMPOSE_MAX_BYTES} bytes; a service file is a spec, not data`)
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if (err instanceof UserError) throw err
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  const parsed = parseComposeFile(text, file)
  if (!parsed.ok) {
    for (const e of parsed.errors) process.stderr.write(`${formatComposeError(e)}\n`)
    process.stderr.write(`shoal: ${parsed.errors.length} error(s) in ${file}; nothing was applied\n`)
    return 1
  }
  if (parsed.specs.length === 0) throw new UserError(`${file} has no services`)
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  const results = await apiCall<ServiceWriteResult[]>(socket, 'POST', '/v1/services', { mode: 'apply', specs: parsed.specs, prune: boolFlag(p, 'prune') })
  const json = boolFlag(p, 'json')
  if (!json) {
    for (const r of results) process.stderr.write(`service ${r.name}: ${r.changed ? `version ${r.version}` : 'unchanged'}\n`)
  }
  return finish({ socket, json }, results, boolFlag(p, 'detach'))
}

/** As `docker service ls` shows them: `*:8080->80/tcp` on the mesh (every host), `8080->80/tcp(host)` where instances run, then unpublished ports. */
function portsColumn(r: ServiceRow): string {
  const published = (r.published ?? []).map((p) => `${p.mode === 'ingress' ? '*:' : ''}${p.published}->${p.target}/${p.protocol}${p.mode === 'host' ? '(host)' : ''}`)
  const rest = r.ports.filter((port) => !(r.published ?? []).some((p) => p.target === port)).map(String)
  return [...published, ...rest].join(',')
}

async function list(argv: string[]): Promise<number> {
  const p = parseCommandArgs('service ls', argv, COMMON, { min: 0, max: 0 })
  const rows = await apiCall<ServiceRow[]>(resolveApiSocket(stringFlag(p, 'api')), 'GET', '/v1/services')
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify(rows)}\n`)
    return 0
  }
  process.stdout.write(formatTable(['NAME', 'MODE', 'REPLICAS', 'HEALTHY', 'IMAGE', 'PORTS', 'ROLLOUT'], rows.map((r) => [
    r.name, r.mode, `${r.running}/${r.replicas}`, String(r.healthy), r.image, portsColumn(r), r.updateState ?? '',
  ])))
  return 0
}

async function ps(argv: string[]): Promise<number> {
  const p = parseCommandArgs('service ps', argv, COMMON, { min: 1, max: 1 })
  const rows = await apiCall<TaskRow[]>(resolveApiSocket(stringFlag(p, 'api')), 'GET', `/v1/services/ps?name=${encodeURIComponent(p.positionals[0] as string)}`)
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify(rows)}\n`)
    return 0
  }
  process.stdout.write(formatTable(['TASK', 'HOST', 'DESIRED', 'STATE', 'VERSION', 'CONTAINER', 'ERROR'], rows.map((r) => [
    r.task, r.hostName ?? shortId(r.host), r.desiredState, r.state, String(r.specVersion), r.containerId?.slice(0, 12) ?? '', r.error ?? '',
  ])))
  return 0
}

async function inspect(argv: string[]): Promise<number> {
  const p = parseCommandArgs('service inspect', argv, COMMON, { min: 1, max: 1 })
  const r = await apiCall<unknown>(resolveApiSocket(stringFlag(p, 'api')), 'GET', `/v1/services/inspect?name=${encodeURIComponent(p.positionals[0] as string)}`)
  process.stdout.write(`${JSON.stringify(r, null, boolFlag(p, 'json') ? undefined : 2)}\n`)
  return 0
}

async function scale(argv: string[]): Promise<number> {
  const c = commonFlags('scale', argv)
  const parsed = parseScaleArgs(c.rest)
  if (!parsed.ok) throw new UsageError(parsed.error)
  const scales = Object.fromEntries(parsed.scales.map((x) => [x.name, x.replicas]))
  const results = await apiCall<ServiceWriteResult[]>(c.socket, 'POST', '/v1/services/scale', { scales })
  return finish(c, results, c.detach || parsed.detach)
}

async function named(argv: string[], action: 'rollback' | 'rebalance'): Promise<number> {
  const p = parseCommandArgs(`service ${action}`, argv, COMMON, { min: 1, max: 1 })
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  const r = await apiCall<ServiceWriteResult>(socket, 'POST', `/v1/services/${action}?name=${encodeURIComponent(p.positionals[0] as string)}`)
  return finish({ socket, json: boolFlag(p, 'json') }, [r], boolFlag(p, 'detach'), action === 'rollback')
}

async function remove(argv: string[]): Promise<number> {
  const p = parseCommandArgs('service rm', argv, COMMON, { min: 1, max: 1000 })
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  let failed = 0
  for (const name of p.positionals) {
    try {
      await apiCall<ServiceWriteResult>(socket, 'DELETE', `/v1/services?name=${encodeURIComponent(name)}`)
      process.stdout.write(`${name}\n`)
    } catch (err) {
      if (!(err instanceof UserError)) throw err
      process.stderr.write(`shoal: ${err.message}\n`)
      failed++
    }
  }
  return failed === 0 ? 0 : 1
}

/** Prints the result, then (unless detached) follows the services until they converge. */
async function finish(c: { socket: string; json: boolean }, results: readonly ServiceWriteResult[], detach: boolean, rollingBack = false): Promise<number> {
  if (c.json) process.stdout.write(`${JSON.stringify(results)}\n`)
  else for (const r of results) if (r.changed) process.stdout.write(`${r.name}\n`)
  if (detach || results.length === 0) return 0
  return follow(c.socket, results.map((r) => r.name), rollingBack)
}

/**
 * Polls the services until each has converged, printing a line whenever a task's state
 * changes (like `docker service create`'s progress), to stderr so stdout stays the result.
 * A rollout that pauses or rolls back ends it with exit 1.
 */
async function follow(socket: string, names: readonly string[], rollingBack: boolean): Promise<number> {
  const seen = new Map<string, string>()
  const messages = new Map<string, string>()
  for (;;) {
    const rows = await apiCall<ServiceRow[]>(socket, 'GET', '/v1/services')
    let pending = 0
    for (const name of names) {
      const row = rows.find((r) => r.name === name)
      if (row === undefined) continue // removed by --prune or by someone else: nothing to wait for
      let tasks: TaskRow[] = []
      try {
        tasks = await apiCall<TaskRow[]>(socket, 'GET', `/v1/services/ps?name=${encodeURIComponent(name)}`)
      } catch {
        continue
      }
      for (const t of tasks) {
        const line = `${t.state}${t.error === null ? '' : ` (${t.error})`}`
        const key = `${t.task}@${t.host}`
        if (seen.get(key) !== line) {
          seen.set(key, line)
          process.stderr.write(`  ${t.task} on ${t.hostName ?? shortId(t.host)}: ${t.desiredState === 'shutdown' ? 'retiring, ' : ''}${line}\n`)
        }
      }
      if (row.message !== '' && messages.get(name) !== row.message) {
        messages.set(name, row.message)
        process.stderr.write(`  ${name}: ${row.message}\n`)
      }
      if (row.updateState === 'paused' || row.updateState === 'rollback-paused') {
        process.stderr.write(`shoal: the rollout of ${name} is paused: ${row.message}\n`)
        return 1
      }
      if (row.updateState === 'rollback-completed' && row.converged && !rollingBack) {
        process.stderr.write(`shoal: ${name} was rolled back to its previous spec (version ${row.version}): ${row.message}\n`)
        return 1
      }
      if (row.converged) continue
      pending++
    }
    if (pending === 0) {
      process.stderr.write(`converged: ${names.join(', ')}\n`)
      return 0
    }
    await new Promise((r) => setTimeout(r, PROGRESS_POLL_MS))
  }
}
