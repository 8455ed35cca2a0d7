// Container records after the faults end: every host that runs a peer has,
// in the replicated state, exactly what its engine holds (nothing missed, no
// stale state, nothing left over), whatever events were lost while the peer or
// its engine was down; no host's records were written under another host's
// name; and a host whose peer left or died long enough ago has no record that
// is not `lost` (a graceful leave removes them, the leader marks the rest of
// a host dead or gone past the grace period lost, as node/peer.ts does).

import { sameBytes } from '../../runtime/container-reconcile.ts'
import { CONTAINERS_PREFIX, encodeRecord, parseContainer, type Container, type KeyValue } from '../../storage/statestore/index.ts'
import { formatTime } from '../trace.ts'
import type { Violation } from './violation.ts'

/** One host as the check sees it. */
export interface HostTruth {
  readonly id: string
  /** Whether its peer runs and is a member: its records must equal `engine` then. */
  readonly member: boolean
  /** What its engine holds. */
  readonly engine: readonly Container[]
  /** Since when (simulated µs) its peer has been down, crashed or left; null or absent while it runs. */
  readonly downSinceUs?: number | null
}

/** When records of a departed host must have become `lost` (or gone). */
export interface LostRule {
  /** The leader's grace period (autopilot.deadGraceMs) in µs. */
  readonly graceUs: number
  /** When the current leader's life began (simulated µs). */
  readonly leaderUpSinceUs: number
  /** How long it has run on its own clock (µs): it marks nothing before a grace of it (peer.ts). */
  readonly leaderUpForUs: number
  /** When it became leader: only a leader marks, on its autopilot round (every second). */
  readonly leaderSinceUs: number
  /** What its failure detector says of each host, and for how long on its clock (µs); a host missing here is unknown to it. */
  readonly leaderView: ReadonlyMap<string, { readonly state: string; readonly forUs: number }>
}

/**
 * Beyond the grace, a leader still has to notice by itself: its failure detector's suspicion
 * and dead declaration (seconds, more under Lifeguard's degraded health), its next autopilot
 * round, one txn per batch, and clocks running up to 5% slow. The task-placement checker
 * allows the same 10 s.
 */
export const LOST_MARKING_SLACK_US = 10_000_000
/** Once the leader has seen a host dead or gone for the grace: its next autopilot round (1 s) and the commits. */
export const MARK_ROUND_SLACK_US = 2_000_000
/** A new leader marks on its first autopilot round (1 s), then commits: this long after it took over. */
export const NEW_LEADER_MARKING_US = 3_000_000

/**
 * Whether host `id`, down since `downSinceUs`, must by `atUs` have no record that is not `lost`.
 * Either of two clocks makes it due: the simulator's truth (down for the grace plus the
 * slack, counted from the later of its death and the leader's boot: a checker of its own that
 * still holds if the failure detector never notices), or the leader's own view (it has seen the
 * host dead or left, or does not know it, for the grace, and has run for the grace: the rule
 * peer.ts marks by), plus a round to act. Either way the leader must have led long enough to act.
 */
export function lostDue(id: string, downSinceUs: number, rule: LostRule, atUs: number): boolean {
  if (atUs < rule.leaderSinceUs + NEW_LEADER_MARKING_US) return false
  if (atUs >= Math.max(downSinceUs, rule.leaderUpSinceUs) + rule.graceUs + LOST_MARKING_SLACK_US) return true
  const seen = rule.leaderView.get(id)
  const goneForUs = seen === undefined ? Infinity : seen.state === 'dead' || seen.state === 'left' ? seen.forUs : -Infinity
  const due = rule.graceUs + MARK_ROUND_SLACK_US
  return goneForUs >= due && rule.leaderUpForUs >= due
}

/** Most differences one violation lists. */
const SHOWN_MAX = 5

/**
 * Violations of the container records in `stored` (the whole containers/ range of a converged
 * replica). With `lost`, hosts down long enough (lostDueUs) must have no record that is not `lost`.
 */
export function checkContainerRecords(hosts: readonly HostTruth[], stored: readonly KeyValue[], atUs: number, lost?: LostRule): Violation[] {
  const problems: string[] = []
  const byHost = new Map<string, KeyValue[]>()
  for (const kv of stored) {
    const [host = '', id = ''] = kv.key.slice(CONTAINERS_PREFIX.length).split('/')
    const parsed = parseContainer(kv.value)
    if (!parsed.ok) problems.push(`${kv.key} does not parse: ${parsed.error}`)
    else if (parsed.record.host !== host || parsed.record.id !== id) problems.push(`${kv.key} holds container ${parsed.record.id} of host ${parsed.record.host}`)
    const list = byHost.get(host) ?? []
    list.push(kv)
    byHost.set(host, list)
  }
  for (const h of hosts) {
    if (!h.member) {
      const down = h.downSinceUs ?? null
      if (lost === undefined || down === null) continue
      if (!lostDue(h.id, down, lost, atUs)) continue
      const live: string[] = []
      for (const kv of byHost.get(h.id) ?? []) {
        const parsed = parseContainer(kv.value)
        if (parsed.ok && parsed.record.state !== 'lost') live.push(`${parsed.record.name} (${parsed.record.state})`)
      }
      if (live.length > 0) {
        problems.push(`host ${h.id} has been down since ${formatTime(down)} and the leader's ${formatTime(lost.graceUs)} grace for it has run out, yet its records still show ${live.slice(0, SHOWN_MAX).join(', ')}${live.length > SHOWN_MAX ? ` (and ${live.length - SHOWN_MAX} more)` : ''} instead of lost or removed`)
      }
      continue
    }
    const have = new Map((byHost.get(h.id) ?? []).map((kv) => [kv.key, kv.value]))
    const differences: string[] = []
    for (const c of h.engine) {
      const key = `${CONTAINERS_PREFIX}${h.id}/${c.id}`
      const value = have.get(key)
      have.delete(key)
      if (value === undefined) differences.push(`${c.name} (${c.state}) is missing`)
      else if (!sameBytes(value, encodeRecord(c))) {
        const parsed = parseContainer(value)
        differences.push(`${c.name} is stored as ${parsed.ok ? parsed.record.state : 'garbage'} but is ${c.state}`)
      }
    }
    for (const key of have.keys()) differences.push(`${key.slice(key.lastIndexOf('/') + 1, key.lastIndexOf('/') + 13)} is stored but no longer exists`)
    if (differences.length > 0) {
      problems.push(`host ${h.id}: ${differences.slice(0, SHOWN_MAX).join('; ')}${differences.length > SHOWN_MAX ? ` (and ${differences.length - SHOWN_MAX} more)` : ''}`)
    }
  }
  return problems.map((message) => ({ checker: 'container-records', atUs, message }))
}
