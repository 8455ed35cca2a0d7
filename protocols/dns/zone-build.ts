/**
 * Builds the zone's answer table from container and host records (pure): every name the zone
 * answers, each with its responses pre-encoded (by dns-packet) so a query only stamps its
 * header and question on bytes that already exist. README.md lists the names and why.
 *
 * Record owner names are compressed against the query's own question (RFC 1035 §4.1.4): an
 * answer's owner is the question name (pointer to offset 12), and names elsewhere end in a
 * pointer to the `shoal` label inside the question. So every pre-encoded record is valid
 * wherever it is placed after the question, whatever case the query used, which is what lets
 * the zone rotate and truncate answers by slicing bytes.
 */
import * as dnsPacket from 'dns-packet'
import type { Container, Host } from '../../storage/statestore/index.ts'
import { serviceOf, servicePortsOf } from '../../storage/statestore/container-labels.ts'
import {
  HOSTS_LABEL, NAME_MAX_BYTES, NS_LABEL, ZONE_LABEL, dotted, hostAddresses, ipText, labelsOf, nameKey, parseIp,
  reverseLabels, shortIdLabel, wireLength, type IpAddress,
} from './names.ts'
import { HEADER_BYTES, RCODE, TYPE } from './wire.ts'

/** What the zone is built from: the replica's records (runtime/dns-records.ts reads them from the StateStore). */
export interface ZoneRecords {
  readonly containers: readonly Container[]
  readonly hosts: readonly Host[]
  /** The StateStore revision they were read at; becomes the SOA serial. */
  readonly revision: number
  /**
   * Containers that keep their own names but do not answer for their service: scheduled
   * instances their task no longer wants (store-records.ts). Absent = none.
   */
  readonly outOfService?: readonly string[]
  /**
   * Link aliases on this host (issue 13): a container at `querier` asking `name` (bare or under
   * `shoal.`) gets `address`; everyone else gets the name's ordinary answer. Absent = none.
   */
  readonly aliases?: readonly ZoneAlias[]
}

/** One alias answer: see ZoneRecords.aliases. */
export interface ZoneAlias {
  readonly querier: string
  readonly name: string
  readonly address: string
}

/** Settings that shape the encoded answers. */
export interface ZoneBuildOptions {
  /** TTL of every record, and the negative-caching TTL (SOA MINIMUM, RFC 2308 §5). */
  readonly ttlSeconds: number
  /** Addresses `ns.shoal` answers (the addresses this DNS server listens on). */
  readonly nameservers: readonly string[]
}

/** A response body ready to be stamped with a query's header and question (zone.ts renders it). */
export interface Prepared {
  readonly rcode: number
  /** The answer records back to back, and where each starts (`answerOffsets[n]` is the end). */
  readonly answers: Uint8Array
  readonly answerOffsets: readonly number[]
  readonly authority: Uint8Array
  readonly authorityCount: number
  readonly additional: Uint8Array
  readonly additionalCount: number
  /** Rotate the answer records per query (several addresses or targets). */
  readonly rotate: boolean
  /** Which record comes first next time; advanced by the zone on each rotated answer. */
  cursor: number
}

/** Everything the zone answers for one name. */
export interface NameEntry {
  /** The response for each query type this name has records of, ANY included. */
  readonly byType: ReadonlyMap<number, Prepared>
  /** The response for any other type: NOERROR, no answers (RFC 2308 §2.2 NODATA). */
  readonly nodata: Prepared
}

/** The built zone. */
export interface ZoneTable {
  /** Name key (names.ts `nameKey`) → entry, for names in `shoal.` and reverse names of containers. */
  readonly names: ReadonlyMap<string, NameEntry>
  /**
   * Alias names → querier address (canonical text) → entry. Consulted only for names in this
   * map, so the common query pays one lookup in an empty or small map.
   */
  readonly aliases: ReadonlyMap<string, ReadonlyMap<string, NameEntry>>
  readonly serial: number
  /** The SOA record without its owner (type onwards), for authority sections of negative answers. */
  readonly soaRecordTail: Uint8Array
}

/** SOA timers (RFC 1035 §3.3.13); nothing transfers this zone, so they are informational. */
const SOA_REFRESH_S = 3600
const SOA_RETRY_S = 600
const SOA_EXPIRE_S = 86400
/** SRV priority and weight: all targets equal (RFC 2782), as Consul answers. */
const SRV_PRIORITY = 1
const SRV_WEIGHT = 1

const ZONE = [ZONE_LABEL]
const POINTER_TO_QUESTION = Uint8Array.of(0xc0, HEADER_BYTES)
const EMPTY = new Uint8Array(0)

// Precedence when two kinds of thing want the same name: the first listed wins; the same kind
// shares the name (its addresses are unioned). README.md "Names" explains each.
const PRECEDENCE = ['host', 'service', 'container', 'id', 'container-at-host'] as const
type NameKind = (typeof PRECEDENCE)[number]

interface Member {
  readonly container: Container
  readonly ips: readonly IpAddress[]
}

interface Claim {
  readonly labels: readonly string[]
  readonly kind: NameKind
  readonly members: Member[]
  readonly hostIps: IpAddress[]
}

interface RecordSpec {
  readonly type: 'A' | 'AAAA' | 'NS' | 'PTR' | 'SRV' | 'SOA'
  readonly data: string | dnsPacket.SrvData | dnsPacket.SoaData
}

/** Builds the table for `records`; never throws on record contents (bad ones are skipped). */
export function buildZone(records: ZoneRecords, options: ZoneBuildOptions): ZoneTable {
  const ttl = options.ttlSeconds
  const claims = new Map<string, Claim>()
  const claim = (labels: readonly string[], kind: NameKind): Claim | null => {
    const full = [...labels, ...ZONE]
    if (wireLength(full) > NAME_MAX_BYTES) return null
    if (kind !== 'host' && kind !== 'container-at-host' && isReservedTopLevel(labels)) return null
    const key = nameKey(full)
    const existing = claims.get(key)
    if (existing !== undefined) {
      const order = PRECEDENCE.indexOf(kind) - PRECEDENCE.indexOf(existing.kind)
      if (order > 0) return null
      if (order === 0) return existing
    }
    const fresh: Claim = { labels: full, kind, members: [], hostIps: [] }
    claims.set(key, fresh)
    return fresh
  }

  // Hosts: HOST.host.shoal.
  for (const host of [...records.hosts].sort((a, b) => compare(a.peerId, b.peerId))) {
    const labels = labelsOf(host.name)
    if (labels === null) continue
    claim([...labels, HOSTS_LABEL], 'host')?.hostIps.push(...hostAddresses(host.addrs))
  }

  // Running containers, in a stable order so every replica builds the same bytes.
  const running = records.containers
    .filter((c) => c.state === 'running')
    .sort((a, b) => compare(a.host, b.host) || compare(a.id, b.id))
  const services = new Map<string, Member[]>()
  const membersByContainer = new Map<Container, Member>()
  const outOfService = new Set(records.outOfService ?? [])
  for (const container of running) {
    const ips = distinctIps(container.ips.map(parseIp).filter((ip): ip is IpAddress => ip !== null))
    const member: Member = { container, ips }
    membersByContainer.set(container, member)
    const service = serviceOf(container)
    // A service answers only instances that can serve: not one still starting or failing its
    // health check (moby#23970), nor one its task no longer wants (it is draining).
    const serving = container.health !== 'starting' && container.health !== 'unhealthy' && !outOfService.has(container.id)
    if (service !== null && serving) {
      const list = services.get(service) ?? []
      list.push(member)
      services.set(service, list)
    }
  }
  // Claims are made in precedence order, so a name a container joins is never taken away later.
  const joined = new Map<Container, Array<{ kind: NameKind; labels: readonly string[] }>>()
  const join = (labels: readonly string[], kind: NameKind, member: Member): void => {
    const c = claim(labels, kind)
    if (c === null) return
    c.members.push(member)
    joined.set(member.container, [...(joined.get(member.container) ?? []), { kind, labels: c.labels }])
  }
  for (const [service, members] of services) for (const m of members) join([service], 'service', m)
  const byName: Array<[Member, readonly string[] | null, string | null, readonly string[] | null]> = []
  for (const member of membersByContainer.values()) {
    const { container } = member
    byName.push([member, labelsOf(container.name), shortIdLabel(container.id), labelsOf(container.hostName)])
  }
  for (const [member, name] of byName) if (name !== null) join(name, 'container', member)
  for (const [member, , id] of byName) if (id !== null) join([id], 'id', member)
  for (const [member, name, , host] of byName) if (name !== null && host !== null) join([...name, ...host, HOSTS_LABEL], 'container-at-host', member)

  // The names each container got, best first for each use.
  const ownName = (container: Container, kinds: readonly NameKind[]): readonly string[] | null => {
    const mine = joined.get(container) ?? []
    for (const kind of kinds) {
      const found = mine.find((j) => j.kind === kind)
      if (found !== undefined) return found.labels
    }
    return null
  }
  const namesByContainer = new Map<Container, { friendly: readonly string[] | null; unique: readonly string[] | null }>()
  for (const container of membersByContainer.keys()) {
    namesByContainer.set(container, {
      // PTR: the container's own name first, as people wrote it; then the host-scoped one.
      friendly: ownName(container, ['container', 'container-at-host', 'id']),
      // SRV targets: one container per name (RFC 2782 targets name a host), so the short id first.
      unique: ownName(container, ['id', 'container-at-host']),
    })
  }

  const names = new Map<string, NameEntry>()
  const soa: RecordSpec = {
    type: 'SOA',
    data: {
      mname: dotted([NS_LABEL, ...ZONE]), rname: dotted(['hostmaster', ...ZONE]),
      serial: records.revision % 2 ** 32, refresh: SOA_REFRESH_S, retry: SOA_RETRY_S, expire: SOA_EXPIRE_S, minimum: ttl,
    },
  }
  const soaTail = recordTail(soa, ttl)
  const enc = new RecordEncoder(ttl, soaTail)

  // Apex and ns.shoal.
  const nsIps = distinctIps(options.nameservers.map(parseIp).filter((ip): ip is IpAddress => ip !== null))
  const apex = ZONE
  const nsLabels = [NS_LABEL, ...ZONE]
  addEntry(names, apex, enc, true, {
    sets: [[soa], [{ type: 'NS', data: dotted(nsLabels) }]],
    additionalFor: (qtype) => (qtype === TYPE.NS ? enc.glue(nsLabels, nsIps) : []),
  })
  addEntry(names, nsLabels, enc, true, { sets: addressSets(nsIps) })

  for (const c of claims.values()) {
    if (c.kind === 'host') {
      addEntry(names, c.labels, enc, true, { sets: addressSets(distinctIps(c.hostIps)) })
      continue
    }
    // Most names have one container, whose addresses are already distinct and sorted.
    const ips = c.members.length === 1 ? (c.members[0] as Member).ips : distinctIps(c.members.flatMap((m) => m.ips))
    if (c.kind !== 'service') {
      addEntry(names, c.labels, enc, true, { sets: addressSets(ips) })
      continue
    }
    // A service: addresses of every member, SRV for all its ports, and per port and protocol.
    const targets = c.members.flatMap((m) => {
      const target = namesByContainer.get(m.container)?.unique
      return target == null ? [] : servicePortsOf(m.container).map((p) => ({ ...p, target, ips: m.ips }))
    })
    const srv = (list: typeof targets): RecordSpec[] => list.map((t) => ({ type: 'SRV', data: { priority: SRV_PRIORITY, weight: SRV_WEIGHT, port: t.port, target: dotted(t.target) } }))
    const glue = (list: typeof targets): Uint8Array[] => {
      const seen = new Set<string>()
      return list.flatMap((t) => {
        const key = nameKey(t.target)
        if (seen.has(key)) return []
        seen.add(key)
        return enc.glue(t.target, t.ips)
      })
    }
    const service = c.labels[0] as string
    addEntry(names, c.labels, enc, true, {
      sets: [...addressSets(ips), srv(targets)],
      additionalFor: (qtype) => (qtype === TYPE.SRV ? glue(targets) : []),
    })
    const byPortProtocol = new Map<string, typeof targets>()
    const byProtocol = new Map<string, typeof targets>()
    for (const t of targets) {
      const k = `${t.port}/${t.protocol}`
      byPortProtocol.set(k, [...(byPortProtocol.get(k) ?? []), t])
      byProtocol.set(t.protocol, [...(byProtocol.get(t.protocol) ?? []), t])
    }
    for (const list of byPortProtocol.values()) {
      const first = list[0] as (typeof targets)[number]
      const labels = [`_${first.port}`, `_${first.protocol}`, service, ...ZONE]
      addEntry(names, labels, enc, true, { sets: [srv(list)], additionalFor: () => glue(list) })
    }
    // RFC 2782's own form, as Consul also answers it: _SERVICE._PROTO.shoal.
    for (const [protocol, list] of byProtocol) {
      const labels = [`_${service}`, `_${protocol}`, ...ZONE]
      if (names.has(nameKey(labels))) continue
      addEntry(names, labels, enc, true, { sets: [srv(list)], additionalFor: () => glue(list) })
    }
  }

  // Empty non-terminals answer NODATA, not NXDOMAIN (RFC 8020): host.shoal, _tcp.web.shoal, ...
  for (const labels of enc.deepNames.splice(0)) {
    for (let i = 1; i < labels.length - 1; i++) {
      const ancestor = labels.slice(i)
      if (!names.has(nameKey(ancestor))) addEntry(names, ancestor, enc, true, { sets: [] })
    }
  }

  // PTR for container addresses; several containers may share one (same bridge subnet on two hosts).
  const ptrTargets = new Map<string, { labels: string[]; targets: Map<string, readonly string[]> }>()
  for (const member of membersByContainer.values()) {
    const target = namesByContainer.get(member.container)?.friendly
    if (target == null) continue
    for (const ip of member.ips) {
      const labels = reverseLabels(ip)
      const key = nameKey(labels)
      const entry = ptrTargets.get(key) ?? { labels, targets: new Map() }
      entry.targets.set(nameKey(target), target)
      ptrTargets.set(key, entry)
    }
  }
  for (const { labels, targets } of ptrTargets.values()) {
    const specs = [...targets.values()].map((t): RecordSpec => ({ type: 'PTR', data: dotted(t) }))
    addEntry(names, labels, enc, false, { sets: [specs] })
  }

  return { names, aliases: buildAliases(records.aliases ?? [], names, enc), serial: records.revision % 2 ** 32, soaRecordTail: soaTail }
}

/**
 * Alias answers keyed by name, then by querier. `ALIAS.shoal.` and the bare `ALIAS.` (a
 * resolver without `--dns-search shoal`, or one that tries the name as given first) both
 * answer; the PTR of each link address names `ALIAS.shoal.` for anyone asking (a link address
 * belongs to one link on this host), unless a container already holds that address.
 */
function buildAliases(aliases: readonly ZoneAlias[], names: Map<string, NameEntry>, enc: RecordEncoder): Map<string, Map<string, NameEntry>> {
  const out = new Map<string, Map<string, NameEntry>>()
  if (aliases.length === 0) return out
  const entries = new Map<string, NameEntry>()
  const entryFor = (labels: readonly string[], ip: IpAddress, inZone: boolean): NameEntry => {
    const key = `${nameKey(labels)} ${ipText(ip)}`
    let e = entries.get(key)
    if (e === undefined) {
      const scratch = new Map<string, NameEntry>()
      addEntry(scratch, labels, enc, inZone, { sets: addressSets([ip]) })
      e = scratch.get(nameKey(labels)) as NameEntry
      entries.set(key, e)
    }
    return e
  }
  const sorted = [...aliases].sort((a, b) => compare(a.name, b.name) || compare(a.querier, b.querier))
  const ptrs = new Map<string, { labels: string[]; target: readonly string[] }>()
  for (const a of sorted) {
    const querier = parseIp(a.querier)
    const address = parseIp(a.address)
    const label = labelsOf(a.name)
    if (querier === null || address === null || label === null || label.length !== 1) continue
    for (const [labels, inZone] of [[[...label, ...ZONE], true], [label, false]] as const) {
      const key = nameKey(labels)
      const byQuerier = out.get(key) ?? new Map<string, NameEntry>()
      // One querier, one answer: the first link (by alias order) wins if two say otherwise.
      if (!byQuerier.has(ipText(querier))) byQuerier.set(ipText(querier), entryFor(labels, address, inZone))
      out.set(key, byQuerier)
    }
    const reverse = reverseLabels(address)
    if (!ptrs.has(nameKey(reverse))) ptrs.set(nameKey(reverse), { labels: reverse, target: [...label, ...ZONE] })
  }
  for (const [key, { labels, target }] of ptrs) {
    if (names.has(key)) continue
    addEntry(names, labels, enc, false, { sets: [[{ type: 'PTR', data: dotted(target) }]] })
  }
  return out
}

/** Top-level names nothing may claim: the nameserver and the hosts' subtree. */
function isReservedTopLevel(labels: readonly string[]): boolean {
  return (labels.length === 1 && labels[0] === NS_LABEL) || labels[labels.length - 1] === HOSTS_LABEL
}

interface EntrySpec {
  /** RRsets at the name, one list per type. */
  readonly sets: ReadonlyArray<readonly RecordSpec[]>
  /** Additional-section records for a query type. */
  readonly additionalFor?: (qtype: number) => Uint8Array[]
}

/**
 * Encodes records once per build: the same address or SRV record appears under several names
 * (container, short id, host-scoped name, service, SRV glue), and rebuild time is what a
 * container start waits for before it resolves.
 */
class RecordEncoder {
  readonly #ttl: number
  readonly #soaTail: Uint8Array
  readonly #answers = new Map<string, Uint8Array>()
  readonly #nodata = new Map<number, Prepared>()
  readonly #glue = new Map<string, Uint8Array[]>()
  readonly #outsideNodata = prepare(RCODE.NOERROR, [], false, [], [])
  /** Names of more than two labels added so far: the ones that may have empty non-terminals above them. */
  readonly deepNames: Array<readonly string[]> = []

  constructor(ttl: number, soaTail: Uint8Array) {
    this.#ttl = ttl
    this.#soaTail = soaTail
  }

  /** `spec` as an answer record owned by the question name. */
  answer(spec: RecordSpec): Uint8Array {
    const d = spec.data
    const key = typeof d === 'string' ? `${spec.type} ${d}` : 'port' in d ? `SRV ${d.port} ${d.target}` : `SOA ${d.serial}`
    let bytes = this.#answers.get(key)
    if (bytes === undefined) {
      bytes = concat([POINTER_TO_QUESTION, recordTail(spec, this.#ttl)])
      this.#answers.set(key, bytes)
    }
    return bytes
  }

  /** NODATA for a name of `labels`: with the SOA when in the zone, else (reverse names) without. */
  nodata(labels: readonly string[], inZone: boolean): Prepared {
    if (!inZone) return this.#outsideNodata
    const length = wireLength(labels)
    let p = this.#nodata.get(length)
    if (p === undefined) {
      p = prepare(RCODE.NOERROR, [], false, [concat([apexPointer(labels), this.#soaTail])], [])
      this.#nodata.set(length, p)
    }
    return p
  }

  /** A/AAAA records of `labels` for an additional section. */
  glue(labels: readonly string[], ips: readonly IpAddress[]): Uint8Array[] {
    const key = nameKey(labels)
    let records = this.#glue.get(key)
    if (records === undefined) {
      records = addressRecords(labels, ips, this.#ttl)
      this.#glue.set(key, records)
    }
    return records
  }
}

/** Adds the entry of `labels` (`inZone`: under shoal., so negative answers carry the SOA). */
function addEntry(names: Map<string, NameEntry>, labels: readonly string[], enc: RecordEncoder, inZone: boolean, spec: EntrySpec): void {
  if (labels.length > 2) enc.deepNames.push(labels)
  const byType = new Map<number, Prepared>()
  const all: Uint8Array[] = []
  for (const set of spec.sets) {
    if (set.length === 0) continue
    const type = TYPE[(set[0] as RecordSpec).type]
    const records = set.map((r) => enc.answer(r))
    all.push(...records)
    // Only address and SRV sets rotate; the apex's SOA/NS and PTRs keep their order.
    const rotate = records.length > 1 && (type === TYPE.A || type === TYPE.AAAA || type === TYPE.SRV)
    byType.set(type, prepare(RCODE.NOERROR, records, rotate, [], spec.additionalFor?.(type) ?? []))
  }
  // ANY (RFC 8482 allows a subset; ours are small, so everything at the name, in a fixed order).
  if (byType.size === 1) byType.set(TYPE.ANY, [...byType.values()][0] as Prepared)
  else if (all.length > 0) byType.set(TYPE.ANY, prepare(RCODE.NOERROR, all, false, [], []))
  names.set(nameKey(labels), { byType, nodata: enc.nodata(labels, inZone) })
}

/** The authority section of NXDOMAIN for a question of `nameBytes` bytes inside the zone. */
export function negativeAuthority(table: ZoneTable, nameBytes: number): Uint8Array {
  return concat([pointerTo(HEADER_BYTES + nameBytes - wireLength(ZONE)), table.soaRecordTail])
}

/** Assembles a Prepared from encoded records. */
export function prepare(rcode: number, answers: readonly Uint8Array[], rotate: boolean, authority: readonly Uint8Array[], additional: readonly Uint8Array[]): Prepared {
  const answerOffsets = [0]
  for (const r of answers) answerOffsets.push((answerOffsets[answerOffsets.length - 1] as number) + r.length)
  return {
    rcode, answers: concat(answers), answerOffsets, rotate, cursor: 0,
    authority: concat(authority), authorityCount: authority.length,
    additional: concat(additional), additionalCount: additional.length,
  }
}

// For a known name, the question has the name's wire length whatever its case, so the `shoal`
// label sits at a known offset inside it.
function apexPointer(labels: readonly string[]): Uint8Array {
  return pointerTo(HEADER_BYTES + wireLength(labels) - wireLength(ZONE))
}

/** A compression pointer to `offset`. */
function pointerTo(offset: number): Uint8Array {
  return Uint8Array.of(0xc0 | (offset >> 8), offset & 0xff)
}

/** A/AAAA records owned by `labels`, for an additional section (owner uncompressed: valid anywhere). */
function addressRecords(labels: readonly string[], ips: readonly IpAddress[], ttl: number): Uint8Array[] {
  const owner = encodeName(labels)
  return addressSpecs(ips).map((spec) => concat([owner, recordTail(spec, ttl)]))
}

function addressSpecs(ips: readonly IpAddress[]): RecordSpec[] {
  return ips.map((ip) => ({ type: ip.family === 4 ? 'A' : 'AAAA', data: ipText(ip) }))
}

/** The A set and the AAAA set of `ips` (either may be empty). */
function addressSets(ips: readonly IpAddress[]): RecordSpec[][] {
  return [addressSpecs(ips.filter((ip) => ip.family === 4)), addressSpecs(ips.filter((ip) => ip.family === 6))]
}

/** `name` in uncompressed wire form. */
function encodeName(labels: readonly string[]): Uint8Array {
  const out = new Uint8Array(wireLength(labels))
  let offset = 0
  for (const l of labels) {
    out[offset++] = l.length
    for (let i = 0; i < l.length; i++) out[offset++] = l.charCodeAt(i)
  }
  out[offset] = 0
  return out
}

/** A record's bytes after its owner name: type, class, TTL, RDLENGTH, RDATA (dns-packet encodes it). */
function recordTail(spec: RecordSpec, ttl: number): Uint8Array {
  // dns-packet's typings tie `data` to `type`; RecordSpec keeps them paired by construction.
  const answer = { name: '.', type: spec.type, class: 'IN', ttl, data: spec.data } as dnsPacket.Answer
  const message = dnsPacket.encode({ type: 'response', id: 0, flags: 0, answers: [answer] })
  // Skip the header and the root owner name (one zero byte).
  return new Uint8Array(message.subarray(HEADER_BYTES + 1))
}

function distinctIps(ips: readonly IpAddress[]): IpAddress[] {
  const byText = new Map<string, IpAddress>()
  for (const ip of ips) byText.set(ipText(ip), ip)
  // Sorted by family, then bytes: a stable order on every replica; rotation varies it per query.
  return [...byText.values()].sort((a, b) => a.family - b.family || compareBytes(a.bytes, b.bytes))
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
  return a.length - b.length
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  // Allocating a Uint8Array costs about a microsecond: share the empty one, reuse a lone part.
  if (parts.length === 0) return EMPTY
  if (parts.length === 1) return parts[0] as Uint8Array
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}
