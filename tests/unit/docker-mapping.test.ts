/**
 * Docker API data → Shoal records, pure: inspect results (fixtures trimmed from a real
 * Docker 20.10 engine) into Container records, the event stream's line parser, and the
 * clamping that keeps every record valid for the StateStore.
 */
import { describe, it, expect } from 'vitest'
import { encodeRecord, parseContainer, RECORD_MAX_ITEMS, RECORD_MAX_TEXT_CHARS, type Container } from '../../storage/statestore/index.ts'
import {
  bridgeGatewaysOf, describeGateway, draftFromInspect, eventEffect, EventLineParser, EVENT_LINE_MAX_CHARS, firstUsableAddress, parsePortKey,
  type DockerInspect, type DockerNetwork, type InterfaceAddresses,
} from '../../runtime/docker-mapping.ts'
import { CONTAINER_RECORD_MAX_BYTES, clampTime, toContainerRecord, truncateText, type ContainerDraft } from '../../runtime/container-record.ts'
import { nextBackoffMs } from '../../runtime/docker-runtime.ts'
import { parsePortLabel, serviceOf, servicePortsOf } from '../../storage/statestore/container-labels.ts'

const identity = { hostId: '12D3KooWHostA', hostName: 'host-a' }
const ID = '7e6287942767ec14a983808e7ee33bf945fb4f10619e046d97d0c36f0baf2729'
const ZERO = '0001-01-01T00:00:00Z'

/** `docker run -d --name web -l shoal.service=web -p 127.0.0.1:18092:80 -p 8125:8125/udp --expose 9000 --health-cmd true` */
const running: DockerInspect = {
  Id: ID,
  Name: '/web',
  Image: 'sha256:d82c524681e90e45ccecdd089e2dd536110270e9921c72b1ecba6dc834c26cec',
  Config: { Image: 'shoal-test/busybox:1', Labels: { 'shoal.service': 'web' }, ExposedPorts: { '80/tcp': {}, '8125/udp': {}, '9000/tcp': {} } },
  State: {
    Status: 'running', Running: true, Paused: false, Restarting: false, Dead: false, ExitCode: 0,
    StartedAt: '2026-11-23T21:30:25.080193542Z', FinishedAt: ZERO, Health: { Status: 'healthy' },
  },
  NetworkSettings: {
    IPAddress: '10.213.1.2', GlobalIPv6Address: '',
    Ports: {
      '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18092' }],
      '8125/udp': [{ HostIp: '0.0.0.0', HostPort: '8125' }, { HostIp: '::', HostPort: '8125' }],
      '9000/tcp': null,
    },
    Networks: { bridge: { IPAddress: '10.213.1.2', GlobalIPv6Address: '' } },
  },
}

/** `docker run --name done busybox sh -c 'exit 3'` */
const exited: DockerInspect = {
  Id: ID.replace(/^7/, '8'),
  Name: '/done',
  Image: 'sha256:d82c',
  Config: { Image: 'shoal-test/busybox:1', Labels: {}, ExposedPorts: null },
  State: { Status: 'exited', Running: false, ExitCode: 3, StartedAt: '2026-11-23T21:30:25.721205922Z', FinishedAt: '2026-11-23T21:30:25.72713904Z' },
  NetworkSettings: { IPAddress: '', Ports: {}, Networks: { bridge: { IPAddress: '', GlobalIPv6Address: '' } } },
}

/** `docker create --name fresh --network none busybox true` */
const created: DockerInspect = {
  Id: ID.replace(/^7/, '9'),
  Name: '/fresh',
  Image: 'sha256:d82c',
  Config: { Image: 'shoal-test/busybox:1', Labels: null, ExposedPorts: null },
  State: { Status: 'created', Running: false, ExitCode: 0, StartedAt: ZERO, FinishedAt: ZERO },
  NetworkSettings: { IPAddress: '', Ports: {}, Networks: { none: { IPAddress: '' } } },
}

function record(info: DockerInspect): Container {
  const outcome = toContainerRecord(draftFromInspect(info), identity)
  if (!outcome.ok) throw new Error(outcome.error)
  return outcome.container
}

/** The contract: whatever the runtime emits, the StateStore parses back to the same record. */
function expectStorable(c: Container): void {
  const parsed = parseContainer(encodeRecord(c))
  expect(parsed.ok ? 'ok' : parsed.error).toBe('ok')
  if (parsed.ok) expect(parsed.record).toEqual(c)
}

describe('inspect → Container', () => {
  it('maps a running container with published, exposed and UDP ports, labels and health', () => {
    const c = record(running)
    expect(c).toEqual({
      id: ID,
      name: 'web',
      image: 'shoal-test/busybox:1',
      host: '12D3KooWHostA',
      hostName: 'host-a',
      ips: ['10.213.1.2'],
      ports: [
        { containerPort: 80, protocol: 'tcp', hostPort: 18092, hostIp: '127.0.0.1' },
        { containerPort: 8125, protocol: 'udp', hostPort: 8125, hostIp: '0.0.0.0' },
        { containerPort: 8125, protocol: 'udp', hostPort: 8125, hostIp: '::' },
        { containerPort: 9000, protocol: 'tcp' },
      ],
      labels: { 'shoal.service': 'web' },
      state: 'running',
      startedAt: '2026-11-23T21:30:25.080193542Z',
      health: 'healthy',
    })
    expectStorable(c)
  })

  it('gives an exited container its exit code and finish time, and no addresses', () => {
    const c = record(exited)
    expect(c.state).toBe('exited')
    expect(c.exitCode).toBe(3)
    expect(c.finishedAt).toBe('2026-11-23T21:30:25.72713904Z')
    expect(c.ips).toEqual([])
    expect(c.health).toBeUndefined()
    expectStorable(c)
  })

  it("omits Docker's zero time and the exit code of a never-started container (network none, null labels)", () => {
    const c = record(created)
    expect(c).toMatchObject({ name: 'fresh', state: 'created', ips: [], ports: [], labels: {} })
    expect('startedAt' in c || 'finishedAt' in c || 'exitCode' in c).toBe(false)
    expectStorable(c)
  })

  it('keeps a stopped container exposed ports (no live bindings) and drops the previous exit of a restarted one', () => {
    const stopped = record({ ...running, State: { ...running.State, Status: 'exited', Running: false, ExitCode: 137, FinishedAt: '2026-11-23T21:31:00Z' }, NetworkSettings: { Ports: {}, Networks: {} } })
    expect(stopped.ports).toEqual([{ containerPort: 80, protocol: 'tcp' }, { containerPort: 8125, protocol: 'udp' }, { containerPort: 9000, protocol: 'tcp' }])
    expect(stopped.exitCode).toBe(137)
    const restarted = record({ ...running, State: { ...running.State, ExitCode: 137, FinishedAt: '2026-11-23T21:31:00Z' } })
    expect(restarted.exitCode).toBeUndefined()
    expect(restarted.finishedAt).toBeUndefined()
  })

  it('collects IPv4 and IPv6 addresses of every network, in network name order, without duplicates', () => {
    const c = record({
      ...running,
      NetworkSettings: {
        IPAddress: '10.213.1.2', GlobalIPv6Address: 'fd00:213::2',
        Networks: {
          zeta: { IPAddress: '172.30.0.5', GlobalIPv6Address: 'fd00:30::5' },
          bridge: { IPAddress: '10.213.1.2', GlobalIPv6Address: 'fd00:213::2' },
          none: null,
        },
      },
    })
    expect(c.ips).toEqual(['10.213.1.2', 'fd00:213::2', '172.30.0.5', 'fd00:30::5'])
    expectStorable(c)
  })

  it.each([
    ['created', {}, 'created'],
    ['running', {}, 'running'],
    ['running', { Paused: true }, 'paused'],
    ['paused', {}, 'paused'],
    ['restarting', {}, 'exited'],
    ['removing', {}, 'exited'],
    ['exited', {}, 'exited'],
    ['dead', {}, 'dead'],
    ['hibernating', { Running: true }, 'running'],
    ['hibernating', { Dead: true }, 'dead'],
  ] as const)('maps Docker status %s %j to %s', (status, flags, expected) => {
    const c = record({ ...exited, State: { ...exited.State, Status: status, Running: false, ...flags } })
    expect(c.state).toBe(expected)
    expectStorable(c)
  })

  it('never throws on missing or wrongly typed fields', () => {
    const junk = { Id: ID, Name: 42, Config: 'x', State: null, NetworkSettings: { Ports: [1, 2], Networks: 'bridge' } } as unknown as DockerInspect
    const c = record(junk)
    expect(c).toMatchObject({ id: ID, name: ID.slice(0, 12), image: 'unknown', state: 'exited', ips: [], ports: [] })
    expectStorable(c)
  })

  it('refuses a record only for an id the store would refuse', () => {
    expect(toContainerRecord(draftFromInspect({ ...running, Id: '' }), identity).ok).toBe(false)
    expect(toContainerRecord(draftFromInspect({ ...running, Id: 'a/b' }), identity).ok).toBe(false)
  })

  it('parses port keys and skips sctp and garbage', () => {
    expect(parsePortKey('80/tcp')).toEqual([80, 'tcp'])
    expect(parsePortKey('53/udp')).toEqual([53, 'udp'])
    expect(parsePortKey('132/sctp')).toBeUndefined()
    expect(parsePortKey('0/tcp')).toBeUndefined()
    expect(parsePortKey('70000/tcp')).toBeUndefined()
    expect(parsePortKey('80')).toBeUndefined()
  })
})

describe('clamping to the record limits', () => {
  const base: ContainerDraft = { id: ID, name: 'x', image: 'img', ips: [], ports: [], labels: {}, state: 'running' }

  function clamp(draft: Partial<ContainerDraft>): { container: Container; clamped: string[] } {
    const outcome = toContainerRecord({ ...base, ...draft }, identity)
    if (!outcome.ok) throw new Error(outcome.error)
    expectStorable(outcome.container)
    return outcome
  }

  it.each([
    ['/web', 'web'],
    ['web.1_a-b', 'web.1_a-b'],
    ['-leading', 'leading'],
    ['sp ace/slash', 'sp-ace-slash'],
    ['ünïcode', 'n-code'],
    ['', ID.slice(0, 12)],
    ['///', ID.slice(0, 12)],
    ['x'.repeat(300), 'x'.repeat(128)],
  ])('name %j becomes %j', (name, expected) => {
    expect(clamp({ name }).container.name).toBe(expected)
  })

  it('keeps shoal.* labels first and at most 64 labels', () => {
    const labels = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`com.example.l${String(i).padStart(3, '0')}`, `v${i}`]))
    const { container, clamped } = clamp({ labels: { ...labels, 'shoal.service': 'web', 'shoal.port': '80' } })
    expect(Object.keys(container.labels)).toHaveLength(RECORD_MAX_ITEMS)
    expect(container.labels['shoal.service']).toBe('web')
    expect(container.labels['shoal.port']).toBe('80')
    expect(clamped).toContain('labels')
  })

  it('cuts long label values and drops long keys, and keeps "__proto__" a plain label', () => {
    const labels = Object.fromEntries([['__proto__', 'p'], ['k'.repeat(300), 'dropped'], ['big', 'v'.repeat(RECORD_MAX_TEXT_CHARS + 10)], ['emoji', `${'e'.repeat(RECORD_MAX_TEXT_CHARS - 1)}😀`]])
    const { container } = clamp({ labels })
    expect(Object.hasOwn(container.labels, '__proto__')).toBe(true)
    expect(container.labels['big']).toHaveLength(RECORD_MAX_TEXT_CHARS)
    expect(container.labels['emoji']).toBe('e'.repeat(RECORD_MAX_TEXT_CHARS - 1)) // the surrogate pair is not split
    expect(Object.keys(container.labels)).not.toContain('k'.repeat(300))
  })

  it(`drops labels from the end until the record fits ${CONTAINER_RECORD_MAX_BYTES} bytes`, () => {
    const labels = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`l${String(i).padStart(2, '0')}`, '"'.repeat(RECORD_MAX_TEXT_CHARS)]))
    const { container } = clamp({ labels: { ...labels, 'shoal.service': 'web' } })
    expect(encodeRecord(container).length).toBeLessThanOrEqual(CONTAINER_RECORD_MAX_BYTES)
    expect(container.labels['shoal.service']).toBe('web')
    expect(Object.keys(container.labels).length).toBeLessThan(61)
  })

  it('drops invalid addresses and ports, merges duplicates, keeps at most 64 of each', () => {
    const ips = ['10.0.0.1', '10.0.0.1', 'fe80::1', 'not an ip', '', ...Array.from({ length: 80 }, (_, i) => `10.1.${i}.1`)]
    const ports = [
      { containerPort: 80, protocol: 'tcp' as const }, { containerPort: 80, protocol: 'tcp' as const },
      { containerPort: 0, protocol: 'tcp' as const }, { containerPort: 53, protocol: 'sctp' as unknown as 'tcp' },
      { containerPort: 81, protocol: 'tcp' as const, hostPort: 70000, hostIp: 'bad ip' },
      ...Array.from({ length: 80 }, (_, i) => ({ containerPort: 1000 + i, protocol: 'udp' as const })),
    ]
    const { container } = clamp({ ips, ports })
    expect(container.ips.slice(0, 3)).toEqual(['10.0.0.1', 'fe80::1', '10.1.0.1'])
    expect(container.ips).toHaveLength(RECORD_MAX_ITEMS)
    expect(container.ports[0]).toEqual({ containerPort: 80, protocol: 'tcp' })
    expect(container.ports[1]).toEqual({ containerPort: 81, protocol: 'tcp' })
    expect(container.ports).toHaveLength(RECORD_MAX_ITEMS)
  })

  it('cuts a long image reference and fills an empty one', () => {
    expect(clamp({ image: `registry.example/${'a'.repeat(400)}:1` }).container.image).toHaveLength(256)
    expect(clamp({ image: '' }).container.image).toBe('unknown')
  })

  it('normalises times it can read and drops the rest', () => {
    expect(clampTime('2026-11-23T21:30:25.080193542Z')).toBe('2026-11-23T21:30:25.080193542Z')
    expect(clampTime('2026-11-23T21:30:25+01:00')).toBe('2026-11-23T21:30:25+01:00')
    expect(clampTime('Mon, 23 Nov 2026 21:30:25 GMT')).toBe('2026-11-23T21:30:25.000Z')
    expect(clampTime(ZERO)).toBeUndefined()
    expect(clampTime('yesterday')).toBeUndefined()
    expect(clampTime(null)).toBeUndefined()
  })

  it('clamps exit codes to 32 bits', () => {
    expect(clamp({ state: 'exited', exitCode: 2 ** 40 }).container.exitCode).toBe(2147483647)
  })

  it('truncateText never splits a surrogate pair', () => {
    expect(truncateText('ab😀', 3)).toBe('ab')
    expect(truncateText('ab😀', 4)).toBe('ab😀')
  })
})

describe('event stream lines', () => {
  const start = (id: string, name = 'web'): string => JSON.stringify({
    status: 'start', id, from: 'img', Type: 'container', Action: 'start',
    Actor: { ID: id, Attributes: { image: 'img', name } }, scope: 'local', time: 1, timeNano: 1,
  })

  it('reassembles events cut at any byte, multi-byte characters included', () => {
    const text = `${start(ID, 'wéb-😀')}\n${start(ID.replace(/^7/, '8'))}\n`
    const bytes = new TextEncoder().encode(text)
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const parser = new EventLineParser()
      const events = [...parser.push(bytes.subarray(0, cut)), ...parser.push(bytes.subarray(cut))]
      expect(events.map((e) => e.name)).toEqual(['wéb-😀', 'web'])
      expect(parser.garbageLines).toBe(0)
    }
  })

  it('counts garbage lines and carries on', () => {
    const parser = new EventLineParser()
    const events = parser.push(`not json\n{"Type":"container"}\n[1,2]\n\n  \n${start(ID)}\n{"Type":"network","Action":"connect","Actor":{"ID":"n1"}}\n{"Type":"container","Action":"start","Actor":{"ID":"../../etc"}}\n`)
    expect(events).toEqual([{ id: ID, action: 'start', name: 'web' }])
    expect(parser.garbageLines).toBe(4)
    expect(parser.otherEvents).toBe(1)
  })

  it('reads old-style events (status and id only)', () => {
    expect(new EventLineParser().push(`{"status":"die","id":"${ID}"}\n`)).toEqual([{ id: ID, action: 'die', name: null }])
  })

  it('skips an over-long line up to its newline, then goes on', () => {
    const parser = new EventLineParser()
    expect(parser.push('{"x":"' + 'a'.repeat(EVENT_LINE_MAX_CHARS))).toEqual([])
    expect(parser.push('b'.repeat(1000))).toEqual([])
    expect(parser.push(`"}\n${start(ID)}\n`)).toHaveLength(1)
    expect(parser.garbageLines).toBe(1)
  })

  it('flushes a last line without a newline at the end of the stream', () => {
    const parser = new EventLineParser()
    expect(parser.push(start(ID))).toEqual([])
    expect(parser.end()).toHaveLength(1)
  })

  it.each([
    ['create', 'inspect'], ['start', 'inspect'], ['die', 'inspect'], ['stop', 'inspect'], ['kill', 'inspect'],
    ['pause', 'inspect'], ['unpause', 'inspect'], ['rename', 'inspect'], ['restart', 'inspect'], ['oom', 'inspect'],
    ['health_status: healthy', 'inspect'], ['health_status: unhealthy', 'inspect'], ['update', 'inspect'],
    ['destroy', 'remove'],
    ['exec_start: sh -c true', 'ignore'], ['exec_create: true', 'ignore'], ['exec_die', 'ignore'], ['attach', 'ignore'],
    ['resize', 'ignore'], ['top', 'ignore'], ['archive-path', 'ignore'], ['', 'ignore'],
  ])('action %j → %s', (action, effect) => {
    expect(eventEffect(action)).toBe(effect)
  })
})

describe('reconnect back-off', () => {
  it('doubles from 500 ms to at most 30 s', () => {
    const delays: number[] = []
    let d = 500
    for (let i = 0; i < 10; i++) {
      delays.push(d)
      d = nextBackoffMs(d)
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000])
  })
})

describe('labels → service membership', () => {
  const c = (labels: Record<string, string>, ports: Container['ports'] = []): Pick<Container, 'labels' | 'ports'> => ({ labels, ports })

  it.each([
    [{ 'shoal.service': 'web' }, 'web'],
    [{ 'shoal.service': ' Web ' }, 'web'],
    [{ 'shoal.service': 'my_svc' }, null],
    [{ 'shoal.service': '-web' }, null],
    [{ 'shoal.service': '' }, null],
    [{ 'shoal.service': 'a'.repeat(64) }, null],
    [{}, null],
    [{ 'com.docker.compose.service': 'web' }, null],
  ])('%j → %j', (labels, expected) => {
    expect(serviceOf(c(labels))).toBe(expected)
  })

  it('takes SRV ports from shoal.port, else from the container ports', () => {
    const ports = [{ containerPort: 80, protocol: 'tcp' as const, hostPort: 8080, hostIp: '0.0.0.0' }, { containerPort: 80, protocol: 'tcp' as const, hostPort: 8080, hostIp: '::' }, { containerPort: 53, protocol: 'udp' as const }]
    expect(servicePortsOf(c({}, ports))).toEqual([{ port: 53, protocol: 'udp' }, { port: 80, protocol: 'tcp' }])
    expect(servicePortsOf(c({ 'shoal.port': '8080' }, ports))).toEqual([{ port: 8080, protocol: 'tcp' }])
    expect(parsePortLabel(' 443 , 53/UDP,53/tcp, x, 0, 70000, 80/sctp')).toEqual([{ port: 53, protocol: 'tcp' }, { port: 53, protocol: 'udp' }, { port: 443, protocol: 'tcp' }])
  })
})

describe('bridge gateways: where containers reach this host', () => {
  /** `docker network ls --filter driver=bridge` of a stock Docker 20.10 engine (no --bip): IPAM lists no gateway. */
  const stockBridge: DockerNetwork = {
    Name: 'bridge', Id: 'e4dd3d345b89a497ee2549f746add222674e789da4af117ebcf82e63dacea58c', Driver: 'bridge',
    IPAM: { Config: [{ Subnet: '172.17.0.0/16' }] },
    Options: { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': 'docker0', 'com.docker.network.driver.mtu': '1500' },
  }
  /** `docker network create foo`: the engine lists the gateway it picked. */
  const created: DockerNetwork = { Name: 'foo', Id: '5ef01c3370a7167d2810634ef59cb804b04ad2a8e93bfbcf212776f4ba5ff6d6', Driver: 'bridge', IPAM: { Config: [{ Gateway: '172.18.0.1', Subnet: '172.18.0.0/16' }] }, Options: {} }
  /** `docker network create --subnet 10.77.0.0/24 bar`: a subnet, no gateway, bridge br-<id12>. */
  const subnetOnly: DockerNetwork = { Name: 'bar', Id: '34aaedd7e919fb87d58749712c2999db4f6382936062147910c5c9a8d0d2d57b', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] }, Options: {} }
  /** The test engines: `--bridge shoal-d3` with 10.213.3.1/24 made beforehand; IPAM lists the gateway. */
  const testEngine: DockerNetwork = {
    Name: 'bridge', Id: 'aa', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.213.3.0/24', Gateway: '10.213.3.1' }] },
    Options: { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': 'shoal-d3' },
  }
  const lo = { lo: [{ address: '127.0.0.1' }, { address: '::1' }] }

  const table: Array<{ why: string; networks: DockerNetwork[]; interfaces: InterfaceAddresses; addresses: string[]; sources?: string[]; unresolved?: string[] }> = [
    { why: 'stock engine, peer beside docker0: the address docker0 holds', networks: [stockBridge], interfaces: { ...lo, docker0: [{ address: '172.17.0.1' }, { address: 'fe80::42:acff:fe11:1' }] }, addresses: ['172.17.0.1'], sources: ['interface'] },
    { why: 'stock engine, docker0 given another address by hand: that address, not a guess', networks: [stockBridge], interfaces: { docker0: [{ address: '172.17.42.1' }] }, addresses: ['172.17.42.1'], sources: ['interface'] },
    { why: 'stock engine, docker0 not visible (peer elsewhere): the subnet\'s first address', networks: [stockBridge], interfaces: lo, addresses: ['172.17.0.1'], sources: ['subnet'] },
    { why: 'an address of docker0 outside the subnet is not the gateway', networks: [stockBridge], interfaces: { docker0: [{ address: '192.168.9.1' }] }, addresses: ['172.17.0.1'], sources: ['subnet'] },
    { why: 'IPAM lists the gateway (--bip, --bridge): taken as is', networks: [testEngine], interfaces: lo, addresses: ['10.213.3.1'], sources: ['ipam'] },
    { why: 'user network with a listed gateway, and one with --subnet only on br-<id12>', networks: [subnetOnly, created], interfaces: { 'br-34aaedd7e919': [{ address: '10.77.0.1' }] }, addresses: ['10.77.0.1', '172.18.0.1'], sources: ['interface', 'ipam'] },
    { why: 'the default bridge first whatever the names, the others by name', networks: [created, subnetOnly, stockBridge], interfaces: {}, addresses: ['172.17.0.1', '10.77.0.1', '172.18.0.1'], sources: ['subnet', 'subnet', 'ipam'] },
    {
      why: 'dual stack: IPv4 first, IPv6 from its subnet in canonical form; link-local never',
      networks: [{ ...stockBridge, IPAM: { Config: [{ Subnet: 'fd00:0:0:0::/64' }, { Subnet: '172.17.0.0/16' }] } }],
      interfaces: { docker0: [{ address: 'fe80::1' }, { address: '172.17.0.1' }] },
      addresses: ['172.17.0.1', 'fd00::1'], sources: ['interface', 'subnet'],
    },
    { why: 'no IPAM config: whatever the bridge holds', networks: [{ ...stockBridge, IPAM: null }], interfaces: { docker0: [{ address: '172.17.0.1' }] }, addresses: ['172.17.0.1'], sources: ['interface'] },
    { why: 'no IPAM config and no bridge here: none, with why', networks: [{ ...stockBridge, IPAM: { Config: [] } }], interfaces: lo, addresses: [], unresolved: ['bridge'] },
    { why: 'a /32 leaves no address for a gateway', networks: [{ ...subnetOnly, IPAM: { Config: [{ Subnet: '10.9.9.9/32' }] } }], interfaces: {}, addresses: [], unresolved: ['bar'] },
    { why: 'garbage in IPAM: refused with why, never a throw', networks: [{ ...subnetOnly, IPAM: { Config: [{ Subnet: '300.1.1.0/24', Gateway: 'nope' }, null] } }], interfaces: {}, addresses: [], unresolved: ['bar'] },
    { why: 'other drivers are not bridges', networks: [{ Name: 'host', Driver: 'host', IPAM: { Config: [] } }, { Name: 'ov', Driver: 'overlay', IPAM: { Config: [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }] } }], interfaces: lo, addresses: [] },
    { why: 'no networks at all', networks: [], interfaces: lo, addresses: [] },
  ]
  for (const row of table) {
    it(row.why, () => {
      const result = bridgeGatewaysOf(row.networks, row.interfaces)
      expect(result.addresses).toEqual(row.addresses)
      if (row.sources !== undefined) expect(result.found.map((g) => g.source)).toEqual(row.sources)
      expect(result.unresolved.map((u) => u.network)).toEqual(row.unresolved ?? [])
    })
  }

  it('says in the log how each was found', () => {
    const stock = bridgeGatewaysOf([stockBridge, subnetOnly], { docker0: [{ address: '172.17.0.1' }] })
    expect(stock.found.map(describeGateway)).toEqual([
      'bridge (docker0): 172.17.0.1, the address of docker0',
      'bar (br-34aaedd7e919): 10.77.0.1, the first address of its subnet (br-34aaedd7e919 not found in this network namespace)',
    ])
    expect(describeGateway(bridgeGatewaysOf([testEngine], {}).found[0]!)).toBe('bridge (shoal-d3): 10.213.3.1, listed in its IPAM config')
    expect(bridgeGatewaysOf([{ ...subnetOnly, IPAM: { Config: [{ Subnet: '10.9.9.9/32' }] } }], {}).unresolved[0]!.reason).toBe('subnet 10.9.9.9/32 leaves no address for a gateway')
  })

  it('first usable address of a subnet', () => {
    expect(firstUsableAddress('172.17.0.0/16')).toBe('172.17.0.1')
    expect(firstUsableAddress('172.17.5.9/16'), 'host bits are cleared first').toBe('172.17.0.1')
    expect(firstUsableAddress('10.0.0.0/30')).toBe('10.0.0.1')
    expect(firstUsableAddress('10.0.0.0/31')).toBeNull()
    expect(firstUsableAddress('2001:db8:1::/64')).toBe('2001:db8:1::1')
    expect(firstUsableAddress('::ffff:172.17.0.0/112')).toBe('::ffff:ac11:1')
    for (const bad of ['', '172.17.0.0', '172.17.0.0/33', '1.2.3/8', 'fe80::%eth0/64', '1:2:3:4:5:6:7:8:9/64', ':::/8']) expect(firstUsableAddress(bad), bad).toBeNull()
  })
})
