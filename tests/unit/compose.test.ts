import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import {
  COMPOSE_MAX_ERRORS, formatComposeError, parseBytes, parseComposeFile, parseDurationMs, parsePortText, splitShellWords,
  type ComposeError,
} from '../../runtime/scheduler/compose.ts'
import { nextRecord, type ServiceSpec } from '../../runtime/scheduler/spec.ts'

function specsOf(text: string): ServiceSpec[] {
  const r = parseComposeFile(text, 'compose.yml')
  if (!r.ok) throw new Error(r.errors.map(formatComposeError).join('\n'))
  return r.specs
}

function errorsOf(text: string): ComposeError[] {
  const r = parseComposeFile(text, 'compose.yml')
  if (r.ok) throw new Error(`expected errors, got ${JSON.stringify(r.specs)}`)
  return r.errors
}

/** A one-service file with `extra` (already indented by 4) under the service, from line 4. */
function service(extra: string): string {
  return `services:\n  web:\n    image: nginx:1.27\n${extra}`
}

const FULL = `version: "3.8"
name: shop
x-defaults: &defaults
  stop_grace_period: 20s
  labels:
    team: web

services:
  web:
    <<: *defaults
    image: registry:5000/shop/web:1.4
    entrypoint: ["/docker-entrypoint.sh"]
    command: nginx -g 'daemon off;' -c "/etc/nginx/my conf"
    environment:
      MODE: prod
      WORKERS: 4
      DEBUG: false
      PRICE: "$$5"
    labels:
      tier: front
    ports:
      - "8080:80"
      - target: 53
        published: 8053
        protocol: udp
        mode: host
      - target: 443
        published: 8443
        protocol: tcp
        mode: host
      - "9000"
    expose:
      - "9100"
      - 9200/udp
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/health"]
      interval: 1m30s
      timeout: 10s
      retries: 5
      start_period: 500ms
    x-shoal-on-disconnect:
      action: stop
      after: 45s
    x-notes: ignored by Compose and Shoal
    deploy:
      mode: replicated
      replicas: 6
      endpoint_mode: dnsrr
      labels:
        com.example.owner: ops
      placement:
        constraints:
          - node.hostname != h9
          - node.labels.zone==eu-1
      resources:
        limits:
          cpus: "1.5"
          memory: 1G
        reservations:
          cpus: 0.25
          memory: 256M
      restart_policy:
        condition: on-failure
        delay: 2s
        max_attempts: 4
        window: 2m
      update_config:
        parallelism: 2
        delay: 10s
        order: start-first
        monitor: 30s
        failure_action: rollback
        max_failure_ratio: 0.25
      rollback_config:
        parallelism: 0
        order: stop-first
        failure_action: continue
  agent:
    image: datadog/agent:7
    restart: unless-stopped
    healthcheck:
      test: curl -f http://localhost:5555 || exit 1
    deploy:
      mode: global
`

describe('parseComposeFile: a real file', () => {
  it('turns a Compose file with deploy keys into the expected specs, in file order', () => {
    const [web, agent, ...more] = specsOf(FULL)
    expect(more).toEqual([])
    expect(web).toEqual({
      name: 'web',
      image: 'registry:5000/shop/web:1.4',
      entrypoint: ['/docker-entrypoint.sh'],
      cmd: ['nginx', '-g', 'daemon off;', '-c', '/etc/nginx/my conf'],
      env: { DEBUG: 'false', MODE: 'prod', PRICE: '$5', WORKERS: '4' },
      // A merge key is shallow (YAML's rule): the service's own labels: replace the merged ones.
      labels: { 'com.example.owner': 'ops', tier: 'front' },
      mode: 'replicated',
      replicas: 6,
      ports: [9000, 9100, 9200],
      published: [
        { published: 8053, target: 53, protocol: 'udp', mode: 'host' },
        { published: 8080, target: 80, protocol: 'tcp', mode: 'ingress' },
        { published: 8443, target: 443, protocol: 'tcp', mode: 'host' },
      ],
      reservations: { cpus: 0.25, memoryBytes: 256 * 1024 ** 2 },
      limits: { cpus: 1.5, memoryBytes: 1024 ** 3 },
      constraints: ['host.label.zone==eu-1', 'host.name!=h9'],
      restart: { condition: 'on-failure', maxAttempts: 4, delayMs: 2000, windowMs: 120_000 },
      healthCheck: { cmd: ['curl', '-f', 'http://localhost/health'], intervalMs: 90_000, timeoutMs: 10_000, retries: 5, startPeriodMs: 500 },
      update: { parallelism: 2, delayMs: 10_000, order: 'start-first', monitorMs: 30_000, failureAction: 'rollback', maxFailureRatio: 0.25 },
      rollback: { parallelism: 0, delayMs: 0, order: 'stop-first', monitorMs: 5000, failureAction: 'continue', maxFailureRatio: 0 },
      stopGracePeriodMs: 20_000,
      onDisconnect: { action: 'stop', afterMs: 45_000 },
    } satisfies ServiceSpec)
    expect(agent?.mode).toBe('global')
    expect(agent?.replicas).toBe(0)
    expect(agent?.restart.condition).toBe('any')
    // A string test is a shell command line (Compose's CMD-SHELL): one element.
    expect(agent?.healthCheck?.cmd).toEqual(['curl -f http://localhost:5555 || exit 1'])
    expect(agent?.stopGracePeriodMs).toBe(10_000)
  })

  it('gives the same specs every time, so re-applying an unchanged file changes nothing', () => {
    const first = specsOf(FULL)
    const again = specsOf(FULL)
    for (const [i, spec] of first.entries()) {
      const created = nextRecord(null, spec)
      if (!created.changed) throw new Error('a new service is a change')
      expect(nextRecord(created.record, again[i] as ServiceSpec)).toEqual({ changed: false })
    }
  })

  it('fills Swarm defaults for a minimal service', () => {
    const [s] = specsOf('services:\n  api:\n    image: api:1\n')
    expect(s).toMatchObject({ name: 'api', replicas: 1, mode: 'replicated', healthCheck: null, stopGracePeriodMs: 10_000, cmd: [], env: {} })
  })

  it('reads list forms of environment and labels, and K alone as an empty label', () => {
    const [s] = specsOf(service('    environment: ["A=1", "B=x=y", "C="]\n    labels: ["a=1", "flag"]\n'))
    expect(s?.env).toEqual({ A: '1', B: 'x=y', C: '' })
    expect(s?.labels).toEqual({ a: '1', flag: '' })
  })

  it('reads command lists as they are and splits command strings like a shell', () => {
    const [a] = specsOf(service('    command: ["sh", "-c", "echo $$HOME; exit 0"]\n'))
    expect(a?.cmd).toEqual(['sh', '-c', 'echo $HOME; exit 0'])
    const [b] = specsOf(service(`    command: >-\n      sh -c "echo \\"hi there\\"" 'a b' c\\ d\n`))
    expect(b?.cmd).toEqual(['sh', '-c', 'echo "hi there"', 'a b', 'c d'])
  })

  it('reads port ranges, udp, long syntax without a host port', () => {
    const [s] = specsOf(service('    ports:\n      - "9000-9002:8000-8002"\n      - target: 7000\n      - 6000/udp\n'))
    expect(s?.published).toEqual([
      { published: 9000, target: 8000, protocol: 'tcp', mode: 'ingress' },
      { published: 9001, target: 8001, protocol: 'tcp', mode: 'ingress' },
      { published: 9002, target: 8002, protocol: 'tcp', mode: 'ingress' },
    ])
    expect(s?.ports).toEqual([6000, 7000])
  })

  it('a udp port through the mesh is an error at its line, saying how to publish it in mode host', () => {
    const errors = errorsOf(service('    ports:\n      - "8080:80"\n      - "8053:53/udp"\n'))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ key: 'services.web.ports[1]', line: 6 })
    expect(errors[0]?.message).toMatch(/^mode udp port 8053 must be published with mode host/)
  })

  it.each([
    ['healthcheck:\n      test: ["CMD-SHELL", "pg_isready || exit 1"]', ['pg_isready || exit 1']],
    ['healthcheck:\n      test: ["NONE"]', null],
    ['healthcheck:\n      disable: true', null],
    ['healthcheck:\n      test: ["CMD", "true"]\n      disable: false', ['true']],
  ])('reads %s', (yaml, cmd) => {
    const [s] = specsOf(service(`    ${yaml}\n`))
    expect(s?.healthCheck === null ? null : s?.healthCheck?.cmd).toEqual(cmd)
  })

  it.each([
    ['no', { condition: 'none', maxAttempts: 0 }],
    ['always', { condition: 'any', maxAttempts: 0 }],
    ['on-failure', { condition: 'on-failure', maxAttempts: 0 }],
    ['on-failure:3', { condition: 'on-failure', maxAttempts: 3 }],
  ])('reads restart: %s', (value, expected) => {
    const [s] = specsOf(service(`    restart: ${value}\n`))
    expect(s?.restart).toMatchObject(expected)
  })

  it('follows anchors and merge keys, the service\'s own keys winning', () => {
    const [a, b] = specsOf(`x-base: &base\n  image: base:1\n  deploy: {replicas: 2}\nservices:\n  a:\n    <<: *base\n    image: a:1\n  b: *base\n`)
    expect([a?.image, a?.replicas, b?.image, b?.replicas]).toEqual(['a:1', 2, 'base:1', 2])
  })

  it('accepts an x-shoal-on-disconnect keep without after', () => {
    const [s] = specsOf(service('    x-shoal-on-disconnect: {action: keep}\n'))
    expect(s?.onDisconnect).toEqual({ action: 'keep', afterMs: 0 })
  })
})

describe('parseComposeFile: unsupported and unknown keys', () => {
  it.each([
    ['build: .', /build the image, push it/],
    ['volumes: ["data:/var/lib/data"]', /no volumes/],
    ['networks: [front]', /DNS/],
    ['depends_on: [db]', /retry/],
    ['links: [db]', /shoal link create/],
    ['external_links: [db]', /shoal link create/],
    ['env_file: .env', /under environment/],
    ['secrets: [pw]', /no secrets store/],
    ['configs: [cfg]', /no configs store/],
    ['container_name: web1', /names each instance/],
    ['hostname: web', /DNS name/],
    ['dns: 8.8.8.8', /its own peer/],
    ['extra_hosts: ["a:1.2.3.4"]', /DNS name/],
    ['network_mode: host', /default bridge/],
    ['scale: 3', /deploy\.replicas/],
    ['mem_limit: 1g', /deploy\.resources/],
    ['cpus: 0.5', /deploy\.resources/],
    ['extends: {service: base}', /anchors/],
    ['profiles: [debug]', /another file/],
    ['logging: {driver: syslog}', /shoal logs/],
    ['privileged: true', /does not support yet/],
    ['cap_add: [NET_ADMIN]', /does not support yet/],
    ['user: "1000"', /does not support yet/],
    ['working_dir: /app', /does not support yet/],
    ['tty: true', /does not support yet/],
    ['imag: typo', /unknown key "imag".*Shoal reads here: image/],
    ['x-shoal-colour: blue', /unknown key "x-shoal-colour"/],
  ])('%s is an error on its own line with its key path', (line, message) => {
    const key = line.slice(0, line.indexOf(':'))
    const errors = errorsOf(service(`    ${line}\n`))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ file: 'compose.yml', line: 4, column: 5, key: `services.web.${key}` })
    expect(errors[0]?.message).toMatch(message)
  })

  it.each([
    ['deploy:\n      preferences: []', 'services.web.deploy.preferences', 5, /unknown key/],
    ['deploy:\n      placement:\n        preferences: [{spread: node.labels.zone}]', 'services.web.deploy.placement.preferences', 6, /spreads/],
    ['deploy:\n      placement:\n        max_replicas_per_node: 1', 'services.web.deploy.placement.max_replicas_per_node', 6, /does not support/],
    ['deploy:\n      resources:\n        limits: {pids: 10}', 'services.web.deploy.resources.limits.pids', 6, /does not support/],
    ['deploy:\n      mode: global-job', 'services.web.deploy.mode', 5, /no jobs/],
    ['deploy:\n      endpoint_mode: vip', 'services.web.deploy.endpoint_mode', 5, /no virtual IP/],
    ['healthcheck:\n      test: ["CMD", "true"]\n      start_interval: 1s', 'services.web.healthcheck.start_interval', 6, /does not support/],
    ['ports:\n      - target: 80\n        host_ip: 127.0.0.1', 'services.web.ports[0].host_ip', 6, /every address/],
    ['ports:\n      - target: 80\n        published: 8080\n        mode: bridge', 'services.web.ports[0].mode', 7, /must be ingress .* or host/],
  ])('nested %s', (yaml, key, line, message) => {
    const errors = errorsOf(service(`    ${yaml}\n`))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ key, line })
    expect(errors[0]?.message).toMatch(message)
  })

  it.each(['networks', 'volumes', 'configs', 'secrets', 'include', 'servics'])('top-level %s is an error', (key) => {
    const errors = errorsOf(`${key}: {}\nservices:\n  web:\n    image: x\n`)
    expect(errors).toEqual([expect.objectContaining({ line: 1, column: 1, key })])
  })

  it('ignores top-level version, name and x- keys', () => {
    expect(specsOf('version: "3"\nname: p\nx-anything: {a: 1}\nservices:\n  web:\n    image: x\n')).toHaveLength(1)
  })
})

describe('parseComposeFile: values, mapped back to their lines', () => {
  it.each<[string, string, number, RegExp]>([
    ['    deploy:\n      replicas: -1\n', 'services.web.deploy.replicas', 5, /integer 0\.\.1000/],
    ['    deploy:\n      replicas: 1001\n', 'services.web.deploy.replicas', 5, /integer 0\.\.1000/],
    ['    deploy:\n      replicas: many\n', 'services.web.deploy.replicas', 5, /whole number/],
    ['    deploy:\n      mode: global\n      replicas: 2\n', 'services.web.deploy.replicas', 6, /left out for mode global/],
    ['    deploy:\n      mode: daemon\n', 'services.web.deploy.mode', 5, /replicated, global/],
    ['    deploy:\n      update_config:\n        order: sideways\n', 'services.web.deploy.update_config.order', 6, /stop-first, start-first/],
    ['    deploy:\n      rollback_config:\n        max_failure_ratio: 2\n', 'services.web.deploy.rollback_config.max_failure_ratio', 6, /0\.\.1/],
    ['    deploy:\n      restart_policy:\n        delay: 10\n', 'services.web.deploy.restart_policy.delay', 6, /no unit: write 10s/],
    ['    deploy:\n      restart_policy:\n        condition: sometimes\n', 'services.web.deploy.restart_policy.condition', 6, /none, on-failure, any/],
    ['    deploy:\n      resources:\n        limits: {memory: 12Q}\n', 'services.web.deploy.resources.limits.memory', 6, /512m, 1g/],
    ['    deploy:\n      resources:\n        limits: {cpus: lots}\n', 'services.web.deploy.resources.limits.cpus', 6, /number of CPUs/],
    ['    deploy:\n      resources:\n        limits: {cpus: 1}\n        reservations: {cpus: 2}\n', 'services.web.deploy.resources.reservations.cpus', 7, /more than limits\.cpus/],
    ['    deploy:\n      resources:\n        limits: {memory: 1m}\n        reservations: {memory: 2m}\n', 'services.web.deploy.resources.reservations.memory', 7, /more than limits\.memory$/],
    ['    deploy:\n      placement:\n        constraints: [node.hostname==a, "node.role==manager"]\n', 'services.web.deploy.placement.constraints[1]', 6, /unknown attribute "node\.role"/],
    ['    stop_grace_period: 2w\n', 'services.web.stop_grace_period', 4, /duration such as 10s/],
    ['    stop_grace_period: 200h\n', 'services.web.stop_grace_period', 4, /longer than a week/],
    ['    healthcheck:\n      test: ["CMD", "true"]\n      interval: 0s\n', 'services.web.healthcheck.interval', 6, /more than 0/],
    ['    healthcheck:\n      interval: 5s\n', 'services.web.healthcheck', 4, /test is required/],
    ['    healthcheck:\n      test: ["RUN", "true"]\n', 'services.web.healthcheck.test', 5, /"CMD"/],
    ['    environment:\n      FOO:\n', 'services.web.environment.FOO', 5, /no value.*write FOO=value/],
    ['    environment: ["A=1", "FOO"]\n', 'services.web.environment[1]', 4, /FOO has no value/],
    ['    environment: ["A=1", "A=2"]\n', 'services.web.environment[1]', 4, /A is set twice/],
    ['    environment:\n      "BAD KEY": x\n', 'services.web.environment.BAD KEY', 5, /environment variable name/],
    ['    environment:\n      HOME: ${HOME}\n', 'services.web.environment.HOME', 5, /uses \$\{HOME\}.*\$\$ for a literal/],
    ['    command: echo $USER\n', 'services.web.command', 4, /uses \$USER/],
    ['    command: echo "unclosed\n', 'services.web.command', 4, /unclosed double quote/],
    ['    labels:\n      shoal.service: x\n', 'services.web.labels.shoal.service', 5, /reserved/],
    ['    ports: ["127.0.0.1:8080:80"]\n', 'services.web.ports[0]', 4, /every address of the host/],
    ['    ports: ["8000-8001:80"]\n', 'services.web.ports[0]', 4, /same length/],
    ['    ports: ["8080:80/sctp"]\n', 'services.web.ports[0]', 4, /tcp and udp/],
    ['    ports: ["8080:80", "8080:81"]\n', 'services.web.ports[1]', 4, /published twice/],
    ['    ports: [{published: 80}]\n', 'services.web.ports[0]', 4, /needs target/],
    ['    expose: ["8080:80"]\n', 'services.web.expose[0]', 4, /container ports only/],
    ['    restart: sometimes\n', 'services.web.restart', 4, /on-failure\[:N\]/],
    ['    restart: always\n    deploy:\n      restart_policy: {condition: any}\n', 'services.web.restart', 4, /both set/],
    ['    x-shoal-on-disconnect: {action: stop}\n', 'services.web.x-shoal-on-disconnect', 4, /needs after/],
    ['    x-shoal-on-disconnect: {action: pause, after: 1s}\n', 'services.web.x-shoal-on-disconnect.action', 4, /keep, stop/],
    ['    deploy: [replicas]\n', 'services.web.deploy', 4, /must be a mapping/],
  ])('%j', (yaml, key, line, message) => {
    const errors = errorsOf(service(yaml))
    expect(errors.map((e) => e.key)).toEqual([key])
    expect(errors[0]?.line).toBe(line)
    expect(errors[0]?.message).toMatch(message)
  })

  it('names an invalid service name at its key, and a missing image at the service', () => {
    const errors = errorsOf('services:\n  My_Web:\n    image: x\n  db:\n    environment: {A: "1"}\n')
    expect(errors.map((e) => [e.line, e.column, e.key])).toEqual([[2, 3, 'services.My_Web'], [4, 3, 'services.db']])
    expect(errors[0]?.message).toMatch(/service name must be a lowercase DNS label/)
    expect(errors[1]?.message).toMatch(/needs image/)
  })

  it('locates an error in a merged value at the anchor that holds it', () => {
    const errors = errorsOf('x-d: &d\n  stop_grace_period: 10\nservices:\n  web:\n    <<: *d\n    image: x\n')
    expect(errors).toEqual([expect.objectContaining({ line: 2, key: 'services.web.stop_grace_period' })])
  })

  it('is all or nothing: one bad service of several gives no spec and every error of the file', () => {
    const text = `services:
  good:
    image: nginx
  bad:
    image: nginx
    build: .
    deploy:
      replicas: -3
      update_config: {order: sideways}
  worse:
    volumes: [a:/b]
networks: {}
`
    const r = parseComposeFile(text, 'stack.yml')
    expect(r.ok).toBe(false)
    expect('specs' in r).toBe(false)
    if (r.ok) return
    expect(r.errors.map((e) => `${e.line}:${e.key}`)).toEqual([
      '6:services.bad.build',
      '8:services.bad.deploy.replicas',
      '9:services.bad.deploy.update_config.order',
      '10:services.worse', // no image
      '11:services.worse.volumes',
      '12:networks',
    ])
    expect(r.errors.every((e) => e.file === 'stack.yml')).toBe(true)
    expect(formatComposeError(r.errors[0] as ComposeError)).toMatch(/^stack\.yml:6:5: services\.bad\.build: build: /)
  })

  it('bounds the number of errors reported', () => {
    const lines = Array.from({ length: 150 }, (_, i) => `    bogus${i}: 1`).join('\n')
    const errors = errorsOf(service(`${lines}\n`))
    expect(errors).toHaveLength(COMPOSE_MAX_ERRORS)
    expect(errors.at(-1)?.message).toMatch(/and 51 more errors/)
  })
})

describe('parseComposeFile: files that are not Compose files', () => {
  it.each<[string, string, number, RegExp]>([
    ['empty', '', 1, /empty.*services/],
    ['a comment only', '# nothing\n', 1, /empty/],
    ['a list', '- a\n- b\n', 1, /mapping with a services/],
    ['a scalar', 'hello\n', 1, /mapping with a services/],
    ['no services', 'version: "3"\n', 1, /declares no services/],
    ['services as a list', 'services: [web]\n', 1, /mapping of service names/],
    ['empty services', 'services: {}\n', 1, /at least one service/],
    ['a service that is a string', 'services:\n  web: nginx\n', 2, /must be a mapping/],
    ['bad indentation', 'services:\n  web:\n    image: x\n   ports: [1\n', 4, /YAML/],
    ['an unclosed flow list', 'services:\n  web:\n    image: x\n    ports: [80\n', 5, /YAML/], // found at the end of the file
    ['a duplicate key', 'services:\n  web:\n    image: x\n    image: y\n', 4, /"image" appears twice/],
    ['a duplicate service', 'services:\n  web:\n    image: x\n  web:\n    image: y\n', 4, /"web" appears twice/],
    ['two documents', 'services:\n  web:\n    image: x\n---\nservices: {}\n', 4, /multiple documents/i],
    ['a custom tag', 'services:\n  web:\n    image: !reset x\n', 3, /no custom tags/],
    ['a binary value', 'services:\n  web:\n    image: x\n    labels: {a: !!binary aGVsbG8=}\n', 4, /YAML type Shoal does not read/],
  ])('%s', (_what, text, line, message) => {
    const errors = errorsOf(text)
    expect(errors.length).toBeGreaterThan(0)
    expect(errors[0]?.line).toBe(line)
    expect(errors[0]?.message).toMatch(message)
  })

  it('refuses an alias bomb without expanding it', () => {
    const bomb = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
      'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
      'h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]',
      'services:',
      '  web:',
      '    image: x',
      '    command: *h',
    ].join('\n')
    const errors = errorsOf(bomb)
    expect(errors).toHaveLength(1)
    expect(errors[0]?.message).toMatch(/billion laughs/)
  })

  it('refuses nesting too deep to read with an error, not a crash', () => {
    const errors = errorsOf(`services:\n  web:\n    image: x\n    command: ${'['.repeat(5000)}${']'.repeat(5000)}\n`)
    expect(errors[0]?.message).toMatch(/too deeply/)
  })

  it('refuses a file over 1 MiB before parsing it', () => {
    const text = `services:\n  web:\n    image: x\n# ${'x'.repeat(1024 * 1024)}\n`
    const errors = errorsOf(text)
    expect(errors).toEqual([expect.objectContaining({ line: 1, key: '' })])
    expect(errors[0]?.message).toMatch(/up to 1048576 bytes/)
  })

  it('counts the size in UTF-8 bytes', () => {
    const text = `services:\n  web:\n    image: x\n# ${'é'.repeat(600 * 1024)}\n`
    expect(errorsOf(text)[0]?.message).toMatch(/1 MiB/)
  })
})

describe('text parsers shared with the flags', () => {
  it.each<[string, number]>([
    ['0', 0], ['10s', 10_000], ['1m30s', 90_000], ['500ms', 500], ['1.5h', 5_400_000], ['1h2m3s4ms', 3_723_004],
    ['1.1s', 1100], ['.5s', 500], ['1000us', 1], ['2000000ns', 2], ['168h', 604_800_000],
  ])('duration %s = %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toEqual({ ok: true, value: ms })
  })

  it.each<[string, RegExp]>([
    ['10', /no unit: write 10s/], ['', /expected a duration/], ['-1s', /expected a duration/], ['1d', /expected a duration/],
    ['1.5us', /finer than a millisecond/], ['169h', /longer than a week/], ['10 s', /expected a duration/], ['s', /expected a duration/],
  ])('duration %j is refused', (text, message) => {
    const r = parseDurationMs(text)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error).toMatch(message)
  })

  it.each<[string, number]>([
    ['0', 0], ['2048', 2048], ['512m', 512 * 1024 ** 2], ['512M', 512 * 1024 ** 2], ['1g', 1024 ** 3], ['1GB', 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3], ['64k', 65536], ['1 kb', 1024], ['100b', 100],
  ])('size %s = %d bytes', (text, bytes) => {
    expect(parseBytes(text)).toEqual({ ok: true, value: bytes })
  })

  it.each(['', '12Q', '-1m', 'm', '1e9', '99999999999p'])('size %j is refused', (text) => {
    expect(parseBytes(text).ok).toBe(false)
  })

  it.each<[string, string[]]>([
    ['', []], ['  a  b ', ['a', 'b']], [`a 'b c' "d e"`, ['a', 'b c', 'd e']], [`'it''s'`, ['its']],
    [`"a\\"b" 'a\\b'`, ['a"b', 'a\\b']], ['a\\ b', ['a b']], [`x=""`, ['x=']], [`""`, ['']], ['$HOME', ['$HOME']],
  ])('shell words of %j', (text, words) => {
    expect(splitShellWords(text)).toEqual({ ok: true, value: words })
  })

  it.each(['"open', "'open", 'trail\\'])('shell words of %j are refused', (text) => {
    expect(splitShellWords(text).ok).toBe(false)
  })

  it.each<[string, unknown]>([
    ['80', [{ published: null, target: 80, protocol: 'tcp' }]],
    ['53/udp', [{ published: null, target: 53, protocol: 'udp' }]],
    ['8080:80', [{ published: 8080, target: 80, protocol: 'tcp' }]],
    ['8053:53/UDP', [{ published: 8053, target: 53, protocol: 'udp' }]],
    ['1-2:3-4', [{ published: 1, target: 3, protocol: 'tcp' }, { published: 2, target: 4, protocol: 'tcp' }]],
  ])('port %s', (text, value) => {
    expect(parsePortText(text)).toEqual({ ok: true, value })
  })

  it.each(['0', '65536', '80/sctp', '127.0.0.1:80:80', '[::1]:80:80', ':80', 'a:80', '9-8', '1-100', '8080:'])('port %j is refused', (text) => {
    expect(parsePortText(text).ok).toBe(false)
  })
})

describe('parseComposeFile never throws', () => {
  // Bad input gets errors, never an exception: random text, and random edits of a real file.
  it('on random text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (text) => {
      const r = parseComposeFile(text, 'f.yml')
      return r.ok ? r.specs.length > 0 : r.errors.length > 0 && r.errors.every((e) => e.line >= 1 && e.column >= 1)
    }), { numRuns: 500 })
  })

  it('on a real file with a span replaced by YAML-ish noise', () => {
    const noise = fc.array(fc.constantFrom(':', '-', ' ', '\n', '[', ']', '{', '}', '&a', '*a', '<<', '"', "'", '$', '#', '!!', 'x', '1', 'null', '~', '?'), { maxLength: 12 })
    fc.assert(fc.property(fc.nat(FULL.length), fc.nat(40), noise, (at, cut, parts) => {
      const text = FULL.slice(0, at) + parts.join('') + FULL.slice(at + cut)
      const r = parseComposeFile(text, 'f.yml')
      return r.ok || r.errors.length > 0
    }), { numRuns: 500 })
  })
})
