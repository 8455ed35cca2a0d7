/**
 * This host's link addresses (issue 13): for each link with a source container on this host, an
 * address from the link subnet, stored at `link-addrs/<self>/<source>/<alias>` (only this host
 * writes there: records.ts). Kept converged like HostSync keeps container records: after every
 * change to links, to this host's containers or to its own allocations, the next difference is
 * written, retried with back-off while there is no leader.
 *
 * An allocation is made once a source container exists on this host (running or not: a stopped
 * source that restarts keeps its alias address) and lives as long as the link: it is deleted
 * only when the link is removed, so a source that leaves and comes back gets the same address.
 * Addresses never move (allocateAddresses is stable), and survive peer restarts because they
 * are in the replicated store. This loop does not configure any interface: the data path does,
 * reading `addresses()` and `subscribe()`.
 */
import type { KvService } from './kv-service.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'
import { CONTAINERS_PREFIX, LINKS_PREFIX, LINK_ADDRS_PREFIX, encodeRecord, linkAddressKey, type Request, type TxnOp } from '../storage/statestore/index.ts'
import { ConvergeLoop } from '../runtime/converge-loop.ts'
import { allocateAddresses, subnetText, type Subnet } from '../runtime/links/addresses.ts'
import { isSourceContainer, linkName } from '../runtime/links/links.ts'
import { readLinkAddresses, readLinkView } from '../runtime/links/store.ts'

export interface LinkAddressesInit {
  selfId: string
  subnet: Subnet
  /** Narrowed to what is used, so tests can drive it over a plain StateStore. */
  kv: Pick<KvService, 'write'>
  machine: Pick<StoreMachine, 'store'>
  watches: Pick<WatchHub, 'add'>
  log: Logger
}

/** Counters for `shoal status`. */
export interface LinkAddressesStats {
  writes: number
  failures: number
  lastError: string | null
  /** Links that want an address on this host but found the subnet full. */
  unallocated: number
}

/** Most allocations changed in one Raft write. */
const LINK_ADDRS_WRITE_MAX_OPS = 256

export class LinkAddresses {
  readonly stats: LinkAddressesStats = { writes: 0, failures: 0, lastError: null, unallocated: 0 }
  private readonly init: LinkAddressesInit
  private readonly prefix: string
  private readonly loop: ConvergeLoop
  private readonly listeners = new Set<(addresses: ReadonlyMap<string, string>) => void>()
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private unwatch: Array<() => void> = []
  private stopped = false
  private warnedFull = false

  constructor(init: LinkAddressesInit) {
    this.init = init
    this.prefix = `${LINK_ADDRS_PREFIX}${init.selfId}/`
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
      failed: (error, retryMs) => {
        this.stats.failures++
        this.stats.lastError = error
        this.init.log.debug(`link addresses not converged yet (${error}); retrying in ${retryMs} ms`)
      },
    })
  }

  start(): void {
    const { machine, watches, selfId } = this.init
    // Links anywhere, this host's containers (a source appearing here), this host's allocations.
    for (const prefix of [LINKS_PREFIX, `${CONTAINERS_PREFIX}${selfId}/`, this.prefix]) {
      const add = (): void => {
        this.unwatch.push(watches.add(prefix, machine.store.revision, {
          deliver: (events) => {
            if (prefix === this.prefix) this.notify()
            if (events.length > 0) this.schedule()
            return !this.stopped
          },
          compacted: () => {
            if (!this.stopped) queueMicrotask(add)
            this.notify()
            this.schedule()
          },
        }))
      }
      add()
    }
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    this.loop.stop()
    for (const u of this.unwatch.splice(0)) u()
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.listeners.clear()
  }

  /** This host's link addresses as stored: link name (`<source>/<alias>`) → IPv4 address. */
  addresses(): Map<string, string> {
    return readLinkAddresses(this.init.machine.store, this.init.selfId)
  }

  /** Calls `listener` with `addresses()` whenever this host's allocations change; returns the unsubscribe. */
  subscribe(listener: (addresses: ReadonlyMap<string, string>) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The link subnet this host allocates from. */
  get subnet(): Subnet {
    return this.init.subnet
  }

  private notify(): void {
    if (this.listeners.size === 0) return
    const current = this.addresses()
    for (const l of this.listeners) {
      try {
        l(current)
      } catch (err) {
        this.init.log.warn(`a link address listener failed: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }

  private schedule(): void {
    if (!this.stopped) this.loop.schedule()
  }

  /** The next txn toward: one allocation per link with a source container here, none for links that are gone. */
  private nextWrite(): Request | undefined {
    const { machine, selfId, subnet } = this.init
    const view = readLinkView(machine.store)
    const here = view.containers.filter((c) => c.host === selfId && c.state !== 'lost')
    const existing = readLinkAddresses(machine.store, selfId)
    const linkNames = new Set(view.links.map(linkName))
    const wanted = [...new Set([
      ...view.links.filter((l) => here.some((c) => isSourceContainer(l, c))).map(linkName),
      // A link keeps its address here while it exists, source or not (see the file comment).
      ...[...existing.keys()].filter((k) => linkNames.has(k)),
    ])]
    const allocated = allocateAddresses(subnet, existing, wanted)
    const unallocated = wanted.length - allocated.size
    this.stats.unallocated = unallocated
    if (unallocated > 0 && !this.warnedFull) {
      this.warnedFull = true
      this.init.log.warn(`${unallocated} link(s) got no address on this host: the link subnet ${subnetText(subnet)} is full; restart the peer with a larger --link-subnet`)
    }
    const ops: TxnOp[] = []
    for (const [name, address] of allocated) {
      if (existing.get(name) === address) continue
      const [source, alias] = splitName(name)
      ops.push({ type: 'put', key: linkAddressKey(selfId, source, alias), value: encodeRecord({ address }) })
    }
    for (const name of existing.keys()) {
      if (allocated.has(name)) continue
      const [source, alias] = splitName(name)
      ops.push({ type: 'delete', key: linkAddressKey(selfId, source, alias) })
    }
    if (ops.length === 0) return undefined
    return { type: 'txn', compare: [], success: ops.slice(0, LINK_ADDRS_WRITE_MAX_OPS), failure: [] }
  }
}

function splitName(name: string): [string, string] {
  const at = name.lastIndexOf('/')
  return [name.slice(0, at), name.slice(at + 1)]
}
