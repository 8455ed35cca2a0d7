/**
 * The flags of `shoal service create`, `service update` and `service scale` (issue 12), read
 * into validateSpec's input. Pure: argv in, a result out (no socket, file or environment);
 * cli/main.ts sends the input to the daemon's API, which validates it again.
 *
 * Flag names are `docker service create`'s where Docker has one (`--replicas`, `--mode`,
 * `--publish`/`-p`, `--env`/`-e`, `--label`/`-l`, `--constraint`, `--reserve-cpu`,
 * `--limit-memory`, `--restart-*`, `--health-*`, `--no-healthcheck`, `--update-*`,
 * `--rollback-*`, `--stop-grace-period`, `--entrypoint`, `--detach`/`-d`, and on update
 * `--env-add`/`--env-rm`, `--label-add/-rm`, `--constraint-add/-rm`, `--publish-add/-rm`,
 * `--args`); Shoal's own: `--port P` (a container port announced in SRV, not published) and
 * `--on-disconnect keep|stop` with `--on-disconnect-after D`. Durations are Docker's (`10s`,
 * `1m30s`, `500ms`), sizes too (`512m`, `1g`, bytes); a file and a flag read them with the
 * same parsers (runtime/scheduler/compose.ts).
 *
 * Decisions where Docker and Shoal differ:
 * - `--env K` without `=V` is an error (Docker copies K from the client's environment; these
 *   parsers are pure and a service's environment should be what was typed).
 * - `--publish 80` (Docker: a random host port) is an error pointing to `--publish 8080:80`
 *   or `--port 80`; a host IP in a port is an error (Shoal publishes on every address).
 * - On update, `--env`, `--label`, `--constraint`, `--port`, `--publish` add (as their
 *   `-add` forms); removals run before additions (as Docker); removing what is not there is
 *   not an error (as Docker). `--mode` may change on update (Docker refuses): to global drops
 *   the replica count, to replicated sets 1 unless `--replicas` is given.
 * - `--no-healthcheck` leaves the spec without a health check (the spec cannot say Docker's
 *   NONE, so an image's own HEALTHCHECK still runs); with any `--health-*` it is an error.
 * - A single-value flag given twice keeps the last (as Docker and node's parseArgs).
 * Every error names the flag and says what is expected; all errors of one command line are
 * reported together, one a line.
 */
import { parseArgs } from 'node:util'
import { formatConstraint, parseConstraint } from '../runtime/scheduler/constraint.ts'
import {
  parseBytes, parseCpus, parseDurationMs, parsePortText, parseProtocol, splitShellWords, type PortMapping, type TextResult,
} from '../runtime/scheduler/compose.ts'
import { SPEC_MAX_REPLICAS, specOf, validateSpec, type ServiceSpec } from '../runtime/scheduler/spec.ts'

/** What `parseServiceCreate` / `parseServiceUpdate` give. */
export type ServiceFlagsResult =
  | {
    readonly ok: true
    readonly name: string
    /** validateSpec's input, plain JSON: what the CLI sends to the API. */
    readonly input: Record<string, unknown>
    /** The input validated here (every default filled). */
    readonly spec: ServiceSpec
    /** `--detach` / `-d`: return at once instead of following the tasks until they converge. */
    readonly detach: boolean
    /** `--api SOCKET`, when given. */
    readonly api: string | undefined
  }
  | { readonly ok: false; readonly error: string }

/** What `parseScaleArgs` gives. */
export type ScaleArgsResult =
  | { readonly ok: true; readonly scales: ReadonlyArray<{ readonly name: string; readonly replicas: number }>; readonly detach: boolean; readonly api: string | undefined }
  | { readonly ok: false; readonly error: string }

export const SERVICE_CREATE_USAGE = `Usage: shoal service create NAME --image IMG [OPTIONS] [-- CMD ARGS...]

  --image IMG                     image to run (required)
  --replicas N                    instances (default 1)       --mode replicated|global
  --port P[/udp]                  container port, announced in SRV (repeatable)
  -p, --publish HP:P              publish container port P on host port HP of every host (the
                                  routing mesh; repeatable); published=HP,target=P,mode=host
                                  binds it only where an instance runs (needed for protocol=udp)
  -e, --env K=V   -l, --label K=V --constraint host.name==X|host.label.K==V (repeatable; != too)
  --entrypoint "CMD ARGS"         override the image's entrypoint
  --reserve-cpu N --reserve-memory 512m --limit-cpu N --limit-memory 1g
  --restart-condition any|on-failure|none  --restart-max-attempts N  --restart-delay 5s  --restart-window D
  --health-cmd "CMD"  --health-interval D  --health-timeout D  --health-retries N  --health-start-period D
  --no-healthcheck
  --update-parallelism N  --update-delay D  --update-order stop-first|start-first  --update-monitor D
  --update-failure-action pause|rollback|continue  --update-max-failure-ratio F
  --rollback-parallelism N ... (the same, for rollbacks)
  --stop-grace-period D           (default 10s)
  --on-disconnect keep|stop  --on-disconnect-after D   what a host does without the leader
  -d, --detach                    do not wait for the tasks to converge
Durations: 10s, 1m30s, 500ms. Sizes: 512m, 1g, bytes.`

export const SERVICE_UPDATE_USAGE = `Usage: shoal service update NAME [OPTIONS] [-- CMD ARGS...]

  Any option of 'service create', plus:
  --env-add K=V  --env-rm K       --label-add K=V  --label-rm K
  --constraint-add EXPR  --constraint-rm EXPR
  --port-add P  --port-rm P       --publish-add HP:P  --publish-rm P|HP:P
  --args "CMD ARGS"               replace the command (as -- CMD ARGS)
  (--env, --label, --constraint, --port, --publish add, as their -add forms)`

export const SERVICE_SCALE_USAGE = `Usage: shoal service scale NAME=N [NAME=N...] | shoal service scale NAME N   [-d]`

type Obj = Record<string, unknown>
type FlagSpec = { type: 'string'; multiple?: boolean; short?: string } | { type: 'boolean'; short?: string }

const SETTABLE_FLAGS: Record<string, FlagSpec> = {
  api: { type: 'string' },
  detach: { type: 'boolean', short: 'd' },
  image: { type: 'string' },
  replicas: { type: 'string' },
  mode: { type: 'string' },
  entrypoint: { type: 'string' },
  port: { type: 'string', multiple: true },
  publish: { type: 'string', multiple: true, short: 'p' },
  env: { type: 'string', multiple: true, short: 'e' },
  label: { type: 'string', multiple: true, short: 'l' },
  constraint: { type: 'string', multiple: true },
  'reserve-cpu': { type: 'string' },
  'reserve-memory': { type: 'string' },
  'limit-cpu': { type: 'string' },
  'limit-memory': { type: 'string' },
  'restart-condition': { type: 'string' },
  'restart-max-attempts': { type: 'string' },
  'restart-delay': { type: 'string' },
  'restart-window': { type: 'string' },
  'health-cmd': { type: 'string' },
  'health-interval': { type: 'string' },
  'health-timeout': { type: 'string' },
  'health-retries': { type: 'string' },
  'health-start-period': { type: 'string' },
  'no-healthcheck': { type: 'boolean' },
  'stop-grace-period': { type: 'string' },
  'on-disconnect': { type: 'string' },
  'on-disconnect-after': { type: 'string' },
  ...updateConfigFlags('update'),
  ...updateConfigFlags('rollback'),
}

const UPDATE_ONLY_FLAGS: Record<string, FlagSpec> = {
  'env-add': { type: 'string', multiple: true },
  'env-rm': { type: 'string', multiple: true },
  'label-add': { type: 'string', multiple: true },
  'label-rm': { type: 'string', multiple: true },
  'constraint-add': { type: 'string', multiple: true },
  'constraint-rm': { type: 'string', multiple: true },
  'port-add': { type: 'string', multiple: true },
  'port-rm': { type: 'string', multiple: true },
  'publish-add': { type: 'string', multiple: true },
  'publish-rm': { type: 'string', multiple: true },
  args: { type: 'string' },
}

function updateConfigFlags(prefix: 'update' | 'rollback'): Record<string, FlagSpec> {
  const out: Record<string, FlagSpec> = {}
  for (const f of ['parallelism', 'delay', 'order', 'monitor', 'failure-action', 'max-failure-ratio']) out[`${prefix}-${f}`] = { type: 'string' }
  return out
}

interface Parsed {
  readonly values: Record<string, string | string[] | boolean | undefined>
  readonly positionals: string[]
  /** After a bare `--`: the container's command, untouched. */
  readonly rest: string[]
}

function parse(command: string, argv: readonly string[], options: Record<string, FlagSpec>): { ok: true; parsed: Parsed } | { ok: false; error: string } {
  const split = argv.indexOf('--')
  const head = split === -1 ? [...argv] : argv.slice(0, split)
  const rest = split === -1 ? [] : argv.slice(split + 1)
  try {
    const p = parseArgs({ args: head, options, strict: true, allowPositionals: true })
    return { ok: true, parsed: { values: p.values as Parsed['values'], positionals: p.positionals, rest } }
  } catch (err) {
    const message = err instanceof Error ? err.message.replace(/\. To specify a positional argument.*$/s, '') : String(err)
    return { ok: false, error: `shoal ${command}: ${message} (see 'shoal ${command} --help')` }
  }
}

/** Reads flag values, collecting every error. */
class FlagReader {
  readonly errors: string[] = []
  private readonly p: Parsed
  constructor(p: Parsed) {
    this.p = p
  }

  fail(flag: string, message: string): void {
    this.errors.push(`--${flag}: ${message}`)
  }

  has(flag: string): boolean {
    return this.p.values[flag] !== undefined
  }

  string(flag: string): string | undefined {
    const v = this.p.values[flag]
    return typeof v === 'string' ? v : undefined
  }

  list(flag: string): string[] {
    const v = this.p.values[flag]
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : []
  }

  bool(flag: string): boolean {
    return this.p.values[flag] === true
  }

  private read<T>(flag: string, parse: (text: string) => TextResult<T>): T | undefined {
    const text = this.string(flag)
    if (text === undefined) return undefined
    const r = parse(text)
    if (!r.ok) this.fail(flag, r.error)
    return r.ok ? r.value : undefined
  }

  int(flag: string): number | undefined {
    return this.read(flag, (t) => /^\d{1,15}$/.test(t.trim()) ? { ok: true, value: Number(t.trim()) } : { ok: false, error: `expected a whole number, got ${JSON.stringify(t)}` })
  }

  decimal(flag: string, what: string): number | undefined {
    return this.read(flag, (t) => {
      const r = parseCpus(t)
      return r.ok ? r : { ok: false, error: `expected ${what}, got ${JSON.stringify(t)}` }
    })
  }

  duration(flag: string): number | undefined {
    return this.read(flag, parseDurationMs)
  }

  bytes(flag: string): number | undefined {
    return this.read(flag, parseBytes)
  }

  words(flag: string): string[] | undefined {
    return this.read(flag, splitShellWords)
  }
}

/** `K=V` (env: a value is required; labels: `K` alone is an empty value, as Docker). */
function keyValue(r: FlagReader, flag: string, text: string, valueRequired: boolean): [string, string] | null {
  const eq = text.indexOf('=')
  if (eq === 0) {
    r.fail(flag, `${JSON.stringify(text)} has no name before =; expected KEY=VALUE`)
    return null
  }
  if (eq === -1 && valueRequired) {
    r.fail(flag, `${JSON.stringify(text)} has no value; expected ${text}=VALUE (Shoal does not copy variables from the machine you type on)`)
    return null
  }
  return eq === -1 ? [text, ''] : [text.slice(0, eq), text.slice(eq + 1)]
}

/** `--port P[/proto]` (ranges too): container ports. */
function containerPorts(r: FlagReader, flag: string, text: string): number[] {
  const p = parsePortText(text)
  if (!p.ok) {
    r.fail(flag, p.error)
    return []
  }
  if (p.value.some((m) => m.published !== null)) {
    r.fail(flag, `${JSON.stringify(text)} names a host port: --${flag} takes container ports (P or P/udp); publish with --publish ${text}`)
    return []
  }
  return p.value.map((m) => m.target)
}

/** `--publish HP:P[/proto]` or Docker's long form `published=HP,target=P[,protocol=udp][,mode=ingress|host]`. */
function publishedPorts(r: FlagReader, flag: string, text: string, targetOnlyAllowed: boolean): PortMapping[] {
  const p = text.includes('=') ? parsePublishLong(text) : parsePortText(text)
  if (!p.ok) {
    r.fail(flag, p.error)
    return []
  }
  if (!targetOnlyAllowed && p.value.some((m) => m.published === null)) {
    r.fail(flag, `${JSON.stringify(text)} has no host port: write HOST_PORT:CONTAINER_PORT (e.g. 8080:${text}); to announce a container port without publishing it, use --port ${text}`)
    return []
  }
  return p.value
}

function parsePublishLong(text: string): TextResult<PortMapping[]> {
  let published: number | null = null
  let target: number | null = null
  let protocol: 'tcp' | 'udp' = 'tcp'
  let mode: 'ingress' | 'host' | undefined
  for (const field of text.split(',')) {
    const eq = field.indexOf('=')
    const key = field.slice(0, eq).trim()
    const value = field.slice(eq + 1).trim()
    const port = /^\d{1,5}$/.test(value) && Number(value) >= 1 && Number(value) <= 65535 ? Number(value) : null
    if ((key === 'published' || key === 'target') && port === null) return { ok: false, error: `${key}=${value} is not a port 1-65535` }
    if (key === 'published') published = port
    else if (key === 'target') target = port
    else if (key === 'protocol') {
      const pr = parseProtocol(value)
      if (!pr.ok) return pr
      protocol = pr.value
    } else if (key === 'mode') {
      if (value !== 'ingress' && value !== 'host') return { ok: false, error: `mode=${value}: expected mode=ingress (every host answers, the default) or mode=host (only hosts running an instance)` }
      mode = value
    } else return { ok: false, error: `${JSON.stringify(field)}: expected published=HOST_PORT,target=CONTAINER_PORT[,protocol=udp][,mode=ingress|host]` }
  }
  if (target === null) return { ok: false, error: `${JSON.stringify(text)} has no target=CONTAINER_PORT` }
  return { ok: true, value: [mode === undefined ? { published, target, protocol } : { published, target, protocol, mode }] }
}

function publishedInput(m: PortMapping): Obj {
  return { published: m.published, target: m.target, protocol: m.protocol, ...(m.mode === undefined ? {} : { mode: m.mode }) }
}

function sameMapping(a: Obj, m: PortMapping): boolean {
  return a['target'] === m.target && a['protocol'] === m.protocol && (m.published === null || a['published'] === m.published)
}

function obj(v: unknown): Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...(v as Obj) } : {}
}

/** The flags create and update share that set one value; `input` is changed in place. */
function applySettable(r: FlagReader, input: Obj, currentMode: 'replicated' | 'global' | null): void {
  const image = r.string('image')
  if (image !== undefined) input['image'] = image
  const replicas = r.int('replicas')
  if (replicas !== undefined) input['replicas'] = replicas
  const mode = r.string('mode')
  if (mode !== undefined) {
    input['mode'] = mode
    // Switching mode on update: global has no replica count, replicated needs one.
    if (currentMode !== null && mode !== currentMode && replicas === undefined) {
      if (mode === 'global') input['replicas'] = 0
      else if (mode === 'replicated') input['replicas'] = 1
    }
  }
  const entrypoint = r.words('entrypoint')
  if (entrypoint !== undefined) input['entrypoint'] = entrypoint

  for (const [field, prefix] of [['reservations', 'reserve'], ['limits', 'limit']] as const) {
    const cpus = r.decimal(`${prefix}-cpu`, 'a number of CPUs such as 0.5 or 2')
    const memoryBytes = r.bytes(`${prefix}-memory`)
    if (cpus === undefined && memoryBytes === undefined) continue
    const o = obj(input[field])
    if (cpus !== undefined) o['cpus'] = cpus
    if (memoryBytes !== undefined) o['memoryBytes'] = memoryBytes
    input[field] = o
  }

  const restart: Obj = {}
  const condition = r.string('restart-condition')
  if (condition !== undefined) restart['condition'] = condition
  const maxAttempts = r.int('restart-max-attempts')
  if (maxAttempts !== undefined) restart['maxAttempts'] = maxAttempts
  const restartDelay = r.duration('restart-delay')
  if (restartDelay !== undefined) restart['delayMs'] = restartDelay
  const window = r.duration('restart-window')
  if (window !== undefined) restart['windowMs'] = window
  if (Object.keys(restart).length > 0) input['restart'] = { ...obj(input['restart']), ...restart }

  const health: Obj = {}
  const healthCmd = r.string('health-cmd')
  if (healthCmd !== undefined) {
    // Docker's --health-cmd is a command line run by the shell (CMD-SHELL): one string.
    if (healthCmd.trim() === '') r.fail('health-cmd', 'is empty: give the command that exits 0 when the service is healthy (or --no-healthcheck for none)')
    else health['cmd'] = [healthCmd]
  }
  for (const [flag, field] of [['health-interval', 'intervalMs'], ['health-timeout', 'timeoutMs'], ['health-start-period', 'startPeriodMs']] as const) {
    const ms = r.duration(flag)
    if (ms !== undefined) health[field] = ms
  }
  const retries = r.int('health-retries')
  if (retries !== undefined) health['retries'] = retries
  const healthFlags = ['health-cmd', 'health-interval', 'health-timeout', 'health-start-period', 'health-retries'].filter((f) => r.has(f))
  if (r.bool('no-healthcheck')) {
    if (healthFlags.length > 0) r.fail('no-healthcheck', `turns the health check off, but --${healthFlags[0] ?? ''} sets one; give one or the other`)
    input['healthCheck'] = null
  } else if (Object.keys(health).length > 0) input['healthCheck'] = { ...obj(input['healthCheck']), ...health }

  for (const prefix of ['update', 'rollback'] as const) {
    const u: Obj = {}
    const parallelism = r.int(`${prefix}-parallelism`)
    if (parallelism !== undefined) u['parallelism'] = parallelism
    const delay = r.duration(`${prefix}-delay`)
    if (delay !== undefined) u['delayMs'] = delay
    const order = r.string(`${prefix}-order`)
    if (order !== undefined) u['order'] = order
    const monitor = r.duration(`${prefix}-monitor`)
    if (monitor !== undefined) u['monitorMs'] = monitor
    const action = r.string(`${prefix}-failure-action`)
    if (action !== undefined) u['failureAction'] = action
    const ratio = r.decimal(`${prefix}-max-failure-ratio`, 'a fraction 0..1 such as 0.2')
    if (ratio !== undefined) u['maxFailureRatio'] = ratio
    if (Object.keys(u).length > 0) input[prefix] = { ...obj(input[prefix]), ...u }
  }

  const grace = r.duration('stop-grace-period')
  if (grace !== undefined) input['stopGracePeriodMs'] = grace
  const d: Obj = {}
  const action = r.string('on-disconnect')
  if (action !== undefined) d['action'] = action
  const after = r.duration('on-disconnect-after')
  if (after !== undefined) d['afterMs'] = after
  if (Object.keys(d).length > 0) input['onDisconnect'] = { ...obj(input['onDisconnect']), ...d }
  if (d['action'] === 'stop' && obj(input['onDisconnect'])['afterMs'] === undefined) {
    r.fail('on-disconnect', 'stop needs --on-disconnect-after D (how long without the leader before the containers stop, e.g. 30s)')
  }
}

/** Which flag sets a validateSpec path (for naming the flag in its errors). */
function flagOfPath(path: string, command: 'create' | 'update'): { flag: string; key: string | null } {
  const add = command === 'update' ? '-add' : ''
  const table: Array<[string, string]> = [
    ['name', 'NAME'], ['image', '--image'], ['entrypoint', '--entrypoint'], ['cmd', command === 'update' ? '--args' : 'the command after --'],
    ['env', `--env${add}`], ['labels', `--label${add}`], ['mode', '--mode'], ['replicas', '--replicas'], ['ports', `--port${add}`],
    ['published', `--publish${add}`], ['constraints', `--constraint${add}`],
    ['reservations.cpus', '--reserve-cpu'], ['reservations.memoryBytes', '--reserve-memory'], ['limits.cpus', '--limit-cpu'], ['limits.memoryBytes', '--limit-memory'],
    ['restart.condition', '--restart-condition'], ['restart.maxAttempts', '--restart-max-attempts'], ['restart.delayMs', '--restart-delay'], ['restart.windowMs', '--restart-window'],
    ['healthCheck.cmd', '--health-cmd'], ['healthCheck.intervalMs', '--health-interval'], ['healthCheck.timeoutMs', '--health-timeout'],
    ['healthCheck.retries', '--health-retries'], ['healthCheck.startPeriodMs', '--health-start-period'],
    ['stopGracePeriodMs', '--stop-grace-period'], ['onDisconnect.action', '--on-disconnect'], ['onDisconnect.afterMs', '--on-disconnect-after'],
  ]
  for (const prefix of ['update', 'rollback']) {
    for (const [field, flag] of [['parallelism', 'parallelism'], ['delayMs', 'delay'], ['order', 'order'], ['monitorMs', 'monitor'], ['failureAction', 'failure-action'], ['maxFailureRatio', 'max-failure-ratio']]) {
      table.push([`${prefix}.${field}`, `--${prefix}-${flag}`])
    }
  }
  for (const [prefix, flag] of table) {
    if (path !== prefix && !path.startsWith(`${prefix}.`) && !path.startsWith(`${prefix}[`)) continue
    const rest = path.slice(prefix.length)
    // A map key (env.FOO, labels["a.b"]) names the entry; a list index is only the flag's order.
    const quoted = /^\[("(?:[^"\\]|\\.)*")\]/.exec(rest)?.[1]
    const key = rest.startsWith('.') ? rest.slice(1) : quoted === undefined ? null : String(JSON.parse(quoted))
    return { flag, key }
  }
  return { flag: path, key: null }
}

function finish(command: 'create' | 'update', name: string, input: Obj, r: FlagReader, detach: boolean, api: string | undefined): ServiceFlagsResult {
  const errors = [...r.errors]
  const v = validateSpec(input)
  if (!v.ok) {
    for (const e of v.errors) {
      const { flag, key } = flagOfPath(e.path, command)
      const said = e.message
        .replace(/\blimits\.cpus\b/, '--limit-cpu').replace(/\blimits\.memoryBytes\b/, '--limit-memory')
      errors.push(`${flag}${key === null ? '' : ` ${key}`}: ${said}`)
    }
  }
  if (errors.length > 0 || !v.ok) return { ok: false, error: [...new Set(errors)].map((e) => `shoal service ${command}: ${e}`).join('\n') }
  return { ok: true, name, input, spec: v.value, detach, api }
}

/**
 * `shoal service create NAME --image IMG [flags] [-- CMD ARGS...]` (argv: what follows
 * `service create`). Never throws.
 */
export function parseServiceCreate(argv: readonly string[]): ServiceFlagsResult {
  const p = parse('service create', argv, SETTABLE_FLAGS)
  if (!p.ok) return p
  const { positionals, rest } = p.parsed
  const name = positionals[0]
  if (name === undefined) return { ok: false, error: 'shoal service create: missing the service NAME (shoal service create NAME --image IMG [-- CMD ARGS])' }
  const r = new FlagReader(p.parsed)
  if (positionals.length > 1) {
    r.errors.push(`unexpected argument ${JSON.stringify(positionals[1])}: put the container's command after -- (shoal service create ${name} --image IMG -- CMD ARGS)`)
  }
  const input: Obj = { name }
  applySettable(r, input, null)
  const env: Array<[string, string]> = []
  for (const text of r.list('env')) {
    const kv = keyValue(r, 'env', text, true)
    if (kv !== null) env.push(kv)
  }
  if (env.length > 0) input['env'] = Object.fromEntries(env)
  const labels: Array<[string, string]> = []
  for (const text of r.list('label')) {
    const kv = keyValue(r, 'label', text, false)
    if (kv !== null) labels.push(kv)
  }
  if (labels.length > 0) input['labels'] = Object.fromEntries(labels)
  const constraints = r.list('constraint')
  if (constraints.length > 0) input['constraints'] = constraints
  const ports = r.list('port').flatMap((t) => containerPorts(r, 'port', t))
  if (ports.length > 0) input['ports'] = ports
  const published = r.list('publish').flatMap((t) => publishedPorts(r, 'publish', t, false))
  if (published.length > 0) input['published'] = published.map(publishedInput)
  if (rest.length > 0) input['cmd'] = rest
  return finish('create', name, input, r, r.bool('detach'), r.string('api'))
}

/**
 * `shoal service update NAME [flags] [-- CMD ARGS...]` (argv: what follows `service
 * update`) over the service's current spec: the new full input, every field the flags do not
 * touch kept as it is. Never throws.
 */
export function parseServiceUpdate(argv: readonly string[], current: ServiceSpec): ServiceFlagsResult {
  const p = parse('service update', argv, { ...SETTABLE_FLAGS, ...UPDATE_ONLY_FLAGS })
  if (!p.ok) return p
  const { positionals, rest } = p.parsed
  const name = positionals[0]
  if (name === undefined) return { ok: false, error: 'shoal service update: missing the service NAME (shoal service update NAME [OPTIONS])' }
  if (name !== current.name) return { ok: false, error: `shoal service update: the spec given is ${JSON.stringify(current.name)}, not ${JSON.stringify(name)}` }
  const r = new FlagReader(p.parsed)
  if (positionals.length > 1) {
    r.errors.push(`unexpected argument ${JSON.stringify(positionals[1])}: replace the command with --args "CMD ARGS" or after -- (shoal service update ${name} -- CMD ARGS)`)
  }
  // A plain JSON copy of the current spec (a stored record's version/previous left out).
  const input = JSON.parse(JSON.stringify(specOf(current))) as Obj
  applySettable(r, input, current.mode)

  const env = new Map(Object.entries(obj(input['env'])))
  for (const text of r.list('env-rm')) env.delete(text.split('=')[0] ?? text)
  for (const flag of ['env', 'env-add']) {
    for (const text of r.list(flag)) {
      const kv = keyValue(r, flag, text, true)
      if (kv !== null) env.set(kv[0], kv[1])
    }
  }
  input['env'] = Object.fromEntries(env)

  const labels = new Map(Object.entries(obj(input['labels'])))
  for (const text of r.list('label-rm')) labels.delete(text.split('=')[0] ?? text)
  for (const flag of ['label', 'label-add']) {
    for (const text of r.list(flag)) {
      const kv = keyValue(r, flag, text, false)
      if (kv !== null) labels.set(kv[0], kv[1])
    }
  }
  input['labels'] = Object.fromEntries(labels)

  // Constraints compare in their canonical text (`host.label.a == b` removes `host.label.a==b`).
  const canonical = (text: string): string | null => {
    const c = parseConstraint(text)
    return c.ok ? formatConstraint(c.constraint) : null
  }
  let constraints = (Array.isArray(input['constraints']) ? input['constraints'] : []).map(String)
  for (const text of r.list('constraint-rm')) {
    const parsed = parseConstraint(text)
    if (!parsed.ok) r.fail('constraint-rm', parsed.error)
    else constraints = constraints.filter((x) => canonical(x) !== formatConstraint(parsed.constraint))
  }
  for (const flag of ['constraint', 'constraint-add']) constraints.push(...r.list(flag))
  input['constraints'] = constraints

  let ports = (Array.isArray(input['ports']) ? input['ports'] : []).filter((x): x is number => typeof x === 'number')
  const portsRm = r.list('port-rm').flatMap((t) => containerPorts(r, 'port-rm', t))
  ports = ports.filter((x) => !portsRm.includes(x))
  for (const flag of ['port', 'port-add']) ports.push(...r.list(flag).flatMap((t) => containerPorts(r, flag, t)))
  input['ports'] = ports

  let published = (Array.isArray(input['published']) ? input['published'] : []).map(obj)
  for (const m of r.list('publish-rm').flatMap((t) => publishedPorts(r, 'publish-rm', t, true))) {
    published = published.filter((x) => !sameMapping(x, m))
  }
  for (const flag of ['publish', 'publish-add']) {
    for (const m of r.list(flag).flatMap((t) => publishedPorts(r, flag, t, false))) {
      // Re-publishing a host port replaces its old mapping (as Docker's --publish-add).
      published = published.filter((x) => !(x['published'] === m.published && x['protocol'] === m.protocol))
      published.push(publishedInput(m))
    }
  }
  input['published'] = published

  const args = r.words('args')
  if (args !== undefined && rest.length > 0) r.fail('args', 'and a command after -- both replace the command; give one')
  if (args !== undefined) input['cmd'] = args
  else if (rest.length > 0) input['cmd'] = rest
  return finish('update', name, input, r, r.bool('detach'), r.string('api'))
}

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/** `shoal service scale NAME=N [NAME=N...]` or `shoal service scale NAME N` (argv: what follows `service scale`). Never throws. */
export function parseScaleArgs(argv: readonly string[]): ScaleArgsResult {
  const p = parse('service scale', argv, { api: { type: 'string' }, detach: { type: 'boolean', short: 'd' } })
  if (!p.ok) return p
  const pos = p.parsed.positionals
  const pairs: Array<[string, string]> = pos.length === 2 && !(pos[0] ?? '').includes('=') && !(pos[1] ?? '').includes('=')
    ? [[pos[0] ?? '', pos[1] ?? '']]
    : pos.map((t) => {
      const eq = t.indexOf('=')
      return eq === -1 ? [t, ''] : [t.slice(0, eq), t.slice(eq + 1)]
    })
  if (pairs.length === 0) return { ok: false, error: `shoal service scale: missing NAME=N (${SERVICE_SCALE_USAGE.replace('Usage: ', '')})` }
  const errors: string[] = []
  const scales: Array<{ name: string; replicas: number }> = []
  for (const [name, count] of pairs) {
    if (!DNS_LABEL.test(name)) errors.push(`${JSON.stringify(name)} is not a service name (a lowercase DNS label)`)
    else if (!/^\d{1,4}$/.test(count) || Number(count) > SPEC_MAX_REPLICAS) {
      errors.push(count === ''
        ? `${JSON.stringify(name)} has no count: write ${name}=N`
        : `${name}: expected a number of replicas 0..${SPEC_MAX_REPLICAS}, got ${JSON.stringify(count)}`)
    } else if (scales.some((s) => s.name === name)) errors.push(`${name} is given twice`)
    else scales.push({ name, replicas: Number(count) })
  }
  if (errors.length > 0) return { ok: false, error: errors.map((e) => `shoal service scale: ${e}`).join('\n') }
  return { ok: true, scales, detach: p.parsed.values['detach'] === true, api: typeof p.parsed.values['api'] === 'string' ? p.parsed.values['api'] : undefined }
}
