// An in-memory cluster of RaftCores for tests: each node has a
// MemoryLogStorage as its "disk" and a trivial state machine (the list of
// applied entries); a driver loop follows the Ready order; the network can
// drop, duplicate, reorder and partition messages, all drawn from one seeded
// PRNG so a failing seed replays exactly.
//
// The cluster checks Raft's safety properties as it runs (thesis §3.6.3,
// Figure 3.2) and throws SafetyViolation at the first breach:
//   election safety     at most one leader per term
//   leader completeness a new leader holds every entry known committed
//   state machine safety no two nodes apply different entries at one index
//   commit agreement    no two nodes commit different terms at one index
//   read linearizability a ReadIndex answer is >= every index known
//                        committed when the read was issued (thesis §6.4)
// and, on demand, log matching (checkLogMatching) and durability of every
// applied entry after recovery (checkConvergence).

import { decodeConfChange, type ConfChange } from '../conf-change.ts'
import { RaftCore, type Ready } from '../core.ts'
import { BOOTSTRAP_INDEX, BOOTSTRAP_TERM, MemoryLogStorage } from '../../../storage/raft-log/memory-log-storage.ts'
import type { Message } from '../messages.ts'
import type { ProposeResult, ReadIndexResult, TransferResult } from '../results.ts'
import { entryEqual, type ConfState, type Entry, type EntryType, type NodeId, type ReadState } from '../types.ts'
import { createPrng, hashString, type Prng } from './prng.ts'

/** Options of a simulated cluster. */
export interface ClusterOptions {
  /** Founding voters. */
  readonly voters: readonly NodeId[]
  /** Founding learners. */
  readonly learners?: readonly NodeId[]
  /** Nodes that start with an empty membership, to be added by conf changes. */
  readonly spares?: readonly NodeId[]
  /** Seed of every random choice (network and election jitter). */
  readonly seed?: number
  /** RaftConfig.electionTicks of every node (default 10). */
  readonly electionTicks?: number
  /** RaftConfig.heartbeatTicks of every node (default 1). */
  readonly heartbeatTicks?: number
  /** RaftConfig.preVote (default true). */
  readonly preVote?: boolean
  /** RaftConfig.checkQuorum (default true). */
  readonly checkQuorum?: boolean
  /** RaftConfig.maxSizePerMsgBytes (default 1 MiB). */
  readonly maxSizePerMsgBytes?: number
  /** RaftConfig.maxInflightMsgs (default 256). */
  readonly maxInflightMsgs?: number
  /** RaftConfig.maxUncommittedEntriesBytes (default 64 MiB). */
  readonly maxUncommittedEntriesBytes?: number
  /** RaftConfig.snapshotTimeoutTicks (default: the core's). */
  readonly snapshotTimeoutTicks?: number
  /** RaftConfig.disableProposalForwarding (default false). */
  readonly disableProposalForwarding?: boolean
  /** Deliver messages in random order instead of FIFO. */
  readonly reorder?: boolean
  /** Probability of losing a message. */
  readonly dropRate?: number
  /** Probability of duplicating a message. */
  readonly duplicateRate?: number
  /** Handle each node's Ready right after every input (default true); otherwise call processReady(). */
  readonly autoProcess?: boolean
}

/** A breach of a Raft safety property. */
export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation'
}

/** One simulated peer. */
export interface SimNode {
  /** The node's id. */
  readonly id: NodeId
  /** Survives crashes. */
  readonly storage: MemoryLogStorage
  /** Replaced on restart. */
  core: RaftCore
  /** False between crash() and restart(). */
  alive: boolean
  /** The state machine: every applied entry, in index order from index 1. */
  stateMachine: Entry[]
  /** Membership as of the last applied entry. */
  confState: ConfState
  /** Reads confirmed to this node. */
  readStates: ReadState[]
  /** Highest commit index already checked for agreement. */
  checkedCommit: number
  /** Election-jitter randomness (survives restarts, so runs replay). */
  readonly random: Prng
}

/** Bound on Ready rounds per processReady() call (a livelock detector). */
const MAX_READY_ROUNDS = 1000
/** Bound on messages queued in the network; the oldest are dropped beyond it. */
const MAX_QUEUED_MESSAGES = 20_000
/** Bound on deliveries in one deliverAll() call (a livelock detector). */
const MAX_DELIVERIES_PER_CALL = 200_000

/** The entry the founding snapshot stands for in the test state machine. */
const BOOTSTRAP_ENTRY: Entry = { index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM, type: 'normal', data: new Uint8Array(0) }

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A cluster of RaftCores over a simulated network. */
export class Cluster {
  /** Every node, by id. */
  readonly nodes = new Map<NodeId, SimNode>()
  /** The options the cluster was built with. */
  readonly options: ClusterOptions
  /** Network randomness. */
  readonly prng: Prng
  /** Messages sent and not yet delivered. */
  queue: Message[] = []
  /** Directed links that are cut ("from>to"). */
  private readonly cut = new Set<string>()
  /** Messages delivered, by type. */
  readonly delivered = new Map<string, number>()
  /** Rolling hash of every delivery and every applied entry: equal runs give equal digests. */
  digest = 0x811c9dc5
  /** Optional filter: return false to drop a message at send time. */
  filter: ((m: Message) => boolean) | undefined = undefined
  /** Optional observer of each delivered message. */
  onDeliver: ((m: Message) => void) | undefined = undefined
  /** Probability of losing a message at send time. */
  dropRate: number
  /** Probability of delivering a message twice. */
  duplicateRate: number
  /** Deliver in random order rather than FIFO. */
  reorder: boolean
  /** Handle Ready batches right after every input. */
  autoProcess: boolean

  /** Leader of each term seen so far. */
  readonly leaders = new Map<number, NodeId>()
  /** Term of each index known committed. */
  readonly committedTerms = new Map<number, number>()
  /** Entry applied at each index by anyone. */
  readonly applied = new Map<number, Entry>()
  /** Highest index known committed when each read (by context) was issued. */
  private readonly readFloor = new Map<string, number>()
  private maxCommitted = 0

  /** Builds the cluster; nothing runs until ticks or messages are delivered. */
  constructor(options: ClusterOptions) {
    this.options = options
    const seed = options.seed ?? 1
    this.prng = createPrng(seed)
    this.dropRate = options.dropRate ?? 0
    this.duplicateRate = options.duplicateRate ?? 0
    this.reorder = options.reorder ?? false
    this.autoProcess = options.autoProcess ?? true
    const founding: ConfState = { voters: [...options.voters], learners: [...(options.learners ?? [])] }
    const all = [...options.voters, ...(options.learners ?? []), ...(options.spares ?? [])]
    for (const id of all) {
      const isSpare = (options.spares ?? []).includes(id)
      // The founding snapshot stands for applied entry 1 (an empty no-op).
      const storage = new MemoryLogStorage(
        isSpare ? {} : { confState: founding, bootstrapData: encodeEntries([BOOTSTRAP_ENTRY]) },
      )
      const random = createPrng((seed ^ hashString(id)) >>> 0)
      const node: SimNode = {
        id,
        storage,
        core: this.newCore(id, storage, random),
        alive: true,
        stateMachine: isSpare ? [] : [BOOTSTRAP_ENTRY],
        confState: storage.initialState().confState,
        readStates: [],
        checkedCommit: 0,
        random,
      }
      this.nodes.set(id, node)
    }
  }

  private newCore(id: NodeId, storage: MemoryLogStorage, random: Prng): RaftCore {
    const o = this.options
    return new RaftCore({
      id,
      storage,
      random: () => random.next(),
      electionTicks: o.electionTicks ?? 10,
      heartbeatTicks: o.heartbeatTicks ?? 1,
      preVote: o.preVote ?? true,
      checkQuorum: o.checkQuorum ?? true,
      maxSizePerMsgBytes: o.maxSizePerMsgBytes ?? 1024 * 1024,
      maxInflightMsgs: o.maxInflightMsgs ?? 256,
      maxUncommittedEntriesBytes: o.maxUncommittedEntriesBytes ?? 64 * 1024 * 1024,
      ...(o.snapshotTimeoutTicks === undefined ? {} : { snapshotTimeoutTicks: o.snapshotTimeoutTicks }),
      disableProposalForwarding: o.disableProposalForwarding ?? false,
    })
  }

  /** The node with `id` (throws if unknown). */
  node(id: NodeId): SimNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  /** Ids of all nodes, sorted. */
  ids(): NodeId[] {
    return [...this.nodes.keys()].sort()
  }

  /** Ids of live nodes. */
  aliveIds(): NodeId[] {
    return this.ids().filter((id) => this.node(id).alive)
  }

  // ------------------------------------------------------------ driving

  /** Ticks one node. */
  tick(id: NodeId): void {
    const n = this.node(id)
    if (!n.alive) return
    n.core.tick()
    this.afterInput(n)
  }

  /** Ticks every live node once. */
  tickAll(): void {
    for (const id of this.aliveIds()) this.tick(id)
  }

  /** `ticks` rounds of: tick everyone, then deliver until the network is quiet. */
  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      this.tickAll()
      this.deliverAll()
    }
  }

  /** Runs until `done()` holds (checked after each round); false if `maxTicks` pass first. */
  runUntil(done: () => boolean, maxTicks: number): boolean {
    for (let i = 0; i < maxTicks; i++) {
      if (done()) return true
      this.tickAll()
      this.deliverAll()
    }
    return done()
  }

  /** Steps a message into its target directly (bypassing the network). */
  stepInto(m: Message): void {
    const n = this.node(m.to)
    if (!n.alive) return
    const result = n.core.step(m)
    if (!result.ok) throw new Error(`step refused: ${result.reason}`)
    this.afterInput(n)
  }

  /** Proposes `data` on node `id`. */
  propose(id: NodeId, data: Uint8Array | string): ProposeResult {
    const n = this.node(id)
    const bytes = typeof data === 'string' ? encoder.encode(data) : data
    const result = n.core.propose(bytes)
    this.afterInput(n)
    return result
  }

  /** Proposes a membership change on node `id`. */
  proposeConfChange(id: NodeId, cc: ConfChange): ProposeResult {
    const n = this.node(id)
    const result = n.core.proposeConfChange(cc)
    this.afterInput(n)
    return result
  }

  /** Issues a ReadIndex request tagged `context` (unique per read) on node `id`. */
  readIndex(id: NodeId, context: string): ReadIndexResult {
    const n = this.node(id)
    this.readFloor.set(context, this.maxCommitted)
    const result = n.core.readIndex(encoder.encode(context))
    this.afterInput(n)
    return result
  }

  /** Asks node `id` to transfer leadership (to the best voter when `to` is omitted). */
  transferLeadership(id: NodeId, to?: NodeId): TransferResult {
    const n = this.node(id)
    const result = n.core.transferLeadership(to)
    this.afterInput(n)
    return result
  }

  /** Elects `id` by letting it campaign and delivering everything; throws if it does not win. */
  elect(id: NodeId): void {
    const n = this.node(id)
    n.core.campaign()
    this.afterInput(n)
    this.deliverAll()
    if (n.core.status().role !== 'leader') throw new Error(`${id} did not become leader`)
  }

  /** The live leader with the highest term, if any. */
  leader(): NodeId | undefined {
    let best: NodeId | undefined
    let bestTerm = -1
    for (const id of this.aliveIds()) {
      const st = this.node(id).core.status()
      if (st.role === 'leader' && st.term > bestTerm) {
        best = id
        bestTerm = st.term
      }
    }
    return best
  }

  /** Handles `id`'s Ready batches until it has none: persist, send, apply, advance. */
  processReady(id: NodeId): void {
    const n = this.node(id)
    if (!n.alive) return
    for (let round = 0; n.core.hasReady(); round++) {
      if (round >= MAX_READY_ROUNDS) throw new Error(`${id}: Ready did not quiesce`)
      const rd = n.core.ready()
      this.handleReady(n, rd)
      n.core.advance(rd)
      this.check(n)
    }
  }

  /** processReady() on every live node. */
  processAll(): void {
    for (const id of this.aliveIds()) this.processReady(id)
  }

  private afterInput(n: SimNode): void {
    this.check(n)
    if (this.autoProcess) this.processReady(n.id)
  }

  private handleReady(n: SimNode, rd: Ready): void {
    // 1. Persist.
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot)
    if (rd.entries.length > 0) n.storage.append(rd.entries)
    if (rd.hardState !== undefined) {
      n.storage.setHardState(rd.hardState)
      this.recordCommit(n, rd.hardState.commit)
    }
    // 2. Send.
    for (const m of rd.messages) this.send(m)
    // 3. Apply.
    if (rd.snapshot !== undefined) {
      n.stateMachine = decodeEntries(rd.snapshot.data)
      n.confState = rd.snapshot.metadata.confState
      for (const e of n.stateMachine) this.recordApplied(n, e)
    }
    for (const e of rd.committedEntries) this.apply(n, e)
    for (const rs of rd.readStates) {
      const context = decoder.decode(rs.context)
      const floor = this.readFloor.get(context)
      if (floor !== undefined && rs.index < floor) {
        throw new SafetyViolation(`read linearizability: read ${context} at ${rs.index}, but ${floor} was committed before it`)
      }
      n.readStates.push(rs)
    }
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.stateMachine.length + 1) {
      throw new SafetyViolation(`${n.id} applies ${e.index} after ${n.stateMachine.length}`)
    }
    this.recordApplied(n, e)
    n.stateMachine.push(e)
    this.digest = hashInto(this.digest, `${n.id}@${e.index}/${e.term}`)
    if (e.type === 'conf-change') {
      const cc = decodeConfChange(e.data)
      if (cc === undefined) throw new SafetyViolation(`${n.id}: undecodable conf change at ${e.index}`)
      n.confState = n.core.applyConfChange(cc)
    }
  }

  private recordApplied(n: SimNode, e: Entry): void {
    const known = this.applied.get(e.index)
    if (known === undefined) {
      this.applied.set(e.index, e)
    } else if (!entryEqual(known, e)) {
      throw new SafetyViolation(
        `state machine safety: ${n.id} applies (${e.index}, term ${e.term}) but (${known.index}, term ${known.term}) was applied before`,
      )
    }
  }

  private recordCommit(n: SimNode, commit: number): void {
    for (let i = n.checkedCommit + 1; i <= commit; i++) {
      const t = n.core.logTerm(i)
      if (t === undefined) continue
      const known = this.committedTerms.get(i)
      if (known === undefined) {
        this.committedTerms.set(i, t)
        this.maxCommitted = Math.max(this.maxCommitted, i)
      } else if (known !== t) {
        throw new SafetyViolation(`commit agreement: ${n.id} commits term ${t} at ${i}, term ${known} was committed before`)
      }
    }
    n.checkedCommit = Math.max(n.checkedCommit, commit)
  }

  /** Core invariants, election safety and leader completeness for `n`. */
  private check(n: SimNode): void {
    n.core.assertInvariants()
    const st = n.core.status()
    if (st.role !== 'leader') return
    const known = this.leaders.get(st.term)
    if (known === undefined) {
      this.leaders.set(st.term, n.id)
      this.checkLeaderCompleteness(n)
    } else if (known !== n.id) {
      throw new SafetyViolation(`election safety: ${known} and ${n.id} both lead term ${st.term}`)
    }
  }

  private checkLeaderCompleteness(n: SimNode): void {
    const st = n.core.status()
    for (const [index, term] of this.committedTerms) {
      if (index < st.firstIndex) continue
      const t = n.core.logTerm(index)
      if (t !== term) {
        throw new SafetyViolation(
          `leader completeness: ${n.id} leads term ${st.term} with term ${t} at ${index}, where term ${term} was committed`,
        )
      }
    }
  }

  // ------------------------------------------------------------ network

  private send(m: Message): void {
    if (!this.reachable(m.from, m.to)) {
      this.onLost(m, true)
      return
    }
    if (this.filter !== undefined && !this.filter(m)) {
      this.onLost(m, false)
      return
    }
    if (this.dropRate > 0 && this.prng.chance(this.dropRate)) {
      this.onLost(m, false)
      return
    }
    this.queue.push(m)
    if (this.duplicateRate > 0 && this.prng.chance(this.duplicateRate)) this.queue.push(m)
    while (this.queue.length > MAX_QUEUED_MESSAGES) {
      const old = this.queue.shift() as Message
      this.onLost(old, false)
    }
  }

  /** Tells the sender's transport-facing API what a real transport would notice. */
  private onLost(m: Message, unreachable: boolean): void {
    const sender = this.nodes.get(m.from)
    if (sender === undefined || !sender.alive) return
    if (m.type === 'snap') sender.core.reportSnapshot(m.to, false)
    if (unreachable) sender.core.reportUnreachable(m.to)
    this.check(sender)
  }

  private reachable(from: NodeId, to: NodeId): boolean {
    const target = this.nodes.get(to)
    return target !== undefined && target.alive && !this.cut.has(`${from}>${to}`)
  }

  /** Delivers one queued message (the oldest, or a random one when reordering); false if none. */
  deliverOne(): boolean {
    if (this.queue.length === 0) return false
    const i = this.reorder ? this.prng.int(this.queue.length) : 0
    const m = this.queue[i] as Message
    this.queue.splice(i, 1)
    if (!this.reachable(m.from, m.to)) {
      this.onLost(m, true)
      return true
    }
    this.delivered.set(m.type, (this.delivered.get(m.type) ?? 0) + 1)
    this.digest = hashInto(this.digest, summarize(m))
    this.onDeliver?.(m)
    this.stepInto(m)
    if (m.type === 'snap') {
      const sender = this.nodes.get(m.from)
      if (sender !== undefined && sender.alive) {
        sender.core.reportSnapshot(m.to, true)
        this.afterInput(sender)
      }
    }
    return true
  }

  /** Delivers messages until none are queued and (with autoProcess) no node has a Ready. */
  deliverAll(): void {
    for (let i = 0; i < MAX_DELIVERIES_PER_CALL; i++) {
      if (!this.deliverOne()) {
        if (this.autoProcess) return
        this.processAll()
        if (this.queue.length === 0) return
      }
    }
    throw new Error('network did not quiesce')
  }

  /** Splits the nodes into groups that cannot talk to each other; unlisted nodes are isolated. */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    this.heal()
    const groupOf = new Map<NodeId, number>()
    groups.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i)
    })
    for (const a of this.ids()) {
      for (const b of this.ids()) {
        if (a === b) continue
        const ga = groupOf.get(a)
        const gb = groupOf.get(b)
        if (ga === undefined || gb === undefined || ga !== gb) this.cut.add(`${a}>${b}`)
      }
    }
  }

  /** Cuts `id` off from everyone, both ways. */
  isolate(id: NodeId): void {
    for (const other of this.ids()) {
      if (other === id) continue
      this.cut.add(`${id}>${other}`)
      this.cut.add(`${other}>${id}`)
    }
  }

  /** Cuts the link from `from` to `to` only. */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`)
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear()
  }

  // ------------------------------------------------------------ faults

  /** Crashes a node: everything not in its storage is lost. */
  crash(id: NodeId): void {
    this.node(id).alive = false
  }

  /** Restarts a crashed node from its storage, with a state machine rebuilt from the snapshot. */
  restart(id: NodeId): void {
    const n = this.node(id)
    if (n.alive) return
    n.core = this.newCore(id, n.storage, n.random)
    n.alive = true
    const snap = n.storage.snapshot()
    n.stateMachine = snap.metadata.index === 0 ? [] : decodeEntries(snap.data)
    n.confState = n.storage.initialState().confState
    n.readStates = []
    n.checkedCommit = snap.metadata.index
    this.afterInput(n)
  }

  /**
   * Snapshots node `id`'s state machine at its applied index and compacts its
   * log up to there; a leaving node does not compact (see RaftStatus.leaving).
   */
  compact(id: NodeId): boolean {
    const n = this.node(id)
    const index = n.stateMachine.length
    if (!n.alive || index <= n.storage.snapshot().metadata.index) return false
    if (n.core.status().leaving) return false
    n.storage.createSnapshot(index, n.confState, encodeEntries(n.stateMachine))
    n.storage.compact(index)
    n.core.assertInvariants()
    return true
  }

  // ------------------------------------------------------------ checks

  /**
   * Log Matching (thesis §3.5): if two logs hold an entry with the same index
   * and term, they are identical up to there. Compares every pair of live nodes.
   */
  checkLogMatching(): void {
    const alive = this.aliveIds()
    for (let a = 0; a < alive.length; a++) {
      for (let b = a + 1; b < alive.length; b++) {
        this.checkPairMatching(this.node(alive[a] as NodeId), this.node(alive[b] as NodeId))
      }
    }
  }

  private checkPairMatching(x: SimNode, y: SimNode): void {
    const sx = x.core.status()
    const sy = y.core.status()
    const lo = Math.max(sx.firstIndex, sy.firstIndex)
    const hi = Math.min(sx.lastIndex, sy.lastIndex)
    let matchAt = -1
    for (let i = hi; i >= lo; i--) {
      if (x.core.logTerm(i) === y.core.logTerm(i)) {
        matchAt = i
        break
      }
    }
    if (matchAt < lo) return
    const ex = x.core.logEntries(lo, matchAt + 1) ?? []
    const ey = y.core.logEntries(lo, matchAt + 1) ?? []
    for (let i = 0; i < ex.length; i++) {
      const a = ex[i] as Entry
      const b = ey[i]
      if (b === undefined || !entryEqual(a, b)) {
        throw new SafetyViolation(`log matching: ${x.id} and ${y.id} agree at ${matchAt} but differ at ${a.index}`)
      }
    }
  }

  /**
   * After recovery: every live member holds, in its state machine, every entry
   * anyone ever applied (nothing acknowledged is lost), and all have applied
   * up to `index`.
   */
  checkConvergence(members: readonly NodeId[], index: number): void {
    for (const id of members) {
      const n = this.node(id)
      if (n.stateMachine.length < index) {
        throw new SafetyViolation(`${id} applied ${n.stateMachine.length} < ${index}`)
      }
      for (const [i, e] of this.applied) {
        const mine = n.stateMachine[i - 1]
        if (i <= n.stateMachine.length && (mine === undefined || !entryEqual(mine, e))) {
          throw new SafetyViolation(`durability: ${id} lost entry ${i} (term ${e.term})`)
        }
      }
    }
  }

  /** Payloads (as strings) of the normal entries node `id` applied, skipping empty no-ops. */
  appliedData(id: NodeId): string[] {
    return this.node(id)
      .stateMachine.filter((e) => e.type === 'normal' && e.data.byteLength > 0)
      .map((e) => decoder.decode(e.data))
  }
}

/** A short description of a message for the run digest. */
function summarize(m: Message): string {
  const head = `${m.type}|${m.from}|${m.to}|${m.term}`
  switch (m.type) {
    case 'app':
      return `${head}|${m.prevIndex}/${m.prevTerm}|${m.entries.length}|${m.commit}`
    case 'app-resp':
      return `${head}|${m.index}|${m.reject}|${m.rejectHint}/${m.hintTerm}`
    case 'snap':
      return `${head}|${m.snapshot.metadata.index}`
    default:
      return head
  }
}

function hashInto(h: number, s: string): number {
  return hashString(`${h}:${s}`)
}

interface WireEntry {
  readonly i: number
  readonly t: number
  readonly y: EntryType
  readonly d: number[]
}

/** Encodes a state machine (its applied entries) as snapshot data. */
export function encodeEntries(entries: readonly Entry[]): Uint8Array {
  const wire: WireEntry[] = entries.map((e) => ({ i: e.index, t: e.term, y: e.type, d: [...e.data] }))
  return encoder.encode(JSON.stringify(wire))
}

/** Decodes snapshot data written by encodeEntries. */
export function decodeEntries(data: Uint8Array): Entry[] {
  const wire = JSON.parse(decoder.decode(data)) as WireEntry[]
  return wire.map((w) => ({ index: w.i, term: w.t, type: w.y, data: Uint8Array.from(w.d) }))
}
