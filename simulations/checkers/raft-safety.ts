// Raft's safety properties (thesis §3.6.3, Figure 3.2), checked online on
// every step of every node, so a breach stops the run where it happens:
//
//   election safety      at most one leader per term (by role changes, and by
//                        every leader-only message sent: app, heartbeat, snap)
//   log matching         two entries with the same index and term carry the
//                        same payload and follow the same term (by induction
//                        over every persisted entry, the logs are identical
//                        up to there)
//   leader completeness  a new leader holds every entry committed in an
//                        earlier term (one committed in a later term need not
//                        be there: a stale election can finish late)
//   commit agreement     no two nodes commit different terms at one index
//   state machine safety no two nodes apply different entries at one index
//
// plus each core's own assertInvariants() after every input.

import type { Entry, Message, Ready, Snapshot, SoftState } from '../../protocols/raft/index.ts'
import type { RaftObserver, SimNode } from '../node.ts'
import type { Scheduler } from '../scheduler.ts'
import { ViolationError, type CheckerName } from './violation.ts'

/** What the checker remembers of one (index, term) entry. */
interface EntryRecord {
  readonly hash: number
  /** Term of the entry before it in the log of the first node that persisted it; -1 if unknown there. */
  prevTerm: number
  readonly node: string
}

/** An applied entry, by index. */
interface AppliedRecord {
  readonly term: number
  readonly hash: number
  readonly node: string
}

/** The online Raft safety checker; plug it in as the nodes' RaftObserver. */
export class RaftSafetyChecker implements RaftObserver {
  /** Leader of each term seen so far. */
  readonly leaders = new Map<number, string>()
  /** Highest index known committed. */
  maxCommitted = 0
  private readonly scheduler: Scheduler
  private readonly entries = new Map<number, Map<number, EntryRecord>>()
  /** committedTerms[i]: the term of the entry committed at index i (0: not known). */
  private readonly committedTerms: number[] = []
  /** committedIn[i]: the earliest term in which any node knew index i committed (the committing leader's term). */
  private readonly committedIn: number[] = []
  private readonly appliedAt: Array<AppliedRecord | undefined> = []
  private readonly checkedCommit = new Map<string, number>()
  private readonly checkStore: boolean

  /** `checkStore`: also run each StateStore's assertInvariants() after every applied batch. */
  constructor(scheduler: Scheduler, checkStore: boolean) {
    this.scheduler = scheduler
    this.checkStore = checkStore
  }

  /** The entry hash applied at `index` by anyone, if known (the durability checker compares against it). */
  appliedHash(index: number): number | undefined {
    return this.appliedAt[index]?.hash
  }

  afterInput(node: SimNode): void {
    node.assertRaftInvariants()
  }

  persisted(node: SimNode, rd: Ready): void {
    const first = rd.entries[0]
    if (first !== undefined) {
      let prevTerm = node.core.logTerm(first.index - 1) ?? -1
      for (const e of rd.entries) {
        this.recordEntry(node, e, prevTerm)
        prevTerm = e.term
      }
    }
    if (rd.hardState !== undefined) this.recordCommit(node, rd.hardState.commit, rd.hardState.term)
  }

  sent(node: SimNode, m: Message): void {
    if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') this.recordLeader(node.id, m.term, `sends '${m.type}'`)
  }

  applied(node: SimNode, e: Entry): void {
    const hash = entryHash(e)
    const known = this.appliedAt[e.index]
    if (known === undefined) {
      this.appliedAt[e.index] = { term: e.term, hash, node: node.id }
    } else if (known.term !== e.term || known.hash !== hash) {
      this.fail('state-machine-safety', `${node.id} applies index ${e.index} (term ${e.term}), but ${known.node} applied a different entry there (term ${known.term})`)
    }
    const committed = this.committedTerms[e.index]
    if (committed !== undefined && committed !== 0 && committed !== e.term) {
      this.fail('state-machine-safety', `${node.id} applies index ${e.index} from term ${e.term}, but term ${committed} was committed there`)
    }
  }

  appliedBatch(node: SimNode): void {
    if (this.checkStore) node.store.assertInvariants()
  }

  snapshotInstalled(node: SimNode, snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata
    const committed = this.committedTerms[index]
    if (committed !== undefined && committed !== 0 && committed !== term) {
      this.fail('state-machine-safety', `${node.id} installs a snapshot at ${index} (term ${term}), but term ${committed} was committed there`)
    }
  }

  roleChanged(node: SimNode, soft: SoftState): void {
    if (soft.role !== 'leader') return
    const st = node.core.status()
    this.recordLeader(node.id, st.term, 'becomes leader')
    // Leader completeness (thesis §3.6.3): an entry committed in term T is in the log of
    // every leader of a term after T.
    for (let i = 1; i <= this.maxCommitted; i++) {
      const committed = this.committedTerms[i]
      const inTerm = this.committedIn[i]
      if (committed === undefined || committed === 0 || inTerm === undefined || inTerm >= st.term) continue
      if (i > st.lastIndex) {
        this.fail('leader-completeness', `${node.id} leads term ${st.term} with a log ending at ${st.lastIndex}, but index ${i} was committed in term ${inTerm}`)
      }
      if (i < st.firstIndex - 1) continue
      const t = node.core.logTerm(i)
      if (t !== undefined && t !== committed) {
        this.fail('leader-completeness', `${node.id} leads term ${st.term} with term ${t} at index ${i}, where term ${committed} was committed in term ${inTerm}`)
      }
    }
  }

  private recordEntry(node: SimNode, e: Entry, prevTerm: number): void {
    let byTerm = this.entries.get(e.index)
    if (byTerm === undefined) {
      byTerm = new Map()
      this.entries.set(e.index, byTerm)
    }
    const hash = entryHash(e)
    const known = byTerm.get(e.term)
    if (known === undefined) {
      byTerm.set(e.term, { hash, prevTerm, node: node.id })
      return
    }
    if (known.hash !== hash) {
      this.fail('log-matching', `${node.id} and ${known.node} hold different entries at index ${e.index}, term ${e.term}`)
    }
    if (prevTerm !== -1 && known.prevTerm !== -1 && prevTerm !== known.prevTerm) {
      this.fail('log-matching', `entry (${e.index}, term ${e.term}) follows term ${prevTerm} on ${node.id} but term ${known.prevTerm} on ${known.node}`)
    }
    if (known.prevTerm === -1) known.prevTerm = prevTerm
  }

  private recordCommit(node: SimNode, commit: number, currentTerm: number): void {
    const from = (this.checkedCommit.get(node.id) ?? 0) + 1
    for (let i = from; i <= commit; i++) {
      const t = node.core.logTerm(i)
      if (t === undefined) continue
      const seenIn = this.committedIn[i]
      if (seenIn === undefined || currentTerm < seenIn) this.committedIn[i] = currentTerm
      const known = this.committedTerms[i]
      if (known === undefined || known === 0) {
        this.committedTerms[i] = t
      } else if (known !== t) {
        this.fail('commit-agreement', `${node.id} commits term ${t} at index ${i}, where term ${known} was committed before`)
      }
    }
    if (commit > this.maxCommitted) this.maxCommitted = commit
    this.checkedCommit.set(node.id, Math.max(commit, from - 1))
  }

  private recordLeader(id: string, term: number, how: string): void {
    const known = this.leaders.get(term)
    if (known === undefined) this.leaders.set(term, id)
    else if (known !== id) this.fail('election-safety', `${id} ${how} in term ${term}, which ${known} already leads`)
  }

  private fail(checker: CheckerName, message: string): never {
    throw new ViolationError({ checker, atUs: this.scheduler.nowUs, message })
  }
}

/** A 32-bit FNV-1a hash of an entry's type and payload. */
export function entryHash(e: Entry): number {
  let h = e.type === 'normal' ? 0x811c9dc5 : 0x050c5d1f
  const d = e.data
  for (let i = 0; i < d.length; i++) h = Math.imul(h ^ (d[i] as number), 0x01000193)
  return Math.imul(h ^ d.length, 0x01000193) >>> 0
}
