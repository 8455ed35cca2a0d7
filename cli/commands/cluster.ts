/** `shoal status` and `shoal peers`: what this peer knows of itself and the cluster. */
import { parseCommandArgs, stringFlag, boolFlag } from '../args.ts'
import { apiCall, resolveApiSocket } from '../client.ts'
import { formatTable, shortId, age } from '../table.ts'
import type { StatusView, PeerView } from '../../node/peer.ts'

const CLIENT_FLAGS = { api: { type: 'string' }, json: { type: 'boolean' } } as const

export async function statusCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('status', argv, CLIENT_FLAGS, { min: 0, max: 0 })
  const s = await apiCall<StatusView>(resolveApiSocket(stringFlag(p, 'api')), 'GET', '/v1/status')
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`)
    return 0
  }
  const runtime = s.runtime === 'none'
    ? 'none (no container runtime)'
    : s.runtimeStatus.degraded !== null
      ? `docker, degraded: ${s.runtimeStatus.degraded}`
      : `docker ${s.runtimeStatus.engineVersion ?? ''} (${s.runtimeStatus.socket ?? ''})`
  const sec = s.security
  const rows: Array<[string, string]> = [
    ['Peer', `${s.name} ${s.peerId}`],
    ['Version', s.version],
    ['Addresses', s.addrs.join('\n             ')],
    ['Role', s.role === 'none' ? 'none (consensus not running)' : `${s.role}, term ${s.term}, leader ${s.leader ?? 'unknown'}`],
    ...(s.repairIndex > 0 ? [['Repairing', `WARNING: this peer's disk lost Raft entries it had acknowledged; it does not vote and its reads may be stale until the leader has copied the log back up to index ${s.repairIndex} (now ${s.commitIndex}). Check the disk.`] as [string, string]] : []),
    ['Members', `${s.members.alive} alive, ${s.members.suspect} suspect, ${s.members.dead} dead, ${s.members.left} left`],
    ['Runtime', runtime],
    ['DNS', s.dns === null ? 'off' : `${s.dns.listen.join(', ')} (${s.dns.stats.queries.received} queries, ${s.dns.stats.queries.malformed} malformed, ${s.dns.stats.zone.names} names)`],
    // Where containers on this host point their resolver, or why they cannot (and what to do).
    ...(s.dns === null || (s.dns.containers.listen.length === 0 && s.dns.containers.error === null) ? [] : [['Docker DNS', [
      ...(s.dns.containers.dockerRunFlags === null ? [] : [`${s.dns.containers.listen.join(', ')}: docker run ${s.dns.containers.dockerRunFlags} ...`]),
      ...(s.dns.containers.error === null ? [] : [`WARNING: ${s.dns.containers.error}`]),
    ].join('\n             ')] as [string, string]]),
    ['Refused', `${sec.rejectedInbound} inbound, ${sec.rejectedOutbound} outbound connections without the cluster secret${sec.lastRejectedAddr === null ? '' : ` (last: ${sec.lastRejectedAddr} at ${sec.lastRejectedAt})`}`],
    ['Started', `${s.startedAt} (${age(s.startedAt)} ago)`],
    ['Data dir', s.dataDir],
  ]
  process.stdout.write(rows.map(([k, v]) => `${`${k}:`.padEnd(13)}${v}`).join('\n') + '\n')
  return 0
}

export async function peersCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('peers', argv, CLIENT_FLAGS, { min: 0, max: 0 })
  const peers = await apiCall<PeerView[]>(resolveApiSocket(stringFlag(p, 'api')), 'GET', '/v1/peers')
  if (boolFlag(p, 'json')) {
    process.stdout.write(`${JSON.stringify(peers, null, 2)}\n`)
    return 0
  }
  process.stdout.write(formatTable(
    ['name', 'peer id', 'state', 'voter', 'since', 'address', 'version'],
    peers.map((x) => [
      `${x.name ?? '?'}${x.self ? ' *' : ''}`,
      shortId(x.peerId),
      x.state,
      x.voter ? 'yes' : 'no',
      age(x.stateSince),
      (x.addrs[0] ?? '-').replace(/\/p2p\/.*$/, ''),
      x.version ?? '?',
    ]),
  ))
  return 0
}
