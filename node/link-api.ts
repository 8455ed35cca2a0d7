/**
 * The admin API's links (issue 13): `POST /v1/links` creates one (SOURCE and TARGET resolved now:
 * runtime/links/links.ts), `GET /v1/links` lists them as this peer sees them, `DELETE /v1/links`
 * removes one. Writes go through Raft, guarded so two creates of one alias cannot both win.
 */
import { ApiError } from './api-server.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import { encodeRecord, linkKey, serviceKey, type Container, type Link, type LinkPort } from '../storage/statestore/index.ts'
import { decodeServiceRecord } from '../runtime/scheduler/spec.ts'
import {
  aliasProblem, defaultPorts, endpointValue, linkName, linkState, parseLinkPorts, resolveEndpoint,
  type Endpoint, type LinkRecord, type LinkState,
} from '../runtime/links/links.ts'
import { readLinkAddresses, readLinkView } from '../runtime/links/store.ts'
import { HOSTS_PREFIX, parseHost } from '../storage/statestore/index.ts'

/** `shoal link ls --json` rows (the command contract's fields first). */
export interface LinkRow {
  /** The stored source: a service name or a container's full id. */
  source: string
  target: string
  alias: string
  ports: LinkPort[]
  /** The link's address on this peer's host, if it has one (a source container here). */
  address: string | null
  state: LinkState
  sourceKind: 'service' | 'container'
  targetKind: 'service' | 'container'
  /** The container's name (a service's own name), or null for a container no longer known. */
  sourceName: string | null
  targetName: string | null
  createdAtMs: number
}

/** What `POST /v1/links` did. */
export interface LinkCreated {
  link: LinkRecord
  revision: number
}

/** Longest SOURCE or TARGET text accepted (a container name is at most 128 characters). */
const ENDPOINT_TEXT_MAX_CHARS = 256
/** Most `--port` values on one link. */
const LINK_PORTS_MAX = 64

export class LinkApi {
  private readonly kv: Pick<KvService, 'write'>
  private readonly machine: Pick<StoreMachine, 'store'>
  private readonly selfId: string

  /** `kv` and `machine` narrowed to what is used, so tests can drive it over a plain StateStore. */
  constructor(kv: Pick<KvService, 'write'>, machine: Pick<StoreMachine, 'store'>, selfId: string) {
    this.kv = kv
    this.machine = machine
    this.selfId = selfId
  }

  private hostNames(): Map<string, string> {
    const out = new Map<string, string>()
    for (const kv of this.machine.store.range(HOSTS_PREFIX).kvs) {
      const r = parseHost(kv.value)
      if (r.ok) out.set(r.record.peerId, r.record.name)
    }
    return out
  }

  private resolve(what: 'source' | 'target', text: string, services: ReadonlySet<string>, containers: readonly Container[]): Endpoint {
    const names = this.hostNames()
    const r = resolveEndpoint(text, services, containers, (h) => names.get(h) ?? h)
    if (!r.ok) throw new ApiError(404, `${what}: ${r.error}`)
    return r.endpoint
  }

  /** Validates `body` ({source, target, alias, ports?}), resolves it and writes the link. */
  async create(body: unknown): Promise<LinkCreated> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'expected a JSON object {"source": NAME, "target": NAME, "alias": ALIAS, "ports"?: ["80", "53/udp"]}')
    const { source, target, alias, ports } = body as Record<string, unknown>
    for (const [field, v] of [['source', source], ['target', target], ['alias', alias]] as const) {
      if (typeof v !== 'string' || v.length === 0 || v.length > ENDPOINT_TEXT_MAX_CHARS) throw new ApiError(400, `"${field}" must be a non-empty string of at most ${ENDPOINT_TEXT_MAX_CHARS} characters`)
    }
    const aliasText = alias as string
    const problem = aliasProblem(aliasText)
    if (problem !== null) throw new ApiError(400, problem)
    if (ports !== undefined && (!Array.isArray(ports) || ports.length > LINK_PORTS_MAX || !ports.every((p) => typeof p === 'string' || typeof p === 'number'))) {
      throw new ApiError(400, `"ports" must be a list of at most ${LINK_PORTS_MAX} ports like "80" or "53/udp"`)
    }
    const view = readLinkView(this.machine.store)
    const from = this.resolve('source', source as string, view.services, view.containers)
    const to = this.resolve('target', target as string, view.services, view.containers)
    let linkPorts: LinkPort[]
    if (ports !== undefined && ports.length > 0) {
      const parsed = parseLinkPorts(ports.map(String))
      if (!parsed.ok) throw new ApiError(400, parsed.error)
      linkPorts = parsed.ports
    } else {
      linkPorts = defaultPorts(to, this.serviceSpec(to), view.containers)
      if (linkPorts.length === 0) {
        throw new ApiError(400, `target ${target as string} announces no ports (no shoal.port label, exposed port or service port); give them: --port PORT[/udp]`)
      }
    }
    const record: LinkRecord = {
      source: endpointValue(from), sourceKind: from.kind, target: endpointValue(to), targetKind: to.kind,
      alias: aliasText, ports: linkPorts, createdAtMs: Date.now(),
    }
    const key = linkKey(record.source, record.alias)
    const stored: Link = record
    const r = await this.kv.write({
      type: 'txn',
      compare: [{ target: 'createRevision', key, op: '=', value: 0 }],
      success: [{ type: 'put', key, value: encodeRecord(stored) }],
      failure: [],
    })
    if (r.response.type === 'txn' && !r.response.succeeded) {
      throw new ApiError(409, `${describe(from)} already has a link named ${aliasText}; remove it first ('shoal link rm ${source as string} ${aliasText}') or choose another alias`)
    }
    return { link: record, revision: r.response.revision }
  }

  private serviceSpec(e: Endpoint): { ports: readonly number[]; published: ReadonlyArray<{ target: number; protocol: 'tcp' | 'udp' }> } | null {
    if (e.kind !== 'service') return null
    const kv = this.machine.store.get(serviceKey(e.name))
    if (kv === null) return null
    const r = decodeServiceRecord(kv.value)
    return r.ok ? r.value : null
  }

  /** Every link, with its state and this host's address for it. */
  list(): LinkRow[] {
    const view = readLinkView(this.machine.store)
    const addresses = readLinkAddresses(this.machine.store, this.selfId)
    const byId = new Map(view.containers.map((c) => [c.id, c]))
    const nameOf = (value: string, kind: 'service' | 'container'): string | null => (kind === 'service' ? value : (byId.get(value)?.name ?? null))
    return view.links.map((l) => ({
      source: l.source, target: l.target, alias: l.alias, ports: [...l.ports],
      address: addresses.get(linkName(l)) ?? null,
      state: linkState(l, view.containers, view.outOfService),
      sourceKind: l.sourceKind, targetKind: l.targetKind,
      sourceName: nameOf(l.source, l.sourceKind), targetName: nameOf(l.target, l.targetKind),
      createdAtMs: l.createdAtMs,
    }))
  }

  /**
   * Removes the link `alias` of `source`: the stored source (service name, full id), a
   * container name or an id prefix. A container gone or re-created is still found by the name
   * its record had, as long as its record is known.
   */
  async remove(source: string, alias: string): Promise<{ removed: string; revision: number }> {
    if (source === '' || alias === '') throw new ApiError(400, 'give the source and the alias: DELETE /v1/links?source=NAME&alias=ALIAS')
    const view = readLinkView(this.machine.store)
    const lower = source.toLowerCase()
    const containersById = new Map<string, Container>()
    for (const c of view.containers) containersById.set(c.id, c)
    const candidates = view.links.filter((l) => l.alias === alias && (
      l.source === source || l.source === lower ||
      (l.sourceKind === 'container' && (
        (lower.length >= 4 && /^[0-9a-f]+$/.test(lower) && l.source.startsWith(lower)) ||
        containersById.get(l.source)?.name === source))))
    if (candidates.length === 0) throw new ApiError(404, `no link ${alias} of ${source}; 'shoal link ls' lists them`)
    if (candidates.length > 1) throw new ApiError(409, `${source} matches the sources of ${candidates.length} links named ${alias} (${candidates.map((l) => l.source.slice(0, 12)).join(', ')}); give the source's id prefix`)
    const link = candidates[0] as LinkRecord
    const r = await this.kv.write({ type: 'delete', key: linkKey(link.source, link.alias) })
    return { removed: linkName(link), revision: r.response.revision }
  }
}

function describe(e: Endpoint): string {
  return e.kind === 'service' ? `service ${e.name}` : `container ${e.name} (${e.id.slice(0, 12)})`
}
