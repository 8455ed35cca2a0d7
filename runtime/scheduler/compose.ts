/**
 * `shoal service apply -f FILE` (issue 12): a Docker Compose file's `services:` section, with
 * its `deploy:` keys, turned into service specs. Pure: text in, specs or every error out (no
 * file reading here; the CLI reads the file and passes its text and name).
 *
 * All or nothing: a file with any error yields no spec, and every error of the file is
 * reported (up to COMPOSE_MAX_ERRORS), each with file, line, column, the key path
 * (`services.web.deploy.replicas`) and what to do. Each service is mapped to validateSpec's
 * input and validated there; validateSpec's field-path errors are mapped back to the YAML
 * key they came from.
 *
 * What is read (Compose name → spec field):
 *   image → image; command → cmd; entrypoint → entrypoint (a string is split like a shell:
 *   quotes and backslashes, no expansion; a list is taken as is); environment → env (map or
 *   `K=V` list); labels and deploy.labels → labels (Shoal has one set of labels, on the
 *   containers); ports → published (`"8080:80"`, `"8080:80/udp"`, ranges `"9000-9001:80-81"`,
 *   long syntax {target, published, protocol, mode: host}); a port without a host port
 *   (`"80"`, long syntax without `published`) and expose → ports (container ports, announced
 *   in SRV); healthcheck → healthCheck (test as `["CMD", ...]`, `["CMD-SHELL", s]`, a string
 *   (shell), `["NONE"]` or `disable: true` = none); stop_grace_period; restart (`no`,
 *   `always`, `unless-stopped`, `on-failure[:N]`) or deploy.restart_policy → restart;
 *   deploy.mode, deploy.replicas, deploy.placement.constraints, deploy.resources.limits /
 *   reservations (cpus as 0.5 or "0.5", memory as "512M", "1G" or bytes),
 *   deploy.update_config / rollback_config; deploy.endpoint_mode `dnsrr` (what Shoal's DNS
 *   does anyway).
 *
 * Shoal's extension key, per service (Compose ignores `x-` keys, so the file still works
 * with docker compose):
 *   x-shoal-on-disconnect: { action: stop, after: 30s }   # keep (default) | stop
 * what the host does with the service's containers when it cannot reach the leader for
 * `after` (Nomad's max_client_disconnect).
 *
 * Decisions where Compose and Shoal differ (each is an error that says what to do, never a
 * silent change of meaning):
 * - A host IP in a port (`"127.0.0.1:8080:80"`) is an error: Shoal publishes on every address
 *   of the host, and widening a port the file meant to keep local would expose it.
 * - A published port is `mode: ingress` by default, as in Swarm: every peer's host answers on it
 *   (the routing mesh, TCP only, so a udp port needs `mode: host`); `mode: host` binds it only
 *   where an instance runs. `endpoint_mode: vip` is an error: Shoal has no virtual IP, DNS
 *   answers every healthy instance. A short port without a host port (`"80"`) is not published
 *   on a random host port as Compose would: it becomes a container port announced in SRV.
 * - `${VAR}` / `$VAR` interpolation is an error: Shoal has no host environment to take values
 *   from (`$$` is a literal `$`, as in Compose). So is `KEY` without a value in environment.
 * - Compose durations are Go's (`1m30s`, `500ms`, `10s`); a bare number other than 0 is an
 *   error (`10` could mean seconds or nanoseconds). Shoal keeps whole milliseconds.
 * - Top-level `version`, `name` and `x-*` keys are accepted and ignored; top-level
 *   `networks`, `volumes`, `configs`, `secrets`, `include` are errors. Service keys Shoal does
 *   not support (build, volumes, networks, depends_on, ...) and unknown keys are errors.
 *   Port `name` / `app_protocol` are accepted and ignored (they change nothing at run time).
 * - `healthcheck: disable` gives a spec without a health check: the spec cannot express
 *   Docker's `NONE`, so an image's own HEALTHCHECK would still run.
 *
 * Bounds: files over COMPOSE_MAX_BYTES, YAML syntax errors, duplicate keys, unknown tags,
 * several documents, nesting too deep to read, and alias expansion beyond
 * COMPOSE_MAX_ALIAS_COUNT (a "billion laughs" file) are errors. Anchors, aliases and merge keys (`<<: *defaults`) are read.
 *
 * The text parsers (durations, sizes, CPUs, shell words, port texts) are exported for the
 * CLI's flags (cli/service-flags.ts), so a file and a flag read a value the same way.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Pair, type YAMLMap } from 'yaml'
import { SPEC_MAX_DURATION_MS, SPEC_MAX_ITEMS, validateSpec, type ServiceSpec } from './spec.ts'

/** Largest Compose file read (UTF-8 bytes). */
export const COMPOSE_MAX_BYTES = 1024 * 1024
/** Alias expansions allowed while reading a file (the yaml library's exponential-growth guard). */
export const COMPOSE_MAX_ALIAS_COUNT = 100
/** Most errors reported for one file; the rest are counted in a last error. */
export const COMPOSE_MAX_ERRORS = 100
const TOO_DEEP = 'the file nests lists or mappings too deeply to read; a Compose file needs a few levels'
/** Deepest chain of merge keys followed when locating a key. */
const MERGE_DEPTH_MAX = 16

/** One problem in a file. `line` and `column` are 1-based; `key` is the YAML key path ('' when none). */
export interface ComposeError {
  readonly file: string
  readonly line: number
  readonly column: number
  readonly key: string
  readonly message: string
}

export type ComposeResult =
  | { readonly ok: true; readonly specs: ServiceSpec[] }
  | { readonly ok: false; readonly errors: ComposeError[] }

/** `file:line:column: key: message`, as compilers print errors. */
export function formatComposeError(e: ComposeError): string {
  return `${e.file}:${e.line}:${e.column}: ${e.key === '' ? '' : `${e.key}: `}${e.message}`
}

// ---------------------------------------------------------------------------------------------
// Text parsers shared with the CLI's flags.

/** A parsed text, or what was expected. */
export type TextResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string }

function ok<T>(value: T): TextResult<T> {
  return { ok: true, value }
}

function bad<T>(error: string): TextResult<T> {
  return { ok: false, error }
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * A Go duration (`10s`, `1m30s`, `500ms`, `1.5h`; what `docker service create` and Compose
 * take) in whole milliseconds, at most SPEC_MAX_DURATION_MS. `0` needs no unit.
 */
export function parseDurationMs(text: string): TextResult<number> {
  const t = text.trim()
  const expected = `expected a duration such as 10s, 1m30s or 500ms, got ${JSON.stringify(text)}`
  if (t === '0') return ok(0)
  if (/^\d+(?:\.\d+)?$/.test(t)) return bad(`${JSON.stringify(text)} has no unit: write ${t}s for seconds or ${t}ms for milliseconds`)
  if (t === '') return bad(expected)
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y
  let totalMs = 0
  while (part.lastIndex < t.length) {
    const m = part.exec(t)
    if (m === null) return bad(expected)
    totalMs += Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? ''] ?? Number.NaN)
  }
  if (!Number.isFinite(totalMs)) return bad(expected)
  const wholeMs = Math.round(totalMs)
  // Decimal fractions are inexact in binary: 1.1s is 1100.0000000000002 ms, still whole.
  if (Math.abs(totalMs - wholeMs) > 1e-6 * Math.max(1, totalMs)) return bad(`${JSON.stringify(text)} is finer than a millisecond, the unit Shoal keeps`)
  if (wholeMs > SPEC_MAX_DURATION_MS) return bad(`${JSON.stringify(text)} is longer than a week (168h), the most Shoal accepts`)
  return ok(wholeMs)
}

const SIZE_UNIT: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }

/** A memory size as Docker reads it (`512m`, `1g`, `1.5GiB`, `2048` bytes; units are binary) in bytes. */
export function parseBytes(text: string): TextResult<number> {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$/i.exec(text.trim())
  if (m === null) return bad(`expected a size such as 512m, 1g or a number of bytes, got ${JSON.stringify(text)}`)
  const bytes = Math.floor(Number(m[1]) * (SIZE_UNIT[(m[2] ?? '').toLowerCase()] ?? 1))
  if (!Number.isSafeInteger(bytes)) return bad(`${JSON.stringify(text)} is too large`)
  return ok(bytes)
}

/** A decimal count of CPUs (`0.5`, `2`), as Docker's `--cpus`. */
export function parseCpus(text: string): TextResult<number> {
  const t = text.trim()
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(t)) return bad(`expected a number of CPUs such as 0.5 or 2, got ${JSON.stringify(text)}`)
  return ok(Number(t))
}

/**
 * Splits a command line into words as a POSIX shell does, without any expansion: single
 * quotes keep everything, double quotes keep all but `\"`, `\\`, `\$` and `` \` ``, a
 * backslash outside quotes keeps the next character. (Compose's `command: "a 'b c'"`.)
 */
export function splitShellWords(text: string): TextResult<string[]> {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quote = ''
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i)
    if (quote === "'") {
      if (c === "'") quote = ''
      else word += c
    } else if (quote === '"') {
      const next = text.charAt(i + 1)
      if (c === '"') quote = ''
      else if (c === '\\' && next !== '' && '"\\$`\n'.includes(next)) {
        i++
        if (next !== '\n') word += next
      } else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\') {
      if (i + 1 >= text.length) return bad(`${JSON.stringify(text)} ends with a lone backslash`)
      i++
      const next = text.charAt(i)
      if (next !== '\n') {
        word += next
        inWord = true
      }
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (quote !== '') return bad(`${JSON.stringify(text)} has an unclosed ${quote === '"' ? 'double' : 'single'} quote`)
  if (inWord) words.push(word)
  return ok(words)
}

/** One port of a port text: `published` null = a container port only (not published). */
export interface PortMapping {
  readonly published: number | null
  readonly target: number
  readonly protocol: 'tcp' | 'udp'
  /** How a published port is reached; absent = the spec's default (ingress, the routing mesh). */
  readonly mode?: 'ingress' | 'host'
}

function portRange(text: string, what: string): TextResult<number[]> {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text)
  if (m === null) return bad(`the ${what} ${JSON.stringify(text)} is not a port number (1-65535) or range (8000-8010)`)
  const first = Number(m[1])
  const last = m[2] === undefined ? first : Number(m[2])
  if (first < 1 || last > 65535 || last < first) return bad(`the ${what} ${JSON.stringify(text)} is not within 1-65535 (a range goes low-high)`)
  if (last - first + 1 > SPEC_MAX_ITEMS) return bad(`the ${what} range ${JSON.stringify(text)} has more than ${SPEC_MAX_ITEMS} ports`)
  const out: number[] = []
  for (let p = first; p <= last; p++) out.push(p)
  return ok(out)
}

/** A protocol suffix: tcp or udp. */
export function parseProtocol(text: string): TextResult<'tcp' | 'udp'> {
  const t = text.toLowerCase()
  if (t === 'tcp' || t === 'udp') return ok(t)
  return bad(`protocol ${JSON.stringify(text)} is not supported: Shoal publishes tcp and udp`)
}

/**
 * Compose's and Docker's short port syntax: `80`, `80/udp`, `8080:80`, `8080:80/udp`,
 * `9000-9001:80-81`. `HOST_IP:8080:80` is refused (Shoal publishes on every host address).
 */
export function parsePortText(text: string): TextResult<PortMapping[]> {
  const slash = text.lastIndexOf('/')
  const body = slash === -1 ? text : text.slice(0, slash)
  const proto = slash === -1 ? ok<'tcp' | 'udp'>('tcp') : parseProtocol(text.slice(slash + 1))
  if (!proto.ok) return proto
  const parts = body.split(':')
  if (body.startsWith('[') || parts.length > 2) {
    return bad(`${JSON.stringify(text)} names a host address: Shoal publishes on every address of the host and cannot bind one; write HOST_PORT:CONTAINER_PORT (e.g. "8080:80"), or leave the port unpublished and reach it through the service's DNS name`)
  }
  const targetText = parts.length === 2 ? (parts[1] ?? '') : (parts[0] ?? '')
  const targets = portRange(targetText, 'container port')
  if (!targets.ok) return targets
  if (parts.length === 1) return ok(targets.value.map((target) => ({ published: null, target, protocol: proto.value })))
  const published = portRange(parts[0] ?? '', 'host port')
  if (!published.ok) return published
  if (published.value.length !== targets.value.length) {
    return bad(`${JSON.stringify(text)}: the host port range and the container port range must have the same length (Shoal does not pick a host port from a range)`)
  }
  return ok(targets.value.map((target, i) => ({ published: published.value[i] ?? 0, target, protocol: proto.value })))
}

// ---------------------------------------------------------------------------------------------
// Compose keys.

type YamlPath = ReadonlyArray<string | number>
type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype
}

const GENERIC_UNSUPPORTED = 'is a Compose key Shoal does not support yet; remove it (the service would otherwise run differently than the file says)'
const RESOURCES_ADVICE = 'write deploy.resources.limits / reservations (cpus, memory) instead'

/** Service keys Compose has and Shoal does not, with what to do instead. */
const UNSUPPORTED_SERVICE_KEYS: Readonly<Record<string, string>> = {
  build: 'Shoal runs images already on each host or pullable from a registry: build the image, push it (or `docker load` it on every host), and name it in image:',
  volumes: 'Shoal services have no volumes yet: an instance may run on any host; bake the files into the image or keep the data in a database service',
  volumes_from: 'Shoal services have no volumes yet; bake the files into the image',
  tmpfs: GENERIC_UNSUPPORTED,
  networks: 'Shoal attaches containers to each host\'s default bridge and they find each other by DNS (SERVICE.shoal); remove networks:',
  network_mode: 'Shoal attaches containers to each host\'s default bridge; remove network_mode:',
  depends_on: 'Shoal starts services independently: make the service retry until what it needs answers (a service with a health check appears in DNS once healthy); remove depends_on:',
  links: 'reach other services by their DNS name (SERVICE.shoal), or alias one with `shoal link create`; remove links:',
  external_links: 'reach other services by their DNS name (SERVICE.shoal), or alias one with `shoal link create`; remove external_links:',
  env_file: 'Shoal reads no files from the machine you run it on for a service; put the variables under environment:',
  secrets: 'Shoal has no secrets store yet; remove secrets: (pass values through environment:, or bake them into the image)',
  configs: 'Shoal has no configs store yet; bake the file into the image',
  container_name: 'Shoal names each instance\'s container itself (a service may run several); the service name is its DNS name; remove container_name:',
  hostname: 'Shoal sets each container\'s host name; reach a service by its DNS name (SERVICE.shoal); remove hostname:',
  domainname: 'Shoal sets each container\'s domain (search domain shoal); remove domainname:',
  dns: 'Shoal points each container\'s DNS at its own peer so SERVICE.shoal resolves; remove dns:',
  dns_search: 'Shoal sets the search domain to shoal; remove dns_search:',
  dns_opt: 'Shoal points each container\'s DNS at its own peer; remove dns_opt:',
  extra_hosts: 'reach other services by their DNS name (SERVICE.shoal) or `shoal link create`; remove extra_hosts:',
  scale: 'write deploy.replicas instead',
  cpus: RESOURCES_ADVICE,
  cpu_count: RESOURCES_ADVICE,
  cpu_percent: RESOURCES_ADVICE,
  cpu_shares: RESOURCES_ADVICE,
  cpu_quota: RESOURCES_ADVICE,
  cpu_period: RESOURCES_ADVICE,
  cpuset: RESOURCES_ADVICE,
  mem_limit: RESOURCES_ADVICE,
  mem_reservation: RESOURCES_ADVICE,
  memswap_limit: RESOURCES_ADVICE,
  mem_swappiness: GENERIC_UNSUPPORTED,
  extends: 'write the service out in full (YAML anchors and merge keys, `<<: *defaults`, are read)',
  profiles: 'Shoal applies every service of the file; move the services you do not want into another file',
  logging: 'containers log through Docker\'s default driver on each host; read them with `shoal logs`; remove logging:',
  pull_policy: GENERIC_UNSUPPORTED,
  platform: GENERIC_UNSUPPORTED,
  privileged: GENERIC_UNSUPPORTED,
  cap_add: GENERIC_UNSUPPORTED,
  cap_drop: GENERIC_UNSUPPORTED,
  devices: GENERIC_UNSUPPORTED,
  device_cgroup_rules: GENERIC_UNSUPPORTED,
  security_opt: GENERIC_UNSUPPORTED,
  user: GENERIC_UNSUPPORTED,
  working_dir: GENERIC_UNSUPPORTED,
  stop_signal: GENERIC_UNSUPPORTED,
  init: GENERIC_UNSUPPORTED,
  tty: GENERIC_UNSUPPORTED,
  stdin_open: GENERIC_UNSUPPORTED,
  read_only: GENERIC_UNSUPPORTED,
  shm_size: GENERIC_UNSUPPORTED,
  sysctls: GENERIC_UNSUPPORTED,
  ulimits: GENERIC_UNSUPPORTED,
  pid: GENERIC_UNSUPPORTED,
  pids_limit: GENERIC_UNSUPPORTED,
  ipc: GENERIC_UNSUPPORTED,
  uts: GENERIC_UNSUPPORTED,
  userns_mode: GENERIC_UNSUPPORTED,
  cgroup: GENERIC_UNSUPPORTED,
  cgroup_parent: GENERIC_UNSUPPORTED,
  isolation: GENERIC_UNSUPPORTED,
  runtime: GENERIC_UNSUPPORTED,
  mac_address: GENERIC_UNSUPPORTED,
  oom_kill_disable: GENERIC_UNSUPPORTED,
  oom_score_adj: GENERIC_UNSUPPORTED,
  group_add: GENERIC_UNSUPPORTED,
  storage_opt: GENERIC_UNSUPPORTED,
  blkio_config: GENERIC_UNSUPPORTED,
  annotations: GENERIC_UNSUPPORTED,
  attach: GENERIC_UNSUPPORTED,
  develop: GENERIC_UNSUPPORTED,
  gpus: GENERIC_UNSUPPORTED,
  post_start: GENERIC_UNSUPPORTED,
  pre_stop: GENERIC_UNSUPPORTED,
  label_file: 'put the labels under labels:',
  credential_spec: GENERIC_UNSUPPORTED,
  use_api_socket: GENERIC_UNSUPPORTED,
  provider: GENERIC_UNSUPPORTED,
  models: GENERIC_UNSUPPORTED,
}

const SERVICE_KEYS = [
  'image', 'command', 'entrypoint', 'environment', 'labels', 'ports', 'expose', 'healthcheck', 'stop_grace_period', 'restart', 'deploy', 'x-shoal-on-disconnect',
] as const

const TOP_LEVEL_UNSUPPORTED: Readonly<Record<string, string>> = {
  networks: 'Shoal attaches containers to each host\'s default bridge and they find each other by DNS (SERVICE.shoal); remove the top-level networks:',
  volumes: 'Shoal services have no volumes yet; remove the top-level volumes: (bake files into the image or keep data in a database service)',
  configs: 'Shoal has no configs store yet; remove the top-level configs: and bake the files into the image',
  secrets: 'Shoal has no secrets store yet; remove the top-level secrets:',
  include: 'Shoal reads one file: merge the included file into this one, or apply it with its own `shoal service apply -f`',
  models: GENERIC_UNSUPPORTED,
}

/** Spec field names in Compose's words, for an error that validateSpec found below a key the file lacks. */
const COMPOSE_WORDS: Readonly<Record<string, string>> = {
  name: 'the service name', cmd: 'command', env: 'environment', ports: 'expose', published: 'ports', mode: 'deploy.mode',
  replicas: 'deploy.replicas', reservations: 'deploy.resources.reservations', limits: 'deploy.resources.limits',
  constraints: 'deploy.placement.constraints', restart: 'deploy.restart_policy', healthCheck: 'healthcheck',
  update: 'deploy.update_config', rollback: 'deploy.rollback_config', stopGracePeriodMs: 'stop_grace_period',
  onDisconnect: 'x-shoal-on-disconnect', memoryBytes: 'memory', maxAttempts: 'max_attempts', delayMs: 'delay',
  windowMs: 'window', intervalMs: 'interval', timeoutMs: 'timeout', startPeriodMs: 'start_period', monitorMs: 'monitor',
  failureAction: 'failure_action', maxFailureRatio: 'max_failure_ratio', afterMs: 'after',
}

/** validateSpec's path join (spec.ts `join`), so an origin is registered under the path its errors carry. */
function specJoin(path: string, key: string): string {
  if (path === '') return key
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

/** `services.web.ports[0]`. */
function formatPath(path: YamlPath): string {
  let out = ''
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`
  return out
}

interface RawError {
  readonly path: YamlPath
  readonly message: string
}

/** Reads one service's mapping into validateSpec's input, recording where each field came from. */
class ServiceReader {
  readonly errors: RawError[] = []
  readonly input: Obj = {}
  /** validateSpec path → the YAML path it was read from. */
  readonly origins = new Map<string, YamlPath>()
  /**
   * validateSpec paths whose value was refused here already: a refused value is left out of the
   * input, so validateSpec would report a required one (image, healthCheck.cmd) a second time.
   */
  readonly failed = new Set<string>()
  private readonly base: YamlPath
  private readonly labels: Array<[string, string]> = []
  private readonly labelPaths = new Map<string, YamlPath>()
  private readonly published: Obj[] = []
  private readonly containerPorts: number[] = []
  private hasDeployRestart = false
  private restartKeyPath: YamlPath | null = null

  constructor(name: string, base: YamlPath) {
    this.base = base
    this.input['name'] = name
    this.origins.set('name', base)
  }

  fail(path: YamlPath, message: string, field?: string): void {
    this.errors.push({ path, message })
    if (field !== undefined) this.failed.add(field)
  }

  /** A scalar as text, with Compose's `$$` unescaped; `${VAR}` is refused (no host environment here). */
  text(v: unknown, path: YamlPath, field: string): string | null {
    if (typeof v === 'number' || typeof v === 'boolean') return String(v)
    if (typeof v !== 'string') {
      this.fail(path, v === null ? 'has no value: write one' : `must be text, not ${describe(v)}`, field)
      return null
    }
    let out = ''
    for (let i = 0; i < v.length; i++) {
      const c = v.charAt(i)
      const next = v.charAt(i + 1)
      if (c !== '$') out += c
      else if (next === '$') {
        out += '$'
        i++
      } else if (next === '{' || /[A-Za-z_]/.test(next)) {
        const variable = next === '{' ? v.slice(i, v.indexOf('}', i) + 1 || undefined) : (/^\$[A-Za-z_][A-Za-z0-9_]*/.exec(v.slice(i))?.[0] ?? '$')
        this.fail(path, `uses ${variable}: Compose would take it from the environment of the machine running compose, and Shoal has none; write the value itself (write $$ for a literal $)`, field)
        return null
      } else out += c
    }
    return out
  }

  int(v: unknown, path: YamlPath, field: string): number | null {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v
    if (typeof v === 'string' && /^\d{1,15}$/.test(v.trim())) return Number(v.trim())
    this.fail(path, `must be a whole number, not ${describe(v)}`, field)
    return null
  }

  decimal(v: unknown, path: YamlPath, field: string, what: string): number | null {
    if (typeof v === 'number' && Number.isFinite(v)) return v
    if (typeof v === 'string') {
      const r = parseCpus(v)
      if (r.ok) return r.value
    }
    this.fail(path, `must be ${what}, not ${describe(v)}`, field)
    return null
  }

  duration(v: unknown, path: YamlPath, field: string): number | null {
    if (v === 0) return 0
    if (typeof v === 'number') {
      this.fail(path, `${v} has no unit: write ${v}s for seconds or ${v}ms for milliseconds`, field)
      return null
    }
    if (typeof v !== 'string') {
      this.fail(path, `must be a duration such as 10s, 1m30s or 500ms, not ${describe(v)}`, field)
      return null
    }
    const r = parseDurationMs(v)
    if (!r.ok) this.fail(path, r.error, field)
    return r.ok ? r.value : null
  }

  bytes(v: unknown, path: YamlPath, field: string): number | null {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v
    if (typeof v === 'string') {
      const r = parseBytes(v)
      if (r.ok) return r.value
      this.fail(path, r.error, field)
      return null
    }
    this.fail(path, `must be a size such as 512M, 1G or a number of bytes, not ${describe(v)}`, field)
    return null
  }

  /** A mapping (null = empty, as `deploy:` with nothing under it). */
  mapping(v: unknown, path: YamlPath, field: string): Obj | null {
    if (v === null || v === undefined) return {}
    if (isObj(v)) return v
    this.fail(path, `must be a mapping (key: value lines), not ${describe(v)}`, field)
    return null
  }

  list(v: unknown, path: YamlPath, field: string): unknown[] | null {
    if (Array.isArray(v)) return v
    this.fail(path, `must be a list, not ${describe(v)}`, field)
    return null
  }

  /** Checks the keys of a mapping; `unsupported` names keys Compose has and Shoal does not. */
  keys(o: Obj, path: YamlPath, known: readonly string[], unsupported: Readonly<Record<string, string>> = {}): void {
    for (const key of Object.keys(o)) {
      // Compose's extension fields (x-...) are free; Shoal's own (x-shoal-...) must be known.
      if (known.includes(key) || (key.startsWith('x-') && !key.startsWith('x-shoal-'))) continue
      const advice = Object.hasOwn(unsupported, key) ? unsupported[key] : undefined
      if (advice !== undefined) this.fail([...path, key], advice === GENERIC_UNSUPPORTED ? `${key} ${advice}` : `${key}: ${advice}`)
      else this.fail([...path, key], `unknown key ${JSON.stringify(key)} (a typo?); Shoal reads here: ${known.join(', ')}`)
    }
  }

  /** `command` / `entrypoint`: a string is split like a shell, a list is taken as is. */
  command(v: unknown, path: YamlPath, field: 'cmd' | 'entrypoint'): void {
    this.origins.set(field, path)
    if (v === null) {
      this.input[field] = []
      return
    }
    if (Array.isArray(v)) {
      const words: string[] = []
      v.forEach((item, i) => {
        const w = this.text(item, [...path, i], field)
        this.origins.set(`${field}[${i}]`, [...path, i])
        if (w !== null) words.push(w)
      })
      this.input[field] = words
      return
    }
    const t = this.text(v, path, field)
    if (t === null) return
    const words = splitShellWords(t)
    if (!words.ok) this.fail(path, words.error, field)
    else this.input[field] = words.value
  }

  /** `environment` / `labels`: a mapping or a list of `K=V`. */
  pairs(v: unknown, path: YamlPath, field: 'env' | 'labels'): Array<[string, string, YamlPath]> {
    const out: Array<[string, string, YamlPath]> = []
    const noValue = (key: string): string => field === 'env'
      ? `${key} has no value: Compose would take it from the environment of the machine running compose, and Shoal has none; write ${key}=value`
      : ''
    if (isObj(v)) {
      for (const [key, value] of Object.entries(v)) {
        const p = [...path, key]
        if (value === null && field === 'env') this.fail(p, noValue(key), field)
        else if (value === null) out.push([key, '', p])
        else if (typeof value === 'object') this.fail(p, `must be text, not ${describe(value)}`, field)
        else {
          const t = this.text(value, p, field)
          if (t !== null) out.push([key, t, p])
        }
      }
      return out
    }
    if (Array.isArray(v)) {
      const seen = new Set<string>()
      v.forEach((item, i) => {
        const p = [...path, i]
        const t = this.text(item, p, field)
        if (t === null) return
        const eq = t.indexOf('=')
        const key = eq === -1 ? t : t.slice(0, eq)
        if (eq === -1 && field === 'env') this.fail(p, noValue(key), field)
        else if (seen.has(key)) this.fail(p, `${key} is set twice`, field)
        else out.push([key, eq === -1 ? '' : t.slice(eq + 1), p])
        seen.add(key)
      })
      return out
    }
    if (v !== null) this.fail(path, `must be a mapping (KEY: value) or a list of KEY=value, not ${describe(v)}`, field)
    return out
  }

  environment(v: unknown, path: YamlPath): void {
    this.origins.set('env', path)
    const env: Array<[string, string]> = []
    for (const [key, value, p] of this.pairs(v, path, 'env')) {
      this.origins.set(specJoin('env', key), p)
      env.push([key, value])
    }
    this.input['env'] = Object.fromEntries(env)
  }

  addLabels(v: unknown, path: YamlPath): void {
    if (!this.origins.has('labels')) this.origins.set('labels', path)
    for (const [key, value, p] of this.pairs(v, path, 'labels')) {
      const earlier = this.labels.find(([k]) => k === key)
      if (earlier !== undefined && earlier[1] !== value) {
        this.fail(p, `label ${key} is also set, to ${JSON.stringify(earlier[1])}, at ${formatPath(this.labelPaths.get(key) ?? path)}: Shoal has one set of labels (on the containers); keep one`, 'labels')
      } else if (earlier === undefined) {
        this.labels.push([key, value])
        this.labelPaths.set(key, p)
        this.origins.set(specJoin('labels', key), p)
      }
    }
    this.input['labels'] = Object.fromEntries(this.labels)
  }

  private addPort(m: PortMapping, path: YamlPath): void {
    if (m.published === null) {
      this.origins.set(`ports[${this.containerPorts.length}]`, path)
      this.containerPorts.push(m.target)
      this.input['ports'] = this.containerPorts
    } else {
      this.origins.set(`published[${this.published.length}]`, path)
      this.published.push({ published: m.published, target: m.target, protocol: m.protocol, ...(m.mode === undefined ? {} : { mode: m.mode }) })
      this.input['published'] = this.published
    }
  }

  ports(v: unknown, path: YamlPath): void {
    this.origins.set('published', path)
    const items = this.list(v, path, 'published')
    if (items === null) return
    items.forEach((item, i) => {
      const p = [...path, i]
      if (isObj(item)) return this.longPort(item, p)
      const t = this.text(item, p, 'published')
      if (t === null) return
      const r = parsePortText(t)
      if (!r.ok) return this.fail(p, r.error, 'published')
      for (const m of r.value) this.addPort(m, p)
    })
  }

  private longPort(o: Obj, path: YamlPath): void {
    this.keys(o, path, ['target', 'published', 'protocol', 'mode', 'name', 'app_protocol'], {
      host_ip: 'Shoal publishes on every address of the host and cannot bind one; remove host_ip (or leave the port unpublished and reach it through the service\'s DNS name)',
    })
    if (o['target'] === undefined) return this.fail(path, 'needs target: (the container port)', 'published')
    const target = this.int(o['target'], [...path, 'target'], 'published')
    let published: number | null = null
    if (o['published'] !== undefined && o['published'] !== null) {
      const pt = this.text(o['published'], [...path, 'published'], 'published')
      if (pt === null) return
      if (!/^\d{1,5}$/.test(pt)) return this.fail([...path, 'published'], `must be one host port (1-65535), not ${JSON.stringify(pt)}: Shoal does not pick a host port from a range`, 'published')
      published = Number(pt)
    }
    let protocol: 'tcp' | 'udp' = 'tcp'
    if (o['protocol'] !== undefined) {
      const t = this.text(o['protocol'], [...path, 'protocol'], 'published')
      const r = t === null ? null : parseProtocol(t)
      if (r !== null && !r.ok) this.fail([...path, 'protocol'], r.error, 'published')
      if (r?.ok === true) protocol = r.value
    }
    let mode: 'ingress' | 'host' | undefined
    if (o['mode'] !== undefined) {
      if (o['mode'] === 'ingress' || o['mode'] === 'host') mode = o['mode']
      else this.fail([...path, 'mode'], 'must be ingress (every host answers, the default) or host (only hosts running an instance)', 'published')
    }
    if (target !== null) {
      if (target < 1 || target > 65535) return this.fail([...path, 'target'], 'must be a port 1-65535', 'published')
      this.addPort(mode === undefined ? { published, target, protocol } : { published, target, protocol, mode }, path)
    }
  }

  expose(v: unknown, path: YamlPath): void {
    this.origins.set('ports', path)
    const items = this.list(v, path, 'ports')
    if (items === null) return
    items.forEach((item, i) => {
      const p = [...path, i]
      const t = this.text(item, p, 'ports')
      if (t === null) return
      const r = parsePortText(t)
      if (!r.ok) return this.fail(p, r.error, 'ports')
      if (r.value.some((m) => m.published !== null)) return this.fail(p, 'expose lists container ports only; publish a host port under ports:', 'ports')
      for (const m of r.value) this.addPort(m, p)
    })
  }

  healthcheck(v: unknown, path: YamlPath): void {
    this.origins.set('healthCheck', path)
    const o = this.mapping(v, path, 'healthCheck')
    if (o === null) return
    this.keys(o, path, ['test', 'interval', 'timeout', 'start_period', 'retries', 'disable'], { start_interval: GENERIC_UNSUPPORTED })
    let disabled = false
    if (o['disable'] !== undefined) {
      if (typeof o['disable'] !== 'boolean') this.fail([...path, 'disable'], 'must be true or false', 'healthCheck')
      else disabled = o['disable']
    }
    const hc: Obj = {}
    const test = o['test']
    const testPath = [...path, 'test']
    if (test !== undefined) {
      this.origins.set('healthCheck.cmd', testPath)
      if (Array.isArray(test)) {
        const words = test.map((w, i) => this.text(w, [...testPath, i], 'healthCheck.cmd'))
        const [kind, ...args] = words
        if (words.some((w) => w === null)) return
        if (kind === 'NONE' && args.length === 0) disabled = true
        else if (kind === 'CMD' && args.length > 0) hc['cmd'] = args
        else if (kind === 'CMD-SHELL' && args.length === 1) hc['cmd'] = args
        else {
          return this.fail(testPath, 'a list must be ["CMD", program, args...], ["CMD-SHELL", "command line"] or ["NONE"]', 'healthCheck.cmd')
        }
      } else {
        const t = this.text(test, testPath, 'healthCheck.cmd')
        if (t === null) return
        if (t.trim() === '') return this.fail(testPath, 'is empty: write the command that exits 0 when the service is healthy', 'healthCheck.cmd')
        hc['cmd'] = [t] // a string is run by the shell (Compose's CMD-SHELL)
      }
    }
    if (disabled) {
      const others = Object.keys(o).filter((k) => k !== 'disable' && k !== 'test')
      if (others.length > 0) this.fail([...path, others[0] ?? ''], 'the health check is disabled; remove the other healthcheck keys', 'healthCheck')
      this.input['healthCheck'] = null
      return
    }
    const durations: Array<[string, string]> = [['interval', 'intervalMs'], ['timeout', 'timeoutMs'], ['start_period', 'startPeriodMs']]
    for (const [key, field] of durations) {
      if (o[key] === undefined) continue
      this.origins.set(`healthCheck.${field}`, [...path, key])
      const ms = this.duration(o[key], [...path, key], 'healthCheck')
      if (ms !== null) hc[field] = ms
    }
    if (o['retries'] !== undefined) {
      this.origins.set('healthCheck.retries', [...path, 'retries'])
      const n = this.int(o['retries'], [...path, 'retries'], 'healthCheck')
      if (n !== null) hc['retries'] = n
    }
    this.input['healthCheck'] = hc
  }

  stopGracePeriod(v: unknown, path: YamlPath): void {
    this.origins.set('stopGracePeriodMs', path)
    const ms = this.duration(v, path, 'stopGracePeriodMs')
    if (ms !== null) this.input['stopGracePeriodMs'] = ms
  }

  /** Compose's service-level `restart:` (docker run's policy). */
  restartKey(v: unknown, path: YamlPath): void {
    this.restartKeyPath = path
    const t = this.text(v, path, 'restart')
    if (t === null) return
    const m = /^on-failure(?::(\d{1,7}))?$/.exec(t)
    let restart: Obj
    if (t === 'no') restart = { condition: 'none' }
    else if (t === 'always' || t === 'unless-stopped') restart = { condition: 'any' }
    else if (m !== null) restart = { condition: 'on-failure', maxAttempts: m[1] === undefined ? 0 : Number(m[1]) }
    else return this.fail(path, `must be no, always, unless-stopped or on-failure[:N], not ${JSON.stringify(t)}`, 'restart')
    this.origins.set('restart', path)
    this.input['restart'] = restart
  }

  onDisconnect(v: unknown, path: YamlPath): void {
    this.origins.set('onDisconnect', path)
    const o = this.mapping(v, path, 'onDisconnect')
    if (o === null) return
    this.keys(o, path, ['action', 'after'])
    const out: Obj = {}
    if (o['action'] !== undefined) {
      this.origins.set('onDisconnect.action', [...path, 'action'])
      const t = this.text(o['action'], [...path, 'action'], 'onDisconnect')
      if (t !== null) out['action'] = t
    }
    if (o['after'] !== undefined) {
      this.origins.set('onDisconnect.afterMs', [...path, 'after'])
      const ms = this.duration(o['after'], [...path, 'after'], 'onDisconnect')
      if (ms !== null) out['afterMs'] = ms
    }
    if (out['action'] === 'stop' && o['after'] === undefined) {
      this.fail(path, 'action: stop needs after: (how long without the leader before the containers stop, e.g. 30s)', 'onDisconnect')
    }
    this.input['onDisconnect'] = out
  }

  deploy(v: unknown, path: YamlPath): void {
    const o = this.mapping(v, path, 'deploy')
    if (o === null) return
    this.keys(o, path, ['mode', 'replicas', 'placement', 'resources', 'restart_policy', 'update_config', 'rollback_config', 'labels', 'endpoint_mode'])
    if (o['mode'] !== undefined) {
      const p = [...path, 'mode']
      this.origins.set('mode', p)
      const t = this.text(o['mode'], p, 'mode')
      if (t === 'replicated-job' || t === 'global-job') this.fail(p, `${t}: Shoal has no jobs yet; its services run until removed`, 'mode')
      else if (t !== null) this.input['mode'] = t
    }
    if (o['replicas'] !== undefined) {
      const p = [...path, 'replicas']
      this.origins.set('replicas', p)
      const n = this.int(o['replicas'], p, 'replicas')
      if (n !== null) this.input['replicas'] = n
    }
    if (o['placement'] !== undefined) this.placement(o['placement'], [...path, 'placement'])
    if (o['resources'] !== undefined) this.resources(o['resources'], [...path, 'resources'])
    if (o['restart_policy'] !== undefined) this.restartPolicy(o['restart_policy'], [...path, 'restart_policy'])
    if (o['update_config'] !== undefined) this.updateConfig(o['update_config'], [...path, 'update_config'], 'update')
    if (o['rollback_config'] !== undefined) this.updateConfig(o['rollback_config'], [...path, 'rollback_config'], 'rollback')
    if (o['labels'] !== undefined) this.addLabels(o['labels'], [...path, 'labels'])
    if (o['endpoint_mode'] !== undefined && o['endpoint_mode'] !== 'dnsrr') {
      this.fail([...path, 'endpoint_mode'], o['endpoint_mode'] === 'vip'
        ? 'vip: Shoal has no virtual IP; its DNS answers every healthy instance (as dnsrr); write dnsrr or remove endpoint_mode'
        : 'must be dnsrr (what Shoal\'s DNS does)')
    }
  }

  private placement(v: unknown, path: YamlPath): void {
    const o = this.mapping(v, path, 'constraints')
    if (o === null) return
    this.keys(o, path, ['constraints'], {
      preferences: 'Shoal always spreads a service\'s instances across hosts, then prefers the least loaded; remove preferences',
      max_replicas_per_node: GENERIC_UNSUPPORTED,
      platforms: GENERIC_UNSUPPORTED,
    })
    if (o['constraints'] === undefined) return
    const p = [...path, 'constraints']
    this.origins.set('constraints', p)
    const items = this.list(o['constraints'], p, 'constraints')
    if (items === null) return
    const out: string[] = []
    items.forEach((item, i) => {
      this.origins.set(`constraints[${out.length}]`, [...p, i])
      const t = this.text(item, [...p, i], 'constraints')
      if (t !== null) out.push(t)
    })
    this.input['constraints'] = out
  }

  private resources(v: unknown, path: YamlPath): void {
    const o = this.mapping(v, path, 'limits')
    if (o === null) return
    this.keys(o, path, ['limits', 'reservations'])
    for (const [key, field] of [['limits', 'limits'], ['reservations', 'reservations']] as const) {
      if (o[key] === undefined) continue
      const p = [...path, key]
      this.origins.set(field, p)
      const r = this.mapping(o[key], p, field)
      if (r === null) continue
      this.keys(r, p, ['cpus', 'memory'], { pids: GENERIC_UNSUPPORTED, devices: GENERIC_UNSUPPORTED, generic_resources: GENERIC_UNSUPPORTED })
      const out: Obj = {}
      if (r['cpus'] !== undefined) {
        this.origins.set(`${field}.cpus`, [...p, 'cpus'])
        const n = this.decimal(r['cpus'], [...p, 'cpus'], field, 'a number of CPUs such as 0.5 or "2"')
        if (n !== null) out['cpus'] = n
      }
      if (r['memory'] !== undefined) {
        this.origins.set(`${field}.memoryBytes`, [...p, 'memory'])
        const n = this.bytes(r['memory'], [...p, 'memory'], field)
        if (n !== null) out['memoryBytes'] = n
      }
      this.input[field] = out
    }
  }

  private restartPolicy(v: unknown, path: YamlPath): void {
    this.hasDeployRestart = true
    this.origins.set('restart', path)
    const o = this.mapping(v, path, 'restart')
    if (o === null) return
    this.keys(o, path, ['condition', 'delay', 'max_attempts', 'window'])
    const out: Obj = {}
    if (o['condition'] !== undefined) {
      this.origins.set('restart.condition', [...path, 'condition'])
      const t = this.text(o['condition'], [...path, 'condition'], 'restart')
      if (t !== null) out['condition'] = t
    }
    for (const [key, field] of [['delay', 'delayMs'], ['window', 'windowMs']] as const) {
      if (o[key] === undefined) continue
      this.origins.set(`restart.${field}`, [...path, key])
      const ms = this.duration(o[key], [...path, key], 'restart')
      if (ms !== null) out[field] = ms
    }
    if (o['max_attempts'] !== undefined) {
      this.origins.set('restart.maxAttempts', [...path, 'max_attempts'])
      const n = this.int(o['max_attempts'], [...path, 'max_attempts'], 'restart')
      if (n !== null) out['maxAttempts'] = n
    }
    this.input['restart'] = out
  }

  private updateConfig(v: unknown, path: YamlPath, field: 'update' | 'rollback'): void {
    this.origins.set(field, path)
    const o = this.mapping(v, path, field)
    if (o === null) return
    this.keys(o, path, ['parallelism', 'delay', 'order', 'monitor', 'failure_action', 'max_failure_ratio'])
    const out: Obj = {}
    const at = (key: string, sub: string): YamlPath => {
      this.origins.set(`${field}.${sub}`, [...path, key])
      return [...path, key]
    }
    if (o['parallelism'] !== undefined) {
      const n = this.int(o['parallelism'], at('parallelism', 'parallelism'), field)
      if (n !== null) out['parallelism'] = n
    }
    for (const [key, sub] of [['delay', 'delayMs'], ['monitor', 'monitorMs']] as const) {
      if (o[key] === undefined) continue
      const ms = this.duration(o[key], at(key, sub), field)
      if (ms !== null) out[sub] = ms
    }
    for (const [key, sub] of [['order', 'order'], ['failure_action', 'failureAction']] as const) {
      if (o[key] === undefined) continue
      const t = this.text(o[key], at(key, sub), field)
      if (t !== null) out[sub] = t
    }
    if (o['max_failure_ratio'] !== undefined) {
      const n = this.decimal(o['max_failure_ratio'], at('max_failure_ratio', 'maxFailureRatio'), field, 'a fraction 0..1 such as 0.2')
      if (n !== null) out['maxFailureRatio'] = n
    }
    this.input[field] = out
  }

  /** Reads the service mapping. */
  read(o: Obj): void {
    this.keys(o, this.base, SERVICE_KEYS, UNSUPPORTED_SERVICE_KEYS)
    for (const [key, v] of Object.entries(o)) {
      const p = [...this.base, key]
      switch (key) {
        case 'image': {
          this.origins.set('image', p)
          const t = this.text(v, p, 'image')
          if (t !== null) this.input['image'] = t
          break
        }
        case 'command': this.command(v, p, 'cmd'); break
        case 'entrypoint': this.command(v, p, 'entrypoint'); break
        case 'environment': this.environment(v, p); break
        case 'labels': this.addLabels(v, p); break
        case 'ports': this.ports(v, p); break
        case 'expose': this.expose(v, p); break
        case 'healthcheck': this.healthcheck(v, p); break
        case 'stop_grace_period': this.stopGracePeriod(v, p); break
        case 'restart': this.restartKey(v, p); break
        case 'deploy': this.deploy(v, p); break
        case 'x-shoal-on-disconnect': this.onDisconnect(v, p); break
        default: break
      }
    }
    if (this.restartKeyPath !== null && this.hasDeployRestart) {
      this.fail(this.restartKeyPath, 'restart: and deploy.restart_policy are both set; keep deploy.restart_policy (what Swarm reads) and remove restart:', 'restart')
    }
    if (o['image'] === undefined) this.failed.add('image')
    if (o['image'] === undefined) this.fail(this.base, 'needs image: (Shoal runs images; it does not build them)')
  }
}

function describe(v: unknown): string {
  if (v === null) return 'nothing'
  if (Array.isArray(v)) return 'a list'
  if (isObj(v)) return 'a mapping'
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return 'a value of an unsupported YAML type'
}

/** The text of a validateSpec path one segment shorter (`published[1].target` → `published[1]`), or null. */
function parentSpecPath(path: string): string | null {
  const m = /(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:\d+|"(?:[^"\\]|\\.)*")\])$/.exec(path)
  return m === null || m.index === 0 ? null : path.slice(0, m.index)
}

/** A validateSpec path below `parent` in Compose's words (for the part below the deepest key the file has). */
function composeWords(path: string, parent: string | null): string {
  if (parent === 'healthCheck' && path.startsWith('cmd')) return `test${path.slice(3)}`
  // A port's fields have the same names in Compose's long syntax (its `mode` is not deploy.mode).
  if (parent?.startsWith('published[') === true) return path
  return path.replace(/[A-Za-z_][A-Za-z0-9_]*/g, (w) => COMPOSE_WORDS[w] ?? w)
}

// Values yaml's toJS may build that a Compose file has no use for (!!binary, !!set, !!omap, ...).
function plainValueProblem(v: unknown, path: YamlPath, depth: number): RawError | null {
  if (depth > 64) return { path, message: 'is nested too deeply' }
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return null
  if (typeof v === 'number') return Number.isFinite(v) ? null : { path, message: `${v} is not a usable number` }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = plainValueProblem(v[i], [...path, i], depth + 1)
      if (p !== null) return p
    }
    return null
  }
  if (isObj(v)) {
    for (const [k, item] of Object.entries(v)) {
      const p = plainValueProblem(item, [...path, k], depth + 1)
      if (p !== null) return p
    }
    return null
  }
  return { path, message: 'has a YAML type Shoal does not read (binary, set, ordered map, timestamp): write plain text, numbers, lists or mappings' }
}

/** Each mapping's pairs by key, built once per mapping (a linear scan per error would be quadratic). */
type PairIndex = WeakMap<YAMLMap, Map<string, Pair<unknown, unknown>>>

function pairsOf(index: PairIndex, map: YAMLMap): Map<string, Pair<unknown, unknown>> {
  let pairs = index.get(map)
  if (pairs === undefined) {
    pairs = new Map()
    for (const pair of map.items as Array<Pair<unknown, unknown>>) {
      const key = keyText(pair.key)
      if (key !== null && !pairs.has(key)) pairs.set(key, pair)
    }
    index.set(map, pairs)
  }
  return pairs
}

/** Where a key path is in the file: the offset of its key (mapping) or item (list), or of the deepest part found. */
function locate(doc: Document.Parsed, index: PairIndex, path: YamlPath): number {
  let node: unknown = doc.contents
  let offset = rangeStart(node) ?? 0
  for (const seg of path) {
    node = deref(doc, node)
    if (isMap(node)) {
      const pair = findPair(doc, index, node, String(seg), 0)
      if (pair === null) break
      offset = rangeStart(pair.key) ?? rangeStart(pair.value) ?? offset
      node = pair.value
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg]
      if (item === undefined) break
      offset = rangeStart(item) ?? offset
      node = item
    } else break
  }
  return offset
}

function deref(doc: Document.Parsed, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node
}

function rangeStart(node: unknown): number | undefined {
  if (isScalar(node) || isMap(node) || isSeq(node) || isAlias(node)) return node.range?.[0]
  return undefined
}

function keyText(key: unknown): string | null {
  return isScalar(key) ? String(key.value) : null
}

/** A key's pair in a mapping: its own pairs first, then those it merges in (`<<: *x`), as YAML's merge order. */
function findPair(doc: Document.Parsed, index: PairIndex, map: YAMLMap, key: string, depth: number): Pair<unknown, unknown> | null {
  const pairs = pairsOf(index, map)
  const own = key === '<<' ? undefined : pairs.get(key)
  if (own !== undefined) return own
  const merge = pairs.get('<<')
  if (merge === undefined || depth >= MERGE_DEPTH_MAX) return null
  const source = deref(doc, merge.value)
  const sources = isSeq(source) ? source.items.map((s) => deref(doc, s)) : [source]
  for (const s of sources) {
    if (!isMap(s)) continue
    const hit = findPair(doc, index, s, key, depth + 1)
    if (hit !== null) return hit
  }
  return null
}

/**
 * Keys that appear twice in one mapping. The yaml library's own check (`uniqueKeys`) compares
 * each key with every earlier one: 20 000 keys took 2.6 s, so a set per mapping does it here.
 */
function duplicateKeys(doc: Document.Parsed): Array<{ offset: number; key: string }> {
  const found: Array<{ offset: number; key: string }> = []
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>()
      for (const pair of map.items) {
        const key = keyText(pair.key)
        if (key === null || key === '<<') continue
        if (seen.has(key)) found.push({ offset: rangeStart(pair.key) ?? 0, key })
        seen.add(key)
      }
    },
  })
  return found
}

/**
 * Parses a Compose file into service specs (all of them, or none with every error).
 * `fileName` is only used in the errors.
 */
export function parseComposeFile(text: string, fileName: string): ComposeResult {
  const at = (line: number, column: number, key: string, message: string): ComposeError => ({ file: fileName, line, column, key, message })
  const size = new TextEncoder().encode(text).byteLength
  if (size > COMPOSE_MAX_BYTES) {
    return { ok: false, errors: [at(1, 1, '', `the file is ${size} bytes; Shoal reads Compose files up to ${COMPOSE_MAX_BYTES} bytes (1 MiB): split it into several files`)] }
  }
  const lineCounter = new LineCounter()
  const position = (offset: number): { line: number; column: number } => {
    const p = lineCounter.linePos(offset)
    return { line: Math.max(1, p.line), column: Math.max(1, p.col) }
  }
  let doc: Document.Parsed
  let root: unknown
  try {
    doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false, stringKeys: true, uniqueKeys: false })
    const syntax = [...doc.errors, ...doc.warnings].map((e) => {
      const { line, column } = position(e.pos[0])
      const message = e.code === 'TAG_RESOLVE_FAILED' || e.message.startsWith('Unresolved tag')
        ? `${e.message}: Shoal reads plain YAML (no custom tags such as !reset or !override)`
        : /call stack/i.test(e.message) ? TOO_DEEP : `YAML: ${e.message}`
      return at(line, column, '', message)
    })
    for (const { offset, key } of syntax.length > 0 ? [] : duplicateKeys(doc)) {
      const { line, column } = position(offset)
      syntax.push(at(line, column, '', `the key ${JSON.stringify(key)} appears twice in one mapping: keep one`))
    }
    if (syntax.length > 0) return { ok: false, errors: bounded(syntax) }
    root = doc.toJS({ maxAliasCount: COMPOSE_MAX_ALIAS_COUNT })
  } catch (err) {
    // The yaml library throws for an alias bomb and runs out of stack on deep nesting.
    const message = err instanceof Error ? err.message : String(err)
    const why = /alias count/i.test(message)
      ? `the file expands aliases (*name) more than ${COMPOSE_MAX_ALIAS_COUNT} times, as a "billion laughs" file does: write the repeated parts out or use fewer aliases`
      : err instanceof RangeError
        ? TOO_DEEP
        : `YAML: ${message}`
    return { ok: false, errors: [at(1, 1, '', why)] }
  }

  const raw: RawError[] = []
  const specs: ServiceSpec[] = []
  if (!isObj(root)) {
    raw.push({ path: [], message: root === null || root === undefined ? 'the file is empty: a Compose file needs a services: mapping' : 'a Compose file is a mapping with a services: key at the top' })
  } else {
    for (const key of Object.keys(root)) {
      if (key === 'services' || key === 'version' || key === 'name' || key.startsWith('x-')) continue
      const advice = TOP_LEVEL_UNSUPPORTED[key]
      raw.push({ path: [key], message: advice === undefined ? `unknown top-level key ${JSON.stringify(key)}; Shoal reads services: (and ignores version:, name: and x- keys)` : advice === GENERIC_UNSUPPORTED ? `${key} ${advice}` : advice })
    }
    const services = root['services']
    const problem = plainValueProblem(services, ['services'], 0)
    if (services === undefined || services === null) raw.push({ path: services === null ? ['services'] : [], message: 'the file declares no services: add a services: mapping with at least one service' })
    else if (!isObj(services)) raw.push({ path: ['services'], message: 'must be a mapping of service names to services' })
    else if (Object.keys(services).length === 0) raw.push({ path: ['services'], message: 'is empty: add at least one service' })
    else if (problem !== null) raw.push(problem)
    else {
      for (const [name, body] of Object.entries(services)) {
        const base = ['services', name]
        if (!isObj(body)) {
          raw.push({ path: base, message: body === null ? 'is empty: a service needs at least image:' : 'must be a mapping (image:, deploy:, ...)' })
          continue
        }
        const reader = new ServiceReader(name, base)
        reader.read(body)
        raw.push(...reader.errors)
        const v = validateSpec(reader.input)
        if (v.ok) {
          specs.push(v.value)
          continue
        }
        for (const e of v.errors) {
          if (reader.failed.has(e.path)) continue
          let origin: YamlPath | undefined
          let found: string | null = e.path
          while (found !== null && origin === undefined) {
            origin = reader.origins.get(found)
            if (origin === undefined) found = parentSpecPath(found)
          }
          const below = found === null ? e.path : e.path.slice(found.length).replace(/^\./, '')
          // validateSpec words inside its message (`is more than limits.memoryBytes`) in Compose's too.
          const said = e.message.replace(/\b(limits|reservations)\.memoryBytes\b/g, '$1.memory')
          const message = e.path === 'name' ? `the service name ${said}` : below === '' ? said : `${composeWords(below, found)} ${said}`
          raw.push({ path: origin ?? base, message })
        }
      }
    }
  }
  if (raw.length === 0) return { ok: true, specs }
  const index: PairIndex = new WeakMap()
  const errors = raw.map((e) => {
    const { line, column } = position(locate(doc, index, e.path))
    return at(line, column, formatPath(e.path), e.message)
  })
  errors.sort((a, b) => a.line - b.line || a.column - b.column)
  return { ok: false, errors: bounded(errors) }
}

function bounded(errors: ComposeError[]): ComposeError[] {
  if (errors.length <= COMPOSE_MAX_ERRORS) return errors
  const rest = errors.length - (COMPOSE_MAX_ERRORS - 1)
  const first = errors[COMPOSE_MAX_ERRORS - 1]
  const kept = errors.slice(0, COMPOSE_MAX_ERRORS - 1)
  if (first !== undefined) kept.push({ ...first, key: '', message: `and ${rest} more errors from here on; fix these first` })
  return kept
}
