/**
 * Addresses of the cluster's members, kept in the data dir so a restarted peer can rejoin on
 * its own — also the founder, which has no --bootstrap (Serf keeps a snapshot for the same
 * reason). Written atomically, at most every few seconds.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { writeFileAtomic } from './data-dir.ts'

const FILE = 'peers.json'
/** A file listing more members than this is trimmed: enough seeds to find the cluster. */
const KNOWN_PEERS_MAX = 64

/** Full multiaddrs (ending /p2p/<id>) of members last known alive; empty when none were saved. */
export function loadKnownPeers(dataDir: string, selfId: string): Multiaddr[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(join(dataDir, FILE), 'utf8'))
  } catch {
    return [] // first start, or a damaged file: the --bootstrap flags still apply
  }
  if (!Array.isArray(parsed)) return []
  const out: Multiaddr[] = []
  for (const a of parsed.slice(0, KNOWN_PEERS_MAX * 4)) {
    if (typeof a !== 'string' || a.endsWith(`/p2p/${selfId}`)) continue
    try {
      out.push(multiaddr(a))
    } catch {
      // one bad line costs one address
    }
  }
  return out
}

/** Saves the addresses of `members` (their full multiaddrs). */
export function saveKnownPeers(dataDir: string, addrsByMember: string[][]): void {
  const addrs = addrsByMember.slice(0, KNOWN_PEERS_MAX).flatMap((a) => a.slice(0, 4))
  writeFileAtomic(join(dataDir, FILE), `${JSON.stringify(addrs, null, 1)}\n`, 0o600)
}
