/**
 * Sessions (leases) and locks for clients of this peer, decided through the log, with the
 * session discipline of etcd and Chubby:
 * - a session is a lease granted by a Raft write and owned by this peer;
 * - a renewal is a request to the leader on `/shoal/leases/1`; the leader answers only after
 *   confirming its leadership with a quorum (ReadIndex, as etcd's LeaseRenew does), and
 *   renews in its lease clock (storage/statestore/lease-keeper.ts) only leases the sender owns. Every held lease is renewed, in
 *   requests of at most LEASE_RENEW_BATCH_MAX;
 * - the holder counts on a lease only until its own deadline (LeaseHolder: send time of the
 *   last confirmed renewal + TTL less a margin, on the monotonic clock). `shoal lock` keeps
 *   such a deadline in its own process too, from renewals it sends itself through
 *   `POST /v1/leases/keepalive`, because this peer may be the part that froze;
 * - the leader proposes a revoke for every lease past its TTL, which deletes the keys
 *   attached to it — so a lock held through a peer that dies is released one TTL later;
 * - a lock is etcd's recipe: a key per waiter under locks/NAME/, held by the oldest, with its
 *   create revision as fencing token.
 * Every deadline here is on performance.now(): a wall-clock step changes nothing.
 */
import { randomInt } from 'node:crypto'
import type { Libp2p } from '@libp2p/interface'
import {
  HeldLeases,
  SESSION_TICK_MS,
  LeaseKeeper,
  LEASE_CLOCK_DRIFT_MAX,
  LEASE_RENEW_BATCH_MAX,
  lockAcquireRequest,
  lockPrefix,
  lockStatus,
  LOCKS_PREFIX,
  isValidLockName,
  isValidLeaseId,
  renewAsLeader,
  RenewalRequests,
  RENEW_PENDING_MAX,
  RENEW_TIMEOUT_MS,
  LEASE_EXPIRY_SCAN_MS,
  LEASE_TTL_MIN_MS,
  LEASE_TTL_MAX_MS,
  type ApplyResult,
  type Command,
  type RenewReply,
} from '../storage/statestore/index.ts'
import { FramedChannel } from '../protocols/framed-channel.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import { ApiError } from './api-server.ts'

export const LEASES_PROTOCOL = '/shoal/leases/1'
/** Largest renewal frame: a batch of ids, JSON-encoded. */
const RENEW_FRAME_MAX_BYTES = 64 * 1024
/** Frames queued for one peer before the oldest are dropped (a lost renewal is retried). */
const RENEW_QUEUE_MAX = 256

/** Monotonic milliseconds: what every session deadline is measured on. */
export function monotonicMs(): number {
  return performance.now()
}

/** What a lock holder learns. */
export type LockEvent =
  | { state: 'waiting'; lease: number; waitingOn: string }
  | { state: 'acquired'; lease: number; token: number; key: string }
  | { state: 'lost'; lease: number; reason: string }

type Frame =
  | { t: 'renew'; id: number; leases: number[] }
  | ({ t: 'renewed'; id: number } & RenewReply)

export interface SessionsInit {
  selfId: string
  libp2p: Libp2p
  kv: KvService
  machine: StoreMachine
  watches: WatchHub
  raft: {
    /** Resolves once the leader confirmed its leadership with a quorum after the call (ReadIndex). */
    linearizableRead(): Promise<void>
    status(): { role: string; lead: string | null }
  }
  isMember(peerId: string): boolean
  log: { info(m: string): void; debug(m: string): void; warn(m: string): void }
}

export class Sessions {
  private readonly init: SessionsInit
  private readonly leases = new LeaseKeeper()
  /** Leases this peer holds for its clients, and their renewals (the simulator runs the same table). */
  private readonly held = new HeldLeases({ clockDriftMax: LEASE_CLOCK_DRIFT_MAX })
  /** Renewal requests waiting on the leader (the simulator runs the same table). */
  private readonly pending = new RenewalRequests({ timeoutMs: RENEW_TIMEOUT_MS, pendingMax: RENEW_PENDING_MAX })
  private readonly channel: FramedChannel
  private timer: ReturnType<typeof setInterval> | null = null
  private lastExpiryScanMs = Number.NEGATIVE_INFINITY
  /**
   * Holds waiting for a change of their lock, by lock prefix. One watch on locks/ serves them
   * all: a peer may hold more locks than it may serve client watches (WATCHERS_MAX).
   */
  private readonly lockWaiters = new Map<string, Set<() => void>>()
  private stopLockWatch: (() => void) | null = null

  constructor(init: SessionsInit) {
    this.init = init
    this.channel = new FramedChannel({
      libp2p: init.libp2p,
      protocol: LEASES_PROTOCOL,
      maxFrameBytes: RENEW_FRAME_MAX_BYTES,
      queueMax: RENEW_QUEUE_MAX,
      onFrame: (from, frame) => this.onFrame(from, frame),
      onUnreachable: () => undefined, // a renewal that is not answered times out; the holder's deadline decides
      debug: (m) => init.log.debug(m),
    })
  }

  async start(): Promise<void> {
    await this.channel.start()
    // Leases already in the store (restart, snapshot) start a fresh deadline here.
    this.leases.onRestored(this.init.machine.store, monotonicMs())
    this.watchLocks()
    this.timer = setInterval(() => this.onTimer(), SESSION_TICK_MS)
  }

  /** Wakes the holds of every lock that changed. */
  private watchLocks(): void {
    this.stopLockWatch?.()
    this.stopLockWatch = this.init.watches.add(LOCKS_PREFIX, this.init.machine.store.revision, {
      deliver: (events) => {
        const changed = new Set<string>()
        for (const e of events) {
          const slash = e.kv.key.indexOf('/', LOCKS_PREFIX.length)
          if (slash > 0) changed.add(e.kv.key.slice(0, slash + 1))
        }
        for (const prefix of changed) this.wake(prefix)
        return true
      },
      // The history no longer reaches our cursor (a snapshot was installed): every hold
      // re-reads its lock from the store, and the watch starts again from now.
      compacted: () => {
        queueMicrotask(() => {
          this.watchLocks()
          for (const prefix of [...this.lockWaiters.keys()]) this.wake(prefix)
        })
      },
    })
  }

  private wake(prefix: string): void {
    const waiters = this.lockWaiters.get(prefix)
    if (waiters === undefined) return
    this.lockWaiters.delete(prefix)
    for (const w of waiters) queueMicrotask(w)
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.stopLockWatch?.()
    this.stopLockWatch = null
    this.pending.dropAll('this peer is stopping')
    this.channel.stop().catch((err: unknown) => this.init.log.debug(`leases channel stop: ${String(err)}`))
  }

  /** Mirrors applied grants and revokes into the clock (every replica, so a new leader knows them). */
  onCommand(command: Command, result: ApplyResult): void {
    this.leases.onCommand(command, result, monotonicMs())
  }

  /** After a snapshot install: the clock follows the store's leases. */
  onRestored(): void {
    this.leases.onRestored(this.init.machine.store, monotonicMs())
  }

  /** Leases this peer holds and renews. */
  get heldCount(): number {
    return this.held.size
  }

  /** Grants a lease owned by this peer and keeps it alive until `release`. */
  async grant(ttlMs: number): Promise<number> {
    checkTtl(ttlMs)
    for (let attempt = 0; ; attempt++) {
      const id = randomInt(1, 2 ** 47)
      // The leader's clock starts the lease when it applies the grant, after this instant.
      const sentMs = monotonicMs()
      try {
        await this.init.kv.write({ type: 'leaseGrant', id, ttlMs })
        this.held.add(id, ttlMs, sentMs)
        return id
      } catch (err) {
        // A clash of random ids is astronomically rare; anything else is the caller's problem.
        if (attempt >= 2 || !(err instanceof ApiError) || !/exists/.test(err.message)) throw err
      }
    }
  }

  /** Stops renewing a lease and revokes it, deleting its keys (releasing its locks). */
  async release(id: number): Promise<void> {
    this.held.delete(id)
    await this.init.kv.write({ type: 'leaseRevoke', id })
  }

  /**
   * A client's own renewal of lease `id` (held by this peer): resolves once the leader
   * confirmed it, so the client may count on TTL less its margin from when it sent this.
   * Throws 404 when the lease is gone, 503 when the leader did not confirm (retry).
   */
  async keepAlive(id: number): Promise<{ id: number; ttlMs: number }> {
    if (!isValidLeaseId(id)) throw new ApiError(400, 'id must be a lease id (a positive integer)')
    const ttlMs = this.held.ttlOf(id)
    if (ttlMs === null) throw new ApiError(404, `lease ${id} is not held by this peer: it was released, it expired, or another peer holds it`)
    const sentMs = monotonicMs()
    const reply = await this.renew([id])
    if (!reply.ok) throw new ApiError(503, `the renewal of lease ${id} was not confirmed: ${reply.reason}; retry`)
    const refused = this.held.onReply(sentMs, reply).find((r) => r.id === id)
    if (refused !== undefined) throw new ApiError(404, `lease ${id} ${refused.code === 'lease-expired' ? 'expired' : 'no longer exists'}: its locks are released`)
    return { id, ttlMs }
  }

  /**
   * Starts taking lock `name`: grants a session of `ttlMs` and queues it. Throws ApiError
   * (bad name or ttl, no quorum, ...) before anything is streamed, so the API can answer
   * with a proper status. Follow with `hold`.
   */
  async begin(name: string, ttlMs: number): Promise<number> {
    if (!isValidLockName(name)) throw new ApiError(400, `lock name ${JSON.stringify(name)}: use 1 to 128 letters, digits, '.', '_' and '-'`)
    checkTtl(ttlMs)
    const lease = await this.grant(ttlMs)
    try {
      await this.init.kv.write(lockAcquireRequest(name, lease))
    } catch (err) {
      await this.release(lease).catch(() => undefined)
      throw err
    }
    return lease
  }

  /**
   * Waits for lock `name` with the session `lease` queued by `begin`, reporting progress
   * through `report` until the lock is held, then until it is lost (the key is gone, or no
   * renewal was confirmed in time) or `signal` aborts (the client went away). Always ends by
   * revoking the session, which releases the lock.
   */
  async hold(name: string, lease: number, report: (e: LockEvent) => void, signal: AbortSignal): Promise<void> {
    try {
      let announcedWaiting = ''
      for (;;) {
        if (signal.aborted) return
        const lost = this.lostReason(lease)
        if (lost !== null) {
          report({ state: 'lost', lease, reason: lost })
          return
        }
        const status = lockStatus(this.init.machine.store, name, lease)
        if (status.state === 'held') {
          report({ state: 'acquired', lease, token: status.fencingToken, key: status.key })
          // Held until the key goes (its session was revoked) or this peer's deadline passes.
          for (;;) {
            const why = await this.until(name, signal, lease)
            if (signal.aborted) return
            if (why !== null || lockStatus(this.init.machine.store, name, lease).state !== 'held') {
              report({ state: 'lost', lease, reason: why ?? 'the session expired (the peer holding it stopped renewing) or was revoked' })
              return
            }
          }
        }
        if (status.state === 'absent') {
          report({ state: 'lost', lease, reason: 'the session expired before the lock was acquired' })
          return
        }
        if (announcedWaiting !== status.waitingOn.key) {
          announcedWaiting = status.waitingOn.key
          report({ state: 'waiting', lease, waitingOn: status.waitingOn.key })
        }
        // Only a change under this lock can move us up the queue.
        await this.until(name, signal, lease)
      }
    } finally {
      await this.release(lease).catch((err: unknown) => this.init.log.debug(`lease ${lease} not revoked now (${String(err)}); it expires by itself`))
    }
  }

  /** `begin` then `hold`. */
  async lock(name: string, ttlMs: number, report: (e: LockEvent) => void, signal: AbortSignal): Promise<void> {
    const lease = await this.begin(name, ttlMs)
    await this.hold(name, lease, report, signal)
  }

  /** Why this peer can no longer count on `lease`, or null while it can. */
  private lostReason(lease: number): string | null {
    return this.held.lostReason(lease, monotonicMs())
  }

  /**
   * Resolves at the next change under lock `name` (with null), on abort (with null), or once
   * this peer's deadline for `lease` passes (with the reason).
   */
  private until(name: string, signal: AbortSignal, lease: number): Promise<string | null> {
    return new Promise((resolve) => {
      const prefix = lockPrefix(name)
      let settled = false
      const done = (why: string | null): void => {
        if (settled) return
        settled = true
        this.lockWaiters.get(prefix)?.delete(onChange)
        if (this.lockWaiters.get(prefix)?.size === 0) this.lockWaiters.delete(prefix)
        clearInterval(check)
        signal.removeEventListener('abort', onAbort)
        resolve(why)
      }
      const onChange = (): void => done(null)
      const onAbort = (): void => done(null)
      const check = setInterval(() => {
        const why = this.lostReason(lease)
        if (why !== null) done(why)
      }, SESSION_TICK_MS)
      signal.addEventListener('abort', onAbort, { once: true })
      let waiters = this.lockWaiters.get(prefix)
      if (waiters === undefined) {
        waiters = new Set()
        this.lockWaiters.set(prefix, waiters)
      }
      waiters.add(onChange)
    })
  }

  private isLeader(): boolean {
    return this.init.raft.status().role === 'leader'
  }

  /** Promotes or demotes the lease clock with this peer's role. */
  private followRole(nowMs: number): boolean {
    return this.leases.followRole(this.isLeader(), nowMs)
  }

  /** Renews `ids` (owned by this peer) with the leader; resolves with its answer, or a failure. */
  private renew(ids: number[]): Promise<RenewReply> {
    if (this.isLeader()) return this.renewAsLeader(this.init.selfId, ids)
    const lead = this.init.raft.status().lead
    if (lead === null) return Promise.resolve({ ok: false, reason: 'no leader: an election is running or a quorum is unreachable' })
    return new Promise((resolve) => {
      const id = this.pending.start(lead, monotonicMs(), resolve)
      if (id !== null) this.channel.send(lead, encodeFrame({ t: 'renew', id, leases: ids }))
    })
  }

  /**
   * Leader side: confirm leadership with a quorum after the request arrived (ReadIndex), then
   * renew in the lease clock. A deposed leader cannot confirm, so it cannot stretch a session
   * past what its successor grants.
   */
  private async renewAsLeader(from: string, ids: number[]): Promise<RenewReply> {
    if (!this.isLeader()) return { ok: false, reason: 'not the leader' }
    let why = ''
    try {
      await this.init.raft.linearizableRead()
    } catch (err) {
      why = `leadership not confirmed (${err instanceof Error ? err.message : String(err)})`
    }
    return renewAsLeader(this.leases, this.init.machine.store, from, ids, why === '', this.isLeader(), monotonicMs(), why)
  }

  private onFrame(from: string, bytes: Uint8Array): string | null {
    const frame = decodeFrame(bytes)
    if (frame === null) return 'not a lease frame'
    if (frame.t === 'renew') {
      if (!this.init.isMember(from)) return 'renewal from a peer that is not a live member'
      void this.renewAsLeader(from, frame.leases).then((reply) => this.channel.send(from, encodeFrame({ t: 'renewed', id: frame.id, ...reply })))
      return null
    }
    const { t: _t, id, ...reply } = frame
    this.pending.answer(from, id, reply)
    return null
  }

  private onTimer(): void {
    const now = monotonicMs()
    const leader = this.followRole(now)
    this.pending.tick(now)
    this.renewDue(now)
    if (leader && now - this.lastExpiryScanMs >= LEASE_EXPIRY_SCAN_MS) {
      this.lastExpiryScanMs = now
      for (const id of this.leases.expired(now)) {
        this.init.log.info(`session ${id} expired: revoking it and the locks it held`)
        this.init.kv.write({ type: 'leaseRevoke', id }, true).catch((err: unknown) => this.init.log.debug(`revoke of expired lease ${id} not committed yet: ${String(err)}`))
      }
    }
  }

  /** Renews every held lease whose renewal is due, however many: in batches of LEASE_RENEW_BATCH_MAX. */
  private renewDue(now: number): void {
    for (const batch of this.held.due(now)) {
      void this.renew(batch).then((reply) => {
        if (!reply.ok) this.init.log.debug(`renewal of ${batch.length} lease(s) not confirmed: ${reply.reason}`)
        for (const { id, code } of this.held.onReply(now, reply)) this.init.log.info(`lease ${id} ${code === 'lease-expired' ? 'expired' : 'is gone'}: stopped renewing it`)
      })
    }
  }
}

function checkTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < LEASE_TTL_MIN_MS || ttlMs > LEASE_TTL_MAX_MS) {
    throw new ApiError(400, `ttl must be from ${LEASE_TTL_MIN_MS / 1000} to ${LEASE_TTL_MAX_MS / 1000} seconds`)
  }
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

function encodeFrame(frame: Frame): Uint8Array {
  return utf8.encode(JSON.stringify(frame))
}

function isIdList(v: unknown, max: number): v is number[] {
  return Array.isArray(v) && v.length <= max && v.every((x) => isValidLeaseId(x))
}

/** Parses a frame from another peer; null when it is not one. */
function decodeFrame(bytes: Uint8Array): Frame | null {
  let v: unknown
  try {
    v = JSON.parse(fromUtf8.decode(bytes))
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null) return null
  const f = v as Record<string, unknown>
  if (!Number.isSafeInteger(f['id'])) return null
  const id = f['id'] as number
  if (f['t'] === 'renew') return isIdList(f['leases'], LEASE_RENEW_BATCH_MAX) ? { t: 'renew', id, leases: f['leases'] } : null
  if (f['t'] !== 'renewed') return null
  if (f['ok'] === false) return typeof f['reason'] === 'string' ? { t: 'renewed', id, ok: false, reason: f['reason'].slice(0, 500) } : null
  if (f['ok'] !== true || !isIdList(f['renewed'], LEASE_RENEW_BATCH_MAX) || !Array.isArray(f['refused']) || f['refused'].length > LEASE_RENEW_BATCH_MAX) return null
  const refused: { id: number; code: 'lease-not-found' | 'lease-expired' }[] = []
  for (const r of f['refused'] as unknown[]) {
    if (typeof r !== 'object' || r === null) return null
    const { id: rid, code } = r as Record<string, unknown>
    if (!isValidLeaseId(rid) || (code !== 'lease-not-found' && code !== 'lease-expired')) return null
    refused.push({ id: rid, code })
  }
  return { t: 'renewed', id, ok: true, renewed: f['renewed'], refused }
}
