// The Raft protocol state machine: roles, elections, replication, commitment,
// membership, snapshots, ReadIndex and leadership transfer. Modelled on
// etcd-io/raft's `raft` struct; RaftCore (core.ts) wraps it with the
// Ready/advance handshake.
//
// Everything here is synchronous and deterministic: input is step(message) and
// tick(), output is `msgs`, `readStates` and the log's unstable tail.
// Randomness comes only from the injected `random`.

import { decodeConfChange, validateConfChange, type ConfChange } from './conf-change.ts'
import { resolveConfig, type RaftConfig, type RaftTestingFaults } from './config.ts'
import { RaftLog } from './log.ts'
import {
  FORWARDED_TERM,
  assertNever,
  isForwardedRequest,
  type AppendMessage,
  type AppendResponse,
  type HeartbeatMessage,
  type HeartbeatResponse,
  type Message,
  type PreVoteRequest,
  type SnapshotMessage,
  type VoteRequest,
} from './messages.ts'
import type { Progress } from './progress.ts'
import { ReadOnly } from './read-only.ts'
import type { ProposeResult, ReadIndexResult, TransferResult } from './results.ts'
import { ProgressTracker } from './tracker.ts'
import { checkRaftInvariants } from './invariants.ts'
import {
  LOG_LOSS_EVENTS_MAX,
  invariant,
  payloadBytes,
  type LogLossEvent,
  type ConfState,
  type Entry,
  type HardState,
  type NodeId,
  type ProposedEntry,
  type ReadState,
  type Role,
  type Snapshot,
} from './types.ts'

/** Ways of starting an election. */
type CampaignKind = 'pre-election' | 'election' | 'transfer'

/** A ReadIndex request held until the leader commits an entry of its own term. */
interface HeldRead {
  readonly from: NodeId
  readonly context: Uint8Array
}

/** The Raft state machine of one peer. */
export class Raft {
  /** This peer's id. */
  readonly id: NodeId
  /** Current term (persisted). */
  term = 0
  /** Candidate voted for in the current term (persisted). */
  vote: NodeId | null = null
  /** Leader of the current term, when known. */
  lead: NodeId | null = null
  /** Current role. */
  role: Role = 'follower'
  /** The log and its cursors. */
  readonly log: RaftLog
  /** Membership, progress and votes. */
  trk: ProgressTracker
  /** Messages to send once the state they depend on is persisted. */
  msgs: Message[] = []
  /** Confirmed reads to hand to the driver. */
  readStates: ReadState[] = []
  /** Log losses found since the last Ready, for the driver to log (bounded: LOG_LOSS_EVENTS_MAX). */
  logLossEvents: LogLossEvent[] = []

  /** Ticks since the last election timeout reset (leader: since the last check-quorum round). */
  electionElapsed = 0
  /** Leader only: ticks since the last heartbeat broadcast. */
  heartbeatElapsed = 0
  /** This term's randomized election timeout, in [electionTicks, 2*electionTicks). */
  randomizedElectionTimeout: number
  /** Leader only: the peer leadership is being handed to. */
  leadTransferee: NodeId | null = null
  /** Leader only: index of the latest conf change it appended (0 = none this term). */
  pendingConfIndex = 0
  /** Leader only: payload bytes of its uncommitted tail (approximate from above). */
  uncommittedBytes = 0
  /** Leader only: reads awaiting a heartbeat quorum. */
  readOnly = new ReadOnly()
  /** Leader only: reads that arrived before it committed an entry of its term (thesis §6.4 step 1). */
  heldReads: HeldRead[] = []
  /**
   * Set when we apply a conf change that removes or demotes us, cleared when a
   * leader contacts us. While set we may still campaign, without counting our
   * own vote: the voters of the new configuration may not know yet that it is
   * committed and may still need us (thesis §4.2.2). Replaying the log after a
   * restart sets it again.
   */
  campaignWhileRemoved = false
  /** Leader only: ticks each follower has spent in snapshot state. */
  private readonly snapshotTicks = new Map<NodeId, number>()
  /**
   * Our log lost entries through this index that we may have acknowledged (0:
   * none). Until the log reaches it again, copied from a leader, we neither
   * vote nor campaign: with a log shorter than what a quorum counted on, a
   * vote could elect a leader that lacks committed entries (Alagappan et al.,
   * "Protocol-Aware Recovery for Consensus-Based Storage", FAST'18: a node
   * that lost data must not vote until repaired). We still accept and
   * acknowledge appends: an acknowledgement covers only what the append's
   * consistency check proved we hold.
   */
  repairIndex: number

  /** Ticks of the base election timeout. */
  readonly electionTicks: number
  /** Ticks between heartbeats. */
  readonly heartbeatTicks: number
  /** Whether pre-vote is on. */
  readonly preVote: boolean
  /** Whether check-quorum (and the follower lease) is on. */
  readonly checkQuorum: boolean
  /** Bound on one append message's entry bytes. */
  readonly maxSizePerMsgBytes: number
  /** Bound on the uncommitted tail's payload bytes. */
  readonly maxUncommittedEntriesBytes: number
  /** Bound on unconfirmed ReadIndex requests. */
  readonly maxPendingReadIndexRequests: number
  /** Ticks before an unreported snapshot is retried. */
  readonly snapshotTimeoutTicks: number
  /** Whether follower-side forwarding is off. */
  readonly disableProposalForwarding: boolean
  /** Test-only broken variants (config.ts RaftTestingFaults); empty in real use. */
  private readonly testingFaults: RaftTestingFaults
  private readonly random: () => number

  /** Restores a peer from `config.storage` as a follower. */
  constructor(raw: RaftConfig) {
    const config = resolveConfig(raw)
    this.id = config.id
    this.electionTicks = config.electionTicks
    this.heartbeatTicks = config.heartbeatTicks
    this.random = config.random
    this.preVote = config.preVote
    this.checkQuorum = config.checkQuorum
    this.maxSizePerMsgBytes = config.maxSizePerMsgBytes
    this.maxUncommittedEntriesBytes = config.maxUncommittedEntriesBytes
    this.maxPendingReadIndexRequests = config.maxPendingReadIndexRequests
    this.snapshotTimeoutTicks = config.snapshotTimeoutTicks
    this.disableProposalForwarding = config.disableProposalForwarding
    this.testingFaults = config.testingFaults
    this.log = new RaftLog(config.storage, config.maxCommittedBytesPerReady)
    this.trk = new ProgressTracker({ maxInflightMsgs: config.maxInflightMsgs, maxInflightBytes: config.maxInflightBytes })
    this.randomizedElectionTimeout = config.electionTicks
    this.repairIndex = config.repairIndex

    const { hardState, confState } = config.storage.initialState()
    this.restoreConf(confState)
    this.loadState(hardState)
    if (config.applied !== undefined && config.applied > this.log.applied) {
      invariant(config.applied <= this.log.committed, () => `applied ${config.applied} > commit ${this.log.committed}`)
      this.log.appliedTo(config.applied)
    }
    this.becomeFollower(this.term, null)
  }

  // ---------------------------------------------------------------- state

  /** The state to persist (thesis §3.8). */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed }
  }

  private loadState(hs: HardState): void {
    // A commit below the compaction point predates a snapshot and says nothing new.
    const commit = Math.max(hs.commit, this.log.committed)
    invariant(commit <= this.log.lastIndex(), () => `hard state commit ${commit} beyond last index ${this.log.lastIndex()}`)
    this.log.committed = commit
    this.term = hs.term
    this.vote = hs.vote
  }

  private restoreConf(cs: ConfState): void {
    this.trk = new ProgressTracker(this.trk.bounds)
    const next = this.log.lastIndex() + 1
    for (const id of cs.voters) this.trk.addMember(id, false, next)
    for (const id of cs.learners) this.trk.addMember(id, true, next)
  }

  /**
   * Whether this peer may campaign: a voter (or a just-removed peer, see
   * campaignWhileRemoved) with no snapshot being installed (etcd promotable).
   */
  promotable(): boolean {
    return (this.trk.isVoter(this.id) || this.campaignWhileRemoved) && !this.log.hasPendingSnapshot() && !this.needsRepair()
  }

  /** Whether our log still lacks entries it lost after acknowledging them (see repairIndex). */
  needsRepair(): boolean {
    if (this.repairIndex > 0 && this.log.lastIndex() >= this.repairIndex) {
      // Entries up to here now came from a leader's appends (or its snapshot),
      // which hold every committed entry: repaired. Later truncations of an
      // uncommitted tail are ordinary Raft and need nothing of this.
      this.repairIndex = 0
    }
    return this.repairIndex > 0
  }

  // ---------------------------------------------------------------- roles

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term
      this.vote = null
    }
    this.lead = null
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.resetRandomizedElectionTimeout()
    this.leadTransferee = null
    this.trk.resetVotes()
    const next = this.log.lastIndex() + 1
    for (const id of this.trk.memberIds()) {
      const old = this.trk.progress.get(id) as Progress
      const pr = this.trk.newProgress(old.isLearner, next)
      pr.recentActive = false
      this.trk.progress.set(id, pr)
    }
    this.snapshotTicks.clear()
    this.pendingConfIndex = 0
    this.uncommittedBytes = 0
    // Unconfirmed reads die with the term; their requesters retry (as etcd).
    this.readOnly = new ReadOnly()
    this.heldReads = []
  }

  private resetRandomizedElectionTimeout(): void {
    const r = this.random()
    invariant(r >= 0 && r < 1, () => `random() returned ${r}, outside [0, 1)`)
    // Thesis §3.4: timeouts drawn from [T, 2T) make split votes rare.
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(r * this.electionTicks)
  }

  /** Becomes a follower in `term`, following `lead` if known. */
  becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term)
    this.lead = lead
    this.role = 'follower'
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', 'leader cannot become candidate')
    this.reset(this.term + 1)
    this.vote = this.id
    this.role = 'candidate'
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', 'leader cannot become pre-candidate')
    // Pre-vote changes neither term nor vote (thesis §9.6), only the role.
    this.trk.resetVotes()
    this.lead = null
    this.role = 'pre-candidate'
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', 'only a candidate becomes leader')
    this.reset(this.term)
    this.lead = this.id
    this.role = 'leader'
    const self = this.trk.progress.get(this.id)
    if (self !== undefined) {
      // The leader counts itself only for entries already on its disk; newer
      // ones are counted in onPersisted once the driver has written them.
      self.match = this.log.lastStableIndex()
      self.becomeReplicate()
      self.recentActive = true
    }
    // Any conf change in the uncommitted tail may still be pending: refuse new
    // ones until everything up to here is applied (etcd; guards the
    // single-server change bug discussed on raft-dev, 2015).
    this.pendingConfIndex = this.log.lastIndex()
    // Thesis §6.4 / §3.6.2: a no-op entry of the new term lets the leader learn
    // which entries are committed and serve ReadIndex.
    const appended = this.appendEntries([{ type: 'normal', data: new Uint8Array(0) }])
    invariant(appended !== undefined, 'empty entry refused')
    // A leader elected while outside its own configuration only finishes the
    // job (commits what it has) and hands over.
    if (!this.trk.isVoter(this.id)) this.startHandover()
  }

  // ---------------------------------------------------------------- ticks

  /** Advances logical time by one tick. */
  tick(): void {
    switch (this.role) {
      case 'leader':
        this.tickHeartbeat()
        return
      case 'follower':
      case 'pre-candidate':
      case 'candidate':
        this.tickElection()
        return
      default:
        assertNever(this.role)
    }
  }

  private tickElection(): void {
    this.electionElapsed++
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.hup(this.preVote ? 'pre-election' : 'election')
    }
  }

  /**
   * Whether we are removed or demoted but may still be needed to finish that
   * change: leading its handover, or allowed to campaign because the
   * remaining voters may not know yet that it committed. A driver must not
   * shut a removed peer down while this holds.
   */
  leaving(): boolean {
    if (this.trk.isVoter(this.id)) return false
    return this.campaignWhileRemoved || this.role === 'leader'
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0
      if (this.checkQuorum) this.checkQuorumActive()
      // A transfer that did not finish within an election timeout is abandoned
      // (thesis §3.10); a leader outside its configuration tries again.
      if (this.role === 'leader' && this.leadTransferee !== null) {
        this.leadTransferee = null
        if (!this.trk.isVoter(this.id)) this.startHandover()
      }
    }
    if (this.role !== 'leader') return
    this.tickSnapshotTimeouts()
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0
      this.bcastHeartbeat()
    }
  }

  private checkQuorumActive(): void {
    // Thesis §6.2: a leader that has not heard from a majority within an
    // election timeout steps down, so clients find the real leader.
    const active = this.trk.quorumActive(this.id)
    for (const [id, pr] of this.trk.progress) {
      if (id !== this.id) pr.recentActive = false
    }
    if (!active) this.becomeFollower(this.term, null)
  }

  private tickSnapshotTimeouts(): void {
    for (const [id, pr] of this.trk.progress) {
      if (pr.state !== 'snapshot') {
        this.snapshotTicks.delete(id)
        continue
      }
      const ticks = (this.snapshotTicks.get(id) ?? 0) + 1
      if (ticks >= this.snapshotTimeoutTicks) {
        // The driver never reported the snapshot's fate: assume it was lost.
        this.snapshotTicks.delete(id)
        this.reportSnapshot(id, false)
      } else {
        this.snapshotTicks.set(id, ticks)
      }
    }
  }

  // ---------------------------------------------------------------- elections

  /** Starts an election now, if this peer may (etcd MsgHup). */
  hup(kind: CampaignKind): void {
    if (this.role === 'leader') return
    if (!this.promotable()) return
    // A peer that has committed but not applied a conf change does not know its
    // current membership; it must not campaign with the stale one (etcd).
    if (this.hasUnappliedConfChanges()) return
    // A removed peer always asks first (pre-vote, thesis §9.6): it then
    // disturbs nobody's term unless its log is the one the voters need.
    this.campaign(this.trk.isVoter(this.id) ? kind : 'pre-election')
  }

  private hasUnappliedConfChanges(): boolean {
    let lo = this.log.applied + 1
    const hi = this.log.committed + 1
    while (lo < hi) {
      const page = this.log.slice(lo, hi, this.log.maxApplyingBytes)
      invariant(page !== undefined && page.length > 0, () => `unapplied entries from ${lo} unavailable`)
      for (const e of page) if (e.type === 'conf-change') return true
      lo += page.length
    }
    return false
  }

  private campaign(kind: CampaignKind): void {
    let voteTerm: number
    if (kind === 'pre-election') {
      this.becomePreCandidate()
      // Pre-votes ask about the next term without entering it (thesis §9.6).
      voteTerm = this.term + 1
    } else {
      this.becomeCandidate()
      voteTerm = this.term
    }
    // Our own vote counts at once: in this synchronous model the vote reaches
    // disk in the same Ready before any message leaves (thesis §3.8). A
    // removed peer campaigns without counting itself (thesis §4.2.2).
    if (this.trk.isVoter(this.id)) this.trk.recordVote(this.id, true)
    if (this.trk.tallyVotes() === 'won') {
      this.onElectionWon()
      return
    }
    const lastIndex = this.log.lastIndex()
    const lastTerm = this.log.lastTerm()
    for (const id of [...this.trk.voters].sort()) {
      if (id === this.id) continue
      if (kind === 'pre-election') {
        this.send({ type: 'pre-vote', from: this.id, to: id, term: voteTerm, lastIndex, lastTerm })
      } else {
        this.send({
          type: 'vote',
          from: this.id,
          to: id,
          term: voteTerm,
          lastIndex,
          lastTerm,
          transfer: kind === 'transfer',
        })
      }
    }
  }

  private onElectionWon(): void {
    if (this.role === 'pre-candidate') {
      this.campaign('election')
    } else {
      this.becomeLeader()
      // (A leader outside its configuration may already have stepped down.)
      if (this.role === 'leader') this.bcastAppend()
    }
  }

  private poll(from: NodeId, granted: boolean): void {
    this.trk.recordVote(from, granted)
    switch (this.trk.tallyVotes()) {
      case 'won':
        this.onElectionWon()
        return
      case 'lost':
        // A lost pre-vote carries a future term; stay in our own term.
        this.becomeFollower(this.term, null)
        return
      case 'pending':
        return
    }
  }

  private onVoteRequest(m: VoteRequest | PreVoteRequest): void {
    // Grant if this repeats the vote we cast, if we have not voted and know no
    // leader in this term, or if it is a pre-vote for a later term...
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === 'pre-vote' && m.term > this.term)
    // ...and the candidate's log is at least as up to date as ours (thesis §3.6.1).
    // Learners answer too: one promoted by a conf change it has not applied yet
    // may be needed for a quorum (etcd). A peer whose log lost acknowledged
    // entries never grants: "up to date" would be judged against a log shorter
    // than the one the quorum counted on (see repairIndex).
    const grant = canVote && !this.needsRepair() && this.log.isUpToDate(m.lastIndex, m.lastTerm)
    if (m.type === 'pre-vote') {
      // A granted pre-vote echoes the asked-for term so the pre-candidate,
      // still in its old term, does not discard the answer.
      this.send({ type: 'pre-vote-resp', from: this.id, to: m.from, term: grant ? m.term : this.term, reject: !grant })
      return
    }
    this.send({ type: 'vote-resp', from: this.id, to: m.from, term: this.term, reject: !grant })
    if (grant) {
      this.electionElapsed = 0
      this.vote = m.from
    }
  }

  // ---------------------------------------------------------------- step

  /** Handles a message from a peer. */
  step(m: Message): void {
    if (m.term === FORWARDED_TERM) {
      // Only forwarded requests travel without a term; anything else is malformed.
      if (!isForwardedRequest(m)) return
    } else if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'pre-vote') {
        const force = m.type === 'vote' && m.transfer
        const inLease = this.checkQuorum && this.lead !== null && this.electionElapsed < this.electionTicks
        if (!force && inLease) {
          // Thesis §4.2.3: a server that heard from a current leader within the
          // minimum election timeout neither adopts the term nor votes, so a
          // removed or rejoining server cannot depose a healthy leader.
          return
        }
      }
      if (m.type === 'pre-vote') {
        // Never change term for a pre-vote (thesis §9.6).
      } else if (m.type === 'pre-vote-resp' && !m.reject) {
        // A granted pre-vote carries the term we asked about, not a newer leader's.
      } else {
        const fromLeader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap'
        this.becomeFollower(m.term, fromLeader ? m.from : null)
      }
    } else if (m.term < this.term) {
      if (this.testingFaults.countStaleTermVotes === true && m.type === 'vote-resp' && this.role === 'candidate') {
        // Broken on purpose (test-only): a vote from an older election counts toward this one.
        this.poll(m.from, !m.reject)
        return
      }
      if (m.type === 'heartbeat' || m.type === 'app' || m.type === 'snap') {
        // A leader of an older term is talking to us: maybe we advanced our term
        // while partitioned. Answer with our term so it steps down and a fresh
        // election can reunite us (thesis §3.3; pre-vote makes this rare).
        // etcd answers only with check-quorum or pre-vote on and otherwise waits
        // for our next vote request, but a learner never sends one: it would be
        // cut off for good.
        this.send({
          type: 'app-resp',
          from: this.id,
          to: m.from,
          term: this.term,
          index: 0,
          reject: false,
          rejectHint: 0,
          hintTerm: 0,
        })
      } else if (m.type === 'pre-vote') {
        this.send({ type: 'pre-vote-resp', from: this.id, to: m.from, term: this.term, reject: true })
      }
      // Otherwise: a stale message, ignored (thesis §3.3).
      return
    }

    if (m.type === 'vote' || m.type === 'pre-vote') {
      this.onVoteRequest(m)
      return
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m)
        return
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m)
        return
      case 'follower':
        this.stepFollower(m)
        return
      default:
        assertNever(this.role)
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'prop':
        this.leaderPropose(m.entries)
        return
      case 'read-index':
        this.leaderReadIndex(m.from, m.context)
        return
      case 'transfer-leader':
        this.leaderTransfer(m.transferee)
        return
      case 'app-resp': {
        const pr = this.trk.progress.get(m.from)
        if (pr !== undefined) this.onAppendResponse(m, pr)
        return
      }
      case 'heartbeat-resp': {
        const pr = this.trk.progress.get(m.from)
        if (pr !== undefined) this.onHeartbeatResponse(m, pr)
        return
      }
      case 'app':
      case 'heartbeat':
      case 'snap':
        // Another leader in our own term: Election Safety is broken (thesis §3.6.3).
        throw new Error(`${this.id}: leader of term ${this.term} got '${m.type}' from ${m.from} in the same term`)
      case 'vote':
      case 'pre-vote':
      case 'vote-resp':
      case 'pre-vote-resp':
      case 'timeout-now':
      case 'read-index-resp':
        // Stale answers from an election we already won, or misdirected.
        return
      default:
        assertNever(m)
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
        // A leader exists in our term: we lost (thesis §3.4).
        this.becomeFollower(m.term, m.from)
        this.heardFromLeader(m.from)
        this.onAppend(m)
        return
      case 'heartbeat':
        this.becomeFollower(m.term, m.from)
        this.heardFromLeader(m.from)
        this.onHeartbeat(m)
        return
      case 'snap':
        this.becomeFollower(m.term, m.from)
        this.heardFromLeader(m.from)
        this.onSnapshot(m)
        return
      case 'vote-resp':
        if (this.role === 'candidate') this.poll(m.from, !m.reject)
        return
      case 'pre-vote-resp':
        if (this.role === 'pre-candidate') this.poll(m.from, !m.reject)
        return
      case 'prop':
      case 'read-index':
      case 'transfer-leader':
        // No leader to forward to: dropped, the requester retries.
        return
      case 'vote':
      case 'pre-vote':
      case 'app-resp':
      case 'heartbeat-resp':
      case 'timeout-now':
      case 'read-index-resp':
        return
      default:
        assertNever(m)
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.heardFromLeader(m.from)
        this.onAppend(m)
        return
      case 'heartbeat':
        this.heardFromLeader(m.from)
        this.onHeartbeat(m)
        return
      case 'snap':
        this.heardFromLeader(m.from)
        this.onSnapshot(m)
        return
      case 'prop':
        // A proposal another peer forwarded to us (it took us for the leader) is
        // dropped, not relayed: relayed, it reaches the leader from us, and the
        // driver vouches for a proposal's origin by its sender, so it would
        // commit under our name. Its proposer would never recognise it, and its
        // retry would then conflict with it. The proposer retries once it knows
        // the leader. (Found by the simulator: minority-partition, seed 17.)
        return
      case 'read-index':
      case 'transfer-leader':
        // Sent to us by a peer that took us for the leader: dropped, as a forwarded
        // proposal is. Relayed, it would carry our id, so the leader's answer to a
        // read would come to us and never to the requester; and two followers with
        // stale views of the leader would pass it back and forth until their terms
        // moved on. One hop only: the requester retries once it knows the leader.
        return
      case 'timeout-now':
        // Thesis §3.10: campaign at once, skipping pre-vote (we know the leader
        // asked us to) and marked so that leases do not block it.
        this.hup('transfer')
        return
      case 'read-index-resp':
        this.readStates.push({ index: m.index, context: m.context })
        return
      case 'vote':
      case 'pre-vote':
      case 'app-resp':
      case 'heartbeat-resp':
      case 'vote-resp':
      case 'pre-vote-resp':
        return
      default:
        assertNever(m)
    }
  }

  private heardFromLeader(lead: NodeId): void {
    this.electionElapsed = 0
    this.lead = lead
    // A working leader manages the cluster; a removed peer is not needed any more.
    this.campaignWhileRemoved = false
  }

  private reportLogLoss(e: LogLossEvent): void {
    // One per heartbeat at worst; only the latest few say anything new.
    if (this.logLossEvents.length >= LOG_LOSS_EVENTS_MAX) this.logLossEvents.shift()
    this.logLossEvents.push(e)
  }

  private send(m: Message): void {
    invariant(m.to !== this.id, () => `${this.id} sending '${m.type}' to itself`)
    this.msgs.push(m)
  }

  // ---------------------------------------------------------------- follower side

  private onAppend(m: AppendMessage): void {
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index already matches any current leader.
      this.sendAppendResponse(m.from, this.log.committed)
      return
    }
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries)
    if (lastNew !== undefined) {
      this.sendAppendResponse(m.from, lastNew)
      return
    }
    // Consistency check failed (thesis §3.5). Hint the largest (index, term)
    // that could still match: no entry of ours with a term above prevTerm can.
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm)
    this.send({
      type: 'app-resp',
      from: this.id,
      to: m.from,
      term: this.term,
      index: m.prevIndex,
      reject: true,
      rejectHint: hint.index,
      hintTerm: hint.term,
    })
  }

  private sendAppendResponse(to: NodeId, index: number): void {
    this.send({ type: 'app-resp', from: this.id, to, term: this.term, index, reject: false, rejectHint: 0, hintTerm: 0 })
  }

  private onHeartbeat(m: HeartbeatMessage): void {
    if (m.commit > this.log.lastIndex()) {
      // The leader sends min(our match, its commit): we acknowledged entries
      // through m.commit in this term, and committed entries are never
      // truncated, so a log that ends before it lost them (a disk that dropped
      // acknowledged writes). Committing is impossible; tell the leader, which
      // otherwise would take our rejections for stale ones forever, and stop
      // voting until the entries are back (etcd panics here: "tocommit out of
      // range ... raft log corrupted, truncated, or lost?").
      this.repairIndex = Math.max(this.repairIndex, m.commit)
      this.reportLogLoss({ kind: 'own-log-lost', leader: m.from, leaderCommit: m.commit, lastIndex: this.log.lastIndex() })
      this.send({
        type: 'app-resp',
        from: this.id,
        to: m.from,
        term: this.term,
        index: m.commit,
        reject: true,
        rejectHint: this.log.committed,
        hintTerm: 0,
        logLost: true,
      })
    } else {
      this.log.commitTo(m.commit)
    }
    this.send({ type: 'heartbeat-resp', from: this.id, to: m.from, term: this.term, readSeq: m.readSeq })
  }

  private onSnapshot(m: SnapshotMessage): void {
    if (this.restore(m.snapshot)) {
      this.sendAppendResponse(m.from, this.log.lastIndex())
    } else {
      this.sendAppendResponse(m.from, this.log.committed)
    }
  }

  /** Installs a leader's snapshot (thesis §5.1); false if it brings nothing new. */
  private restore(s: Snapshot): boolean {
    const { index, term, confState } = s.metadata
    if (index <= this.log.committed) return false
    invariant(this.role === 'follower', 'restoring a snapshot outside follower role')
    // Unlike etcd, a snapshot whose membership lacks us is accepted: it was
    // taken before the conf change that added us, which follows it in the log.
    // It holds only committed state, and refusing it would make the leader
    // resend it forever. Until we apply that change we simply cannot campaign.
    if (this.log.matchTerm(index, term)) {
      // We hold the entry the snapshot ends at, so everything before it is
      // committed; keep our log and just move commit forward (etcd).
      this.log.commitTo(index)
      return false
    }
    this.log.restore(s)
    this.restoreConf(confState)
    return true
  }

  // ---------------------------------------------------------------- leader side

  /** Proposes entries (local client or forwarded). */
  propose(entries: readonly ProposedEntry[]): ProposeResult {
    switch (this.role) {
      case 'leader':
        return this.leaderPropose(entries)
      case 'follower':
        if (this.lead === null) return { ok: false, reason: 'no-leader' }
        if (this.disableProposalForwarding) return { ok: false, reason: 'not-leader' }
        this.send({ type: 'prop', from: this.id, to: this.lead, term: FORWARDED_TERM, entries })
        return { ok: true, kind: 'forwarded', to: this.lead }
      case 'pre-candidate':
      case 'candidate':
        return { ok: false, reason: 'no-leader' }
      default:
        return assertNever(this.role)
    }
  }

  private leaderPropose(entries: readonly ProposedEntry[]): ProposeResult {
    invariant(entries.length > 0, 'empty proposal')
    // A leader removed from the configuration steps down on apply; until then,
    // take nothing new (etcd).
    if (!this.trk.isVoter(this.id)) return { ok: false, reason: 'not-member' }
    // Thesis §3.10: the leader stops accepting client requests during a transfer.
    if (this.leadTransferee !== null) return { ok: false, reason: 'transfer-in-progress' }
    let confChangeAt = -1
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as ProposedEntry
      if (e.type !== 'conf-change') continue
      const cc = decodeConfChange(e.data)
      if (cc === undefined) return { ok: false, reason: 'malformed-conf-change' }
      // One change at a time (thesis §4.1): the previous one must be applied.
      if (confChangeAt >= 0 || this.pendingConfIndex > this.log.applied) {
        return { ok: false, reason: 'conf-change-pending' }
      }
      const rejection = validateConfChange(this.trk.confState(), cc)
      if (rejection !== undefined) return { ok: false, reason: rejection }
      confChangeAt = i
    }
    const appended = this.appendEntries(entries)
    if (appended === undefined) return { ok: false, reason: 'uncommitted-limit' }
    if (confChangeAt >= 0) this.pendingConfIndex = (appended[confChangeAt] as Entry).index
    this.bcastAppend()
    const last = appended[appended.length - 1] as Entry
    return { ok: true, kind: 'appended', index: last.index, term: last.term }
  }

  private appendEntries(proposed: readonly ProposedEntry[]): Entry[] | undefined {
    const bytes = payloadBytes(proposed)
    // Bound the uncommitted tail; an empty tail admits any one proposal, and
    // empty entries are always admitted (the new leader's no-op).
    if (this.uncommittedBytes > 0 && bytes > 0 && this.uncommittedBytes + bytes > this.maxUncommittedEntriesBytes) {
      return undefined
    }
    this.uncommittedBytes += bytes
    const first = this.log.lastIndex() + 1
    const entries = proposed.map((e, i): Entry => ({ index: first + i, term: this.term, type: e.type, data: e.data }))
    this.log.append(entries)
    return entries
  }

  /** Payload bytes of applied entries leave the uncommitted tail. */
  reduceUncommittedSize(bytes: number): void {
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes)
  }

  /**
   * The driver persisted entries through (index, term). A leader now counts
   * itself for them, which may commit (thesis §10.2.1: the leader's own write
   * counts like a follower's).
   */
  onPersisted(index: number, term: number): void {
    if (this.role !== 'leader' || !this.log.matchTerm(index, term)) return
    const self = this.trk.progress.get(this.id)
    if (self === undefined || !self.maybeUpdate(index)) return
    if (this.maybeCommit()) {
      this.releaseHeldReads()
      this.bcastAppend()
    }
  }

  private maybeCommit(): boolean {
    // Thesis §3.6.2: only an entry of the current term is committed by
    // counting replicas; earlier ones are committed with it.
    return this.log.maybeCommit(this.trk.committed(), this.term)
  }

  private bcastAppend(): void {
    for (const id of this.trk.memberIds()) {
      if (id !== this.id) this.maybeSendAppend(id, true)
    }
  }

  private bcastHeartbeat(): void {
    const seq = this.readOnly.heartbeatSeq()
    for (const id of this.trk.memberIds()) {
      if (id !== this.id) this.sendHeartbeat(id, seq)
    }
  }

  private sendHeartbeat(to: NodeId, readSeq: number): void {
    const pr = this.trk.progress.get(to) as Progress
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(pr.match, this.log.committed)
    this.send({ type: 'heartbeat', from: this.id, to, term: this.term, commit, readSeq })
    pr.sentCommitTo(commit)
  }

  /**
   * Sends `to` the entries after its `next`, or a snapshot if they are
   * compacted. With sendIfEmpty false, only sends when there are entries.
   * Returns whether a message went out.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to)
    if (pr === undefined || pr.isPaused()) return false
    const prevIndex = pr.next - 1
    const prevTerm = this.log.term(prevIndex)
    if (prevTerm === undefined) return this.maybeSendSnapshot(to, pr)
    let entries: Entry[] = []
    // With a full window, only empty appends go out; they carry the commit index
    // and, once answered, reopen a window whose messages were all lost (etcd).
    if (pr.state !== 'replicate' || !pr.inflights.full()) {
      const got = this.log.entriesFrom(pr.next, this.maxSizePerMsgBytes)
      if (got === undefined) return this.maybeSendSnapshot(to, pr)
      entries = got
    }
    if (entries.length === 0 && !sendIfEmpty) return false
    this.send({ type: 'app', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed })
    pr.sentEntries(entries.length, payloadBytes(entries))
    pr.sentCommitTo(this.log.committed)
    return true
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    // Only to a peer that answers: a snapshot is expensive (etcd).
    if (!pr.recentActive) return false
    const snapshot = this.log.snapshot()
    if (snapshot === undefined) return false
    invariant(
      snapshot.metadata.index >= this.log.firstIndex() - 1,
      () => `snapshot at ${snapshot.metadata.index} does not cover compacted log before ${this.log.firstIndex()}`,
    )
    pr.becomeSnapshot(snapshot.metadata.index)
    this.snapshotTicks.delete(to)
    this.send({ type: 'snap', from: this.id, to, term: this.term, snapshot })
    return true
  }

  private onAppendResponse(m: AppendResponse, pr: Progress): void {
    pr.recentActive = true
    if (m.reject && m.logLost === true) {
      // The follower's log went backwards below what it acknowledged (see
      // AppendResponse.logLost). An ordinary rejection this far down is taken
      // for a stale, reordered one; this one is flagged, so repair: probe from
      // what it still holds. A duplicate finds match already there and is
      // ignored; a late one after the repair costs one more probe, no more.
      if (pr.resetAfterLogLoss(m.rejectHint)) {
        this.snapshotTicks.delete(m.from)
        this.reportLogLoss({ kind: 'follower-log-lost', follower: m.from, holds: pr.match })
        this.maybeSendAppend(m.from, true)
      }
      return
    }
    if (m.reject) {
      let nextProbe = m.rejectHint
      if (m.hintTerm > 0) {
        // The follower's entry at rejectHint has hintTerm. Our entries with a
        // larger term cannot match it, so skip down to our last entry whose term
        // is <= hintTerm: one round trip per term, not per entry (etcd).
        nextProbe = this.log.findConflictByTerm(m.rejectHint, m.hintTerm).index
      }
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe()
        this.maybeSendAppend(m.from, true)
      }
      return
    }
    if (!(pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe'))) return
    switch (pr.state) {
      case 'probe':
        pr.becomeReplicate()
        break
      case 'snapshot':
        // The follower caught up through a snapshot (any one at or after our
        // first index will do): resume from the log.
        if (pr.match + 1 >= this.log.firstIndex()) {
          pr.becomeProbe()
          pr.becomeReplicate()
        }
        break
      case 'replicate':
        pr.inflights.freeLE(m.index)
        break
    }
    if (this.maybeCommit()) {
      this.releaseHeldReads()
      this.bcastAppend()
    } else if (pr.canBumpCommit(this.log.committed)) {
      this.maybeSendAppend(m.from, true)
    }
    // Fill the reopened window; bounded by the window itself, the loop guard
    // only makes the bound explicit.
    for (let i = 0; i <= this.trk.bounds.maxInflightMsgs; i++) {
      if (!this.maybeSendAppend(m.from, false)) break
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      // The transferee caught up: let it campaign now (thesis §3.10).
      this.sendTimeoutNow(m.from)
    }
  }

  private onHeartbeatResponse(m: HeartbeatResponse, pr: Progress): void {
    pr.recentActive = true
    pr.msgAppFlowPaused = false
    if (pr.match < this.log.lastIndex() || pr.state === 'probe') this.maybeSendAppend(m.from, true)
    if (m.readSeq > 0) {
      this.readOnly.recvAck(m.from, m.readSeq)
      for (const read of this.readOnly.confirmed(this.trk.voters, this.id)) {
        this.answerRead(read.from, read.index, read.context)
      }
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeout-now', from: this.id, to, term: this.term })
  }

  // ---------------------------------------------------------------- ReadIndex (thesis §6.4)

  /** Requests a linearizable read point tagged `context`. */
  readIndex(context: Uint8Array): ReadIndexResult {
    switch (this.role) {
      case 'leader':
        return this.leaderReadIndex(this.id, context)
      case 'follower':
        if (this.lead === null) return { ok: false, reason: 'no-leader' }
        if (this.disableProposalForwarding) return { ok: false, reason: 'not-leader' }
        this.send({ type: 'read-index', from: this.id, to: this.lead, term: FORWARDED_TERM, context })
        return { ok: true, kind: 'forwarded', to: this.lead }
      case 'pre-candidate':
      case 'candidate':
        return { ok: false, reason: 'no-leader' }
      default:
        return assertNever(this.role)
    }
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term
  }

  private leaderReadIndex(from: NodeId, context: Uint8Array): ReadIndexResult {
    if (this.readOnly.size() + this.heldReads.length >= this.maxPendingReadIndexRequests) {
      return { ok: false, reason: 'too-many-pending-reads' }
    }
    // Step 1: until the leader commits an entry of its term it does not know
    // the latest commit index; hold the read until then.
    if (!this.committedEntryInCurrentTerm()) {
      this.heldReads.push({ from, context })
      return { ok: true, kind: 'pending' }
    }
    this.registerRead(from, context)
    this.bcastHeartbeat()
    return { ok: true, kind: 'pending' }
  }

  /** Records a read at the current commit index; answers at once if we are the only voter. */
  private registerRead(from: NodeId, context: Uint8Array): void {
    if (this.trk.isSingleton(this.id)) {
      this.answerRead(from, this.log.committed, context)
      return
    }
    // Steps 2-3: the read index is the commit index now; it is confirmed once a
    // heartbeat round sent after this point is acknowledged by a majority.
    this.readOnly.add(this.log.committed, from, context)
  }

  private releaseHeldReads(): void {
    if (this.heldReads.length === 0 || !this.committedEntryInCurrentTerm()) return
    const held = this.heldReads
    this.heldReads = []
    for (const read of held) this.registerRead(read.from, read.context)
    if (this.readOnly.size() > 0) this.bcastHeartbeat()
  }

  private answerRead(from: NodeId, index: number, context: Uint8Array): void {
    if (from === this.id) {
      this.readStates.push({ index, context })
    } else {
      this.send({ type: 'read-index-resp', from: this.id, to: from, term: this.term, index, context })
    }
  }

  // ---------------------------------------------------------------- leadership transfer (thesis §3.10)

  /** Hands leadership to `to`, or (leader, no target) to the most up-to-date voter. */
  transferLeadership(to: NodeId | undefined): TransferResult {
    switch (this.role) {
      case 'leader': {
        const target = to ?? this.pickTransferTarget()
        if (target === undefined) return { ok: false, reason: 'no-candidate' }
        return this.leaderTransfer(target)
      }
      case 'follower':
        if (this.lead === null) return { ok: false, reason: 'no-leader' }
        if (to === undefined || this.disableProposalForwarding) return { ok: false, reason: 'not-leader' }
        if (to === this.lead) return { ok: false, reason: 'already-leader' }
        this.send({ type: 'transfer-leader', from: this.id, to: this.lead, term: FORWARDED_TERM, transferee: to })
        return { ok: true, kind: 'forwarded', to: this.lead }
      case 'pre-candidate':
      case 'candidate':
        return { ok: false, reason: 'no-leader' }
      default:
        return assertNever(this.role)
    }
  }

  /** Leader outside its configuration: transfer to the best voter, or step down if there is none. */
  private startHandover(): void {
    const target = this.pickTransferTarget()
    if (target === undefined) {
      this.becomeFollower(this.term, null)
      return
    }
    this.leaderTransfer(target)
  }

  /** The voter (not us) with the highest match; ties go to the recently active, then the smallest id. */
  private pickTransferTarget(): NodeId | undefined {
    let best: NodeId | undefined
    let bestPr: Progress | undefined
    for (const id of [...this.trk.voters].sort()) {
      if (id === this.id) continue
      const pr = this.trk.progress.get(id) as Progress
      if (
        bestPr === undefined ||
        pr.match > bestPr.match ||
        (pr.match === bestPr.match && pr.recentActive && !bestPr.recentActive)
      ) {
        best = id
        bestPr = pr
      }
    }
    return best
  }

  private leaderTransfer(transferee: NodeId): TransferResult {
    const pr = this.trk.progress.get(transferee)
    if (pr === undefined) return { ok: false, reason: 'unknown-node' }
    if (pr.isLearner) return { ok: false, reason: 'learner' }
    if (this.leadTransferee !== null) {
      if (this.leadTransferee === transferee) return { ok: true, kind: 'started', to: transferee }
      this.leadTransferee = null
    }
    if (transferee === this.id) return { ok: false, reason: 'already-leader' }
    // The transfer must finish within one election timeout (tickHeartbeat aborts it).
    this.electionElapsed = 0
    this.leadTransferee = transferee
    if (pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(transferee)
    } else {
      // Bring the transferee up to date first (thesis §3.10 step 2).
      this.maybeSendAppend(transferee, true)
    }
    return { ok: true, kind: 'started', to: transferee }
  }

  // ---------------------------------------------------------------- membership (thesis §4.1)

  /** Applies a committed conf change; returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    if (cc.nodeId === this.id && cc.type !== 'add-voter' && this.trk.isVoter(this.id)) {
      this.campaignWhileRemoved = true
    }
    // New members are probed from our last index, so the first append carries
    // little and the rejection hint finds their real end (etcd).
    const next = this.log.lastIndex()
    switch (cc.type) {
      case 'add-voter':
        this.trk.addMember(cc.nodeId, false, next)
        break
      case 'add-learner':
        this.trk.addMember(cc.nodeId, true, next)
        break
      case 'remove-node':
        this.trk.removeMember(cc.nodeId)
        break
      default:
        assertNever(cc)
    }
    return this.switchToConfig()
  }

  private switchToConfig(): ConfState {
    const cs = this.trk.confState()
    if (this.role !== 'leader') return cs
    if (!this.trk.isVoter(this.id) && this.leadTransferee === null) {
      // Thesis §4.2.2: a leader removed from (or demoted in) the configuration
      // keeps managing the cluster, without counting itself, until it hands
      // over. Stepping down at once (etcd stepDownOnRemoval) can strand the
      // cluster: the voters may not know the change is committed and still
      // need our vote, which we would refuse them because our log is longer.
      this.startHandover()
      if (this.role !== 'leader') return cs
    }
    if (this.maybeCommit()) {
      // A smaller quorum may commit more at once.
      this.releaseHeldReads()
      this.bcastAppend()
    } else {
      // Probe newly added members right away rather than at the next heartbeat.
      for (const id of this.trk.memberIds()) {
        if (id !== this.id) this.maybeSendAppend(id, false)
      }
    }
    if (this.leadTransferee !== null && !this.trk.isVoter(this.leadTransferee)) this.leadTransferee = null
    return cs
  }

  // ---------------------------------------------------------------- transport feedback

  /** The transport could not reach `id`; an optimistic pipeline to it probably lost messages. */
  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return
    const pr = this.trk.progress.get(id)
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe()
  }

  /** The transport delivered (ok) or failed to deliver the snapshot sent to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.role !== 'leader') return
    const pr = this.trk.progress.get(id)
    if (pr === undefined || pr.state !== 'snapshot') return
    // On failure, forget the snapshot first so probing restarts from match.
    if (!ok) pr.pendingSnapshot = 0
    pr.becomeProbe()
    // Success: wait for the follower's answer before appending. Failure: wait
    // for the next heartbeat answer before trying again (etcd).
    pr.msgAppFlowPaused = true
    this.snapshotTicks.delete(id)
  }

  /** Throws RaftInvariantError if the state is internally inconsistent. */
  checkInvariants(): void {
    checkRaftInvariants(this)
  }
}
