/**
 * DNS messages on raw bytes (RFC 1035 §4.1, EDNS0 per RFC 6891), for the per-query hot path:
 * read a query's header, question and OPT record without decoding it into objects, and
 * assemble responses from pre-encoded record bytes. Pure; dns-packet encodes the records
 * themselves when the zone is rebuilt (zone-build.ts).
 */

/** Bytes of the fixed header. */
export const HEADER_BYTES = 12
/** Largest query accepted; a real query is well under 512 bytes, so more is abuse or garbage. */
export const QUERY_MAX_BYTES = 4096
/** Largest UDP response to a query without EDNS (RFC 1035 §4.2.1). */
export const UDP_CLASSIC_MAX_BYTES = 512
/** Largest DNS message over TCP (16-bit length prefix, RFC 1035 §4.2.2). */
export const TCP_MAX_BYTES = 65535

/** Response codes used here (RFC 1035 §4.1.1; BADVERS is extended, RFC 6891 §9). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const
/** Extended RCODE BADVERS (16): upper 8 bits go in the OPT TTL, lower 4 in the header. */
export const BADVERS_EXTENDED = 1

/** Record types the zone knows (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 6891). */
export const TYPE = { A: 1, NS: 2, SOA: 6, PTR: 12, AAAA: 28, SRV: 33, OPT: 41, ANY: 255 } as const
/** Classes (RFC 1035 §3.2.4). */
export const CLASS = { IN: 1, ANY: 255 } as const

/** The requestor's EDNS0 parameters (RFC 6891 §6.1.3). */
export interface Edns {
  /** Advertised UDP payload size, raised to 512 when smaller (RFC 6891 §6.2.5). */
  readonly udpPayloadBytes: number
  readonly version: number
  /** DNSSEC OK; copied into the response (RFC 3225 §3). */
  readonly dnssecOk: boolean
}

/** A query read off the wire. The question is bytes [HEADER_BYTES, questionEnd). */
export interface Query {
  readonly id: number
  /** Operation code (0 = QUERY). */
  readonly opcode: number
  /** Header byte 2 bit RD, copied into the response. */
  readonly recursionDesired: boolean
  /** Header byte 3 bit CD, copied into the response (RFC 6840 §5.9). */
  readonly checkingDisabled: boolean
  readonly qtype: number
  readonly qclass: number
  /** The question name in lowercase wire form, one char per byte (see names.ts `nameKey`). */
  readonly key: string
  /** Bytes of the question name. */
  readonly nameBytes: number
  /** End of the question section. */
  readonly questionEnd: number
  readonly edns: Edns | null
}

/** Why a packet is not a query we can answer normally. */
export type QueryProblem =
  /** Fewer than 12 bytes: no header to answer, so it is dropped. */
  | 'short'
  /** The QR bit is set: a response sent to us is dropped (never answer answers; no loops). */
  | 'response'
  /** More than QUERY_MAX_BYTES: FORMERR. */
  | 'oversized'
  /** QDCOUNT is not 1 (RFC 9619): FORMERR. */
  | 'question-count'
  /** An opcode other than QUERY: NOTIMP. */
  | 'opcode'
  /** Anything that does not parse (cut short, bad labels, trailing bytes, two OPTs): FORMERR. */
  | 'malformed'

/** Outcome of `parseQuery`. */
export type ParsedQuery = { readonly ok: true; readonly query: Query } | { readonly ok: false; readonly problem: QueryProblem }

const failed = (problem: QueryProblem): ParsedQuery => ({ ok: false, problem })

/** Reads a query's header, single question and OPT record; never throws. */
export function parseQuery(msg: Uint8Array): ParsedQuery {
  const length = msg.length
  if (length < HEADER_BYTES) return failed('short')
  const flags1 = msg[2] as number
  if ((flags1 & 0x80) !== 0) return failed('response')
  if (length > QUERY_MAX_BYTES) return failed('oversized')
  const opcode = (flags1 >> 3) & 0x0f
  if (opcode !== 0) return failed('opcode')
  const qdcount = ((msg[4] as number) << 8) | (msg[5] as number)
  const ancount = ((msg[6] as number) << 8) | (msg[7] as number)
  const nscount = ((msg[8] as number) << 8) | (msg[9] as number)
  const arcount = ((msg[10] as number) << 8) | (msg[11] as number)
  if (qdcount !== 1) return failed('question-count')
  // A query carries nothing in the answer and authority sections.
  if (ancount !== 0 || nscount !== 0) return failed('malformed')

  // Question name: plain labels only (a compression pointer cannot point anywhere before it).
  let offset = HEADER_BYTES
  let key = ''
  for (;;) {
    if (offset >= length) return failed('malformed')
    const labelLength = msg[offset] as number
    if (labelLength > 63) return failed('malformed')
    key += String.fromCharCode(labelLength)
    offset++
    if (labelLength === 0) break
    if (offset + labelLength > length) return failed('malformed')
    for (let end = offset + labelLength; offset < end; offset++) {
      const b = msg[offset] as number
      key += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b | 0x20 : b)
    }
    if (offset - HEADER_BYTES > 254) return failed('malformed')
  }
  const nameBytes = offset - HEADER_BYTES
  if (offset + 4 > length) return failed('malformed')
  const qtype = ((msg[offset] as number) << 8) | (msg[offset + 1] as number)
  const qclass = ((msg[offset + 2] as number) << 8) | (msg[offset + 3] as number)
  offset += 4
  const questionEnd = offset

  let edns: Edns | null = null
  for (let i = 0; i < arcount; i++) {
    const ownerStart = offset
    offset = skipName(msg, offset)
    if (offset < 0 || offset + 10 > length) return failed('malformed')
    const type = ((msg[offset] as number) << 8) | (msg[offset + 1] as number)
    const rdlength = ((msg[offset + 8] as number) << 8) | (msg[offset + 9] as number)
    const rdata = offset + 10
    if (rdata + rdlength > length) return failed('malformed')
    if (type === TYPE.OPT) {
      // One OPT, owned by the root (RFC 6891 §6.1.1); its options must be well-formed TLVs.
      if (edns !== null || offset !== ownerStart + 1 || msg[ownerStart] !== 0) return failed('malformed')
      if (!optionsWellFormed(msg, rdata, rdata + rdlength)) return failed('malformed')
      const size = ((msg[offset + 2] as number) << 8) | (msg[offset + 3] as number)
      edns = {
        udpPayloadBytes: Math.max(size, UDP_CLASSIC_MAX_BYTES),
        version: msg[offset + 5] as number,
        dnssecOk: ((msg[offset + 6] as number) & 0x80) !== 0,
      }
    }
    offset = rdata + rdlength
  }
  if (offset !== length) return failed('malformed')

  return {
    ok: true,
    query: {
      id: ((msg[0] as number) << 8) | (msg[1] as number),
      opcode,
      recursionDesired: (flags1 & 0x01) !== 0,
      checkingDisabled: ((msg[3] as number) & 0x10) !== 0,
      qtype, qclass, key, nameBytes, questionEnd, edns,
    },
  }
}

/** Offset after the (possibly compressed) name at `offset`, or -1 when it runs off the end or has a bad label. */
function skipName(msg: Uint8Array, offset: number): number {
  for (let labels = 0; labels < 128; labels++) {
    if (offset >= msg.length) return -1
    const b = msg[offset] as number
    if (b === 0) return offset + 1
    if ((b & 0xc0) === 0xc0) return offset + 2 <= msg.length ? offset + 2 : -1
    if (b > 63) return -1
    offset += b + 1
  }
  return -1
}

function optionsWellFormed(msg: Uint8Array, start: number, end: number): boolean {
  let offset = start
  while (offset < end) {
    if (offset + 4 > end) return false
    offset += 4 + (((msg[offset + 2] as number) << 8) | (msg[offset + 3] as number))
  }
  return offset === end
}

/** The largest response `query` may get: 512 without EDNS, else the smaller of its size and ours; TCP: 65535. */
export function responseLimit(query: Query, tcp: boolean, udpPayloadMaxBytes: number): number {
  if (tcp) return TCP_MAX_BYTES
  if (query.edns === null) return UDP_CLASSIC_MAX_BYTES
  return Math.min(query.edns.udpPayloadBytes, Math.max(udpPayloadMaxBytes, UDP_CLASSIC_MAX_BYTES))
}

/** Bytes of the OPT record written by `writeOpt`. */
export const OPT_BYTES = 11

/** Writes an OPT record advertising `udpPayloadBytes` at `offset`; returns the end. */
export function writeOpt(out: Uint8Array, offset: number, udpPayloadBytes: number, extendedRcode: number, dnssecOk: boolean): number {
  out[offset] = 0
  out[offset + 1] = 0
  out[offset + 2] = TYPE.OPT
  out[offset + 3] = udpPayloadBytes >> 8
  out[offset + 4] = udpPayloadBytes & 0xff
  out[offset + 5] = extendedRcode
  out[offset + 6] = 0
  out[offset + 7] = dnssecOk ? 0x80 : 0
  out[offset + 8] = 0
  out[offset + 9] = 0
  out[offset + 10] = 0
  return offset + OPT_BYTES
}

/** Header flags and counts of a response. */
export interface ResponseHeader {
  readonly rcode: number
  readonly authoritative: boolean
  readonly truncated: boolean
  readonly recursionAvailable: boolean
  readonly questions: number
  readonly answers: number
  readonly authorities: number
  readonly additionals: number
}

/** Writes a response header for `query` (id, opcode, RD and CD copied from it). */
export function writeHeader(out: Uint8Array, query: Query, h: ResponseHeader): void {
  out[0] = query.id >> 8
  out[1] = query.id & 0xff
  out[2] = 0x80 | (query.opcode << 3) | (h.authoritative ? 0x04 : 0) | (h.truncated ? 0x02 : 0) | (query.recursionDesired ? 0x01 : 0)
  out[3] = (h.recursionAvailable ? 0x80 : 0) | (query.checkingDisabled ? 0x10 : 0) | (h.rcode & 0x0f)
  out[4] = h.questions >> 8
  out[5] = h.questions & 0xff
  out[6] = h.answers >> 8
  out[7] = h.answers & 0xff
  out[8] = h.authorities >> 8
  out[9] = h.authorities & 0xff
  out[10] = h.additionals >> 8
  out[11] = h.additionals & 0xff
}

/**
 * A header-only error response (FORMERR for a query we could not read, NOTIMP for an opcode):
 * id, opcode and RD copied from the raw header, no sections (the question may not parse).
 * Null when `msg` has no header to answer.
 */
export function headerOnlyResponse(msg: Uint8Array, rcode: number): Uint8Array | null {
  if (msg.length < HEADER_BYTES) return null
  const out = new Uint8Array(HEADER_BYTES)
  out[0] = msg[0] as number
  out[1] = msg[1] as number
  out[2] = 0x80 | ((msg[2] as number) & 0x79)
  out[3] = rcode & 0x0f
  return out
}

/** The id of a message (first two bytes). */
export function readId(msg: Uint8Array): number {
  return ((msg[0] as number) << 8) | (msg[1] as number)
}

/** Overwrites the id of a message in place. */
export function writeId(msg: Uint8Array, id: number): void {
  msg[0] = id >> 8
  msg[1] = id & 0xff
}

/**
 * A response to a readable query carrying only an rcode (SERVFAIL when forwarding fails):
 * the question echoed, and an OPT when the query had one (RFC 6891 §7).
 */
export function rcodeResponse(msg: Uint8Array, query: Query, rcode: number, recursionAvailable: boolean, udpPayloadMaxBytes: number): Uint8Array {
  const questionBytes = query.questionEnd - HEADER_BYTES
  const out = new Uint8Array(HEADER_BYTES + questionBytes + (query.edns === null ? 0 : OPT_BYTES))
  writeHeader(out, query, {
    rcode, authoritative: false, truncated: false, recursionAvailable,
    questions: 1, answers: 0, authorities: 0, additionals: query.edns === null ? 0 : 1,
  })
  out.set(msg.subarray(HEADER_BYTES, query.questionEnd), HEADER_BYTES)
  if (query.edns !== null) writeOpt(out, HEADER_BYTES + questionBytes, udpPayloadMaxBytes, 0, query.edns.dnssecOk)
  return out
}
