// Internal consistency checks of a Raft peer, run by RaftCore.assertInvariants()
// after every input in tests and in the simulator (TigerBeetle-style
// assertions: what must hold, stated once).

import { assertNever } from './messages.ts'
import type { Raft } from './raft.ts'
import { invariant, type Entry } from './types.ts'

/** Throws RaftInvariantError if `r` is internally inconsistent. */
export function checkRaftInvariants(r: Raft): void {
  const log = r.log
  const last = log.lastIndex()
  invariant(log.applied <= log.applying, () => `applied ${log.applied} > applying ${log.applying}`)
  invariant(log.applying <= log.committed, () => `applying ${log.applying} > commit ${log.committed}`)
  invariant(log.committed <= last, () => `commit ${log.committed} > last index ${last}`)
  invariant(log.firstIndex() - 1 <= last, 'first index past last index + 1')
  invariant(log.lastTerm() <= r.term, () => `last log term ${log.lastTerm()} > current term ${r.term}`)
  const u = log.unstable
  invariant(u.offset <= u.offsetInProgress && u.offsetInProgress <= u.offset + u.entries.length, 'unstable cursors')
  for (let i = 0; i < u.entries.length; i++) {
    const e = u.entries[i] as Entry
    invariant(e.index === u.offset + i, () => `unstable entry ${e.index} out of place`)
    if (i > 0) invariant(e.term >= (u.entries[i - 1] as Entry).term, 'unstable terms decrease')
  }
  invariant(
    r.randomizedElectionTimeout >= r.electionTicks && r.randomizedElectionTimeout < 2 * r.electionTicks,
    'randomized election timeout outside [E, 2E)',
  )
  for (const id of r.trk.voters) invariant(!r.trk.learners.has(id), () => `${id} both voter and learner`)
  invariant(
    r.trk.progress.size === r.trk.voters.size + r.trk.learners.size,
    'progress does not match membership',
  )
  switch (r.role) {
    case 'leader': {
      invariant(r.lead === r.id, 'leader does not know it leads')
      if (r.trk.isVoter(r.id)) invariant(r.vote === r.id, 'voter leader did not vote for itself')
      else invariant(r.leadTransferee !== null, 'leader outside its configuration is not handing over')
      invariant(!log.hasPendingSnapshot(), 'leader with a pending snapshot')
      for (const [id, pr] of r.trk.progress) {
        invariant(pr.match < pr.next, () => `${id}: match ${pr.match} >= next ${pr.next}`)
        invariant(pr.next <= last + 1, () => `${id}: next ${pr.next} > last index + 1`)
        invariant(pr.isLearner === r.trk.learners.has(id), () => `${id}: learner flag`)
        invariant(pr.inflights.count() <= r.trk.bounds.maxInflightMsgs, () => `${id}: inflight overflow`)
        if (pr.state === 'snapshot') invariant(pr.pendingSnapshot > 0, () => `${id}: snapshot state without snapshot`)
        else invariant(pr.pendingSnapshot === 0, () => `${id}: pending snapshot outside snapshot state`)
        if (pr.state !== 'replicate') invariant(pr.inflights.count() === 0, () => `${id}: inflights outside replicate`)
      }
      const self = r.trk.progress.get(r.id)
      if (self !== undefined) invariant(self.match <= log.lastStableIndex(), 'leader counts unpersisted entries')
      invariant(r.uncommittedBytes >= 0, 'negative uncommitted size')
      invariant(
        r.readOnly.size() + r.heldReads.length <= r.maxPendingReadIndexRequests,
        'pending read bound exceeded',
      )
      break
    }
    case 'candidate':
      invariant(r.vote === r.id && r.lead === null, 'candidate must vote for itself and know no leader')
      break
    case 'pre-candidate':
      invariant(r.lead === null, 'pre-candidate knows a leader')
      break
    case 'follower':
      invariant(r.lead !== r.id, 'follower leads')
      invariant(r.leadTransferee === null, 'follower transferring leadership')
      break
    default:
      assertNever(r.role)
  }
}
