/**
 * Sessions (leases) and locks for clients of this peer, decided through the log:
 * - a session is a lease granted by a Raft write and owned by this peer;
 * - this peer renews the leases it holds every second on the `shoal/leases/1` gossip topic;
 *   the leader's LeaseClock accepts a renewal only from the lease's owner;
 * - the leader proposes a revoke for every lease past its TTL, which deletes the keys
 *   attached to it — so a lock held through a peer that dies is released one TTL later;
 * - a lock is etcd's recipe: a key per waiter under locks/NAME/, held by the oldest, with its
 *   create revision as fencing token.
 */
import { randomInt } from 'node:crypto'
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import {
  LeaseClock,
  lockAcquireRequest,
  lockKey,
  lockPrefix,
  lockStatus,
  isValidLockName,
  LEASE_TTL_MIN_MS,
  LEASE_TTL_MAX_MS,
  type ApplyResult,
  type Command,
} from '../storage/statestore/index.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import { ApiError } from './api-server.ts'

export const LEASES_TOPIC = 'shoal/leases/1'
/** How often held leases are renewed; a TTL spans several renewals, so a lost message is harmless. */
const RENEW_INTERVAL_MS = 1000
/** Leases one renewal message may carry. */
const RENEW_BATCH_MAX = 1024

/** What a lock holder learns. */
export type LockEvent =
  | { state: 'waiting'; lease: number; waitingOn: string }
  | { state: 'acquired'; lease: number; token: number; key: string }
  | { state: 'lost'; lease: number; reason: string }

export interface SessionsInit {
  selfId: string
  pubsub: GossipSub
  kv: KvService
  machine: StoreMachine
  watches: WatchHub
  isMember(peerId: string): boolean
  isLeader(): boolean
  log: { info(m: string): void; debug(m: string): void; warn(m: string): void }
}

export class Sessions {
  private readonly init: SessionsInit
  private readonly clock = new LeaseClock()
  private readonly held = new Set<number>()
  private timer: ReturnType<typeof setInterval> | null = null
  private wasLeader = false
  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== LEASES_TOPIC || msg.type !== 'signed') return
    const ids = parseRenewal(msg.data)
    if (ids !== null) this.renew(msg.from.toString(), ids)
  }

  constructor(init: SessionsInit) {
    this.init = init
  }

  start(): void {
    const { pubsub } = this.init
    pubsub.topicValidators.set(LEASES_TOPIC, (_peer: PeerId, msg: Message) =>
      msg.type === 'signed' && this.init.isMember(msg.from.toString()) && parseRenewal(msg.data) !== null ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(LEASES_TOPIC)
    // Leases already in the store (restart, snapshot) start a fresh deadline here.
    this.clock.sync(this.init.machine.store.leases(), Date.now())
    this.timer = setInterval(() => this.onTimer(), RENEW_INTERVAL_MS)
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.init.pubsub.removeEventListener('message', this.onMessage)
    this.init.pubsub.topicValidators.delete(LEASES_TOPIC)
  }

  /** Mirrors applied grants and revokes into the clock (every replica, so a new leader knows them). */
  onCommand(command: Command, result: ApplyResult): void {
    if (!result.ok || result.duplicate) return
    const r = command.request
    if (r.type === 'leaseGrant') this.clock.grant(r.id, r.ttlMs, Date.now())
    else if (r.type === 'leaseRevoke') this.clock.revoke(r.id)
  }

  /** After a snapshot install: the clock follows the store's leases. */
  onRestored(): void {
    this.clock.sync(this.init.machine.store.leases(), Date.now())
  }

  /** Grants a lease owned by this peer and keeps it alive until `release`. */
  async grant(ttlMs: number): Promise<number> {
    if (!Number.isInteger(ttlMs) || ttlMs < LEASE_TTL_MIN_MS || ttlMs > LEASE_TTL_MAX_MS) {
      throw new ApiError(400, `ttl must be from ${LEASE_TTL_MIN_MS / 1000} to ${LEASE_TTL_MAX_MS / 1000} seconds`)
    }
    for (let attempt = 0; ; attempt++) {
      const id = randomInt(1, 2 ** 47)
      try {
        await this.init.kv.write({ type: 'leaseGrant', id, ttlMs })
        this.held.add(id)
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
   * Takes lock `name` with a new session of `ttlMs`, reporting progress through `report`
   * until the lock is held, then until it is lost (session expired) or `signal` aborts
   * (the client went away), which releases it.
   */
  async lock(name: string, ttlMs: number, report: (e: LockEvent) => void, signal: AbortSignal): Promise<void> {
    if (!isValidLockName(name)) throw new ApiError(400, `lock name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`)
    const lease = await this.grant(ttlMs)
    try {
      await this.init.kv.write(lockAcquireRequest(name, lease))
      let announcedWaiting = ''
      for (;;) {
        if (signal.aborted) return
        const store = this.init.machine.store
        const status = lockStatus(store, name, lease)
        if (status.state === 'held') {
          report({ state: 'acquired', lease, token: status.fencingToken, key: status.key })
          await this.until(lockKey(name, lease), (deleted) => deleted, signal)
          if (!signal.aborted) report({ state: 'lost', lease, reason: 'the session expired (the peer holding it stopped renewing) or was revoked' })
          return
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
        await this.until(lockPrefix(name), () => true, signal)
      }
    } finally {
      await this.release(lease).catch((err: unknown) => this.init.log.debug(`lease ${lease} not revoked now (${String(err)}); it expires by itself`))
    }
  }

  /** Resolves at the first change under `prefix` for which `match(isDelete)` holds, or on abort. */
  private until(prefix: string, match: (deleted: boolean) => boolean, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let stop: () => void = () => undefined
      const done = (): void => {
        stop()
        signal.removeEventListener('abort', done)
        resolve()
      }
      signal.addEventListener('abort', done, { once: true })
      stop = this.init.watches.add(prefix, this.init.machine.store.revision, {
        deliver: (events) => {
          if (events.some((e) => match(e.type === 'delete'))) {
            queueMicrotask(done)
            return false
          }
          return true
        },
        compacted: () => queueMicrotask(done),
      })
    })
  }

  /** Leader: renew leases for their owner only. */
  private renew(from: string, ids: number[]): void {
    if (!this.init.isLeader()) return
    const store = this.init.machine.store
    const now = Date.now()
    for (const id of ids) if (store.lease(id)?.owner === from) this.clock.keepAlive(id, now)
  }

  private onTimer(): void {
    const leader = this.init.isLeader()
    const now = Date.now()
    if (leader && !this.wasLeader) this.clock.promote(now) // a new leader gives every lease a full TTL
    if (!leader && this.wasLeader) this.clock.demote()
    this.wasLeader = leader
    if (this.held.size > 0) {
      const ids = [...this.held].slice(0, RENEW_BATCH_MAX)
      if (leader) this.renew(this.init.selfId, ids)
      else this.init.pubsub.publish(LEASES_TOPIC, new TextEncoder().encode(JSON.stringify(ids))).catch(() => undefined)
    }
    for (const id of this.clock.expired(now)) {
      this.init.log.info(`session ${id} expired: revoking it and the locks it held`)
      this.init.kv.write({ type: 'leaseRevoke', id }, true).catch((err: unknown) => this.init.log.debug(`revoke of expired lease ${id} not committed yet: ${String(err)}`))
    }
  }
}

function parseRenewal(data: Uint8Array): number[] | null {
  if (data.byteLength > 32 * 1024) return null
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(data))
    return Array.isArray(v) && v.length <= RENEW_BATCH_MAX && v.every((x) => Number.isSafeInteger(x) && x > 0) ? (v as number[]) : null
  } catch {
    return null
  }
}
