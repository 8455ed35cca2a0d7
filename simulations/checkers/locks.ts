// Lock safety, judged by fencing token. A hold is the span during which a
// client believed it held a lock (from seeing itself first in the queue on its
// node's replica until it released, lost the key, or its session may have
// expired). Three properties:
//
//   one token, one holder   a fencing token is never handed to two sessions
//   tokens only grow        a later acquisition carries a larger token, so a
//                           fenced resource always prefers the newer holder
//   mutual exclusion        no two holds of one lock overlap in simulated time

import type { LockHold } from '../history.ts'
import { formatTime } from '../trace.ts'
import type { Violation } from './violation.ts'

/** Checks every lock's holds; `endUs` closes holds still open when the run ended. */
export function checkLocks(holds: readonly LockHold[], endUs: number): Violation[] {
  const byLock = new Map<string, LockHold[]>()
  for (const h of holds) {
    let list = byLock.get(h.lock)
    if (list === undefined) {
      list = []
      byLock.set(h.lock, list)
    }
    list.push(h)
  }
  const out: Violation[] = []
  for (const lock of [...byLock.keys()].sort()) {
    const list = (byLock.get(lock) ?? []).slice().sort((a, b) => a.fromUs - b.fromUs || a.token - b.token)
    const ownerOf = new Map<number, LockHold>()
    let latest: LockHold | null = null
    for (const h of list) {
      const owner = ownerOf.get(h.token)
      if (owner === undefined) ownerOf.set(h.token, h)
      else if (owner.leaseId !== h.leaseId) {
        out.push({ checker: 'lock-safety', atUs: h.fromUs, message: `${lock}: fencing token ${h.token} was given to ${owner.client} (lease ${owner.leaseId}) and to ${h.client} (lease ${h.leaseId})` })
      }
      if (latest !== null) {
        if (h.token < latest.token) {
          out.push({ checker: 'lock-safety', atUs: h.fromUs, message: `${lock}: ${h.client} acquired it at ${formatTime(h.fromUs)} with token ${h.token}, smaller than ${latest.client}'s earlier token ${latest.token}` })
        }
        const latestEnd = Math.min(latest.toUs, endUs)
        if (h.fromUs < latestEnd && h.leaseId !== latest.leaseId) {
          out.push({ checker: 'lock-safety', atUs: h.fromUs, message: `${lock}: ${latest.client} (token ${latest.token}, via ${latest.node}) held it until ${formatTime(latestEnd)}, but ${h.client} (token ${h.token}, via ${h.node}) held it from ${formatTime(h.fromUs)}` })
        }
      }
      if (latest === null || Math.min(h.toUs, endUs) >= Math.min(latest.toUs, endUs)) latest = h
    }
  }
  return out
}
