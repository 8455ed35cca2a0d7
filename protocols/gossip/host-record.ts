/** The record every peer advertises about its host; carried as SWIM member meta. */

/** What a peer says about its own host. */
export interface HostRecord {
  name: string
  addrs: string[]
  version: string
  startedAt: string
  cpus: number
  memoryBytes: number
}

/** Bounds keep a hostile or buggy peer from bloating every member list. */
const MAX_ADDRS = 16
const MAX_ADDR_CHARS = 256

/**
 * Encodes a host record as SWIM meta, dropping trailing addresses until it fits `maxBytes`
 * (SWIM meta rides on every probe, so it is small by design). A host with many interfaces
 * keeps its first addresses; peers learn the rest through Identify once connected.
 */
export function encodeHostRecord(record: HostRecord, maxBytes = 2048): string {
  let addrs = record.addrs.slice(0, MAX_ADDRS)
  let text = JSON.stringify({ ...record, addrs })
  while (Buffer.byteLength(text) > maxBytes && addrs.length > 0) {
    addrs = addrs.slice(0, -1)
    text = JSON.stringify({ ...record, addrs })
  }
  return text
}

/** Decodes SWIM meta into a host record; null when it is not one (never throws). */
export function decodeHostRecord(meta: string): HostRecord | null {
  let value: unknown
  try {
    value = JSON.parse(meta)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const r = value as Record<string, unknown>
  const addrs = r['addrs']
  if (
    typeof r['name'] !== 'string' || r['name'].length > 63 ||
    !Array.isArray(addrs) || addrs.length > MAX_ADDRS ||
    !addrs.every((a): a is string => typeof a === 'string' && a.length <= MAX_ADDR_CHARS) ||
    typeof r['version'] !== 'string' || r['version'].length > 64 ||
    typeof r['startedAt'] !== 'string' || r['startedAt'].length > 40 ||
    typeof r['cpus'] !== 'number' || !Number.isInteger(r['cpus']) || r['cpus'] < 0 ||
    typeof r['memoryBytes'] !== 'number' || !Number.isSafeInteger(r['memoryBytes']) || r['memoryBytes'] < 0
  ) {
    return null
  }
  return { name: r['name'], addrs, version: r['version'], startedAt: r['startedAt'], cpus: r['cpus'], memoryBytes: r['memoryBytes'] }
}
