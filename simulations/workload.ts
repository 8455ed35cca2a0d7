// Simulated clients. KV clients issue put / get / consistent get / compare-and-
// swap / delete through a random node, give up after a timeout and go on with
// the next operation (a new request, possibly through another node), as a
// script calling `shoal kv` would. Lock clients take a session on one node,
// acquire a lock with etcd's recipe, hold it for a while, and release it.
//
// A lock client keeps its session alive with keep-alives the leader answers
// (after confirming its leadership), and stops considering itself the holder
// once the session may have expired: TTL × (1 − margin) after the last
// keep-alive the leader acknowledged, the margin covering the nodes' clock
// drift (Chubby's rule). The lock checker then holds the system to "never
// two holders at once".

import { LeaseHolder, lockAcquireRequest, type LockStatus, type Request, type TxnRequest } from '../storage/statestore/index.ts'
import { ClientApi, KV_PREFIX } from './client-api.ts'
import type { SimCluster } from './cluster.ts'
import { describeOp, type History, type KvKind, type KvOp, type LockHold } from './history.ts'
import { outcomeUnknown, type ProposalOutcome } from './node.ts'
import type { Rng } from './random.ts'

/** What the clients do. */
export interface WorkloadConfig {
  /** KV clients. */
  readonly clients: number
  /** Keys they share (few keys, so operations contend). */
  readonly keys: number
  /** Pause between one operation's answer and the next invocation (ms). */
  readonly thinkMinMs: number
  readonly thinkMaxMs: number
  /** Relative weight of each operation. */
  readonly mix: Readonly<Record<KvKind, number>>
  /** A client gives up on an operation after this long: a write's outcome is then unknown. */
  readonly timeoutMs: number
  /** Lock clients. */
  readonly lockClients: number
  /** Lock names they contend for. */
  readonly locks: number
  /** Session TTL. */
  readonly leaseTtlMs: number
  /** How long a holder keeps a lock (ms). */
  readonly holdMinMs: number
  readonly holdMaxMs: number
  /** A waiter gives up after this long. */
  readonly lockWaitMaxMs: number
  /** Test-only (--inject lock-client-no-deadline): holders keep no deadline and hold until their replica shows the lock gone. */
  readonly lockClientNoDeadline?: boolean
}

/** The default workload: four KV clients on three keys, two lock clients on one lock. */
export const DEFAULT_WORKLOAD: WorkloadConfig = {
  clients: 4,
  keys: 3,
  thinkMinMs: 20,
  thinkMaxMs: 250,
  mix: { put: 3, get: 2, cget: 3, cas: 2, delete: 1 },
  timeoutMs: 3_000,
  lockClients: 2,
  locks: 1,
  leaseTtlMs: 3_000,
  holdMinMs: 100,
  holdMaxMs: 1_500,
  lockWaitMaxMs: 6_000,
}

/** How often a lock client looks at its node's replica. */
const LOCK_POLL_MS = 50

const KINDS: readonly KvKind[] = ['put', 'get', 'cget', 'cas', 'delete']

/** Every simulated client of one run. */
export class Workload {
  private readonly cluster: SimCluster
  private readonly api: ClientApi
  private readonly history: History
  private readonly rng: Rng
  private readonly config: WorkloadConfig
  /** The largest clock rate error of any node: what a lock client's LeaseHolder margin covers. */
  private readonly maxClockDrift: number
  private stopAtUs = Infinity
  private active = 0
  private requestCounter = 0

  /** `maxClockDrift`: the largest clock rate error any node may have (sets the session margin). */
  constructor(cluster: SimCluster, history: History, rng: Rng, config: WorkloadConfig, maxClockDrift: number) {
    this.cluster = cluster
    this.api = new ClientApi(cluster)
    this.history = history
    this.rng = rng
    this.config = config
    this.maxClockDrift = maxClockDrift
  }

  /** Starts every client; they stop invoking at `stopAtUs`. */
  start(stopAtUs: number): void {
    this.stopAtUs = stopAtUs
    for (let c = 1; c <= this.config.clients; c++) new KvClient(this, `c${c}`).next()
    for (let c = 1; c <= this.config.lockClients; c++) new LockClient(this, `l${c}`).next()
  }

  /** No new operations from now on; operations in flight finish or time out. */
  stop(): void {
    this.stopAtUs = Math.min(this.stopAtUs, this.now)
  }

  /** Whether every client has finished. */
  get idle(): boolean {
    return this.active === 0
  }

  // ------------------------------------------------------------ shared by clients

  /** Simulated now (µs). */
  get now(): number {
    return this.cluster.scheduler.nowUs
  }

  /** Whether clients may still start something. */
  get running(): boolean {
    return this.now < this.stopAtUs
  }

  /** Runs `fn` after `ms` simulated milliseconds. */
  later(ms: number, fn: () => void): void {
    this.cluster.scheduler.after(Math.round(ms * 1000), fn)
  }

  /** Counts a client in or out of activity. */
  busy(delta: number): void {
    this.active += delta
  }

  /** A node a client may talk to (crashed ones included: the client does not know). */
  pickNode(): string {
    return this.rng.pick(this.cluster.ids().filter((id) => this.cluster.node(id).state !== 'stopped'))
  }

  /** A request id unique in the run. */
  requestId(client: string): string {
    return `${client}-${++this.requestCounter}`
  }

  get rngStream(): Rng {
    return this.rng
  }

  get settings(): WorkloadConfig {
    return this.config
  }

  /** The largest clock rate error of any node (a lock client's LeaseHolder margin covers it). */
  get clockDriftMax(): number {
    return this.maxClockDrift
  }

  get client(): ClientApi {
    return this.api
  }

  get log(): History {
    return this.history
  }

  /** A trace line about a client. */
  note(text: string): void {
    this.cluster.trace.note(this.now, 'client', text)
  }
}

/** One KV client: one operation at a time. */
class KvClient {
  private readonly w: Workload
  private readonly name: string
  /** The latest value this client saw per key, for CAS expectations. */
  private readonly seen = new Map<string, string>()
  private counter = 0

  constructor(w: Workload, name: string) {
    this.w = w
    this.name = name
    w.busy(1)
  }

  next(): void {
    if (!this.w.running) {
      this.w.busy(-1)
      return
    }
    const rng = this.w.rngStream
    const cfg = this.w.settings
    let kind = pickWeighted(rng, cfg.mix)
    const key = `k${rng.int(cfg.keys)}`
    const expected = this.seen.get(key)
    if (kind === 'cas' && expected === undefined) kind = 'put'
    const value = kind === 'put' || kind === 'cas' ? `${this.name}.${++this.counter}` : null
    const node = this.w.pickNode()
    const op = this.w.log.invoke({ client: this.name, node, kind, key, value, expected: kind === 'cas' ? (expected ?? null) : null, invokeUs: this.w.now })
    let done = false
    const finish = (fill: () => void): void => {
      if (done) return
      done = true
      fill()
      this.w.note(`${this.name} ${describeOp(op)} via ${node}: ${op.outcome}${op.index !== null ? ` (index ${op.index})` : ''}`)
      if (op.outcome === 'ok' && op.kind !== 'delete') {
        const v = op.kind === 'get' || op.kind === 'cget' ? op.read : op.kind === 'cas' && op.succeeded !== true ? null : op.value
        if (v !== null) this.seen.set(key, v)
      }
      const think = rng.between(cfg.thinkMinMs, cfg.thinkMaxMs)
      this.w.later(think, () => this.next())
    }
    this.w.later(cfg.timeoutMs, () => finish(() => {
      op.outcome = op.kind === 'get' || op.kind === 'cget' ? 'fail' : 'unknown'
      if (op.outcome === 'fail') op.returnUs = this.w.now
    }))
    if (kind === 'get' || kind === 'cget') {
      this.w.client.read(node, key, kind === 'cget', (r) => finish(() => {
        op.returnUs = this.w.now
        op.outcome = r.ok ? 'ok' : 'fail'
        if (r.ok) op.read = r.value
      }))
      return
    }
    this.w.client.write(node, this.w.requestId(this.name), requestOf(op), (o) => finish(() => settleWrite(op, o, this.w.now)))
  }
}

/** The store request of a KV write. */
function requestOf(op: KvOp): Request {
  const key = KV_PREFIX + op.key
  switch (op.kind) {
    case 'put':
      return { type: 'put', key, value: ClientApi.encodeValue(op.value ?? '') }
    case 'delete':
      return { type: 'delete', key }
    case 'cas': {
      const txn: TxnRequest = {
        type: 'txn',
        compare: [{ target: 'value', key, op: '=', value: ClientApi.encodeValue(op.expected ?? '') }],
        success: [{ type: 'put', key, value: ClientApi.encodeValue(op.value ?? '') }],
        failure: [],
      }
      return txn
    }
    case 'get':
    case 'cget':
      throw new Error('reads are not requests')
  }
}

/** Fills in a write's outcome from what its node said. */
function settleWrite(op: KvOp, o: ProposalOutcome, nowUs: number): void {
  switch (o.kind) {
    case 'applied': {
      // Refused now, but an earlier attempt of it may have applied (StateStore's dedup horizon).
      if (outcomeUnknown(o)) {
        op.outcome = 'unknown'
        return
      }
      op.returnUs = nowUs
      op.index = o.index
      if (!o.result.ok) {
        op.outcome = 'fail'
        return
      }
      op.outcome = 'ok'
      const r = o.result.response
      if (r.type === 'txn') op.succeeded = r.succeeded
      if (r.type === 'delete') op.deleted = r.deleted
      return
    }
    case 'refused':
    case 'unavailable':
      op.returnUs = nowUs
      op.outcome = 'fail'
      return
    case 'timeout':
    case 'lost':
    case 'uncertain':
      op.outcome = 'unknown'
      return
  }
}

function pickWeighted(rng: Rng, mix: Readonly<Record<KvKind, number>>): KvKind {
  let total = 0
  for (const k of KINDS) total += mix[k]
  let x = rng.next() * total
  for (const k of KINDS) {
    x -= mix[k]
    if (x < 0) return k
  }
  return 'get'
}

/** One lock client: session, acquire, hold, release, again. */
class LockClient {
  private readonly w: Workload
  private readonly name: string

  constructor(w: Workload, name: string) {
    this.w = w
    this.name = name
    w.busy(1)
  }

  next(): void {
    if (!this.w.running) {
      this.w.busy(-1)
      return
    }
    const rng = this.w.rngStream
    const cfg = this.w.settings
    const node = this.w.pickNode()
    const lock = `lock${rng.int(cfg.locks)}`
    // Lease ids are the client's choice (sessions.ts draws them at random).
    const leaseId = 1 + rng.int(2 ** 40)
    const session = new Session(this.w, this.name, node, lock, leaseId, () => {
      this.w.later(rng.between(cfg.thinkMinMs, cfg.thinkMaxMs), () => this.next())
    })
    session.begin()
  }
}

/** One session of a lock client on one node. */
class Session {
  private readonly w: Workload
  private readonly client: string
  private readonly node: string
  private readonly lock: string
  private readonly leaseId: number
  private readonly done: () => void
  /**
   * The client's deadline: the shipped `shoal lock` logic (LeaseHolder), fed with simulated
   * instants in ms. No stop grace: a simulated hold ends at once.
   */
  private readonly holder: LeaseHolder
  private hold: LockHold | null = null
  private over = false
  private waitingSinceUs = 0
  /** The replica version and lock status of the last poll: the status cannot change until the replica does. */
  private seenVersion = -2
  private seenStatus: LockStatus | null = null

  constructor(w: Workload, client: string, node: string, lock: string, leaseId: number, done: () => void) {
    this.w = w
    this.client = client
    this.node = node
    this.lock = lock
    this.leaseId = leaseId
    this.done = done
    this.holder = new LeaseHolder({ ttlMs: w.settings.leaseTtlMs, clockDriftMax: w.clockDriftMax })
  }

  /** The client counts on its session until this simulated instant (µs). */
  private get deadlineUs(): number {
    return Math.floor(this.holder.deadlineMs * 1000)
  }

  begin(): void {
    const cfg = this.w.settings
    const sentUs = this.w.now
    this.write((requestId, answer) => this.w.client.grantLease(this.node, requestId, this.leaseId, cfg.leaseTtlMs, answer), (ok) => {
      if (!ok) return this.end('grant failed')
      this.extend(sentUs)
      this.keepAliveLoop()
      this.acquire()
    })
  }

  private acquire(): void {
    if (this.over) return
    this.write((requestId, answer) => this.w.client.write(this.node, requestId, lockAcquireRequest(this.lock, this.leaseId), answer), (ok) => {
      if (!ok) return this.release('acquire failed')
      this.waitingSinceUs = this.w.now
      this.poll()
    })
  }

  private poll(): void {
    if (this.over) return
    const now = this.w.now
    const version = this.w.client.replicaVersion(this.node)
    if (version !== this.seenVersion) {
      this.seenVersion = version
      this.seenStatus = this.w.client.lockStatus(this.node, this.lock, this.leaseId)
    }
    const status = this.seenStatus
    const hold = this.hold
    if (hold !== null) {
      if (this.w.settings.lockClientNoDeadline !== true && !this.holder.holds(now / 1000)) return this.release('session deadline passed', this.deadlineUs)
      if (status === null) return this.release(`${this.node} is down`)
      if (status.state !== 'held') return this.release('lost the lock')
    } else {
      if (status === null) return this.release(`${this.node} is down`)
      if (status.state === 'absent') return this.release('session expired before acquiring')
      if (status.state === 'held') {
        if (!this.holder.holds(now / 1000) || !this.w.running) return this.release('session deadline passed')
        this.hold = this.w.log.hold({ client: this.client, node: this.node, lock: this.lock, leaseId: this.leaseId, token: status.fencingToken, fromUs: now })
        this.w.note(`${this.client} holds ${this.lock} via ${this.node} (token ${status.fencingToken})`)
        const cfg = this.w.settings
        const holdMs = this.w.rngStream.between(cfg.holdMinMs, cfg.holdMaxMs)
        this.w.later(holdMs, () => this.release('released'))
      } else if ((now - this.waitingSinceUs) / 1000 > this.w.settings.lockWaitMaxMs || !this.w.running) {
        return this.release('gave up waiting')
      }
    }
    this.w.later(LOCK_POLL_MS, () => this.poll())
  }

  private keepAliveLoop(): void {
    if (this.over) return
    const sentUs = this.w.now
    this.w.client.keepAlive(this.node, this.leaseId, (ok) => {
      if (ok) this.extend(sentUs)
    })
    this.w.later(this.holder.renewIntervalMs, () => this.keepAliveLoop())
  }

  /** The leader renewed the lease at or after `sentUs`: the holder counts on TTL less its margin from then. */
  private extend(sentUs: number): void {
    this.holder.onConfirmed(sentUs / 1000)
  }

  /** Stops holding (at `atUs`, default now), then revokes the session, which deletes the lock key. */
  private release(why: string, atUs = this.w.now): void {
    if (this.over) return
    const hold = this.hold
    if (hold !== null) {
      hold.toUs = this.w.settings.lockClientNoDeadline === true ? atUs : Math.min(atUs, this.deadlineUs)
      hold.endedBy = why
      this.hold = null
      this.w.note(`${this.client} stops holding ${this.lock} (${why})`)
    }
    this.over = true
    this.write((requestId, answer) => this.w.client.releaseLease(this.node, requestId, this.leaseId, answer), () => this.finish())
  }

  private end(why: string): void {
    if (this.over) return
    this.over = true
    this.w.note(`${this.client} session on ${this.node} ends: ${why}`)
    this.finish()
  }

  private finish(): void {
    this.done()
  }

  /** A session write (`call` makes it with a request id); `ok` only if applied successfully (anything else: the client moves on). */
  private write(call: (requestId: string, answer: (outcome: ProposalOutcome) => void) => void, onDone: (ok: boolean) => void): void {
    let answered = false
    const answer = (ok: boolean): void => {
      if (answered) return
      answered = true
      onDone(ok)
    }
    this.w.later(this.w.settings.timeoutMs, () => answer(false))
    call(this.w.requestId(this.client), (o) => answer(o.kind === 'applied' && o.result.ok))
  }
}
