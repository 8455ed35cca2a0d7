// LinkAddresses (node/link-addresses.ts) over a real StateStore and WatchHub: a link gets an
// address on a host once a source container exists there, keeps it while the link exists (the
// source stopping or leaving does not free it), other links never move it, and removing the
// link deletes it; only this host's keys are written.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { LinkAddresses } from '../../node/link-addresses.ts'
import { WatchHub } from '../../node/watch-hub.ts'
import { createLogger } from '../../node/logger.ts'
import { ApiError } from '../../node/api-server.ts'
import { StateStore } from '../../storage/statestore/store.ts'
import { containerKey, encodeRecord, linkKey, type Container, type Request } from '../../storage/statestore/index.ts'
import type { ApplySuccess } from '../../storage/statestore/results.ts'
import { parseLinkSubnet } from '../../runtime/links/addresses.ts'
import { container } from '../../protocols/dns/testing.ts'
import { waitFor } from '../helpers/processes.ts'

const id = (c: string): string => c.repeat(64)
const SELF = 'hostA'

let store: StateStore
let hub: WatchHub
let index = 0
let loop: LinkAddresses
const origins: string[] = []

function apply(origin: string, request: Request): ApplySuccess {
  const r = store.apply(++index, { origin, requestId: String(index), request })
  if (!r.ok) throw new ApiError(409, r.message)
  hub.onApplied()
  return r
}
const putContainer = (c: Container): void => void apply(c.host, { type: 'put', key: containerKey(c.host, c.id), value: encodeRecord(c) })
const putLink = (source: string, sourceKind: 'service' | 'container', alias: string): void =>
  void apply('cli', { type: 'put', key: linkKey(source, alias), value: encodeRecord({ source, sourceKind, target: 'db', targetKind: 'service', alias, ports: [{ port: 5432, protocol: 'tcp' }], createdAtMs: 1 }) })
const addrs = (): Record<string, string> => Object.fromEntries(loop.addresses())

beforeEach(() => {
  store = new StateStore()
  hub = new WatchHub(() => store)
  index = 0
  origins.length = 0
  const subnet = parseLinkSubnet('100.127.0.0/24')
  if (!subnet.ok) throw new Error(subnet.error)
  loop = new LinkAddresses({
    selfId: SELF, subnet: subnet.subnet, machine: { get store() { return store } }, watches: hub, log: createLogger('error'),
    kv: { write: async (request: Request) => { origins.push(SELF); return apply(SELF, request) } },
  })
  loop.start()
})
afterEach(() => loop.stop())

describe('LinkAddresses', () => {
  it('allocates when a source appears here, keeps the address while the link exists, frees it with the link', async () => {
    const seen: Array<Record<string, string>> = []
    loop.subscribe((m) => seen.push(Object.fromEntries(m)))
    putLink('web', 'service', 'db')
    putLink(id('c'), 'container', 'cache')
    // No source on this host yet: nothing.
    putContainer(container({ id: id('b'), host: 'hostB', labels: { 'shoal.service': 'web' } }))
    await new Promise((r) => setTimeout(r, 50))
    expect(addrs()).toEqual({})
    putContainer(container({ id: id('a'), host: SELF, labels: { 'shoal.service': 'web' } }))
    await waitFor('web/db to get an address', () => addrs()['web/db'], 2000, 10)
    expect(addrs()).toEqual({ 'web/db': '100.127.0.2' })
    putContainer(container({ id: id('c'), host: SELF, name: 'c' }))
    await waitFor('the container link to get one', () => addrs()[`${id('c')}/cache`], 2000, 10)
    expect(addrs()[`${id('c')}/cache`]).toBe('100.127.0.3')
    // The source stops, then leaves this host: the address stays while the link exists.
    apply(SELF, { type: 'delete', key: containerKey(SELF, id('a')) })
    await new Promise((r) => setTimeout(r, 50))
    expect(addrs()['web/db']).toBe('100.127.0.2')
    // The link goes: so does its address; the other one does not move.
    apply('cli', { type: 'delete', key: linkKey('web', 'db') })
    await waitFor('web/db address to go', () => (addrs()['web/db'] === undefined ? true : undefined), 2000, 10)
    expect(addrs()).toEqual({ [`${id('c')}/cache`]: '100.127.0.3' })
    // A new link reuses the lowest free address.
    putLink(id('c'), 'container', 'other')
    await waitFor('the new link', () => addrs()[`${id('c')}/other`], 2000, 10)
    expect(addrs()[`${id('c')}/other`]).toBe('100.127.0.2')
    expect(seen.at(-1)).toEqual(addrs())
    expect(new Set(origins)).toEqual(new Set([SELF]))
  })
})
