/**
 * The wire format of `/shoal/link/1.0.0`, the libp2p protocol that carries one TCP connection
 * of a cross-host link (issue 13, "The data path"). Pure: bytes in, values out.
 *
 *   dialer  -> acceptor: u16 big-endian length, then that many bytes of JSON
 *                        `{"link": "<source>/<alias>", "port": 80, "protocol": "tcp"}`
 *   acceptor -> dialer : one status byte (0 = ok, else a refusal reason code)
 *   then both ways     : the connection's raw bytes, half-close and reset passed through.
 *
 * The header names only WHAT the dialer wants (a link and a port), never WHERE: the acceptor
 * re-resolves the target among its own host's containers, so a peer cannot use it as an open
 * proxy to arbitrary addresses.
 */

export const LINK_PROTOCOL = '/shoal/link/1.0.0'

/** Largest header body; a link name is at most LINK_NAME_MAX_CHARS, so this leaves room. */
export const HEADER_MAX_BYTES = 512
/** Longest link name accepted on the wire (the link records are the authority on its shape). */
export const LINK_NAME_MAX_CHARS = 300
const LENGTH_PREFIX_BYTES = 2

export interface LinkHeader {
  /** The link's id, `<source>/<alias>`. */
  link: string
  /** The target's port the dialer wants to reach. */
  port: number
  protocol: 'tcp'
}

/** Why an acceptor refused a stream; each is counted in `shoal status --json`. */
export type RefusalReason = 'unauthorized' | 'no-target' | 'target-unreachable' | 'bad-header' | 'unavailable' | 'unknown'

export type LinkStatus = { ok: true } | { ok: false; reason: RefusalReason }

const STATUS_CODES: ReadonlyArray<readonly [number, RefusalReason | 'ok']> = [
  [0, 'ok'],
  [1, 'unauthorized'],
  [2, 'no-target'],
  [3, 'target-unreachable'],
  [4, 'bad-header'],
  [5, 'unavailable'],
]

export function encodeStatus(status: LinkStatus): Uint8Array {
  const name = status.ok ? 'ok' : status.reason
  const entry = STATUS_CODES.find(([, n]) => n === name)
  // 'unknown' is only ever decoded (a code from a newer peer); sending it says "refused" all the same.
  return new Uint8Array([entry === undefined ? 255 : entry[0]])
}

export function decodeStatus(code: number): LinkStatus {
  const entry = STATUS_CODES.find(([c]) => c === code)
  if (entry === undefined) return { ok: false, reason: 'unknown' }
  return entry[1] === 'ok' ? { ok: true } : { ok: false, reason: entry[1] }
}

export function encodeHeader(header: LinkHeader): Uint8Array {
  const problem = validateHeader(header)
  if (problem !== null) throw new RangeError(`cannot encode link header: ${problem}`)
  const body = new TextEncoder().encode(JSON.stringify({ link: header.link, port: header.port, protocol: header.protocol }))
  const out = new Uint8Array(LENGTH_PREFIX_BYTES + body.byteLength)
  out[0] = body.byteLength >> 8
  out[1] = body.byteLength & 0xff
  out.set(body, LENGTH_PREFIX_BYTES)
  return out
}

/** Returns what is wrong with a decoded header value, or null. */
export function validateHeader(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the header is not a JSON object'
  const v = value as Record<string, unknown>
  const link = v['link']
  if (typeof link !== 'string') return 'link must be a string'
  if (link.length === 0 || link.length > LINK_NAME_MAX_CHARS) return `link must be 1-${LINK_NAME_MAX_CHARS} characters`
  // Visible ASCII only: a link id is names joined by '/', never whitespace or control bytes.
  if (!/^[\x21-\x7e]+$/.test(link)) return 'link may hold only visible ASCII characters'
  if (!link.includes('/')) return 'link must look like <source>/<alias>'
  const port = v['port']
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return 'port must be an integer 1-65535'
  // Only TCP today; a UDP link would need datagram framing, so it gets its own value when it comes.
  if (v['protocol'] !== 'tcp') return 'protocol must be "tcp"'
  return null
}

export type HeaderRead =
  | { kind: 'incomplete' }
  | { kind: 'header'; header: LinkHeader; consumed: number }
  | { kind: 'bad'; problem: string }

/**
 * Reads a header from the first bytes of a stream. `incomplete` asks for more bytes; `bad` means
 * the stream must be refused. Unknown JSON fields are ignored, so a newer dialer may add optional ones.
 */
export function readHeader(bytes: Uint8Array): HeaderRead {
  if (bytes.byteLength < LENGTH_PREFIX_BYTES) return { kind: 'incomplete' }
  const length = ((bytes[0] as number) << 8) | (bytes[1] as number)
  if (length === 0 || length > HEADER_MAX_BYTES) return { kind: 'bad', problem: `header length ${length} is not 1-${HEADER_MAX_BYTES}` }
  if (bytes.byteLength < LENGTH_PREFIX_BYTES + length) return { kind: 'incomplete' }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length)))
  } catch (err) {
    return { kind: 'bad', problem: `header is not UTF-8 JSON: ${err instanceof Error ? err.message : String(err)}` }
  }
  const problem = validateHeader(value)
  if (problem !== null) return { kind: 'bad', problem }
  const v = value as Record<string, unknown>
  return { kind: 'header', header: { link: v['link'] as string, port: v['port'] as number, protocol: 'tcp' }, consumed: LENGTH_PREFIX_BYTES + length }
}
