/**
 * The DNS zone `shoal.` as a pure core: `load(records)` rebuilds the pre-encoded answer table
 * (zone-build.ts), and `answer(bytes, transport)` turns one query into response bytes, or a
 * decision to forward it or drop it. No clock, socket or randomness; per-query work is one
 * header read, one map lookup and a few byte copies. Answers with several records rotate by
 * a counter kept per record set, so successive queries start at successive records.
 *
 * Counters of every outcome are kept here, where the outcome is decided; the server adds its
 * transport counters next to them.
 */
import { buildZone, negativeAuthority, prepare, type Prepared, type ZoneRecords, type ZoneTable } from './zone-build.ts'
import {
  BADVERS_EXTENDED, CLASS, HEADER_BYTES, OPT_BYTES, RCODE, headerOnlyResponse, parseQuery, responseLimit,
  writeHeader, writeOpt, type Query,
} from './wire.ts'
import { nameKey, ZONE_LABEL } from './names.ts'

/** Zone settings. */
export interface ZoneOptions {
  /** TTL of every answer and of negative answers (issue 7: short, default 5 s). */
  readonly ttlSeconds: number
  /** Our largest UDP response with EDNS, advertised in OPT; 1232 avoids IP fragmentation (DNS flag day 2020). */
  readonly udpPayloadMaxBytes: number
  /** Whether names outside the zone are forwarded upstream (else REFUSED: never an open resolver). */
  readonly forwarding: boolean
  /** Addresses `ns.shoal` answers: the addresses the server listens on. */
  readonly nameservers: readonly string[]
}

/** Defaults of ZoneOptions. */
export const DEFAULT_ZONE_OPTIONS: ZoneOptions = { ttlSeconds: 5, udpPayloadMaxBytes: 1232, forwarding: false, nameservers: ['127.0.0.1'] }

/** What to do with one incoming message. */
export type ZoneAnswer =
  | { readonly kind: 'reply'; readonly bytes: Uint8Array }
  /** A name outside the zone, with forwarding on: send the raw query upstream. */
  | { readonly kind: 'forward'; readonly query: Query }
  /** Not even a header, or a response: answer nothing. */
  | { readonly kind: 'drop' }

/** How each message ended; sums to `received`. */
export interface ZoneCounters {
  received: number
  /** NOERROR with at least one answer record. */
  answered: number
  /** NOERROR, no answer: known name, other type (or an empty non-terminal). */
  nodata: number
  nxdomain: number
  /** Outside the zone without forwarding, zone transfers, classes other than IN. */
  refused: number
  forwarded: number
  /** FORMERR: header present but the rest does not parse (cut short, bad labels, trailing bytes). */
  malformed: number
  /** FORMERR: larger than QUERY_MAX_BYTES. */
  oversized: number
  /** FORMERR: QDCOUNT other than 1. */
  multiQuestion: number
  /** NOTIMP: opcode other than QUERY. */
  notImplemented: number
  /** BADVERS: EDNS version above 0. */
  badVersion: number
  /** Dropped: shorter than a header, or a response. */
  dropped: number
  /** Of the above replies, how many had TC set (did not fit the UDP payload). */
  truncated: number
}

const ZONE_SUFFIX = nameKey([ZONE_LABEL])
const AXFR = 252
const IXFR = 251
const EMPTY = new Uint8Array(0)

/** The zone core; see the file comment. */
export class Zone {
  readonly options: ZoneOptions
  readonly counters: ZoneCounters = {
    received: 0, answered: 0, nodata: 0, nxdomain: 0, refused: 0, forwarded: 0, malformed: 0, oversized: 0,
    multiQuestion: 0, notImplemented: 0, badVersion: 0, dropped: 0, truncated: 0,
  }
  #table: ZoneTable
  // NXDOMAIN responses by question length: the SOA's owner points into the question.
  #nxdomain = new Map<number, Prepared>()
  #empty = prepare(RCODE.NOERROR, [], false, [], [])

  constructor(options: Partial<ZoneOptions> = {}) {
    this.options = { ...DEFAULT_ZONE_OPTIONS, ...options }
    this.#table = buildZone({ containers: [], hosts: [], revision: 0 }, this.options)
  }

  /** Rebuilds every answer from `records` (the replica's running containers and hosts). */
  load(records: ZoneRecords): void {
    this.#table = buildZone(records, this.options)
    this.#nxdomain.clear()
  }

  /** The SOA serial: the StateStore revision of the last load. */
  get serial(): number {
    return this.#table.serial
  }

  /** Names answered (zone and reverse), empty non-terminals included. */
  get nameCount(): number {
    return this.#table.names.size
  }

  /**
   * Answers one message received over `transport` from `querier` (the client's address, which
   * decides link alias answers: see ZoneRecords.aliases); never throws.
   */
  answer(msg: Uint8Array, transport: 'udp' | 'tcp', querier?: string): ZoneAnswer {
    const c = this.counters
    c.received++
    const parsed = parseQuery(msg)
    if (!parsed.ok) {
      switch (parsed.problem) {
        case 'short':
        case 'response':
          c.dropped++
          return DROP
        case 'oversized':
          c.oversized++
          return headerOnly(msg, RCODE.FORMERR)
        case 'question-count':
          c.multiQuestion++
          return headerOnly(msg, RCODE.FORMERR)
        case 'malformed':
          c.malformed++
          return headerOnly(msg, RCODE.FORMERR)
        case 'opcode':
          c.notImplemented++
          return headerOnly(msg, RCODE.NOTIMP)
        default:
          return assertNever(parsed.problem)
      }
    }
    const q = parsed.query
    const limit = responseLimit(q, transport === 'tcp', this.options.udpPayloadMaxBytes)
    if (q.edns !== null && q.edns.version > 0) {
      c.badVersion++
      return this.#reply(q, msg, this.#empty, limit, BADVERS_EXTENDED)
    }
    let entry = this.#table.names.get(q.key)
    const aliases = this.#table.aliases
    // Only names that are someone's alias pay for this; for them the alias wins for its querier.
    if (aliases.size > 0 && querier !== undefined) {
      const byQuerier = aliases.get(q.key)
      if (byQuerier !== undefined) entry = byQuerier.get(canonicalQuerier(querier)) ?? entry
    }
    if (entry === undefined) {
      if (!inZone(q.key)) {
        if (this.options.forwarding) {
          c.forwarded++
          return { kind: 'forward', query: q }
        }
        c.refused++
        return this.#reply(q, msg, REFUSED, limit)
      }
      if (!classIsIn(q.qclass)) {
        c.refused++
        return this.#reply(q, msg, REFUSED, limit)
      }
      c.nxdomain++
      return this.#reply(q, msg, this.#nxdomainFor(q.nameBytes), limit)
    }
    if (!classIsIn(q.qclass) || q.qtype === AXFR || q.qtype === IXFR) {
      c.refused++
      return this.#reply(q, msg, REFUSED, limit)
    }
    const prepared = entry.byType.get(q.qtype)
    if (prepared === undefined) {
      c.nodata++
      return this.#reply(q, msg, entry.nodata, limit)
    }
    c.answered++
    return this.#reply(q, msg, prepared, limit)
  }

  #nxdomainFor(nameBytes: number): Prepared {
    let p = this.#nxdomain.get(nameBytes)
    if (p === undefined) {
      p = prepare(RCODE.NXDOMAIN, [], false, [negativeAuthority(this.#table, nameBytes)], [])
      this.#nxdomain.set(nameBytes, p)
    }
    return p
  }

  /**
   * Stamps `p` with the query's id, flags and question. When it does not fit `limit`: first
   * the additional section goes (no TC, RFC 2181 §9), then whole answer records from the end
   * with TC set; what is left is still a usable partial answer for clients that cannot retry
   * over TCP (Consul's choice; RFC 2181 §9 allows it).
   */
  #reply(q: Query, msg: Uint8Array, p: Prepared, limit: number, extendedRcode = 0): ZoneAnswer {
    const questionBytes = q.questionEnd - HEADER_BYTES
    const optBytes = q.edns === null ? 0 : OPT_BYTES
    const fixed = HEADER_BYTES + questionBytes + optBytes
    const offsets = p.answerOffsets
    const n = offsets.length - 1
    const answerBytes = offsets[n] as number
    let start = 0
    if (p.rotate) {
      start = p.cursor % n
      p.cursor = (start + 1) % n
    }
    let count = n
    let body = answerBytes
    let authority = p.authority
    let authorityCount = p.authorityCount
    let additional = p.additional
    let additionalCount = p.additionalCount
    let truncated = false
    if (fixed + body + authority.length + additional.length > limit) {
      additional = EMPTY
      additionalCount = 0
      if (fixed + body + authority.length > limit) {
        truncated = true
        authority = EMPTY
        authorityCount = 0
        count = 0
        body = 0
        for (let i = 0; i < n; i++) {
          const r = (start + i) % n
          const size = (offsets[r + 1] as number) - (offsets[r] as number)
          if (fixed + body + size > limit) break
          body += size
          count++
        }
        this.counters.truncated++
      }
    }
    const out = new Uint8Array(fixed + body + authority.length + additional.length)
    writeHeader(out, q, {
      rcode: p.rcode, authoritative: extendedRcode === 0 && (p.rcode === RCODE.NOERROR || p.rcode === RCODE.NXDOMAIN), truncated, recursionAvailable: this.options.forwarding,
      questions: 1, answers: count, authorities: authorityCount, additionals: additionalCount + (optBytes > 0 ? 1 : 0),
    })
    out.set(msg.subarray(HEADER_BYTES, q.questionEnd), HEADER_BYTES)
    let offset = HEADER_BYTES + questionBytes
    if (count === n && start === 0) {
      out.set(p.answers, offset)
      offset += answerBytes
    } else if (count > 0) {
      // Records [start, n) then [0, start), cut at `count` records (= `body` bytes).
      const startOffset = offsets[start] as number
      const firstPart = Math.min(body, answerBytes - startOffset)
      out.set(p.answers.subarray(startOffset, startOffset + firstPart), offset)
      out.set(p.answers.subarray(0, body - firstPart), offset + firstPart)
      offset += body
    }
    out.set(authority, offset)
    offset += authority.length
    out.set(additional, offset)
    offset += additional.length
    if (q.edns !== null) writeOpt(out, offset, Math.max(this.options.udpPayloadMaxBytes, 512), extendedRcode, q.edns.dnssecOk)
    return { kind: 'reply', bytes: out }
  }
}

const DROP: ZoneAnswer = { kind: 'drop' }
const REFUSED = prepare(RCODE.REFUSED, [], false, [], [])

function headerOnly(msg: Uint8Array, rcode: number): ZoneAnswer {
  const bytes = headerOnlyResponse(msg, rcode)
  return bytes === null ? DROP : { kind: 'reply', bytes }
}

/** A socket's view of an IPv4 client on a dual-stack socket is `::ffff:a.b.c.d`; records hold `a.b.c.d`. */
function canonicalQuerier(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}

function classIsIn(qclass: number): boolean {
  return qclass === CLASS.IN || qclass === CLASS.ANY
}

/** Whether a name key ends in the label `shoal` followed by the root (on a label boundary). */
function inZone(key: string): boolean {
  const suffixAt = key.length - ZONE_SUFFIX.length
  let i = 0
  while (i < suffixAt) i += key.charCodeAt(i) + 1
  return i === suffixAt && key.endsWith(ZONE_SUFFIX)
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${String(value)}`)
}

