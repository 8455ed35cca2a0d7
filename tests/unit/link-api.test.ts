// The links API (node/link-api.ts) over a real StateStore, writes applied as Raft would apply
// them (same checks): validation of bad names, unknown sources and targets, alias clashes,
// reserved aliases, default ports, listing with state and this host's address, removal.
import { describe, it, expect, beforeEach } from 'vitest'
import { LinkApi } from '../../node/link-api.ts'
import { ApiError } from '../../node/api-server.ts'
import { StateStore } from '../../storage/statestore/store.ts'
import { containerKey, encodeRecord, linkAddressKey, type Request } from '../../storage/statestore/index.ts'
import type { ApplySuccess } from '../../storage/statestore/results.ts'
import { container } from '../../protocols/dns/testing.ts'

const id = (c: string): string => c.repeat(64)

class Cluster {
  readonly store = new StateStore()
  #index = 0
  apply(origin: string, request: Request): ApplySuccess {
    const r = this.store.apply(++this.#index, { origin, requestId: String(this.#index), request })
    if (!r.ok) throw new ApiError(409, r.message)
    return r
  }
}

let cluster: Cluster
let api: LinkApi

async function fails(p: Promise<unknown>, status: number, message: RegExp): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => e instanceof ApiError && e.status === status && message.test(e.message))
}

beforeEach(() => {
  cluster = new Cluster()
  api = new LinkApi({ write: async (request: Request) => cluster.apply('hostA', request) }, { get store() { return cluster.store } }, 'hostA')
  const cs = [
    container({ id: id('a'), name: 'client', host: 'hostA', ips: ['172.17.0.2'], ports: [] }),
    container({ id: id('b'), name: 'db', host: 'hostB', ips: ['172.18.0.3'], ports: [{ containerPort: 5432, protocol: 'tcp' }] }),
    container({ id: id('c'), name: 'twin', host: 'hostA', ports: [] }),
    container({ id: id('d'), name: 'twin', host: 'hostB', ports: [] }),
    container({ id: id('e'), name: 'web-1', host: 'hostB', ips: ['172.18.0.5'], labels: { 'shoal.service': 'web' } }),
  ]
  for (const c of cs) cluster.apply(c.host, { type: 'put', key: containerKey(c.host, c.id), value: encodeRecord(c) })
})

describe('POST /v1/links', () => {
  it('resolves a container name to its id and takes the target ports by default', async () => {
    const r = await api.create({ source: 'client', target: 'db', alias: 'pg' })
    expect(r.link).toMatchObject({ source: id('a'), sourceKind: 'container', target: id('b'), targetKind: 'container', alias: 'pg', ports: [{ port: 5432, protocol: 'tcp' }] })
    expect(r.link.createdAtMs).toBeGreaterThan(0)
  })
  it('a service by name; explicit ports replace the defaults', async () => {
    const r = await api.create({ source: 'web', target: 'db', alias: 'db', ports: ['6000/udp', 7000] })
    expect(r.link).toMatchObject({ source: 'web', sourceKind: 'service', ports: [{ port: 6000, protocol: 'udp' }, { port: 7000, protocol: 'tcp' }] })
  })
  it('bad bodies, names and ports are 400 with what to do', async () => {
    await fails(api.create(null), 400, /expected a JSON object/)
    await fails(api.create({ source: 'client', target: 'db' }), 400, /"alias" must be a non-empty string/)
    await fails(api.create({ source: 'client', target: 'db', alias: 'Bad_Alias' }), 400, /lowercase DNS label/)
    await fails(api.create({ source: 'client', target: 'db', alias: 'ns' }), 400, /reserved/)
    await fails(api.create({ source: 'client', target: 'db', alias: 'pg', ports: ['http'] }), 400, /not PORT or PORT\/udp/)
    await fails(api.create({ source: 'client', target: 'db', alias: 'pg', ports: 'x' }), 400, /"ports" must be a list/)
  })
  it('unknown sources and targets are 404; an ambiguous container name asks for the id', async () => {
    await fails(api.create({ source: 'nobody', target: 'db', alias: 'pg' }), 404, /source: no service, container or container id "nobody"/)
    await fails(api.create({ source: 'client', target: 'nothing', alias: 'pg' }), 404, /target: no service/)
    await fails(api.create({ source: 'twin', target: 'db', alias: 'pg' }), 404, /twin names a container on 2 hosts.*id prefix/)
    expect((await api.create({ source: 'cccc', target: 'db', alias: 'pg' })).link.source).toBe(id('c'))
  })
  it('a target without ports and no --port is an error', async () => {
    await fails(api.create({ source: 'db', target: 'client', alias: 'c' }), 400, /announces no ports.*--port/)
  })
  it('the same alias twice on one source is 409; on another source it is fine; a service or container name as alias is allowed', async () => {
    await api.create({ source: 'client', target: 'db', alias: 'pg' })
    await fails(api.create({ source: 'client', target: 'web', alias: 'pg' }), 409, /already has a link named pg.*link rm/)
    await api.create({ source: 'web', target: 'db', alias: 'pg' })
    await api.create({ source: 'client', target: 'db', alias: 'web' })
    expect(api.list().map((l) => `${l.sourceName}/${l.alias}`).sort()).toEqual(['client/pg', 'client/web', 'web/pg'])
  })
})

describe('GET and DELETE /v1/links', () => {
  it('lists state and this host address', async () => {
    await api.create({ source: 'client', target: 'db', alias: 'pg' })
    await api.create({ source: 'dddd', target: 'client', alias: 'back', ports: ['80'] })
    cluster.apply('hostA', { type: 'put', key: linkAddressKey('hostA', id('a'), 'pg'), value: encodeRecord({ address: '100.127.0.2' }) })
    const rows = api.list()
    expect(rows.find((r) => r.alias === 'pg')).toMatchObject({ source: id('a'), target: id('b'), ports: [{ port: 5432, protocol: 'tcp' }], address: '100.127.0.2', state: 'active', sourceName: 'client', targetName: 'db' })
    // Its source runs on hostB: no address on this host; the target runs.
    expect(rows.find((r) => r.alias === 'back')).toMatchObject({ address: null, state: 'active' })
    // The source container removed: no-source; the target removed: no-target.
    cluster.apply('hostB', { type: 'delete', key: containerKey('hostB', id('d')) })
    expect(api.list().find((r) => r.alias === 'back')?.state).toBe('no-source')
    cluster.apply('hostB', { type: 'delete', key: containerKey('hostB', id('b')) })
    expect(api.list().find((r) => r.alias === 'pg')?.state).toBe('no-target')
  })
  it('removes by container name, id prefix or full id; unknown is 404', async () => {
    await api.create({ source: 'client', target: 'db', alias: 'pg' })
    await api.create({ source: 'client', target: 'db', alias: 'pg2' })
    await api.create({ source: 'web', target: 'db', alias: 'pg' })
    await fails(api.remove('client', 'nope'), 404, /no link nope of client/)
    expect((await api.remove('client', 'pg')).removed).toBe(`${id('a')}/pg`)
    expect((await api.remove('aaaa', 'pg2')).removed).toBe(`${id('a')}/pg2`)
    expect((await api.remove('web', 'pg')).removed).toBe('web/pg')
    expect(api.list()).toEqual([])
    await fails(api.remove('', 'pg'), 400, /give the source and the alias/)
  })
})
