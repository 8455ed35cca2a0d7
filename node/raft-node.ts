/**
 * Drives the pure Raft core for one peer: real ticks, the durable log, the libp2p transport
 * and a replicated state machine, in the order the core's Ready contract requires:
 *
 *   persist (snapshot, entries, hard state; fsync when mustSync) -> send messages ->
 *   apply (snapshot, committed entries, conf changes) -> serve read states -> advance
 *
 * Proposals are answered once their entry is applied on this peer (read-your-writes here);
 * linearizable reads wait for a ReadIndex confirmation and for this peer to apply up to it.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { mulberry32 } from '../protocols/prng.ts'
import {
  PENDING_PROPOSALS_MAX,
  PENDING_READS_MAX,
  PendingRequests,
  REQUEST_TIMEOUT_MS,
  RaftCore,
  DEFAULT_MAX_INFLIGHT_MSGS,
  DEFAULT_MAX_SIZE_PER_MSG_BYTES,
  DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES,
  decodeConfChange,
  type AdmitRefusal,
  type ProposalEnd,
  type ConfChange,
  type ConfState,
  type Message,
  type MessageType,
  type RaftStatus,
  type Ready,
  type Snapshot,
} from '../protocols/raft/index.ts'
import { RaftTransport, type RaftTransportStats } from '../protocols/raft/transport.ts'
import { FileLogStorage, LogCorruptionError } from '../storage/raft-log/file-log-storage.ts'
import { environmentError } from './errors.ts'
import { openSnapshotStore } from '../storage/snapshots/snapshot-store.ts'
import type { Libp2p } from '@libp2p/interface'

/** What the driver needs of the replicated state machine. */
export interface ReplicatedStateMachine {
  /**
   * Applies a committed entry's payload. Returns the proposal key it answers (if any) and the
   * result for whoever proposed it. Must be deterministic: every peer applies the same entries.
   */
  apply(index: number, data: Uint8Array): { key: string | null; result: unknown }
  /** Records that entry `index` carried no command (a new leader's empty entry, a conf change). */
  applyNoop(index: number): void
  /**
   * Vets an entry a follower forwarded to this leader and rewrites what only the leader may
   * vouch for (e.g. the command's origin, set to the authenticated sender). Null drops it.
   */
  authorizeForwarded(from: string, data: Uint8Array): Uint8Array | null
  /** The full state as of the last applied entry. */
  snapshot(): Uint8Array
  /**
   * The bytes snapshot() would return now, captured now but encoded while the event loop goes
   * on (a large state takes seconds to encode). Entries applied meanwhile do not change it.
   * Resolves null once `signal` aborts.
   */
  snapshotInBackground(signal: AbortSignal): Promise<Uint8Array | null>
  /** Replaces the whole state with a snapshot's, taken at `index`. */
  restore(data: Uint8Array, index: number): void
}

/** Messages only a leader sends, which depend on nothing its disk must hold first. */
const SENT_BEFORE_PERSIST: ReadonlySet<MessageType> = new Set<MessageType>(['app', 'heartbeat', 'snap', 'timeout-now'])

/** A refusal worth retrying (no leader yet, not committed in time); the message says so. */
export class RetryableError extends Error {
  override readonly name = 'RetryableError'
}

/** A write that may or may not have been applied (it reached a leader, then no answer came): retrying blindly could apply it twice. */
export class OutcomeUnknownError extends Error {
  override readonly name = 'OutcomeUnknownError'
}

export interface RaftNodeInit {
  /** The Raft log's segment files. */
  dir: string
  /** The StateStore's snapshots: a LevelDB datastore. */
  stateDir: string
  libp2p: Libp2p
  /** True for the peer that founds the cluster on an empty data dir: sole voter. */
  founding: boolean
  stateMachine: ReplicatedStateMachine
  log: { info(m: string): void; warn(m: string): void; debug(m: string): void; error(m: string): void }
  /** Length of one logical tick; election timeout = electionTicks × tickMs (randomised up to 2×). */
  tickMs?: number
  electionTicks?: number
  heartbeatTicks?: number
  /** Take a snapshot once this many entries were applied since the last one. */
  snapshotEveryEntries?: number
  /** Entries kept behind a snapshot, so a briefly lagging follower catches up without one. */
  keepEntriesAfterSnapshot?: number
  /** Called whenever leader or role changes. */
  onRoleChange?: (status: RaftStatus) => void
}

// Deadlines and retry times here are on the monotonic clock (performance.now()): a wall-clock
// step (NTP, a VM resumed) must neither expire every waiting request nor keep one forever.

/** How long a proposal or read waits (through elections) before it fails (PendingRequests' bound, the simulator's too). */
export const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS

/** One peer's consensus: the Raft core plus everything that makes it durable and connected. */
export class RaftNode {
  private readonly init: RaftNodeInit
  private core!: RaftCore
  private storage!: FileLogStorage
  private transport!: RaftTransport
  private ticker: ReturnType<typeof setInterval> | null = null
  private processing = false
  private opened = false
  private stopped = false
  private appliedIndex = 0
  private snapshotIndex = 0
  private confState: ConfState = { voters: [], learners: [] }
  /** The snapshot being encoded and saved off the Raft loop (one at a time); see maybeSnapshot. */
  private snapshotJob: Promise<void> | null = null
  /** A snapshot saved in the background, for the loop to make the log's own between Readys. */
  private snapshotSaved: { snap: Snapshot; encodedMs: number; savedMs: number } | null = null
  private readonly snapshotAbort = new AbortController()
  /** Proposals and reads waiting here (the one copy of that logic; the simulator runs it too). */
  private readonly requests: PendingRequests
  private readonly applyWaiters: Array<{ index: number; resolve(): void }> = []
  private lastLead: string | null = null
  /** The core's repairIndex as last seen (0: the log holds everything it acknowledged). */
  private repairIndex = 0
  /** The last log loss reported, so a repeated report is logged once. */
  private lastLogLossSaid = ''
  private lastRole = ''
  private readonly tickMs: number
  private readonly electionTicks: number

  constructor(init: RaftNodeInit) {
    this.init = init
    // 50 ms ticks: heartbeats every 50 ms, elections after 0.5–1 s without one (etcd: 100 ms, 1 s).
    // A LAN round trip is far below either; pre-vote and check-quorum keep a slow peer from
    // disrupting a healthy leader. Failover is bounded by the election timeout.
    this.tickMs = init.tickMs ?? 50
    this.electionTicks = init.electionTicks ?? 10
    this.requests = new PendingRequests({
      propose: (data) => this.core.propose(data),
      readIndex: (context) => this.core.readIndex(context),
      retryAfterMs: this.electionTicks * this.tickMs,
      proposalsMax: PENDING_PROPOSALS_MAX,
      readsMax: PENDING_READS_MAX,
    })
  }

  /**
   * Recovers the log and restores the state machine, before the peer opens any socket: a log
   * that cannot be trusted (damage, a full disk, permissions) fails start-up before the peer
   * has announced itself to anyone.
   */
  async open(): Promise<void> {
    if (this.opened) return
    const selfId = this.init.libp2p.peerId.toString()
    const snapshots = await openSnapshotStore(this.init.stateDir)
    try {
      this.storage = await FileLogStorage.open(
        this.init.dir,
        this.init.founding ? { snapshots, founding: { voters: [selfId], learners: [] }, bootstrapData: this.init.stateMachine.snapshot() } : { snapshots },
      )
    } catch (err) {
      // The log never took the store over: close it here, or its handles keep the process alive.
      await snapshots.close().catch(() => undefined)
      throw err
    }
    const rec = this.storage.recovery
    if (rec.damagedSnapshots.length > 0) this.init.log.warn(`passed over damaged snapshot(s) ${rec.damagedSnapshots.join(', ')} in ${this.init.stateDir} (checksum mismatch); restored an older one and replayed the log`)
    // (A lost tail may end in a torn record too; then onLostTailAtStart says what really happened.)
    if (rec.tornTail !== null && rec.lostTail === null) this.init.log.warn(`cut a torn record off the Raft log at ${rec.tornTail.segment}:${rec.tornTail.offset} (a write interrupted by a crash; it was never acknowledged)`)
    const snap = this.storage.snapshot()
    if (snap.metadata.index > 0) this.init.stateMachine.restore(snap.data, snap.metadata.index)
    this.appliedIndex = snap.metadata.index
    this.snapshotIndex = snap.metadata.index
    this.confState = this.storage.initialState().confState
    this.init.log.info(`Raft log: snapshot ${rec.snapshotIndex}, entries ${rec.firstIndex}..${rec.lastIndex}; ${this.confState.voters.length} voters, ${this.confState.learners.length} learners`)
    if (rec.tailMarkDamaged) this.init.log.warn(`the Raft log's tail mark in ${this.init.dir} is unreadable, so a log cut short could not be told from a torn last write; it is rewritten now`)
    if (rec.lostTail !== null || rec.repairIndex > 0) this.onLostTailAtStart(selfId)
    this.opened = true
  }

  /**
   * The log lost entries this peer may have acknowledged. Chosen response: protocol-aware
   * recovery (Alagappan et al., FAST'18), not etcd's refusal to start. The peer starts, but
   * the core neither votes nor campaigns until the leader has copied the lost entries back
   * (RaftCoreConfig.repairIndex): it is counted as a voter that is down, so the cluster's
   * safety and quorum are as if it had stayed off, and it repairs itself without an operator.
   * Only a sole voter has nobody to copy from: it refuses to start.
   */
  private onLostTailAtStart(selfId: string): void {
    const rec = this.storage.recovery
    const lost = rec.lostTail
    const what = lost === null
      ? `a loss found earlier has not been repaired yet (the log ends at ${rec.lastIndex})`
      : `${lost.segment} is ${lost.foundBytes} bytes, but ${lost.expectedBytes} bytes of it had been written and synced ` +
        `(the log reached index ${lost.expectedLastIndex}; it now ends at ${lost.lastIndex}). This is not a write torn by a crash: ` +
        'the disk lost writes it had confirmed (a volatile write cache, a filesystem that ignores fsync) or the file was replaced by an older copy'
    if (this.confState.voters.length === 1 && this.confState.voters[0] === selfId) {
      throw new LogCorruptionError(
        `the Raft log lost committed entries: ${what}. This peer is the cluster's only member, so no other copy exists to repair it from: ` +
        'restore the data dir from a backup. (To go on with the data that is left instead, delete ' +
        `${this.init.dir}/tail.mark and start again: entries after index ${rec.lastIndex} are then gone for good.)`,
      )
    }
    this.init.log.error(
      `Raft log lost entries this peer had acknowledged: ${what}. ` +
      `Until the leader has copied entries through index ${rec.repairIndex} back, this peer will not vote or campaign ` +
      '(a vote cast on a shorter log could elect a leader missing committed entries); it follows the leader meanwhile. ' +
      'Check the disk: it may lose data again.',
    )
  }

  /** Joins the transport and starts ticking; opens the log first if `open` was not called. */
  async start(): Promise<void> {
    await this.open()
    const selfId = this.init.libp2p.peerId.toString()

    this.core = new RaftCore({
      id: selfId,
      storage: this.storage,
      electionTicks: this.electionTicks,
      heartbeatTicks: this.init.heartbeatTicks ?? 1,
      applied: this.appliedIndex,
      // Seeded from the OS: the core only sees a function.
      random: mulberry32(randomInt(1, 2 ** 31)),
      maxSizePerMsgBytes: DEFAULT_MAX_SIZE_PER_MSG_BYTES,
      maxInflightMsgs: DEFAULT_MAX_INFLIGHT_MSGS,
      maxUncommittedEntriesBytes: DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES,
      // Non-zero when the log lost acknowledged entries: no vote until they are back (onLostTailAtStart).
      repairIndex: this.storage.repairIndex,
    })
    this.repairIndex = this.core.repairIndex
    this.transport = new RaftTransport({
      libp2p: this.init.libp2p,
      onMessage: (m: Message) => this.input(() => void this.core.step(m.type === 'prop' ? this.authorizeProposal(m) : m)),
      onUnreachable: (id) => this.input(() => this.core.reportUnreachable(id)),
      onSnapshotFailed: (id) => this.input(() => this.core.reportSnapshot(id, false)),
      debug: (m) => this.init.log.debug(m),
    })
    await this.transport.start()
    this.ticker = setInterval(() => this.input(() => {
      this.core.tick()
      this.requests.tick(performance.now())
    }), this.tickMs)
    // A sole voter needs no election timeout to find out nobody else will vote.
    if (this.confState.voters.length === 1 && this.confState.voters[0] === selfId) this.input(() => this.core.campaign())
  }

  /** When leading, hands leadership to the best voter and waits (two election timeouts at most); true when not leading afterwards. */
  /** Asks the core to hand leadership to the most up-to-date voter (a leave's step 2); false when it cannot. */
  transferLeadership(): boolean {
    if (this.ticker === null) return false
    const result = this.core.transferLeadership()
    this.schedule()
    return result.ok
  }

  /** How long a leader waits for a transfer of leadership to land: two election timeouts. */
  get handOffTimeoutMs(): number {
    return this.electionTicks * this.tickMs * 2
  }

  async handOffLeadership(): Promise<boolean> {
    if (this.ticker === null) return true
    const status = this.core.status()
    if (status.role !== 'leader') return true
    if (status.voters.length <= 1) return false
    const result = this.core.transferLeadership()
    this.schedule()
    if (result.ok) {
      const deadline = performance.now() + this.electionTicks * this.tickMs * 2
      while (performance.now() < deadline && this.core.status().role === 'leader') await new Promise((r) => setTimeout(r, this.tickMs / 2))
    }
    return this.core.status().role !== 'leader'
  }

  /** Hands leadership to the best voter when leading, then stops everything. */
  async stop(): Promise<void> {
    if (this.ticker === null) {
      // Opened but never started (start-up failed later on): only the log's files to close.
      if (this.opened && !this.stopped) {
        this.stopped = true
        await this.storage.close()
      }
      return
    }
    await this.handOffLeadership()
    if (this.ticker === null) return
    this.stopped = true
    clearInterval(this.ticker)
    this.ticker = null
    await this.transport.flush(500)
    await this.transport.stop()
    this.snapshotAbort.abort()
    while (this.processing) await new Promise((r) => setTimeout(r, 5))
    // A snapshot's encoding stops at the abort; one already being written to the snapshot store
    // finishes before that store closes.
    await this.snapshotJob
    await this.storage.close()
    this.requests.dropAll()
  }

  /** True once the core runs: before that (and after a failed start) there is no status. */
  get running(): boolean {
    return this.ticker !== null
  }

  /** The core's status (role, term, leader, commit, applied, voters, learners, progress). */
  status(): RaftStatus {
    if (this.core === undefined) throw new Error('Raft is not running: the peer failed to start or has stopped')
    return this.core.status()
  }

  /** Transport counters. */
  get transportStats(): RaftTransportStats {
    return this.transport.stats
  }

  /** Index of the last entry applied to the state machine on this peer. */
  get applied(): number {
    return this.appliedIndex
  }

  /**
   * Proposes `data` and resolves with the state machine's result once the entry is applied
   * here. `key` (unique per request, stable across retries) matches the applied entry; a
   * forwarded proposal lost in a leader change is proposed again with the same key, and the
   * state machine answers a repeated key with the first result instead of applying twice.
   */
  propose(data: Uint8Array, key: string, timeoutMs = CLIENT_TIMEOUT_MS): Promise<unknown> {
    if (this.stopped) return Promise.reject(new RetryableError('this peer is stopping; retry on another peer'))
    return new Promise((resolve, reject) => {
      const admitted = (refusal: AdmitRefusal | null): void => {
        if (refusal === 'duplicate-key') reject(new Error(`a proposal with key ${key} is already waiting`))
        else if (refusal === 'too-many') reject(new RetryableError('too many writes in flight on this peer; retry shortly'))
      }
      this.input(() => admitted(this.requests.propose(key, data, performance.now(), timeoutMs, (end) => {
        if (end.kind === 'applied') resolve(end.result)
        else reject(this.proposalError(end, timeoutMs))
      })))
      if (this.stopped) reject(new RetryableError('this peer is stopping; retry on another peer'))
    })
  }

  /** What a caller hears of a proposal that did not apply here. */
  private proposalError(end: Exclude<ProposalEnd, { kind: 'applied' }>, timeoutMs: number): Error {
    switch (end.kind) {
      case 'refused':
        return new Error(`write refused: ${end.reason}`)
      case 'uncertain':
        return new OutcomeUnknownError(`write refused (${end.reason}) after an earlier attempt reached a leader: it may still commit; read before writing again`)
      case 'timeout': {
        const why = this.core.status().lead === null ? 'no leader: an election is running or a quorum is unreachable' : 'the leader did not confirm it'
        return end.sent
          ? new OutcomeUnknownError(`not committed within ${timeoutMs} ms (${why}); the write may still commit: read before writing again`)
          : new RetryableError(`not committed within ${timeoutMs} ms (${why}); nothing was written: retry`)
      }
      case 'dropped':
        return end.sent
          ? new OutcomeUnknownError('this peer is stopping; the write may still commit: read before writing again on another peer')
          : new RetryableError('this peer is stopping; retry on another peer')
    }
  }

  /** Proposes a membership change; resolves once applied here. */
  async changeMembership(cc: ConfChange): Promise<void> {
    const result = this.core.proposeConfChange(cc)
    this.schedule()
    if (!result.ok) throw new Error(`membership change refused: ${result.reason}`)
  }

  /**
   * Resolves when this peer may serve a linearizable read: the leader confirmed its
   * leadership with a quorum after the read began (ReadIndex, thesis §6.4) and this peer has
   * applied up to the index it returned.
   */
  linearizableRead(timeoutMs = CLIENT_TIMEOUT_MS): Promise<void> {
    if (this.stopped) return Promise.reject(new RetryableError('this peer is stopping; retry on another peer'))
    const context = randomBytes(12).toString('hex')
    return new Promise((resolve, reject) => {
      this.input(() => {
        const refusal = this.requests.read(context, performance.now(), timeoutMs, (end) => {
          if (end.ok) resolve()
          else if (end.kind === 'timeout') reject(new RetryableError(`linearizable read not confirmed within ${timeoutMs} ms (no leader with a quorum); retry`))
          else if (end.kind === 'dropped') reject(new RetryableError('this peer is stopping; retry on another peer'))
          else reject(new RetryableError(`read refused: ${end.reason}; retry shortly`))
        })
        if (refusal !== null) reject(new RetryableError('too many reads in flight on this peer; retry shortly'))
      })
      if (this.stopped) reject(new RetryableError('this peer is stopping; retry on another peer'))
    })
  }

  /** Resolves once this peer has applied `index`. */
  waitApplied(index: number): Promise<void> {
    if (this.appliedIndex >= index) return Promise.resolve()
    return new Promise((resolve) => this.applyWaiters.push({ index, resolve }))
  }

  /** A forwarded proposal with each entry vetted by the state machine; refused entries are dropped. */
  private authorizeProposal(m: Extract<Message, { type: 'prop' }>): Message {
    const entries = m.entries.flatMap((e) => {
      if (e.type !== 'normal') return [] // membership changes are the leader's own decision
      const data = this.init.stateMachine.authorizeForwarded(m.from, e.data)
      if (data === null) this.init.log.debug(`dropped a forwarded proposal from ${m.from} that its vetting refused`)
      return data === null ? [] : [{ type: e.type, data }]
    })
    return { ...m, entries }
  }

  /** Runs an input against the core, then drains Readys. */
  private input(fn: () => void): void {
    if (this.stopped) return
    fn()
    this.schedule()
  }

  private schedule(): void {
    if (this.processing || this.stopped) return
    this.processing = true
    setImmediate(() => void this.process())
  }

  private async process(): Promise<void> {
    try {
      while (!this.stopped) {
        await this.adoptSavedSnapshot()
        if (this.stopped || !this.core.hasReady()) break
        const rd = this.core.ready()
        await this.handleReady(rd)
        this.core.advance(rd)
        this.checkRepaired()
        this.maybeSnapshot()
      }
    } catch (err) {
      // A Raft peer that cannot persist must not go on: acknowledging without durability breaks safety.
      const env = environmentError(err, 'cannot write the Raft log')
      this.init.log.error(`consensus failed, stopping this peer: ${env !== null ? env.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      process.exit(70)
    } finally {
      this.processing = false
    }
    if (!this.stopped && (this.core.hasReady() || this.snapshotSaved !== null)) this.schedule()
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== undefined) {
      const status = this.core.status()
      const role = `${rd.softState.role}/${rd.softState.lead ?? '-'}`
      if (role !== this.lastRole) {
        this.lastRole = role
        this.init.log.info(`Raft: ${rd.softState.role} in term ${status.term}, leader ${rd.softState.lead ?? 'unknown'}`)
        this.init.onRoleChange?.(status)
      }
      // A new leader: what waited on the old one (maybe dead, its forwards lost) goes to the
      // new one now rather than at the next periodic retry; that retry would add up to an
      // election timeout to every failover.
      if (rd.softState.lead !== null && rd.softState.lead !== this.lastLead) {
        this.lastLead = rd.softState.lead
        queueMicrotask(() => {
          if (this.stopped) return
          this.requests.retryAll(performance.now())
          this.schedule()
        })
      }
    }
    // A leader's replication goes out before its own fsync, so followers write in parallel with
    // it (thesis §10.2.1, as etcd's server does): the core counts the leader's own copy only
    // once persisted, and nothing is applied or acknowledged before that. Every other message
    // (votes above all) waits for the disk.
    const early = rd.messages.filter((m) => SENT_BEFORE_PERSIST.has(m.type))
    for (const m of early) this.transport.send(m)
    if (rd.snapshot !== undefined || rd.entries.length > 0 || rd.hardState !== undefined) {
      await this.storage.persist({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, sync: rd.mustSync })
    }
    if (rd.logLoss.length > 0) this.onLogLoss(rd)
    for (const m of rd.messages) if (!SENT_BEFORE_PERSIST.has(m.type)) this.transport.send(m)
    if (rd.snapshot !== undefined) {
      this.init.stateMachine.restore(rd.snapshot.data, rd.snapshot.metadata.index)
      this.appliedIndex = rd.snapshot.metadata.index
      this.snapshotIndex = rd.snapshot.metadata.index
      this.confState = rd.snapshot.metadata.confState
      this.init.log.info(`installed snapshot ${rd.snapshot.metadata.index} from the leader`)
    }
    for (const e of rd.committedEntries) {
      if (e.index <= this.appliedIndex) continue
      if (e.type === 'conf-change') {
        const cc = decodeConfChange(e.data)
        if (cc !== undefined) {
          this.confState = this.core.applyConfChange(cc)
          this.init.log.info(`membership: ${cc.type} ${cc.nodeId} (voters ${this.confState.voters.length}, learners ${this.confState.learners.length})`)
        }
        this.init.stateMachine.applyNoop(e.index)
      } else if (e.data.byteLength === 0) {
        this.init.stateMachine.applyNoop(e.index)
      } else {
        const { key, result } = this.init.stateMachine.apply(e.index, e.data)
        if (key !== null) this.requests.applied(key, result, e.index)
      }
      this.appliedIndex = e.index
    }
    for (const rs of rd.readStates) this.requests.confirmed(rs.context, rs.index)
    this.requests.settleReads(this.appliedIndex)
    this.settleApplyWaiters()
  }

  /**
   * Reports log losses the core found at run time, loudly: Raft repairs them, but a disk that
   * lost acknowledged writes once will again. Before the messages go out, the duty not to vote
   * is made durable, so a restart mid-repair cannot forget it.
   */
  private onLogLoss(rd: Ready): void {
    for (const e of rd.logLoss) {
      if (e.kind === 'own-log-lost') {
        // Every heartbeat says it again until the leader acts (a leader that predates logLost never does): once is enough.
        const said = `${e.leader}/${e.leaderCommit}/${e.lastIndex}`
        if (said === this.lastLogLossSaid) continue
        this.lastLogLossSaid = said
        this.init.log.error(
          `Raft: leader ${e.leader} says entries through ${e.leaderCommit} are committed on this peer, but its log ends at ${e.lastIndex}: ` +
          'this peer acknowledged entries its disk has since lost (a volatile write cache, or a data dir restored from an old copy). ' +
          'It will not vote or campaign until the leader has copied them back; check the disk.',
        )
      } else {
        this.init.log.warn(`Raft: follower ${e.follower} lost log entries it had acknowledged; resending them from index ${e.holds + 1}`)
      }
    }
    const repairIndex = this.core.repairIndex
    if (repairIndex > 0) this.storage.markRepairNeeded(repairIndex)
    this.repairIndex = Math.max(this.repairIndex, repairIndex)
  }

  /** Notes (once) that the entries a lost log lacked have been copied back. */
  private checkRepaired(): void {
    if (this.repairIndex === 0) return
    const now = this.core.repairIndex
    if (now === 0) this.init.log.warn(`Raft: the log again holds every entry this peer had acknowledged (through ${this.repairIndex}); it votes again`)
    this.repairIndex = now
  }

  private settleApplyWaiters(): void {
    for (let i = this.applyWaiters.length - 1; i >= 0; i--) {
      const w = this.applyWaiters[i]
      if (w !== undefined && w.index <= this.appliedIndex) {
        this.applyWaiters.splice(i, 1)
        w.resolve()
      }
    }
  }

  /**
   * Starts a snapshot once enough entries were applied since the last one. Only the capture
   * happens here, on the Raft loop; encoding (seconds for 100 MB) and writing it to the snapshot
   * store run in the background, so ticks, heartbeats and votes go on meanwhile: a leader whose
   * loop stalled past the election timeout would be deposed (issue 17 §5; etcd snapshots off its
   * apply loop for the same reason). One snapshot at a time.
   */
  private maybeSnapshot(): void {
    const every = this.init.snapshotEveryEntries ?? 10_000
    if (this.snapshotJob !== null || this.snapshotSaved !== null) return
    if (this.appliedIndex - this.snapshotIndex < every || this.core.status().leaving) return
    const index = this.appliedIndex
    // Taken now: the term of an applied entry stays readable until compaction, which waits for this.
    const metadata = { index, term: this.storage.term(index), confState: { voters: [...this.confState.voters], learners: [...this.confState.learners] } }
    const startedMs = performance.now()
    const encoding = this.init.stateMachine.snapshotInBackground(this.snapshotAbort.signal)
    this.snapshotJob = (async () => {
      try {
        const data = await encoding
        if (data === null || this.stopped) return
        const snap: Snapshot = { metadata, data }
        const encodedMs = performance.now() - startedMs
        // Into the snapshot store alongside persist; the marker and compaction wait for the loop.
        await this.storage.saveSnapshot(snap)
        this.snapshotSaved = { snap, encodedMs, savedMs: performance.now() - startedMs - encodedMs }
        this.schedule()
      } catch (err) {
        // Not fatal by itself: the log keeps its entries, and the next attempt comes after as many
        // more. (A disk that cannot take the snapshot soon fails persist, which stops the peer.)
        this.snapshotIndex = Math.max(this.snapshotIndex, index)
        const env = environmentError(err, `cannot save the snapshot at ${index} in ${this.init.stateDir}`)
        this.init.log.warn(`${env !== null ? env.message : `snapshot at ${index} failed: ${err instanceof Error ? err.message : String(err)}`}; ` +
          `the Raft log keeps its entries, and a snapshot is tried again after ${every} more`)
      } finally {
        this.snapshotJob = null
      }
    })()
  }

  /** The storage step of a snapshot saved in the background, serialized with persist by running on the loop. */
  private async adoptSavedSnapshot(): Promise<void> {
    const saved = this.snapshotSaved
    if (saved === null) return
    this.snapshotSaved = null
    const snap = saved.snap
    const index = snap.metadata.index
    if (!(await this.storage.adoptSnapshot(snap))) {
      this.init.log.debug(`snapshot at ${index} dropped: the leader's snapshot ${this.storage.snapshot().metadata.index} superseded it`)
      return
    }
    this.snapshotIndex = Math.max(this.snapshotIndex, index)
    const keep = this.init.keepEntriesAfterSnapshot ?? 5000
    const compactTo = index - keep
    if (compactTo >= this.storage.firstIndex()) await this.storage.compact(compactTo)
    this.init.log.info(`snapshot at ${index} (${(snap.data.byteLength / 1e6).toFixed(1)} MB, encoded in ${saved.encodedMs} ms and saved in ${saved.savedMs} ms beside the Raft loop); log compacted to ${Math.max(compactTo, this.storage.firstIndex() - 1)}`)
  }
}
