/**
 * Link addresses (pure): the link subnet, and which address each link gets on one source host.
 *
 * Every source host gives each of its links an address of its own from the link subnet, on an
 * interface its peer manages (the data path configures it). The default, 100.127.0.0/16, is a
 * corner of RFC 6598 shared address space: Docker's default address pools (172.17-31.0.0/16,
 * 192.168.0.0/16 in /20s) never hand it out, and carrier-grade NAT rarely reaches the top /16.
 */

/** Default link subnet: see the file comment. */
export const DEFAULT_LINK_SUBNET = '100.127.0.0/16'
/** Smallest and largest prefix length accepted: /16 holds 65,533 links per host, /28 13. */
export const LINK_SUBNET_PREFIX_MIN = 16
export const LINK_SUBNET_PREFIX_MAX = 28

/** An IPv4 subnet: the network as a 32-bit number and its prefix length. */
export interface Subnet {
  readonly network: number
  readonly prefix: number
}

export type SubnetResult = { readonly ok: true; readonly subnet: Subnet } | { readonly ok: false; readonly error: string }

/**
 * Ranges a link subnet must not overlap: Docker's default address pools (bridges and user
 * networks are numbered from them, so a link address there could shadow a container), and
 * addresses that are not unicast on a LAN.
 */
const FORBIDDEN: ReadonlyArray<{ cidr: string; why: string }> = [
  { cidr: '172.16.0.0/12', why: "Docker's default address pools number bridge networks from it" },
  { cidr: '192.168.0.0/16', why: "Docker's default address pools number user networks from it" },
  { cidr: '127.0.0.0/8', why: 'it is loopback' },
  { cidr: '0.0.0.0/8', why: 'it is "this network"' },
  { cidr: '169.254.0.0/16', why: 'it is link-local' },
  { cidr: '224.0.0.0/3', why: 'it is multicast or reserved' },
]

const OCTET = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

/** `a.b.c.d` as a 32-bit number, or null. */
export function ipv4ToNumber(text: string): number | null {
  const parts = text.split('.')
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return null
  return parts.reduce((n, p) => n * 256 + Number(p), 0)
}

/** A 32-bit number as `a.b.c.d`. */
export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

function size(prefix: number): number {
  return 2 ** (32 - prefix)
}

function overlap(a: Subnet, b: Subnet): boolean {
  return a.network < b.network + size(b.prefix) && b.network < a.network + size(a.prefix)
}

function rawSubnet(text: string): Subnet | null {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text)
  if (m === null) return null
  const network = ipv4ToNumber(m[1] as string)
  const prefix = Number(m[2])
  if (network === null || prefix > 32) return null
  return { network, prefix }
}

/**
 * Parses and checks a link subnet (`--link-subnet`). 10.0.0.0/8 is allowed: Docker's default
 * pools do not use it, and giving it is a deliberate choice (many LANs do use it: pick a part
 * your LAN does not route).
 */
export function parseLinkSubnet(text: string): SubnetResult {
  const s = rawSubnet(text.trim())
  if (s === null) return { ok: false, error: `link subnet ${JSON.stringify(text)} is not an IPv4 CIDR like ${DEFAULT_LINK_SUBNET}` }
  if (s.prefix < LINK_SUBNET_PREFIX_MIN || s.prefix > LINK_SUBNET_PREFIX_MAX) {
    return { ok: false, error: `link subnet ${text}: the prefix must be /${LINK_SUBNET_PREFIX_MIN} to /${LINK_SUBNET_PREFIX_MAX}` }
  }
  if (s.network % size(s.prefix) !== 0) {
    const network = s.network - (s.network % size(s.prefix))
    return { ok: false, error: `link subnet ${text} has host bits set; did you mean ${numberToIpv4(network)}/${s.prefix}?` }
  }
  for (const f of FORBIDDEN) {
    const other = rawSubnet(f.cidr) as Subnet
    if (overlap(s, other)) return { ok: false, error: `link subnet ${text} overlaps ${f.cidr}, and ${f.why}; choose another, e.g. ${DEFAULT_LINK_SUBNET}` }
  }
  return { ok: true, subnet: s }
}

/** Whether `ip` lies in `subnet`. */
export function inSubnet(subnet: Subnet, ip: string): boolean {
  const n = ipv4ToNumber(ip)
  return n !== null && n >= subnet.network && n < subnet.network + size(subnet.prefix)
}

/** `a.b.c.d/p` */
export function subnetText(subnet: Subnet): string {
  return `${numberToIpv4(subnet.network)}/${subnet.prefix}`
}

/** The address the link interface itself holds: the first of the subnet, never a link's. */
export function interfaceAddress(subnet: Subnet): string {
  return numberToIpv4(subnet.network + 1)
}

/**
 * The address of every `wanted` link key on one host. Stable: a key that already has an
 * address in the subnet keeps it (the alias's address must survive restarts and other links
 * coming and going). A new key takes the lowest address not held by any existing allocation;
 * the network address, the interface's own (the first) and the broadcast address are never
 * given. An existing address outside the subnet (the subnet was changed) is replaced. Keys
 * that do not fit (the subnet is full) are left out of the result.
 */
export function allocateAddresses(subnet: Subnet, existing: ReadonlyMap<string, string>, wanted: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  const used = new Set<number>()
  for (const ip of existing.values()) {
    const n = ipv4ToNumber(ip)
    if (n !== null) used.add(n)
  }
  const first = subnet.network + 2
  const last = subnet.network + size(subnet.prefix) - 2
  const fresh: string[] = []
  for (const key of new Set(wanted)) {
    const ip = existing.get(key)
    if (ip !== undefined && inSubnet(subnet, ip) && (ipv4ToNumber(ip) as number) >= first && (ipv4ToNumber(ip) as number) <= last) out.set(key, ip)
    else fresh.push(key)
  }
  // Sorted, so the same state gives the same addresses whatever order links were listed in.
  fresh.sort()
  let next = first
  for (const key of fresh) {
    while (next <= last && used.has(next)) next++
    if (next > last) break
    used.add(next)
    out.set(key, numberToIpv4(next))
  }
  return out
}
