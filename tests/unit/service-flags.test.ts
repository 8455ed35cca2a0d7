import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { parseScaleArgs, parseServiceCreate, parseServiceUpdate, type ServiceFlagsResult } from '../../cli/service-flags.ts'
import { parseComposeFile } from '../../runtime/scheduler/compose.ts'
import { nextRecord, sameSpec, validateSpec, type ServiceSpec } from '../../runtime/scheduler/spec.ts'

function created(argv: string[]): Extract<ServiceFlagsResult, { ok: true }> {
  const r = parseServiceCreate(argv)
  if (!r.ok) throw new Error(r.error)
  return r
}

function updated(argv: string[], current: ServiceSpec): Extract<ServiceFlagsResult, { ok: true }> {
  const r = parseServiceUpdate(argv, current)
  if (!r.ok) throw new Error(r.error)
  return r
}

function failure(r: ServiceFlagsResult | ReturnType<typeof parseScaleArgs>): string {
  if (r.ok) throw new Error(`expected an error, got ${JSON.stringify(r)}`)
  return r.error
}

const EVERY_FLAG = [
  'web', '--image', 'nginx:1.27', '--replicas', '3',
  '--port', '9000', '--port', '53/udp', '-p', '8080:80', '--publish', 'published=8443,target=443,protocol=tcp,mode=host', '--publish', 'published=8053,target=53,protocol=udp,mode=host',
  '-e', 'MODE=prod', '--env', 'URL=http://x/?a=b', '--env', 'EMPTY=', '-l', 'team=web', '--label', 'flag',
  '--constraint', 'node.labels.zone==eu-1', '--constraint', 'host.name != h9',
  '--entrypoint', '/docker-entrypoint.sh --verbose',
  '--reserve-cpu', '0.25', '--reserve-memory', '256m', '--limit-cpu', '1.5', '--limit-memory', '1g',
  '--restart-condition', 'on-failure', '--restart-max-attempts', '4', '--restart-delay', '2s', '--restart-window', '2m',
  '--health-cmd', 'curl -f http://localhost/health || exit 1', '--health-interval', '1m30s', '--health-timeout', '10s',
  '--health-retries', '5', '--health-start-period', '500ms',
  '--update-parallelism', '2', '--update-delay', '10s', '--update-order', 'start-first', '--update-monitor', '30s',
  '--update-failure-action', 'rollback', '--update-max-failure-ratio', '0.25',
  '--rollback-parallelism', '0', '--rollback-delay', '0', '--rollback-order', 'stop-first', '--rollback-monitor', '5s',
  '--rollback-failure-action', 'continue', '--rollback-max-failure-ratio', '.5',
  '--stop-grace-period', '20s', '--on-disconnect', 'stop', '--on-disconnect-after', '45s',
  '--detach', '--api', '/run/shoal.sock',
  '--', 'nginx', '-g', 'daemon off;',
]

const EVERY_SPEC: ServiceSpec = {
  name: 'web',
  image: 'nginx:1.27',
  entrypoint: ['/docker-entrypoint.sh', '--verbose'],
  cmd: ['nginx', '-g', 'daemon off;'],
  env: { EMPTY: '', MODE: 'prod', URL: 'http://x/?a=b' },
  labels: { flag: '', team: 'web' },
  mode: 'replicated',
  replicas: 3,
  ports: [53, 9000],
  published: [
    { published: 8053, target: 53, protocol: 'udp', mode: 'host' },
    { published: 8080, target: 80, protocol: 'tcp', mode: 'ingress' },
    { published: 8443, target: 443, protocol: 'tcp', mode: 'host' },
  ],
  reservations: { cpus: 0.25, memoryBytes: 256 * 1024 ** 2 },
  limits: { cpus: 1.5, memoryBytes: 1024 ** 3 },
  constraints: ['host.label.zone==eu-1', 'host.name!=h9'],
  restart: { condition: 'on-failure', maxAttempts: 4, delayMs: 2000, windowMs: 120_000 },
  healthCheck: { cmd: ['curl -f http://localhost/health || exit 1'], intervalMs: 90_000, timeoutMs: 10_000, retries: 5, startPeriodMs: 500 },
  update: { parallelism: 2, delayMs: 10_000, order: 'start-first', monitorMs: 30_000, failureAction: 'rollback', maxFailureRatio: 0.25 },
  rollback: { parallelism: 0, delayMs: 0, order: 'stop-first', monitorMs: 5000, failureAction: 'continue', maxFailureRatio: 0.5 },
  stopGracePeriodMs: 20_000,
  onDisconnect: { action: 'stop', afterMs: 45_000 },
}

describe('parseServiceCreate', () => {
  it('reads every flag into the expected spec', () => {
    const r = created(EVERY_FLAG)
    expect(r.name).toBe('web')
    expect(r.detach).toBe(true)
    expect(r.api).toBe('/run/shoal.sock')
    expect(r.spec).toEqual(EVERY_SPEC)
  })

  it('gives an input that is plain JSON and that validateSpec (the API) turns into the same spec', () => {
    const r = created(EVERY_FLAG)
    const overTheWire: unknown = JSON.parse(JSON.stringify(r.input))
    const v = validateSpec(overTheWire)
    expect(v.ok && sameSpec(v.value, EVERY_SPEC)).toBe(true)
  })

  it('gives the same spec as the Compose file that says the same', () => {
    const compose = parseComposeFile(`services:
  web:
    image: nginx:1.27
    entrypoint: /docker-entrypoint.sh --verbose
    command: ["nginx", "-g", "daemon off;"]
    environment: {MODE: prod, URL: "http://x/?a=b", EMPTY: ""}
    labels: [team=web, flag]
    ports: ["9000", "53/udp", "8080:80", {target: 443, published: 8443, mode: host}, {target: 53, published: 8053, protocol: udp, mode: host}]
    healthcheck:
      test: curl -f http://localhost/health || exit 1
      interval: 1m30s
      timeout: 10s
      retries: 5
      start_period: 500ms
    stop_grace_period: 20s
    x-shoal-on-disconnect: {action: stop, after: 45s}
    deploy:
      replicas: 3
      placement: {constraints: ["node.labels.zone==eu-1", "host.name != h9"]}
      resources:
        limits: {cpus: "1.5", memory: 1G}
        reservations: {cpus: "0.25", memory: 256M}
      restart_policy: {condition: on-failure, max_attempts: 4, delay: 2s, window: 2m}
      update_config: {parallelism: 2, delay: 10s, order: start-first, monitor: 30s, failure_action: rollback, max_failure_ratio: 0.25}
      rollback_config: {parallelism: 0, delay: 0s, order: stop-first, monitor: 5s, failure_action: continue, max_failure_ratio: 0.5}
`, 'c.yml')
    if (!compose.ok) throw new Error(JSON.stringify(compose.errors))
    expect(compose.specs[0]).toEqual(created(EVERY_FLAG).spec)
  })

  it('fills Swarm defaults from the minimal command line', () => {
    const r = created(['api', '--image', 'api:1'])
    expect(r.detach).toBe(false)
    expect(r.api).toBeUndefined()
    expect(r.spec).toMatchObject({ replicas: 1, mode: 'replicated', cmd: [], healthCheck: null, stopGracePeriodMs: 10_000 })
  })

  it('takes --flag=value, global mode without replicas, and the last of a flag given twice', () => {
    const r = created(['agent', '--image=a:1', '--mode=global', '--stop-grace-period', '1s', '--stop-grace-period', '3s'])
    expect([r.spec.mode, r.spec.replicas, r.spec.stopGracePeriodMs]).toEqual(['global', 0, 3000])
  })

  it('keeps the command after -- untouched, dashes included', () => {
    expect(created(['w', '--image', 'x', '--', 'sh', '-c', 'echo --replicas 5']).spec.cmd).toEqual(['sh', '-c', 'echo --replicas 5'])
  })

  it.each<[string, string[], RegExp]>([
    ['no name', ['--image', 'x'], /missing the service NAME/],
    ['no image', ['web'], /--image: is required/],
    ['a bad name', ['Web_1', '--image', 'x'], /NAME: must be a lowercase DNS label/],
    ['an extra argument', ['web', '--image', 'x', 'nginx'], /unexpected argument "nginx": put the container's command after --/],
    ['an unknown flag', ['web', '--image', 'x', '--replicaz', '3'], /Unknown option '--replicaz'/],
    ['a flag without its value', ['web', '--image'], /--image/],
    ['replicas not a number', ['web', '--image', 'x', '--replicas', 'three'], /--replicas: expected a whole number, got "three"/],
    ['negative replicas', ['web', '--image', 'x', '--replicas=-1'], /--replicas: expected a whole number/],
    ['too many replicas', ['web', '--image', 'x', '--replicas', '5000'], /--replicas: must be an integer 0\.\.1000/],
    ['replicas with global', ['web', '--image', 'x', '--mode', 'global', '--replicas', '2'], /--replicas: must be left out for mode global/],
    ['a bad mode', ['web', '--image', 'x', '--mode', 'daemon'], /--mode: must be one of replicated, global/],
    ['an env without value', ['web', '--image', 'x', '-e', 'FOO'], /--env: "FOO" has no value; expected FOO=VALUE/],
    ['an env without name', ['web', '--image', 'x', '-e', '=1'], /--env: "=1" has no name/],
    ['a bad env name', ['web', '--image', 'x', '-e', 'A B=1'], /--env A B: key must be an environment variable name/],
    ['a reserved label', ['web', '--image', 'x', '-l', 'shoal.task=1'], /--label shoal\.task: the shoal\. prefix is reserved/],
    ['a bad constraint', ['web', '--image', 'x', '--constraint', 'node.role==manager'], /--constraint: .*unknown attribute "node\.role"/],
    ['a publish without host port', ['web', '--image', 'x', '-p', '80'], /--publish: "80" has no host port.*--port 80/],
    ['a publish with a host IP', ['web', '--image', 'x', '-p', '127.0.0.1:80:80'], /--publish: .*every address of the host/],
    ['a publish in an unknown mode', ['web', '--image', 'x', '-p', 'published=80,target=80,mode=bridge'], /--publish: mode=bridge: expected mode=ingress .* or mode=host/],
    ['a udp port through the mesh', ['web', '--image', 'x', '-p', '8053:53/udp'], /udp port 8053 must be published with mode host .*protocol=udp,mode=host/],
    ['a publish long form without target', ['web', '--image', 'x', '-p', 'published=80'], /--publish: .*no target=/],
    ['a port with a host port', ['web', '--image', 'x', '--port', '8080:80'], /--port: .*publish with --publish 8080:80/],
    ['a port out of range', ['web', '--image', 'x', '--port', '70000'], /--port: .*not within 1-65535/],
    ['a host port twice', ['web', '--image', 'x', '-p', '80:80', '-p', '80:81'], /--publish: host port 80\/tcp is published twice/],
    ['a duration without unit', ['web', '--image', 'x', '--restart-delay', '10'], /--restart-delay: "10" has no unit: write 10s/],
    ['a bad duration', ['web', '--image', 'x', '--update-delay', 'soon'], /--update-delay: expected a duration such as 10s/],
    ['a duration too long', ['web', '--image', 'x', '--stop-grace-period', '200h'], /--stop-grace-period: .*longer than a week/],
    ['a bad size', ['web', '--image', 'x', '--limit-memory', 'lots'], /--limit-memory: expected a size such as 512m/],
    ['a bad cpu count', ['web', '--image', 'x', '--limit-cpu', '-1'], /--limit-cpu/],
    ['a reservation over its limit', ['web', '--image', 'x', '--reserve-cpu', '2', '--limit-cpu', '1'], /--reserve-cpu: is more than --limit-cpu/],
    ['a bad restart condition', ['web', '--image', 'x', '--restart-condition', 'always'], /--restart-condition: must be one of none, on-failure, any/],
    ['a bad update order', ['web', '--image', 'x', '--update-order', 'sideways'], /--update-order: must be one of stop-first, start-first/],
    ['a bad failure action', ['web', '--image', 'x', '--rollback-failure-action', 'panic'], /--rollback-failure-action: must be one of pause, rollback, continue/],
    ['a failure ratio over 1', ['web', '--image', 'x', '--update-max-failure-ratio', '1.5'], /--update-max-failure-ratio: must be a number 0\.\.1/],
    ['health options without a command', ['web', '--image', 'x', '--health-interval', '5s'], /--health-cmd: is required/],
    ['an empty health command', ['web', '--image', 'x', '--health-cmd', ' '], /--health-cmd: is empty/],
    ['a zero health interval', ['web', '--image', 'x', '--health-cmd', 'true', '--health-interval', '0'], /--health-interval: must be more than 0/],
    ['no-healthcheck with a health flag', ['web', '--image', 'x', '--no-healthcheck', '--health-cmd', 'true'], /--no-healthcheck: turns the health check off, but --health-cmd sets one/],
    ['a bad on-disconnect', ['web', '--image', 'x', '--on-disconnect', 'pause', '--on-disconnect-after', '1s'], /--on-disconnect: must be one of keep, stop/],
    ['stop without after', ['web', '--image', 'x', '--on-disconnect', 'stop'], /--on-disconnect: stop needs --on-disconnect-after/],
    ['an unclosed quote', ['web', '--image', 'x', '--entrypoint', '"sh'], /--entrypoint: .*unclosed double quote/],
  ])('refuses %s, naming the flag', (_what, argv, message) => {
    const error = failure(parseServiceCreate(argv))
    expect(error).toMatch(/^shoal service create: /)
    expect(error).toMatch(message)
  })

  it('reports every error of the command line, one a line', () => {
    const error = failure(parseServiceCreate(['web', '--replicas', 'x', '--restart-delay', '10', '-e', 'FOO', '--update-order', 'up']))
    const lines = error.split('\n')
    expect(lines).toHaveLength(5)
    expect(lines.every((l) => l.startsWith('shoal service create: '))).toBe(true)
    for (const flag of ['--replicas', '--restart-delay', '--env', '--update-order', '--image']) expect(error).toContain(`${flag}: `)
  })
})

describe('parseServiceUpdate', () => {
  const current = EVERY_SPEC

  it('with no flags gives the current spec back (a no-op for nextRecord)', () => {
    const r = updated(['web'], current)
    expect(r.spec).toEqual(current)
    const stored = nextRecord(null, current)
    if (!stored.changed) throw new Error('a new service is a change')
    expect(nextRecord(stored.record, r.spec)).toEqual({ changed: false })
  })

  it('takes a stored record (version, previous) as the current spec and leaves them out of the input', () => {
    const stored = nextRecord(null, current)
    if (!stored.changed) throw new Error('a new service is a change')
    const r = updated(['web', '--replicas', '4'], stored.record)
    expect(Object.keys(r.input)).not.toContain('version')
    expect(Object.keys(r.input)).not.toContain('instanceVersion')
    expect(Object.keys(r.input)).not.toContain('previous')
    expect(r.spec.replicas).toBe(4)
  })

  it('changes only what its flags name', () => {
    const r = updated(['web', '--image', 'nginx:1.28', '--update-delay', '1s', '--limit-memory', '2g', '--health-retries', '9', '--restart-condition', 'any'], current)
    expect(r.spec).toEqual({
      ...current,
      image: 'nginx:1.28',
      update: { ...current.update, delayMs: 1000 },
      limits: { ...current.limits, memoryBytes: 2 * 1024 ** 3 },
      healthCheck: { ...current.healthCheck, retries: 9 },
      restart: { ...current.restart, condition: 'any' },
    })
  })

  it('adds and removes env, labels, constraints, ports and published ports (removals first)', () => {
    const r = updated([
      'web',
      '--env-rm', 'MODE', '--env-rm', 'MISSING', '--env-add', 'NEW=1', '--env', 'URL=changed', '--env-rm', 'EMPTY=ignored-value',
      '--label-rm', 'flag', '--label-add', 'tier=front',
      '--constraint-rm', 'host.label.zone == eu-1', '--constraint-add', 'host.label.zone==us-1',
      '--port-rm', '53/udp', '--port-add', '9100',
      '--publish-rm', '80', '--publish-rm', '8053:53/udp', '--publish-add', '8081:81', '--publish-add', '8443:4443',
    ], current)
    expect(r.spec.env).toEqual({ NEW: '1', URL: 'changed' })
    expect(r.spec.labels).toEqual({ team: 'web', tier: 'front' })
    expect(r.spec.constraints).toEqual(['host.label.zone==us-1', 'host.name!=h9'])
    expect(r.spec.ports).toEqual([9000, 9100])
    // Re-publishing host port 8443 replaces its old mapping (as Docker's --publish-add).
    expect(r.spec.published).toEqual([{ published: 8081, target: 81, protocol: 'tcp', mode: 'ingress' }, { published: 8443, target: 4443, protocol: 'tcp', mode: 'ingress' }])
    expect(r.spec.image).toBe(current.image)
    expect(r.spec.healthCheck).toEqual(current.healthCheck)
  })

  it('replaces the command with --args or after --, and the entrypoint with --entrypoint ""', () => {
    expect(updated(['web', '--args', `sh -c 'echo hi'`], current).spec.cmd).toEqual(['sh', '-c', 'echo hi'])
    expect(updated(['web', '--', 'sleep', 'infinity'], current).spec.cmd).toEqual(['sleep', 'infinity'])
    expect(updated(['web', '--args', ''], current).spec.cmd).toEqual([])
    expect(updated(['web', '--entrypoint', ''], current).spec.entrypoint).toEqual([])
    expect(failure(parseServiceUpdate(['web', '--args', 'a', '--', 'b'], current))).toMatch(/--args: and a command after -- both/)
  })

  it('removes the health check with --no-healthcheck and sets one on a service without', () => {
    const none = updated(['web', '--no-healthcheck'], current).spec
    expect(none.healthCheck).toBeNull()
    const again = updated(['web', '--health-cmd', 'true', '--health-interval', '2s'], none).spec
    expect(again.healthCheck).toEqual({ cmd: ['true'], intervalMs: 2000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 })
    expect(failure(parseServiceUpdate(['web', '--health-timeout', '2s'], none))).toMatch(/--health-cmd: is required/)
  })

  it('switches mode: to global drops the count, back to replicated takes --replicas or 1', () => {
    const global = updated(['web', '--mode', 'global'], current).spec
    expect([global.mode, global.replicas]).toEqual(['global', 0])
    expect(updated(['web', '--mode', 'replicated'], global).spec.replicas).toBe(1)
    expect(updated(['web', '--mode', 'replicated', '--replicas', '4'], global).spec.replicas).toBe(4)
    expect(failure(parseServiceUpdate(['web', '--replicas', '3'], global))).toMatch(/--replicas: must be left out for mode global/)
  })

  it.each<[string, string[], RegExp]>([
    ['no name', [], /missing the service NAME/],
    ['another service\'s name', ['db'], /the spec given is "web", not "db"/],
    ['a bad constraint to remove', ['web', '--constraint-rm', 'zone=a'], /--constraint-rm: .*no == or !=/],
    ['a bad env to add', ['web', '--env-add', 'FOO'], /--env-add: "FOO" has no value/],
    ['a bad env name to add', ['web', '--env-add', '1X=1'], /--env-add 1X: key must be an environment variable name/],
    ['a bad port to remove', ['web', '--port-rm', 'x'], /--port-rm: /],
    ['a publish to add without host port', ['web', '--publish-add', '80'], /--publish-add: "80" has no host port/],
    ['an extra argument', ['web', 'nginx:2'], /unexpected argument "nginx:2": replace the command with --args/],
    ['a create-only typo', ['web', '--env-ad', 'A=1'], /Unknown option '--env-ad'/],
    ['a bad image', ['web', '--image', 'bad image'], /--image: must be an image reference/],
  ])('refuses %s, naming the flag', (_what, argv, message) => {
    const error = failure(parseServiceUpdate(argv, current))
    expect(error).toMatch(/^shoal service update: /)
    expect(error).toMatch(message)
  })
})

describe('parseScaleArgs', () => {
  it.each<[string[], Array<{ name: string; replicas: number }>]>([
    [['web=3'], [{ name: 'web', replicas: 3 }]],
    [['web=3', 'db=0'], [{ name: 'web', replicas: 3 }, { name: 'db', replicas: 0 }]],
    [['web', '5'], [{ name: 'web', replicas: 5 }]],
    [['a=1', 'b=2', 'c=1000'], [{ name: 'a', replicas: 1 }, { name: 'b', replicas: 2 }, { name: 'c', replicas: 1000 }]],
  ])('reads %j', (argv, scales) => {
    expect(parseScaleArgs(argv)).toEqual({ ok: true, scales, detach: false, api: undefined })
  })

  it('takes -d and --api', () => {
    expect(parseScaleArgs(['web=2', '-d', '--api', '/s'])).toEqual({ ok: true, scales: [{ name: 'web', replicas: 2 }], detach: true, api: '/s' })
  })

  it.each<[string[], RegExp]>([
    [[], /missing NAME=N/],
    [['web'], /"web" has no count: write web=N/],
    [['web='], /"web" has no count/],
    [['web=x'], /web: expected a number of replicas 0\.\.1000, got "x"/],
    [['web=1001'], /0\.\.1000/],
    [['web=-1'], /expected a number of replicas/],
    [['web', 'db'], /web: expected a number of replicas 0\.\.1000, got "db"/],
    [['Web=1'], /"Web" is not a service name/],
    [['web=1', 'web=2'], /web is given twice/],
    [['web=1', 'db'], /"db" has no count/],
    [['web=1', '--replicas', '2'], /Unknown option '--replicas'/],
  ])('refuses %j', (argv, message) => {
    const error = failure(parseScaleArgs(argv))
    expect(error).toMatch(/^shoal service scale: /)
    expect(error).toMatch(message)
  })
})

describe('the flag parsers never throw', () => {
  const word = fc.oneof(
    fc.constantFrom('web', '--image', 'x', '--replicas', '3', '-p', '80:80', '-e', 'A=1', '--env-rm', '--', '--mode', 'global', '--health-cmd', '--no-healthcheck', '=', '-', '--publish-rm', 'web=2', '"', 'published=1'),
    fc.string({ maxLength: 8 }),
  )
  it('on random command lines', () => {
    fc.assert(fc.property(fc.array(word, { maxLength: 10 }), (argv) => {
      const results = [parseServiceCreate(argv), parseServiceUpdate(argv, EVERY_SPEC), parseScaleArgs(argv)]
      return results.every((r) => r.ok || r.error.length > 0)
    }), { numRuns: 1000 })
  })
})
