import { describe, it, expect } from 'vitest'
import { matchConstraint, parseConstraint } from '../../runtime/scheduler/constraint.ts'
import {
  decodeServiceRecord, encodeServiceRecord, nextRecord, rollbackRecord, specFingerprint, validateSpec, DEFAULT_UPDATE, type ServiceSpec,
} from '../../runtime/scheduler/spec.ts'
import { parseService } from '../../storage/statestore/index.ts'

function valid(input: Record<string, unknown>): ServiceSpec {
  const v = validateSpec(input)
  if (!v.ok) throw new Error(JSON.stringify(v.errors))
  return v.value
}

function errorsOf(input: unknown): Array<{ path: string; message: string }> {
  const v = validateSpec(input)
  return v.ok ? [] : [...v.errors]
}

describe('service spec validation', () => {
  it('fills Docker Swarm defaults for a minimal spec', () => {
    const s = valid({ name: 'web', image: 'nginx:1.27' })
    expect(s.mode).toBe('replicated')
    expect(s.replicas).toBe(1)
    expect(s.update).toEqual(DEFAULT_UPDATE)
    expect(s.update).toEqual({ parallelism: 1, delayMs: 0, order: 'stop-first', monitorMs: 5000, failureAction: 'pause', maxFailureRatio: 0 })
    expect(s.rollback).toEqual(DEFAULT_UPDATE)
    expect(s.restart).toEqual({ condition: 'any', maxAttempts: 0, delayMs: 5000, windowMs: 0 })
    expect(s.stopGracePeriodMs).toBe(10_000)
    expect(s.healthCheck).toBeNull()
    expect(s.onDisconnect).toEqual({ action: 'keep', afterMs: 0 })
  })

  it('accepts every field the issue lists', () => {
    const s = valid({
      name: 'api', image: 'registry:5000/api@sha256:abc', entrypoint: ['/bin/api'], cmd: ['--port', '80'],
      env: { B: '2', A: '1' }, labels: { team: 'x' }, replicas: 3, ports: [80, 80, 443], published: [{ published: 8080, target: 80 }, { published: 5353, target: 53, protocol: 'udp', mode: 'host' }],
      reservations: { cpus: 0.5, memoryBytes: 1 << 20 }, limits: { cpus: 1, memoryBytes: 1 << 21 },
      constraints: ['host.label.zone == a', 'host.name!=h9'], restart: { condition: 'on-failure', maxAttempts: 3, delayMs: 1000 },
      healthCheck: { cmd: ['curl', '-f', 'http://localhost/'], intervalMs: 2000, retries: 2 },
      update: { parallelism: 2, order: 'start-first', monitorMs: 1000, failureAction: 'rollback', maxFailureRatio: 0.5 },
      rollback: { parallelism: 0 }, stopGracePeriodMs: 0, onDisconnect: { action: 'stop', afterMs: 30_000 },
    })
    expect(s.ports).toEqual([80, 443])
    expect(s.published).toEqual([{ published: 5353, target: 53, protocol: 'udp', mode: 'host' }, { published: 8080, target: 80, protocol: 'tcp', mode: 'ingress' }])
    expect(s.constraints).toEqual(['host.label.zone==a', 'host.name!=h9'])
    expect(Object.keys(s.env)).toEqual(['A', 'B'])
    expect(s.healthCheck).toEqual({ cmd: ['curl', '-f', 'http://localhost/'], intervalMs: 2000, timeoutMs: 30_000, retries: 2, startPeriodMs: 0 })
    expect(s.rollback.parallelism).toBe(0)
  })

  it.each<[string, unknown, string]>([
    ['not an object', 'web', ''],
    ['missing name', { image: 'x' }, 'name'],
    ['name with capitals', { name: 'Web', image: 'x' }, 'name'],
    ['name too long', { name: 'a'.repeat(64), image: 'x' }, 'name'],
    ['missing image', { name: 'web' }, 'image'],
    ['negative replicas', { name: 'web', image: 'x', replicas: -1 }, 'replicas'],
    ['too many replicas', { name: 'web', image: 'x', replicas: 1001 }, 'replicas'],
    ['replicas with global', { name: 'web', image: 'x', mode: 'global', replicas: 2 }, 'replicas'],
    ['bad mode', { name: 'web', image: 'x', mode: 'daemon' }, 'mode'],
    ['unknown top field', { name: 'web', image: 'x', replica: 2 }, 'replica'],
    ['unknown nested field', { name: 'web', image: 'x', update: { paralelism: 2 } }, 'update.paralelism'],
    ['bad order', { name: 'web', image: 'x', update: { order: 'random' } }, 'update.order'],
    ['bad failure action', { name: 'web', image: 'x', rollback: { failureAction: 'explode' } }, 'rollback.failureAction'],
    ['ratio above 1', { name: 'web', image: 'x', update: { maxFailureRatio: 2 } }, 'update.maxFailureRatio'],
    ['port out of range', { name: 'web', image: 'x', ports: [80, 70000] }, 'ports[1]'],
    ['published without target', { name: 'web', image: 'x', published: [{ published: 80 }] }, 'published[0].target'],
    ['published twice', { name: 'web', image: 'x', published: [{ published: 80, target: 1 }, { published: 80, target: 2 }] }, 'published[1]'],
    ['env value not a string', { name: 'web', image: 'x', env: { A: 1 } }, 'env.A'],
    ['env key invalid', { name: 'web', image: 'x', env: { '1A': 'x' } }, 'env["1A"]'],
    ['reserved label', { name: 'web', image: 'x', labels: { 'shoal.task': 'x' } }, 'labels["shoal.task"]'],
    ['bad constraint', { name: 'web', image: 'x', constraints: ['host.label.zone=a'] }, 'constraints[0]'],
    ['negative cpus', { name: 'web', image: 'x', reservations: { cpus: -1 } }, 'reservations.cpus'],
    ['reservation over limit', { name: 'web', image: 'x', reservations: { memoryBytes: 10 }, limits: { memoryBytes: 5 } }, 'reservations.memoryBytes'],
    ['fractional duration', { name: 'web', image: 'x', stopGracePeriodMs: 1.5 }, 'stopGracePeriodMs'],
    ['health check without command', { name: 'web', image: 'x', healthCheck: {} }, 'healthCheck.cmd'],
    ['bad on-disconnect', { name: 'web', image: 'x', onDisconnect: { action: 'pause' } }, 'onDisconnect.action'],
    ['cmd not a list', { name: 'web', image: 'x', cmd: 'nginx -g' }, 'cmd'],
  ])('rejects %s, naming the field', (_what, input, path) => {
    const errors = errorsOf(input)
    expect(errors.length).toBeGreaterThan(0)
    expect(errors.map((e) => e.path)).toContain(path)
    for (const e of errors) expect(e.message.length).toBeGreaterThan(5)
  })

  it('reports every problem at once', () => {
    expect(errorsOf({ name: 'Web', replicas: 'x', update: { order: 1 } }).map((e) => e.path).sort()).toEqual(['image', 'name', 'replicas', 'update.order'])
  })

  it('never throws on hostile input', () => {
    const hostile: unknown[] = [null, 1, [], { name: { toString: 1 } }, JSON.parse('{"__proto__": {"x": 1}, "name": "a", "image": "b"}'), { env: [] }, { published: [null, 1] }]
    for (const h of hostile) expect(() => validateSpec(h)).not.toThrow()
  })
})

describe('canonical encoding and versions', () => {
  const spec = valid({ name: 'web', image: 'nginx:1.27', env: { B: '1', A: '2' }, replicas: 3, constraints: ['host.name==b', 'host.name!=a'] })

  it('re-applying an unchanged spec is a no-op, whatever the key order', () => {
    const first = nextRecord(null, spec)
    expect(first.changed).toBe(true)
    if (!first.changed) return
    expect(first.record.version).toBe(1)
    const reordered = valid({ replicas: 3, constraints: ['host.name!=a', 'host.name == b'], env: { A: '2', B: '1' }, image: 'nginx:1.27', name: 'web' })
    expect(specFingerprint(reordered)).toBe(specFingerprint(spec))
    expect(nextRecord(first.record, reordered)).toEqual({ changed: false })
  })

  it('a change bumps the version and keeps the old spec for rollback', () => {
    const first = nextRecord(null, spec)
    if (!first.changed) throw new Error('unreachable')
    const second = nextRecord(first.record, { ...spec, image: 'nginx:1.28' })
    if (!second.changed) throw new Error('expected a change')
    expect(second.record.version).toBe(2)
    expect(second.record.previous?.image).toBe('nginx:1.27')
    const back = rollbackRecord(second.record)
    expect(back?.image).toBe('nginx:1.27')
    expect(back?.version).toBe(3)
    expect(rollbackRecord(first.record)).toBeNull()
  })

  it('encodes to identical bytes and decodes back; the StateStore still accepts it', () => {
    const r = nextRecord(null, spec)
    if (!r.changed) throw new Error('unreachable')
    const bytes = encodeServiceRecord(r.record)
    const decoded = decodeServiceRecord(bytes)
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(decoded.value).toEqual(r.record)
    expect(encodeServiceRecord(decoded.value)).toEqual(bytes)
    // storage/statestore/records.ts validates services/<name> with its older, smaller check.
    expect(parseService(bytes).ok).toBe(true)
    const global = nextRecord(null, valid({ name: 'agent', image: 'x', mode: 'global' }))
    if (!global.changed) throw new Error('unreachable')
    expect(parseService(encodeServiceRecord(global.record)).ok).toBe(true)
  })

  it('decoding tolerates unknown fields from newer peers but not invalid known ones', () => {
    const r = nextRecord(null, spec)
    if (!r.changed) throw new Error('unreachable')
    const withExtra = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(encodeServiceRecord(r.record))), futureField: 1 }))
    expect(decodeServiceRecord(withExtra).ok).toBe(true)
    const broken = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(encodeServiceRecord(r.record))), replicas: -3 }))
    const d = decodeServiceRecord(broken)
    expect(d.ok).toBe(false)
    if (!d.ok) expect(d.errors[0]?.path).toBe('replicas')
    expect(decodeServiceRecord(new Uint8Array([0xff])).ok).toBe(false)
    expect(decodeServiceRecord(new TextEncoder().encode('{"name":"web"}')).ok).toBe(false)
  })
})

describe('constraints', () => {
  const h = { name: 'Host-A', labels: { zone: 'a', ssd: 'true' } }
  it.each<[string, boolean]>([
    ['host.name==host-a', true],
    ['host.name!=host-a', false],
    ['host.label.zone==a', true],
    ['host.label.zone!=a', false],
    ['host.label.zone==b', false],
    ['host.label.gpu==yes', false],
    ['host.label.gpu!=yes', true],
    ['node.labels.ssd==true', true],
    ['  host.label.zone  ==  a ', true],
  ])('%s matches: %s', (expr, expected) => {
    const p = parseConstraint(expr)
    expect(p.ok).toBe(true)
    if (p.ok) expect(matchConstraint(p.constraint, h)).toBe(expected)
  })

  it.each<[unknown, RegExp]>([
    ['host.label.zone=a', /no == or !=/],
    ['host.label.zone==', /no value/],
    ['host.ip==1.2.3.4', /unknown attribute "host.ip"/],
    ['host.label.==a', /label key/],
    ['host.name==a==b', /more than one operator/],
    [42, /must be a string/],
  ])('rejects %j with a clear error', (expr, message) => {
    const p = parseConstraint(expr)
    expect(p.ok).toBe(false)
    if (!p.ok) expect(p.error).toMatch(message)
  })
})
