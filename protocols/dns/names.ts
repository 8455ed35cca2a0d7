/**
 * How cluster names become DNS names, and the address helpers the zone needs (pure).
 *
 * Names are kept as lowercase label lists; `nameKey` turns them into the lookup key the zone
 * uses, which is the name's wire form (RFC 1035 §3.1) as a one-char-per-byte string, so a
 * query's question name can be looked up without decoding it to dotted text first.
 * Matching is case-insensitive for ASCII only, as RFC 4343 §3 asks.
 */

/** The zone's apex label. */
export const ZONE_LABEL = 'shoal'
/** The label under which hosts are published (`HOST.host.shoal`). */
export const HOSTS_LABEL = 'host'
/** The name of the zone's nameserver (`ns.shoal`). */
export const NS_LABEL = 'ns'

/** Longest name on the wire, terminating root label included (RFC 1035 §2.3.4). */
export const NAME_MAX_BYTES = 255
/** Longest label (RFC 1035 §2.3.4). */
export const LABEL_MAX_BYTES = 63

// A published label: starts with a letter or digit (so nothing we publish can collide with the
// `_port._proto` SRV labels), then letters, digits, '-' and '_' (Docker names allow '_';
// DNS itself allows any octet, RFC 2181 §11, and common resolvers accept '_').
const LABEL_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/

/**
 * The lowercase labels of a dotted `text` (Docker container name, host name, service name),
 * or null when any label is empty, too long or has other characters than [a-z0-9_-].
 */
export function labelsOf(text: string): string[] | null {
  const labels = text.toLowerCase().split('.')
  return labels.every((l) => LABEL_PATTERN.test(l)) ? labels : null
}

/** The wire length of `labels` followed by the root label. */
export function wireLength(labels: readonly string[]): number {
  let n = 1
  for (const l of labels) n += l.length + 1
  return n
}

/** The zone's lookup key of `labels` (already lowercase): the wire form as one char per byte. */
export function nameKey(labels: readonly string[]): string {
  let key = ''
  for (const l of labels) key += String.fromCharCode(l.length) + l
  return key + '\0'
}

/** `labels` as dotted text with the trailing root dot, as dns-packet encodes names. */
export function dotted(labels: readonly string[]): string {
  return labels.length === 0 ? '.' : `${labels.join('.')}.`
}

/** The 4 bytes of a dotted-quad IPv4 address, or null. */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split('.')
  if (parts.length !== 4) return null
  const out = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string
    // No leading zeros: "010" is octal to some parsers and decimal to others.
    if (!/^(?:0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null
    out[i] = Number(p)
  }
  return out
}

/** The 16 bytes of an IPv6 address (RFC 4291 §2.2 text forms, `::` and a trailing IPv4), or null. */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45 || text.includes('%')) return null
  const halves = text.split('::')
  if (halves.length > 2) return null
  const groups = (part: string): number[] | null => {
    if (part === '') return []
    const out: number[] = []
    const pieces = part.split(':')
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i] as string
      if (i === pieces.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p)
        if (v4 === null) return null
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number))
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16))
      } else {
        return null
      }
    }
    return out
  }
  const head = groups(halves[0] as string)
  const tail = halves.length === 2 ? groups(halves[1] as string) : []
  if (head === null || tail === null) return null
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail]
  const out = new Uint8Array(16)
  all.forEach((g, i) => {
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  })
  return out
}

/** An address as the zone uses it: its family, bytes and canonical text (to de-duplicate and encode). */
export interface IpAddress {
  readonly family: 4 | 6
  readonly bytes: Uint8Array
  readonly text: string
}

/** Parses an IPv4 or IPv6 address, or null. */
export function parseIp(text: string): IpAddress | null {
  const v4 = parseIPv4(text)
  if (v4 !== null) return { family: 4, bytes: v4, text: canonicalText(4, v4) }
  const v6 = parseIPv6(text)
  return v6 === null ? null : { family: 6, bytes: v6, text: canonicalText(6, v6) }
}

/** The canonical text of `ip` (dotted quad, or RFC 5952 IPv6). */
export function ipText(ip: IpAddress): string {
  return ip.text
}

function canonicalText(family: 4 | 6, b: Uint8Array): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number))
  // RFC 5952 §4.2: the longest run (of two or more) of zero groups becomes "::", the first on a tie.
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) { bestStart = i; bestLength = j - i }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}

/** The PTR owner labels of `ip`: `d.c.b.a.in-addr.arpa` or the nibble form under `ip6.arpa` (RFC 3596 §2.5). */
export function reverseLabels(ip: IpAddress): string[] {
  const out: string[] = []
  if (ip.family === 4) {
    for (let i = 3; i >= 0; i--) out.push(String(ip.bytes[i]))
    out.push('in-addr', 'arpa')
    return out
  }
  for (let i = 15; i >= 0; i--) {
    const b = ip.bytes[i] as number
    out.push((b & 0xf).toString(16), (b >> 4).toString(16))
  }
  out.push('ip6', 'arpa')
  return out
}

function isPreferred(ip: IpAddress): boolean {
  const b = ip.bytes
  if (ip.family === 4) return b[0] !== 127 && !b.every((x) => x === 0)
  const loopback = b.every((x, i) => x === (i === 15 ? 1 : 0))
  const unspecified = b.every((x) => x === 0)
  const linkLocal = b[0] === 0xfe && ((b[1] as number) & 0xc0) === 0x80
  return !loopback && !unspecified && !linkLocal
}

/**
 * The addresses `HOST.host.shoal` answers for a host's multiaddrs: per family, the first
 * address that is not loopback, unspecified or link-local, else the first loopback one.
 * (Other hosts cannot reach a loopback address, but a one-host cluster still gets an answer.)
 */
export function hostAddresses(multiaddrs: readonly string[]): IpAddress[] {
  const out: IpAddress[] = []
  for (const family of [4, 6] as const) {
    let fallback: IpAddress | null = null
    let chosen: IpAddress | null = null
    for (const ma of multiaddrs) {
      const match = /^\/ip([46])\/([^/]+)/.exec(ma)
      if (match === null || Number(match[1]) !== family) continue
      const ip = parseIp(match[2] as string)
      if (ip === null || ip.family !== family) continue
      if (isPreferred(ip)) { chosen = ip; break }
      const isLoopback = family === 4 ? ip.bytes[0] === 127 : ip.bytes.every((x, i) => x === (i === 15 ? 1 : 0))
      if (fallback === null && isLoopback) fallback = ip
    }
    const pick = chosen ?? fallback
    if (pick !== null) out.push(pick)
  }
  return out
}

/** The Docker-style short id label of a container id (first 12 characters, lowercase), or null if not a label. */
export function shortIdLabel(id: string): string | null {
  const label = id.slice(0, 12).toLowerCase()
  return /^[a-z0-9]+$/.test(label) ? label : null
}
