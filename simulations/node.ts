// One simulated peer: the daemon's consensus driver (node/raft-node.ts, with
// node/store-machine.ts as its state machine) driving the very same RaftCore,
// StateStore, LeaseClock and FailureDetector, with the edges replaced: ticks
// come from this node's simulated clock, messages from the simulated network,
// and the log lives on a simulated disk. The Ready order is the daemon's:
//
//   send a leader's replication (app, heartbeat, snap, timeout-now) ->
//   persist (fsync when mustSync, which takes simulated time) -> send the rest
//   (votes, acknowledgements) -> apply (snapshot, committed entries, conf
//   changes) -> read states -> advance
//
// and, as in the daemon, step() and tick() keep running while a write is in
// flight; their output waits for the next Ready. When a new leader becomes
// known, waiting proposals and reads are re-attempted at once. Waiting
// proposals and reads are the daemon's own PendingRequests.
//
// Two driver-level broken variants exist only to prove the checkers can fail
// (DriverFaults); both are off unless a test or `--inject` turns them on.

import {
  PendingRequests,
  PENDING_PROPOSALS_MAX,
  PENDING_READS_MAX,
  DEFAULT_MAX_INFLIGHT_MSGS,
  DEFAULT_MAX_SIZE_PER_MSG_BYTES,
  DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES,
  RaftCore,
  decodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  type Ready,
  type Snapshot,
  type SoftState,
} from '../protocols/raft/index.ts'
import type { RaftTestingFaults } from '../protocols/raft/config.ts'
import type { AutopilotConfig } from '../protocols/raft/autopilot.ts'
import { StateStore, type Host, HeldLeases, LEASE_CLOCK_DRIFT_MAX, SESSION_TICK_MS, LeaseKeeper, RenewalRequests, RENEW_PENDING_MAX, RENEW_TIMEOUT_MS, CONTAINERS_PREFIX, decodeCommand, encodeCommand, renewAsLeader, type ApplyResult, type Command, type RenewReply, type StateStoreOptions } from '../storage/statestore/index.ts'
import { LeaderDuties } from '../runtime/leader-duties.ts'
import { LEAVE_POLL_MS, LeaveSequence, type LeaveView } from '../runtime/leave-sequence.ts'
import { MemoryRuntime } from '../runtime/memory-runtime.ts'
import { ContainerSync } from './containers.ts'
import { touchesHostRecords } from '../runtime/container-reconcile.ts'
import { SimEngine } from './engine.ts'
import { NO_SERVICE_FAULTS, SCHEDULER_WATCH, AGENT_WATCH, ServiceSide, type ServiceFaults, type ServiceObserver, type ServiceSettings } from './services.ts'
import type { NodeClock } from './clock.ts'
import type { DiskProfile, DiskTiming, SimDisk } from './disk.ts'
import type { LogJob } from '../storage/raft-log/log-io.ts'
import type { Envelope } from './envelope.ts'
import { LEASE_TIMER_MS } from './leases.ts'
import { AUTOPILOT_INTERVAL_MS, NodeMembership } from './membership.ts'
import type { Member } from '../protocols/gossip/failure-detector.ts'
import type { Rng } from './random.ts'
import type { Scheduler } from './scheduler.ts'
import type { Trace } from './trace.ts'

/** Where a node is in its life. */
export type NodeState = 'up' | 'paused' | 'crashed' | 'stopped'

/** Broken variants of the driver (test-only; all off in a real run). */
export interface DriverFaults {
  /** Send a Ready's messages (votes, append acks) without waiting for its fsync; fsync lazily once a second. */
  readonly ackBeforeFsync: boolean
  /** Serve linearizable reads from the local replica, skipping ReadIndex. */
  readonly localConsistentReads: boolean
  /** Turn container events into writes one by one, ignoring the runtime's full lists (no reconcile). */
  readonly containerEventsOnly: boolean
  /** Proposers leave `base` out of their commands: the dedup window has no horizon to refuse a late duplicate by. */
  readonly proposalsWithoutBase: boolean
  /** The services side's broken variants (simulations/services.ts). */
  readonly services: ServiceFaults
}

/** No broken variant. */
export const NO_DRIVER_FAULTS: DriverFaults = { ackBeforeFsync: false, localConsistentReads: false, containerEventsOnly: false, proposalsWithoutBase: false, services: NO_SERVICE_FAULTS }

/** How every node of a cluster is set up (the daemon's defaults unless a scenario says otherwise). */
export interface NodeSettings {
  readonly tickMs: number
  readonly electionTicks: number
  readonly heartbeatTicks: number
  readonly snapshotEveryEntries: number
  readonly keepEntriesAfterSnapshot: number
  /** How long a proposal or read waits on the node before failing (raft-node CLIENT_TIMEOUT_MS). */
  readonly requestTimeoutMs: number
  readonly disk: DiskProfile
  readonly autopilot: AutopilotConfig
  readonly faults: DriverFaults
  readonly raftFaults: RaftTestingFaults | undefined
  /** Services (scheduler loop, host agents, host records) run only when set. */
  readonly services: ServiceSettings | null
  /** Bounds of the founding store (history, dedup window); the daemon's defaults unless set. */
  readonly storeOptions?: Partial<StateStoreOptions>
}

/** Hooks through which the safety checker watches every node. */
export interface RaftObserver {
  /** After every input handled by the node (core invariants). */
  afterInput(node: SimNode): void
  /** A Ready's durable part is about to be written. */
  persisted(node: SimNode, rd: Ready): void
  /** A message leaves the node. */
  sent(node: SimNode, m: Message): void
  /** A committed entry is applied. */
  applied(node: SimNode, entry: Entry): void
  /** A batch of entries was applied (state-machine invariants). */
  appliedBatch(node: SimNode): void
  /** A leader's snapshot replaced the node's state. */
  snapshotInstalled(node: SimNode, snapshot: Snapshot): void
  /** Leader or role changed. */
  roleChanged(node: SimNode, soft: SoftState): void
}

/** What a node needs from the simulated world. */
export interface NodeHost {
  readonly scheduler: Scheduler
  readonly trace: Trace
  readonly observer: RaftObserver
  /** Puts an envelope on the network. */
  send(from: string, to: string, envelope: Envelope): void
  /** Ids the failure detector joins through. */
  seeds(selfId: string): string[]
  /** Counts something that happened, for the run's summary. */
  count(what: string): void
  /** Who hears about the services' decisions and engine changes (checkers), if anyone. */
  serviceObserver(): ServiceObserver | null
  /** A task container changed on some host's engine. */
  engineChanged(): void
}

/** The node's own random streams, one per concern. */
export interface NodeRngs {
  /** Election jitter of the Raft core. */
  readonly raft: Rng
  /** The failure detector's probe order. */
  readonly swim: Rng
  /** Timer jitter. */
  readonly timer: Rng
  /** fsync latency and crash damage. */
  readonly disk: Rng
  /** The host engine's operation latencies and health checks. */
  readonly engine: Rng
}

/** What became of a proposal, as its client hears it. */
export type ProposalOutcome =
  /** Applied on this node with `result`, at `index`. */
  | { readonly kind: 'applied'; readonly result: ApplyResult; readonly index: number }
  /** Refused by the core before any attempt left the node ("write refused: reason"): no effect. */
  | { readonly kind: 'refused'; readonly reason: string }
  /** Refused by the core after an earlier attempt reached a leader: it may still commit. */
  | { readonly kind: 'uncertain'; readonly reason: string }
  /** Not applied here within the request timeout; it may still commit. */
  | { readonly kind: 'timeout' }
  /** The node crashed or stopped with the proposal pending; it may still commit. */
  | { readonly kind: 'lost' }
  /** The node was down when asked: nothing was proposed. */
  | { readonly kind: 'unavailable' }

/** Whether a write that ended so may or may not have taken effect (a client must count it as unknown). */
export function outcomeUnknown(o: ProposalOutcome): boolean {
  if (o.kind === 'applied') return !o.result.ok && o.result.code === 'outcome-unknown'
  return o.kind === 'timeout' || o.kind === 'lost' || o.kind === 'uncertain'
}

/** Bound on inputs queued while a node is paused (a full socket buffer drops the rest). */
const STALLED_INPUTS_MAX = 20_000
/** Which cores an input touches: their invariants are checked and their outputs drained after it. */
const RAFT = 1
const SWIM = 2
const BOTH = RAFT | SWIM

/** Bound on Ready rounds handled in one go (a livelock detector). */
const READY_ROUNDS_MAX = 10_000
/** The ack-before-fsync variant syncs this often ("fsync every second"). */
const LAZY_FSYNC_INTERVAL_MS = 1000

/** Messages only a leader sends, which go out before its own fsync (raft-node SENT_BEFORE_PERSIST, thesis §10.2.1). */
const SENT_BEFORE_PERSIST: ReadonlySet<MessageType> = new Set<MessageType>(['app', 'heartbeat', 'snap', 'timeout-now'])

/** The proposal key the driver matches applied entries by (store-machine proposalKey). */
export function proposalKey(origin: string, requestId: string): string {
  return `${origin}/${requestId}`
}

/** One simulated peer. */
export class SimNode {
  /** The peer id (also its SWIM id and its commands' origin). */
  readonly id: string
  /** This node's clock. */
  readonly clock: NodeClock
  /** Survives crashes. */
  readonly disk: SimDisk
  /** This host's container engine: survives the peer's crashes, as Docker does. */
  readonly runtime: MemoryRuntime
  /** Where the node is in its life. */
  state: NodeState = 'up'
  /** The Raft core of the current life. */
  core!: RaftCore
  /** The state machine of the current life. */
  store!: StateStore
  /** Last entry applied to the store. */
  appliedIndex = 0
  /** Membership as of the applied index. */
  confState: ConfState = { voters: [], learners: [] }
  /** Leader and role as of the last Ready. */
  soft: SoftState = { lead: null, role: 'follower' }
  /** Crashes and restarts so far; callbacks of an earlier life are ignored. */
  generation = 0
  /** Since when (simulated µs) the peer has been down (crashed or stopped), or null while it runs. */
  downSinceUs: number | null = null
  /** When (simulated µs) the current life began: a leader marks containers lost only a grace after it. */
  upSinceUs = 0
  /** When (simulated µs) this node last became leader, or null while it is not leading. */
  leaderSinceUs: number | null = null

  private readonly host: NodeHost
  private readonly settings: NodeSettings
  private readonly rngs: NodeRngs
  private leases!: LeaseKeeper
  private membership!: NodeMembership
  private snapshotIndex = 0
  private requests!: PendingRequests<ApplyResult>
  /** Renewals waiting on the leader (node/sessions.ts's table). */
  private readonly renewals = new RenewalRequests({ timeoutMs: RENEW_TIMEOUT_MS, pendingMax: RENEW_PENDING_MAX })
  private stalled: Array<[number, () => void]> = []
  private missedTick = false
  private writeBackScheduled = false
  /** A persist or snapshot adoption is waiting for the disk (RaftNode's loop awaits them in turn). */
  private diskBusy = false
  /** A snapshot being saved beside the loop, then one saved and waiting to be adopted (RaftNode.maybeSnapshot). */
  private snapshotSaving = false
  private snapshotSaved: Snapshot | null = null
  private counter = 0
  private lastLeaseTimerMs = 0
  private lastSessionTickMs = 0
  /** Leases this life holds for clients (Sessions' table); a crash forgets them, as the daemon's does. */
  private held = new HeldLeases({ clockDriftMax: LEASE_CLOCK_DRIFT_MAX })
  private lastAutopilotMs = 0
  private lastLead: string | null = null
  /** This life's side of the host's containers (HostSync). */
  private containers: ContainerSync | null = null
  /** When this life began (peer.ts startedAt): lost-marking waits a grace period after it. */
  private bootMs = 0
  private duties!: LeaderDuties
  /** Set when an applied entry wrote under this host's container records. */
  private ownRecordsTouched = false
  /** This host's engine as the task agent drives it (services scenarios only). */
  readonly engine: SimEngine | null = null
  /** This life's scheduler loop, host agent and host record (services scenarios only). */
  private services: ServiceSide | null = null
  /** Watches (services.ts AGENT_WATCH | SCHEDULER_WATCH) fired by entries applied in this Ready. */
  private serviceWatches = 0

  /** Boots a node from `disk` and starts its timer. */
  constructor(init: { id: string; clock: NodeClock; disk: SimDisk; host: NodeHost; settings: NodeSettings; rngs: NodeRngs }) {
    this.id = init.id
    this.clock = init.clock
    this.disk = init.disk
    this.host = init.host
    this.settings = init.settings
    this.rngs = init.rngs
    // The engine stamps containers with the host's wall clock, as Docker does.
    this.runtime = new MemoryRuntime({ identity: { hostId: init.id, hostName: init.id }, now: () => this.wallMs() })
    // Changes reach the peer as inputs: queued while it is paused, gone while it is down.
    this.runtime.subscribe((change) => this.input(RAFT, () => {
      this.containers?.onRuntime(change)
      this.services?.onRuntime(change)
    }))
    if (init.settings.services !== null) {
      this.engine = new SimEngine({ runtime: this.runtime, scheduler: init.host.scheduler, rng: init.rngs.engine, changed: () => init.host.engineChanged() })
    }
    this.boot()
    this.scheduleTick()
    this.startContainers()
  }

  /** Whether this host's records equal its engine's truth (false while the node is down). */
  containersConverged(): boolean {
    return this.state === 'up' && this.containers !== null && this.containers.converged()
  }

  /** The node's monotonic clock now, in ms (the daemon's performance.now: every deadline). */
  nowMs(): number {
    return this.clock.localMs(this.host.scheduler.nowUs)
  }

  /** The `base` of a command this node makes now: its applied index (KvService.write), none in the proposals-without-base variant. */
  commandBase(): number | undefined {
    return this.settings.faults.proposalsWithoutBase ? undefined : this.appliedIndex
  }

  /** The node's wall clock now, in ms (the daemon's Date.now, which steps: only timestamps and what compares with them). */
  wallMs(): number {
    return this.clock.wallMs(this.host.scheduler.nowUs)
  }

  /**
   * The failure detector's members with their stateSinceMs on the wall clock: wall time now less
   * the monotonic time since the change, as Membership.members() gives them to the daemon's
   * scheduler and leader duties.
   */
  private wallMembers(): Member[] {
    const wall = this.wallMs()
    const mono = this.nowMs()
    return this.membership.members().map((m) => ({ ...m, stateSinceMs: wall - (mono - m.stateSinceMs) }))
  }

  /** The Raft core's own consistency checks. */
  assertRaftInvariants(): void {
    this.core.assertInvariants()
  }

  /** What this node's failure detector says of every member, since when on this node's clock (empty while the node is down). */
  memberStates(): ReadonlyArray<{ readonly peerId: string; readonly state: string; readonly stateSinceMs: number }> {
    return this.alive ? this.membership.members() : []
  }

  /** How long this life has run, on this node's clock (ms): lost-marking waits a grace period of it. */
  upForMs(): number {
    return this.nowMs() - this.bootMs
  }

  /** The failure detector's own consistency checks. */
  assertSwimInvariants(): void {
    this.membership.assertInvariants()
  }

  /** Whether the node runs (paused counts: it is alive, only stalled). */
  get alive(): boolean {
    return this.state === 'up' || this.state === 'paused'
  }

  // ------------------------------------------------------------ inputs

  /** An envelope arrives from the network. */
  receive(from: string, envelope: Envelope): void {
    const kind = envelope.kind === 'swim' ? SWIM : RAFT
    if (this.state !== 'up') {
      this.input(kind, () => this.onEnvelope(from, envelope))
      return
    }
    // The common case without a closure: the same steps as input().
    this.onEnvelope(from, envelope)
    this.afterInput(kind)
  }

  /** The transport noticed that `envelope` to `to` could not be delivered. */
  undeliverable(to: string, envelope: Envelope): void {
    this.input(envelope.kind === 'swim' ? SWIM : RAFT, () => {
      if (envelope.kind === 'raft') {
        if (envelope.message.type === 'snap') this.core.reportSnapshot(to, false)
        this.core.reportUnreachable(to)
      } else if (envelope.kind === 'swim') {
        this.membership.unreachable(to, this.nowMs())
      }
    })
  }

  /**
   * Proposes a command's bytes (RaftNode.propose): `onDone` hears once, when
   * the entry is applied here, refused, timed out or lost with the node.
   */
  propose(data: Uint8Array, key: string, onDone: (outcome: ProposalOutcome) => void): void {
    if (!this.alive) {
      onDone({ kind: 'unavailable' })
      return
    }
    this.input(RAFT, () => this.proposeData(key, data, onDone))
  }

  /** Resolves when a linearizable read may be served here (RaftNode.linearizableRead); false on timeout or crash. */
  linearizableRead(onDone: (ok: boolean) => void): void {
    if (!this.alive) {
      onDone(false)
      return
    }
    this.input(RAFT, () => {
      if (this.settings.faults.localConsistentReads) return onDone(true)
      const refusal = this.requests.read(this.freshId('r'), this.nowMs(), this.settings.requestTimeoutMs, (end) => onDone(end.ok))
      if (refusal !== null) onDone(false)
    })
  }

  /**
   * Grants a lease this node holds for a client (Sessions.grant): `data` proposes the grant;
   * once it applied, the node renews the lease until it is released or gone.
   */
  grantLease(leaseId: number, ttlMs: number, data: Uint8Array, key: string, onDone: (outcome: ProposalOutcome) => void): void {
    if (!this.alive) {
      onDone({ kind: 'unavailable' })
      return
    }
    const gen = this.generation
    this.input(RAFT, () => {
      // The leader's clock starts the lease when it applies the grant, after this instant.
      const sentMs = this.nowMs()
      this.proposeData(key, data, (outcome) => {
        if (gen === this.generation && outcome.kind === 'applied' && outcome.result.ok) this.held.add(leaseId, ttlMs, sentMs)
        onDone(outcome)
      })
    })
  }

  /** Stops renewing lease `leaseId` (Sessions.release, before its revoke is proposed). */
  releaseLease(leaseId: number): void {
    this.input(RAFT, () => void this.held.delete(leaseId))
  }

  /**
   * A client's own renewal of lease `leaseId`, held by this node (Sessions.keepAlive):
   * `onDone(true)` once the leader renewed it; false when it is not held here (the daemon's
   * 404) or the leader did not confirm.
   */
  keepAlive(leaseId: number, onDone: (ok: boolean) => void): void {
    if (!this.alive) {
      onDone(false)
      return
    }
    this.input(RAFT, () => {
      if (!this.held.has(leaseId)) return onDone(false)
      const sentMs = this.nowMs()
      this.renew([leaseId], (reply) => {
        this.held.onReply(sentMs, reply)
        onDone(reply.ok && reply.renewed.includes(leaseId))
      })
    })
  }

  /** Renews `ids` with the leader (Sessions.renew); `onReply` hears its answer or a failure. */
  private renew(ids: readonly number[], onReply: (reply: RenewReply) => void): void {
    if (this.soft.role === 'leader') return this.renewAsLeader(this.id, ids, onReply)
    const lead = this.soft.lead
    if (lead === null) return onReply({ ok: false, reason: 'no leader: an election is running or a quorum is unreachable' })
    const id = this.renewals.start(lead, this.nowMs(), onReply)
    if (id !== null) this.host.send(this.id, lead, { kind: 'keepalive', id, leases: [...ids] })
  }

  /** Renews every held lease that is due (Sessions.renewDue). */
  private renewDue(now: number): void {
    for (const batch of this.held.due(now)) {
      this.renew(batch, (reply) => {
        for (const { id, code } of this.held.onReply(now, reply)) {
          this.host.trace.note(this.host.scheduler.nowUs, 'lease', `${this.id} stops renewing lease ${id} (${code})`)
        }
      })
    }
  }

  // ------------------------------------------------------------ faults

  /** Power loss: unsynced writes are lost (maybe torn); everything in memory is gone. */
  crash(): void {
    if (this.state === 'crashed' || this.state === 'stopped') return
    this.generation++
    this.state = 'crashed'
    this.downSinceUs = this.host.scheduler.nowUs
    const report = this.disk.crash(this.rngs.disk, this.settings.disk)
    if (report.torn.length > 0) this.host.count('torn-write')
    this.host.trace.note(this.host.scheduler.nowUs, 'fault', `${this.id} crashes (disk: ${report.lost} pending write(s) lost${report.survived > 0 ? `, ${report.survived} survived` : ''}${report.torn.length > 0 ? `; torn: ${report.torn.join(', ')}` : ''})`)
    this.dropEverything()
  }

  /** Restarts a crashed or stopped node from its disk. */
  restart(): void {
    if (this.state !== 'crashed' && this.state !== 'stopped') return
    this.generation++
    this.downSinceUs = null
    this.boot()
    this.state = 'up'
    this.host.trace.note(this.host.scheduler.nowUs, 'fault', `${this.id} restarts from disk (snapshot ${this.snapshotIndex}, log ${this.disk.log.firstIndex()}..${this.disk.log.lastIndex()}, term ${this.core.status().term})`)
    this.scheduleTick()
    this.input(BOTH, () => undefined)
    this.startContainers()
  }

  /** A stall (a long GC pause): no timer fires and inputs queue up until resume(). */
  pause(): void {
    if (this.state !== 'up') return
    this.state = 'paused'
  }

  /** Ends a stall: queued inputs run in arrival order, then one late tick. */
  resume(): void {
    if (this.state !== 'paused') return
    this.state = 'up'
    const backlog = this.stalled
    this.stalled = []
    for (const [kind, fn] of backlog) this.input(kind, fn)
    if (this.missedTick) {
      this.missedTick = false
      this.input(BOTH, () => this.onTick())
    }
  }

  /**
   * Graceful stop (Peer.stop): the daemon's LeaveSequence (runtime/leave-sequence.ts) decides
   * each step (records, hand-off, announce, waiting to be removed); this node carries them out
   * and looks again every LEAVE_POLL_MS, as the daemon does.
   */
  leave(): void {
    if (this.state !== 'up') return
    const gen = this.generation
    const sync = this.containers
    const seq = new LeaveSequence({ hasRecords: sync !== null, handOffTimeoutMs: 2 * this.settings.electionTicks * this.settings.tickMs })
    const view = (): LeaveView => ({ isLeader: this.soft.role === 'leader', removable: this.confState.voters.includes(this.id) && this.confState.voters.length > 1 })
    const run = (): void => {
      if (gen !== this.generation || this.state !== 'up') return
      for (const action of seq.step(this.nowMs(), view())) {
        switch (action.kind) {
          case 'remove-records':
            sync?.removeAll((ok) => {
              seq.recordsDone(ok)
              this.input(RAFT, run)
            })
            break
          case 'transfer-leadership':
            this.core.transferLeadership()
            break
          case 'announce-leave':
            this.membership.leave(this.nowMs())
            this.drainMembership()
            break
          case 'stop': {
            // A clean shutdown: the storage is closed after the last write, nothing is lost.
            const now = this.host.scheduler.nowUs
            this.disk.stopCleanly()
            this.state = 'stopped'
            this.downSinceUs = now
            this.generation++
            this.host.trace.note(now, 'fault', `${this.id} has left and stopped${action.stillVoter ? ' (still a voter)' : ''}${action.recordsRemoved ? '' : ' (its records left in place)'}`)
            this.dropEverything()
            return
          }
        }
      }
    }
    const poll = (): void => {
      if (gen !== this.generation || this.state === 'crashed' || this.state === 'stopped') return
      if (seq.done) return
      // A paused peer looks again once it runs: its leave's deadlines are on its own clock.
      if (this.state === 'up') this.input(RAFT, run)
      this.host.scheduler.after(LEAVE_POLL_MS * 1000, poll)
    }
    this.input(RAFT, run)
    this.host.scheduler.after(LEAVE_POLL_MS * 1000, poll)
  }

  // ------------------------------------------------------------ driving

  /**
   * Runs an input (RaftNode.input), then checks the invariants of the cores it
   * touched (`kind`) and drains their outputs; queued while paused, dropped when down.
   */
  private input(kind: number, fn: () => void): void {
    if (this.state === 'paused') {
      if (this.stalled.length < STALLED_INPUTS_MAX) this.stalled.push([kind, fn])
      return
    }
    if (this.state !== 'up') return
    fn()
    this.afterInput(kind)
  }

  /** After an input: check the invariants of the cores it touched, then drain their outputs. */
  private afterInput(kind: number): void {
    if ((kind & RAFT) !== 0) {
      this.host.observer.afterInput(this)
      this.process()
    }
    if ((kind & SWIM) !== 0) {
      this.assertSwimInvariants()
      this.drainMembership()
    }
  }

  private scheduleTick(): void {
    const gen = this.generation
    const delayUs = this.clock.timerDelayUs(this.settings.tickMs, this.rngs.timer)
    this.host.scheduler.after(delayUs, () => {
      if (gen !== this.generation) return
      if (this.state === 'paused') this.missedTick = true
      else this.input(BOTH, () => this.onTick())
      if (this.state === 'up' || this.state === 'paused') this.scheduleTick()
    })
  }

  private onTick(): void {
    const now = this.nowMs()
    this.core.tick()
    this.requests.tick(now)
    this.renewals.tick(now)
    if (now - this.lastSessionTickMs >= SESSION_TICK_MS) {
      this.lastSessionTickMs = now
      this.renewDue(now)
    }
    this.membership.tick(now)
    if (now - this.lastLeaseTimerMs >= LEASE_TIMER_MS) {
      this.lastLeaseTimerMs = now
      this.leases.followRole(this.soft.role === 'leader', now)
      for (const id of this.leases.expired(now)) {
        this.host.trace.note(this.host.scheduler.nowUs, 'lease', `${this.id} (leader) revokes expired lease ${id}`)
        this.proposeOwn({ type: 'leaseRevoke', id }, true)
      }
    }
    if (now - this.lastAutopilotMs >= AUTOPILOT_INTERVAL_MS) {
      this.lastAutopilotMs = now
      this.runAutopilot()
    }
    this.services?.tick(now)
  }

  /** The leader's autopilot and lost-marking: the daemon's own (runtime/leader-duties.ts). */
  private runAutopilot(): void {
    if (this.soft.role !== 'leader') return
    this.duties.run()
  }

  private onEnvelope(from: string, e: Envelope): void {
    switch (e.kind) {
      case 'raft':
        this.core.step(e.message.type === 'prop' ? this.authorizeProposal(e.message) : e.message)
        return
      case 'swim':
        this.membership.step(from, e.message, this.nowMs())
        return
      case 'keepalive':
        this.renewAsLeader(from, e.leases, (reply) => this.host.send(this.id, from, { kind: 'keepalive-ack', id: e.id, reply }))
        return
      case 'keepalive-ack': {
        this.renewals.answer(from, e.id, e.reply)
        return
      }
    }
  }

  /**
   * Leader side of a keep-alive: renew only after confirming leadership with a
   * ReadIndex round (etcd's LeaseRenew does the same, ensureLeadership), so a
   * deposed leader cannot stretch a session past what the new leader grants.
   */
  private renewAsLeader(from: string, ids: readonly number[], reply: (r: RenewReply) => void): void {
    if (this.soft.role !== 'leader') return reply({ ok: false, reason: 'not the leader' })
    this.linearizableRead((ok) => reply(renewAsLeader(this.leases, this.store, from, ids, ok, this.soft.role === 'leader', this.nowMs())))
  }

  /** A forwarded proposal vetted as the daemon vets it (RaftNode.authorizeProposal + StoreMachine.authorizeForwarded). */
  private authorizeProposal(m: Extract<Message, { type: 'prop' }>): Message {
    const entries = m.entries.flatMap((e) => {
      if (e.type !== 'normal') return []
      const decoded = decodeCommand(e.data)
      if (!decoded.ok) return []
      const { asLeader: _dropped, ...rest } = decoded.command
      return [{ type: e.type, data: encodeCommand({ ...rest, origin: m.from }) }]
    })
    return { ...m, entries }
  }

  /**
   * Handles Readys until there are none, or a write waits for the disk (RaftNode.process): a
   * snapshot saved beside the loop is adopted first, then each Ready is persisted by the
   * daemon's own log code and finished once its write is durable.
   */
  private process(): void {
    for (let round = 0; this.state === 'up' && !this.diskBusy; round++) {
      if (round >= READY_ROUNDS_MAX) throw new Error(`${this.id}: Ready did not quiesce`)
      if (this.snapshotSaved !== null) {
        this.adoptSavedSnapshot(this.snapshotSaved)
        continue
      }
      if (!this.core.hasReady()) break
      const rd = this.core.ready()
      if (rd.softState !== undefined) this.onSoftState(rd.softState)
      for (const m of rd.messages) if (SENT_BEFORE_PERSIST.has(m.type)) this.sendRaft(m)
      if (rd.snapshot !== undefined || rd.entries.length > 0 || rd.hardState !== undefined) {
        this.host.observer.persisted(this, rd)
        const gen = this.generation
        const job = this.disk.log.persist({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, sync: rd.mustSync })
        const r = this.disk.run(job, this.diskTiming(), () => this.onSynced(gen, rd))
        if (!r.done) {
          this.diskBusy = true
          return
        }
        if (this.disk.lying && rd.mustSync) this.scheduleWriteBack()
      }
      this.finish(rd)
    }
  }

  /** Fsync latencies from this node's disk profile, timed on the simulation's scheduler. */
  private diskTiming(): DiskTiming {
    return {
      after: (us, fn) => this.host.scheduler.after(us, fn),
      latencyUs: () => this.rngs.disk.between(this.settings.disk.fsyncMinUs, this.settings.disk.fsyncMaxUs),
    }
  }

  /** The write of `rd` is durable: the driver goes on with send, apply, advance. */
  private onSynced(gen: number, rd: Ready): void {
    if (gen !== this.generation) return
    this.diskBusy = false
    if (this.state === 'paused') {
      // The kernel finished the write, but the process runs again only after the stall.
      this.stalled.push([RAFT, () => this.finish(rd)])
      return
    }
    this.input(RAFT, () => this.finish(rd))
  }

  /** The ack-before-fsync variant's "fsync every second". */
  private scheduleWriteBack(): void {
    if (this.writeBackScheduled) return
    this.writeBackScheduled = true
    const gen = this.generation
    this.host.scheduler.after(LAZY_FSYNC_INTERVAL_MS * 1000, () => {
      if (gen !== this.generation) return
      this.writeBackScheduled = false
      this.disk.writeBack()
    })
  }

  /**
   * Log losses the core found at run time (RaftNode.onLogLoss): the duty not to vote until the
   * leader has copied the lost entries back is made durable before any message goes out.
   */
  private onLogLoss(rd: Ready): void {
    if (rd.logLoss.length === 0) return
    this.host.count('log-loss-found')
    const repairIndex = this.core.repairIndex
    if (repairIndex > 0) this.disk.runNow(this.disk.log.markRepairNeeded(repairIndex))
  }

  /** Steps 2-4 of the Ready contract: send, apply, serve reads, advance; then maybe snapshot. */
  private finish(rd: Ready): void {
    this.onLogLoss(rd)
    for (const m of rd.messages) if (!SENT_BEFORE_PERSIST.has(m.type)) this.sendRaft(m)
    if (rd.snapshot !== undefined) this.installSnapshot(rd.snapshot)
    let applied = false
    for (const e of rd.committedEntries) {
      if (e.index <= this.appliedIndex) continue
      this.host.observer.applied(this, e)
      this.applyEntry(e)
      this.appliedIndex = e.index
      applied = true
    }
    if (applied) this.host.observer.appliedBatch(this)
    for (const rs of rd.readStates) this.requests.confirmed(rs.context, rs.index)
    this.requests.settleReads(this.appliedIndex)
    this.core.advance(rd)
    this.maybeSnapshot()
    if (this.ownRecordsTouched || rd.snapshot !== undefined) {
      this.ownRecordsTouched = false
      this.containers?.storeChanged()
    }
    if (this.services !== null && (this.serviceWatches !== 0 || rd.snapshot !== undefined)) {
      // WatchHub delivers after the apply, never inside the Ready.
      const bits = rd.snapshot !== undefined ? AGENT_WATCH | SCHEDULER_WATCH : this.serviceWatches
      this.serviceWatches = 0
      const side = this.services
      this.later(0, () => side.storeChanged(bits))
    }
  }

  private sendRaft(m: Message): void {
    this.host.observer.sent(this, m)
    this.host.send(this.id, m.to, { kind: 'raft', message: m })
  }

  private installSnapshot(snapshot: Snapshot): void {
    this.store = restoreStore(snapshot.data, snapshot.metadata.index)
    this.appliedIndex = snapshot.metadata.index
    this.snapshotIndex = snapshot.metadata.index
    this.confState = snapshot.metadata.confState
    this.leases.onRestored(this.store, this.nowMs())
    this.host.observer.snapshotInstalled(this, snapshot)
    this.host.count('snapshot-install')
    this.host.trace.note(this.host.scheduler.nowUs, 'member', `${this.id} installs snapshot ${snapshot.metadata.index} (term ${snapshot.metadata.term}) from the leader`)
  }

  private applyEntry(e: Entry): void {
    if (e.type === 'conf-change') {
      const cc = decodeConfChange(e.data)
      if (cc !== undefined) {
        this.confState = this.core.applyConfChange(cc)
        this.host.trace.note(this.host.scheduler.nowUs, 'member', `${this.id} applies ${describeChange(cc)} at ${e.index} (voters ${this.confState.voters.join(',')}${this.confState.learners.length > 0 ? `; learners ${this.confState.learners.join(',')}` : ''})`)
      }
      this.store.applyNoop(e.index)
      return
    }
    if (e.data.byteLength === 0) {
      this.store.applyNoop(e.index)
      return
    }
    // Decoded once here (StoreMachine decodes twice; the result is the same).
    const decoded = decodeCommand(e.data)
    if (!decoded.ok) {
      this.store.applyEntry(e.index, e.data)
      return
    }
    const result = this.store.apply(e.index, decoded.command)
    // A copy that arrived after the dedup window forgot its request: refused by the horizon, not applied again.
    if (!result.ok && result.code === 'outcome-unknown' && !result.duplicate) this.host.count('dedup-horizon-refusal')
    if (this.containers !== null && result.ok && touchesHostRecords(this.id, decoded.command.request)) this.ownRecordsTouched = true
    if (this.services !== null && result.ok) this.serviceWatches |= this.services.watchesOf(requestKeys(decoded.command.request))
    this.leases.onCommand(decoded.command, result, this.nowMs())
    this.requests.applied(proposalKey(decoded.command.origin, decoded.command.requestId), result, e.index)
  }

  private onSoftState(soft: SoftState): void {
    const before = this.soft
    this.soft = soft
    if (soft.role !== 'leader') this.leaderSinceUs = null
    else if (before.role !== 'leader') this.leaderSinceUs = this.host.scheduler.nowUs
    this.host.observer.roleChanged(this, soft)
    if (before.role !== soft.role || before.lead !== soft.lead) {
      this.host.trace.note(this.host.scheduler.nowUs, 'role', `${this.id} is ${soft.role} in term ${this.core.status().term}${soft.lead !== null && soft.lead !== this.id ? `, leader ${soft.lead}` : ''}`)
    }
    if (soft.lead !== null && soft.lead !== this.lastLead) {
      // A new leader: what waited on the old one goes to it now (queued as a microtask in raft-node).
      this.lastLead = soft.lead
      const gen = this.generation
      this.host.scheduler.after(0, () => {
        if (gen === this.generation) this.input(RAFT, () => this.requests.retryAll(this.nowMs()))
      })
    }
  }


  /**
   * Snapshot every N applied entries (RaftNode.maybeSnapshot): the state is captured now, saved
   * to the snapshot store beside the loop, then adopted and the log compacted on the loop.
   */
  private maybeSnapshot(): void {
    if (this.snapshotSaving || this.snapshotSaved !== null) return
    if (this.appliedIndex - this.snapshotIndex < this.settings.snapshotEveryEntries || this.core.status().leaving) return
    const index = this.appliedIndex
    const snap: Snapshot = {
      metadata: { index, term: this.disk.log.term(index), confState: { voters: [...this.confState.voters], learners: [...this.confState.learners] } },
      data: this.store.snapshot(),
    }
    const gen = this.generation
    const saved = (): void => {
      if (gen !== this.generation) return
      this.snapshotSaving = false
      this.snapshotSaved = snap
      this.input(RAFT, () => undefined)
    }
    this.snapshotSaving = true
    if (this.disk.run(this.disk.log.saveSnapshot(snap), this.diskTiming(), saved).done) saved()
  }

  /** The loop's half of a snapshot (RaftNode.adoptSavedSnapshot): the log's marker, then compaction. */
  private adoptSavedSnapshot(snap: Snapshot): void {
    this.snapshotSaved = null
    const log = this.disk.log
    const keep = this.settings.keepEntriesAfterSnapshot
    const job = (function* adopt(): LogJob<void> {
      if (!(yield* log.adoptSnapshot(snap))) return
      const compactTo = snap.metadata.index - keep
      if (compactTo >= log.firstIndex()) yield* log.compact(compactTo)
    })()
    const gen = this.generation
    const adopted = (): void => {
      this.snapshotIndex = Math.max(this.snapshotIndex, log.snapshot().metadata.index)
    }
    const r = this.disk.run(job, this.diskTiming(), () => {
      if (gen !== this.generation) return
      this.diskBusy = false
      adopted()
      this.input(RAFT, () => undefined)
    })
    if (r.done) adopted()
    else this.diskBusy = true
  }

  /** Proposes a command this node originates (lease revokes), answered to nobody. */
  private proposeOwn(request: Command['request'], asLeader: boolean, onDone: (outcome: ProposalOutcome) => void = () => undefined): void {
    const requestId = this.freshId('own')
    const base = this.commandBase()
    const command: Command = { origin: this.id, requestId, ...(asLeader ? { asLeader: true } : {}), request, ...(base === undefined ? {} : { base }) }
    const key = proposalKey(this.id, requestId)
    this.proposeData(key, encodeCommand(command), onDone)
  }

  /** Hands a proposal to PendingRequests, its ends told as the daemon's API tells them (RaftNode.propose). */
  private proposeData(key: string, data: Uint8Array, onDone: (outcome: ProposalOutcome) => void): void {
    const refusal = this.requests.propose(key, data, this.nowMs(), this.settings.requestTimeoutMs, (end) => {
      switch (end.kind) {
        case 'applied':
          return onDone({ kind: 'applied', result: end.result, index: end.index })
        case 'refused':
        case 'uncertain':
          return onDone({ kind: end.kind, reason: end.reason })
        case 'timeout':
          return onDone({ kind: 'timeout' })
        case 'dropped':
          return onDone({ kind: 'lost' })
      }
    })
    if (refusal !== null) onDone({ kind: 'refused', reason: refusal === 'duplicate-key' ? 'a proposal with this key is already waiting' : 'too many writes in flight' })
  }

  /**
   * The node's own write as the daemon's KvService.write makes it; `onDone`
   * hears whether it applied and was accepted, later, as an input of this life
   * (never in the middle of a Ready).
   */
  private writeOwn(request: Command['request'], asLeader: boolean, onDone: (ok: boolean) => void): void {
    this.proposeOwn(request, asLeader, (outcome) => {
      const ok = outcome.kind === 'applied' && outcome.result.ok
      this.later(0, () => onDone(ok))
    })
  }

  /** Runs `fn` as an input after `ms`, unless this life ended meanwhile. */
  private later(ms: number, fn: () => void): void {
    const gen = this.generation
    this.host.scheduler.after(Math.round(ms * 1000), () => {
      if (gen === this.generation) this.input(RAFT, fn)
    })
  }

  /** This life's HostSync: a fresh view of the host's engine, converging its records. */
  private startContainers(): void {
    const gen = this.generation
    const host: Host = { peerId: this.id, name: this.id, addrs: [], version: 'sim', cpus: 0, memoryBytes: 0, labels: { ...(this.settings.services?.labels(this.id) ?? {}) } }
    this.containers = new ContainerSync({
      selfId: this.id,
      host: () => host,
      store: () => this.store,
      write: (request, onDone) => this.writeOwn(request, false, onDone),
      after: (ms, fn) => {
        if (gen === this.generation) this.later(ms, fn)
      },
    }, this.runtime, this.settings.faults.containerEventsOnly)
    this.containers.start()
    void this.runtime.start()
    this.startServices()
  }

  /** This life's scheduler loop, host agent and host record (node/scheduler-loop.ts, node/task-agent.ts, HostSync). */
  private startServices(): void {
    const settings = this.settings.services
    const engine = this.engine
    if (settings === null || engine === null) return
    const gen = this.generation
    this.services = new ServiceSide({
      selfId: this.id,
      store: () => this.store,
      nowMs: () => this.nowMs(),
      // Whole milliseconds, as the daemon's wall clock gives them: task and report times are stored as integers.
      wallMs: () => Math.floor(this.wallMs()),
      isLeader: () => this.state === 'up' && this.soft.role === 'leader',
      hasLeader: () => this.soft.lead !== null,
      members: () => this.wallMembers(),
      write: (request, asLeader, onDone) => {
        this.proposeOwn(request, asLeader, (outcome) => this.later(0, () => onDone(outcome.kind === 'applied' ? outcome.result : null)))
      },
      after: (ms, fn) => {
        if (gen === this.generation) this.later(ms, fn)
      },
      engine,
      settings,
      faults: this.settings.faults.services,
      observer: () => this.host.serviceObserver(),
      nowUs: () => this.host.scheduler.nowUs,
      note: (text) => this.host.trace.note(this.host.scheduler.nowUs, 'docker', text),
    })
  }

  /** This life ends: the peer stops watching its engine (the engine and its containers go on). */
  private stopContainers(): void {
    this.duties?.stop()
    this.containers?.stop()
    this.containers = null
    this.services?.stop()
    this.services = null
    this.serviceWatches = 0
    void this.runtime.stop()
  }

  private drainMembership(): void {
    if (this.state !== 'up') return
    const out = this.membership.drain()
    for (const m of out.messages) this.host.send(this.id, m.to, { kind: 'swim', message: m.message })
    for (const c of out.changes) {
      if (c.peerId === this.id) continue
      this.host.trace.note(this.host.scheduler.nowUs, 'member', `${this.id} sees ${c.peerId} ${c.state}${c.previous === null ? '' : ` (was ${c.previous})`}`)
      // peer.ts: a voter that leaves waits to be removed; autopilot runs at once.
      if (c.state === 'left') this.runAutopilot()
    }
  }

  /** Everything in memory is gone; waiting clients hear so. */
  private dropEverything(): void {
    this.stopContainers()
    this.stalled = []
    this.missedTick = false
    this.writeBackScheduled = false
    this.diskBusy = false
    this.snapshotSaving = false
    this.snapshotSaved = null
    this.requests.dropAll()
    this.renewals.dropAll('the node stopped')
  }

  /** Builds this life's core, store, leases and membership from the disk (RaftNode.start). */
  private boot(): void {
    this.disk.lying = this.settings.faults.ackBeforeFsync
    const storage = this.disk.open()
    const recovery = storage.recovery
    if (recovery.tornTail !== null) this.host.count('torn-tail-cut')
    if (recovery.lostTail !== null) {
      this.host.count('lost-tail-found')
      this.host.trace.note(this.host.scheduler.nowUs, 'fault', `${this.id}'s log lost acknowledged writes (tail mark: ${recovery.lostTail.expectedBytes} bytes, found ${recovery.lostTail.foundBytes}); no vote until it holds ${recovery.repairIndex} again`)
    }
    const snap = storage.snapshot()
    this.store = snap.metadata.index > 0 ? restoreStore(snap.data, snap.metadata.index) : new StateStore(this.settings.storeOptions)
    this.appliedIndex = snap.metadata.index
    this.snapshotIndex = snap.metadata.index
    this.confState = storage.initialState().confState
    const raftRng = this.rngs.raft
    this.core = new RaftCore({
      id: this.id,
      storage,
      electionTicks: this.settings.electionTicks,
      heartbeatTicks: this.settings.heartbeatTicks,
      applied: this.appliedIndex,
      random: () => raftRng.next(),
      maxSizePerMsgBytes: DEFAULT_MAX_SIZE_PER_MSG_BYTES,
      maxInflightMsgs: DEFAULT_MAX_INFLIGHT_MSGS,
      maxUncommittedEntriesBytes: DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES,
      // Non-zero when the log lost acknowledged entries: no vote until they are back (RaftNode.start).
      repairIndex: storage.repairIndex,
      ...(this.settings.raftFaults === undefined ? {} : { testingFaults: this.settings.raftFaults }),
    })
    this.soft = { lead: null, role: 'follower' }
    this.leaderSinceUs = null
    this.lastLead = null
    const now = this.nowMs()
    this.leases = new LeaseKeeper()
    this.leases.onRestored(this.store, now)
    const swimRng = this.rngs.swim
    this.membership = new NodeMembership(this.id, now, () => swimRng.next(), this.host.seeds(this.id))
    this.lastLeaseTimerMs = now
    this.lastSessionTickMs = now
    this.held = new HeldLeases({ clockDriftMax: LEASE_CLOCK_DRIFT_MAX })
    this.lastAutopilotMs = now
    this.bootMs = now
    this.upSinceUs = this.host.scheduler.nowUs
    this.duties?.stop()
    this.duties = new LeaderDuties({
      selfId: this.id,
      // As peer.ts: the wall clock, with member times on it (durations survive a step either way).
      nowMs: () => this.wallMs(),
      upForMs: () => this.upForMs(),
      raftStatus: () => this.core.status(),
      members: () => this.wallMembers().map((m) => ({ peerId: m.peerId, state: m.state, stateSinceMs: m.stateSinceMs })),
      containers: () => this.store.range(CONTAINERS_PREFIX).kvs,
      autopilot: this.settings.autopilot,
      propose: (change) => {
        const result = this.core.proposeConfChange(change)
        if (!result.ok) return
        this.host.count('conf-change')
        this.host.trace.note(this.host.scheduler.nowUs, 'member', `${this.id} (autopilot) proposes ${describeChange(change)}`)
      },
      write: (txn, done) => this.writeOwn(txn, true, done),
      marking: (count) => {
        this.host.trace.note(this.host.scheduler.nowUs, 'member', `${this.id} (leader) marks ${count} container(s) of dead hosts lost`)
        this.host.count('containers-marked-lost')
      },
    })
    this.requests = new PendingRequests<ApplyResult>({
      propose: (data) => this.core.propose(data),
      readIndex: (context) => this.core.readIndex(context),
      retryAfterMs: this.settings.electionTicks * this.settings.tickMs,
      proposalsMax: PENDING_PROPOSALS_MAX,
      readsMax: PENDING_READS_MAX,
    })
    this.stalled = []
  }

  /** A request id or read context unique to this node, across lives. */
  private freshId(kind: string): string {
    return `${this.id}.${this.generation}.${kind}${++this.counter}`
  }
}

/** The keys (or prefixes) a request writes. */
function requestKeys(request: Command['request']): string[] {
  switch (request.type) {
    case 'put':
    case 'delete':
      return [request.key]
    case 'deletePrefix':
      return [request.prefix]
    case 'txn':
      return [...request.success, ...request.failure].map((op) => (op.type === 'deletePrefix' ? op.prefix : op.key))
    default:
      return []
  }
}

function restoreStore(data: Uint8Array, index: number): StateStore {
  const restored = StateStore.restore(data)
  if (!restored.ok) throw new Error(`snapshot at index ${index} does not restore: ${restored.message}`)
  return restored.store
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** "add-voter n4"-style text of a conf change. */
export function describeChange(cc: ConfChange): string {
  return `${cc.type} ${cc.nodeId}`
}
