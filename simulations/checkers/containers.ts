// Container records after the faults end: every host that runs a peer has,
// in the replicated state, exactly what its engine holds (nothing missed, no
// stale state, nothing left over), whatever events were lost while the peer or
// its engine was down; and no host's records were written under another
// host's name.

import { sameBytes } from '../../runtime/container-reconcile.ts'
import { CONTAINERS_PREFIX, encodeRecord, parseContainer, type Container, type KeyValue } from '../../storage/statestore/index.ts'
import type { Violation } from './violation.ts'

/** One host as the check sees it. */
export interface HostTruth {
  readonly id: string
  /** Whether its peer runs and is a member: its records must equal `engine` then. */
  readonly member: boolean
  /** What its engine holds. */
  readonly engine: readonly Container[]
}

/** Most differences one violation lists. */
const SHOWN_MAX = 5

/** Violations of the container records in `stored` (the whole containers/ range of a converged replica). */
export function checkContainerRecords(hosts: readonly HostTruth[], stored: readonly KeyValue[], atUs: number): Violation[] {
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
    if (!h.member) continue
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
