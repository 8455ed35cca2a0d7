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
import { CONTAINERS_PREFIX, hostKey, parseContainer, type Container, type Host, type Request } from '../storage/statestore/index.ts'
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'
import { nextHostSyncWrite, removeHostRecords } from '../runtime/container-reconcile.ts'
import { ConvergeLoop } from '../runtime/converge-loop.ts'

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
  private stopped = false
  private readonly loop: ConvergeLoop
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private unsubscribe: (() => void) | null = null
  private unwatch: (() => void) | null = null

  constructor(init: HostSyncInit) {
    this.init = init
    this.prefix = `${CONTAINERS_PREFIX}${init.selfId}/`
    this.loop = new ConvergeLoop({
      next: () => this.nextWrite(),
      write: (txn, done) => {
        init.kv.write(txn).then(
          () => {
            this.stats.writes++
            done(null)
          },
          (err: unknown) => done(err instanceof Error ? err.message : String(err)),
        )
      },
      after: (ms, fn) => {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null
          fn()
        }, ms)
        this.retryTimer.unref()
      },
      converged: () => {
        this.stats.converged++
      },
      failed: (error, retryMs) => {
        this.stats.failures++
        this.stats.lastError = error
        this.init.log.debug(`container records not converged yet (${error}); retrying in ${retryMs} ms`)
      },
    })
  }

  start(): void {
    // Subscribed before the runtime starts, so its first 'reconciled' is not missed.
    this.unsubscribe = this.init.runtime?.subscribe((change) => this.onRuntime(change)) ?? null
    this.watchOwnRecords()
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    this.loop.stop()
    this.unsubscribe?.()
    this.unwatch?.()
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
  }

  /** Graceful leave: this host's records go, as its containers leave the cluster with it. Returns the containers removed. */
  async removeAll(): Promise<number> {
    const containers = this.init.machine.store.range(this.prefix).kvs.length
    const request = removeHostRecords(this.init.selfId, this.init.machine.store)
    if (request === null) return 0
    await this.init.kv.write(request)
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
    if (!this.stopped) this.loop.schedule()
  }

  /** The next txn toward the truth (recomputed for each: the store moves while a write is in flight). */
  private nextWrite(): Request | undefined {
    const { machine, runtime, selfId } = this.init
    return nextHostSyncWrite(selfId, this.init.host(), runtime !== null && this.containersKnown ? runtime.containers() : null, machine.store)
  }
}
