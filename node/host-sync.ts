/**
 * Makes this host part of the cluster state: its Host record (`hosts/<self>`: name, addresses,
 * resources) and, when it has a container runtime, its containers (`containers/<self>/…`).
 *
 * This peer and its runtime's view are the truth for this host. Every change is gossiped at once (fast, best
 * effort) and the host's records in the StateStore are converged on the truth through Raft
 * (authoritative): after each runtime change, after each write anyone makes under this host's
 * prefix (the leader marking them lost while this host was cut off, say), and until a
 * convergence succeeds, retrying with back-off while there is no leader. Converging writes only
 * the difference, so nothing is lost or repeated whatever fails in between.
 */
import type { ContainerRuntime, RuntimeChange } from '../runtime/runtime.ts'
import type { EventTopic, ContainerEvent } from '../protocols/gossip/event-topic.ts'
import { COMMAND_MAX_PAYLOAD_BYTES, CONTAINERS_PREFIX, encodeRecord, hostKey, parseContainer, type Container, type Host, type TxnOp } from '../storage/statestore/index.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'
import { batchOps, convergeOps, sameBytes } from './container-reconcile.ts'

const RETRY_MIN_MS = 250
const RETRY_MAX_MS = 5000

export interface HostSyncInit {
  selfId: string
  /** This host's record as it should be stored now. */
  host: () => Host
  /** Null on a peer without a container runtime: it stores no containers. */
  runtime: ContainerRuntime | null
  kv: KvService
  machine: StoreMachine
  watches: WatchHub
  events: EventTopic
  log: Logger
}

/** Counters for `shoal status`. */
export interface HostSyncStats {
  converged: number
  writes: number
  failures: number
  lastError: string | null
}

export class HostSync {
  readonly stats: HostSyncStats = { converged: 0, writes: 0, failures: 0, lastError: null }
  private readonly init: HostSyncInit
  private readonly prefix: string
  /**
   * Set once the runtime has listed its containers: before that their truth is unknown, and
   * converging would delete every record. Only the Host record converges until then.
   */
  private containersKnown = false
  private running = false
  private again = false
  private stopped = false
  private retryMs = RETRY_MIN_MS
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private unsubscribe: (() => void) | null = null
  private unwatch: (() => void) | null = null

  constructor(init: HostSyncInit) {
    this.init = init
    this.prefix = `${CONTAINERS_PREFIX}${init.selfId}/`
  }

  start(): void {
    // Subscribed before the runtime starts, so its first 'reconciled' is not missed.
    this.unsubscribe = this.init.runtime?.subscribe((change) => this.onRuntime(change)) ?? null
    this.watchOwnRecords()
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    this.unsubscribe?.()
    this.unwatch?.()
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
  }

  /** Graceful leave: this host's records go, as its containers leave the cluster with it. Returns the containers removed. */
  async removeAll(): Promise<number> {
    const containers = this.init.machine.store.range(this.prefix).kvs.length
    if (containers === 0 && this.init.machine.store.get(hostKey(this.init.selfId)) === null) return 0
    await this.init.kv.write({ type: 'txn', compare: [], success: [{ type: 'deletePrefix', prefix: this.prefix }, { type: 'delete', key: hostKey(this.init.selfId) }], failure: [] })
    return containers
  }

  /** Call when this host's record changed (its addresses, say). */
  hostChanged(): void {
    this.schedule()
  }

  private onRuntime(change: RuntimeChange): void {
    if (change.type === 'reconciled') this.containersKnown = true
    if (change.type === 'upsert' && change.container.state !== 'lost') this.gossip(change.container.state, change.container)
    if (change.type === 'remove') {
      const stored = this.init.machine.store.get(this.prefix + change.id)
      const parsed = stored === null ? null : parseContainer(stored.value)
      const known = parsed?.ok === true ? parsed.record : { id: change.id, name: '', image: '', ips: [] }
      this.gossip('removed', known)
    }
    if (change.type !== 'status') this.schedule()
  }

  private gossip(action: ContainerEvent['action'], c: Pick<Container, 'id' | 'name' | 'image' | 'ips'> & { exitCode?: number | undefined }): void {
    this.init.events.containerChanged({ action, id: c.id, name: c.name, image: c.image, ips: [...c.ips], exitCode: c.exitCode ?? null }).catch((err: unknown) => {
      this.init.log.debug(`gossip of container ${c.id.slice(0, 12)} failed: ${err instanceof Error ? err.message : String(err)}`)
    })
  }

  /** Any write to this host's records, by anyone, may have moved them off the truth. */
  private watchOwnRecords(): void {
    const { machine, watches } = this.init
    const hostRecord = hostKey(this.init.selfId)
    // One watch on the common prefix of both buckets would see every host's writes; two are cheaper.
    const hostUnwatch = watches.add(hostRecord, machine.store.revision, {
      deliver: (events) => {
        if (events.some((e) => e.kv.key === hostRecord)) this.schedule()
        return !this.stopped
      },
      compacted: () => this.schedule(),
    })
    const containersUnwatch = watches.add(this.prefix, machine.store.revision, {
      deliver: () => {
        this.schedule()
        return !this.stopped
      },
      compacted: () => {
        hostUnwatch()
        if (!this.stopped) queueMicrotask(() => this.watchOwnRecords())
        this.schedule()
      },
    })
    this.unwatch = () => {
      hostUnwatch()
      containersUnwatch()
    }
  }

  private schedule(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    if (this.retryTimer !== null) return // a retry is already due
    this.running = true
    this.converge().then(
      () => {
        this.retryMs = RETRY_MIN_MS
        this.finish()
      },
      (err: unknown) => {
        this.stats.failures++
        this.stats.lastError = err instanceof Error ? err.message : String(err)
        this.init.log.debug(`container records not converged yet (${this.stats.lastError}); retrying in ${this.retryMs} ms`)
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null
          this.schedule()
        }, this.retryMs)
        this.retryTimer.unref()
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS)
        this.finish()
      },
    )
  }

  private finish(): void {
    this.running = false
    if (this.again) {
      this.again = false
      this.schedule()
    }
  }

  private async converge(): Promise<void> {
    const { machine, kv, runtime, selfId } = this.init
    // Recomputed for each txn: the store moves while a write is in flight.
    for (;;) {
      const ops: TxnOp[] = []
      const host = encodeRecord(this.init.host())
      const storedHost = machine.store.get(hostKey(selfId))
      if (storedHost === null || !sameBytes(storedHost.value, host)) ops.push({ type: 'put', key: hostKey(selfId), value: host })
      if (runtime !== null && this.containersKnown) ops.push(...convergeOps(selfId, runtime.containers(), machine.store.range(this.prefix).kvs))
      if (ops.length === 0) break
      const [txn] = batchOps(ops, COMMAND_MAX_PAYLOAD_BYTES / 2)
      if (txn === undefined) break
      await kv.write(txn)
      this.stats.writes++
    }
    this.stats.converged++
  }
}
