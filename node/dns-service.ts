/**
 * The peer's DNS: one server on `--dns` for the host's own programs, and one on port 53 of
 * every container bridge gateway the runtime reports, because Docker's `--dns` takes an address
 * without a port. Both answer the zone `shoal.` from this replica, rebuilt after every change to
 * `containers/` or `hosts/` (the server coalesces bursts).
 */
import { DnsServer, DnsListenError, zoneRecordsFromStore, type DnsStats, type ListenAddress } from '../protocols/dns/index.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'
import { CONTAINERS_PREFIX, HOSTS_PREFIX } from '../storage/statestore/index.ts'
import { UserError } from './errors.ts'

/** Port containers' resolvers use: Docker's `--dns` has no port. */
const CONTAINER_DNS_PORT = 53

export interface DnsServiceInit {
  listen: ListenAddress
  forward: ListenAddress | null
  ttlSeconds: number
  /** Event loops answering UDP, on every listen address (1 = this thread only). */
  loops: number
  machine: StoreMachine
  watches: WatchHub
  log: Logger
}

/** What `shoal status` shows of DNS. */
export interface DnsView {
  listen: string[]
  /** Where containers on this host reach it (bridge gateways, port 53); errors say why not. */
  containers: { listen: string[]; error: string | null }
  stats: DnsStats
}

const show = (a: ListenAddress): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)

export class DnsService {
  private readonly init: DnsServiceInit
  private main: DnsServer | null = null
  private bridge: DnsServer | null = null
  private bridgeGateways: string[] = []
  private bridgeError: string | null = null
  private bridgeChange: Promise<void> = Promise.resolve()
  private unwatch: Array<() => void> = []

  constructor(init: DnsServiceInit) {
    this.init = init
  }

  /** Listens on `--dns`; a port in use or an address not on this host stops the peer with the fix. */
  async start(): Promise<void> {
    this.main = this.server([this.init.listen])
    try {
      await this.main.start()
    } catch (err) {
      this.main = null
      if (err instanceof DnsListenError) throw new UserError(`${err.message} (--dns ${show(this.init.listen)}; use another HOST:PORT, or --dns off)`)
      throw err
    }
    this.watch()
    this.init.log.info(`DNS for the zone shoal. on ${this.main.addresses.map(show).join(', ')} (udp+tcp)${this.init.forward === null ? '' : `, other names forwarded to ${show(this.init.forward)}`}`)
  }

  /** The replica was replaced by a snapshot: everything may have changed. */
  restored(): void {
    this.main?.changed()
    this.bridge?.changed()
  }

  /** Follows the runtime's bridge gateways: (re)listens on port 53 of each. Never throws. */
  gatewaysChanged(gateways: readonly string[]): void {
    const next = [...gateways].sort()
    if (next.join(',') === this.bridgeGateways.join(',')) return
    this.bridgeGateways = next
    this.bridgeChange = this.bridgeChange.then(async () => {
      await this.bridge?.stop()
      this.bridge = null
      this.bridgeError = null
      if (next.length === 0) return
      const server = this.server(next.map((host) => ({ host, port: CONTAINER_DNS_PORT })))
      try {
        await server.start()
        this.bridge = server
        this.init.log.info(`DNS for containers on ${next.map((h) => `${h}:${CONTAINER_DNS_PORT}`).join(', ')}: run containers with --dns ${next[0]} --dns-search shoal`)
      } catch (err) {
        this.bridgeError = err instanceof Error ? err.message : String(err)
        this.init.log.warn(`containers cannot use this peer's DNS: ${this.bridgeError}`)
      }
    })
  }

  view(): DnsView | null {
    if (this.main === null) return null
    return {
      listen: this.main.addresses.map(show),
      containers: { listen: this.bridge?.addresses.map(show) ?? [], error: this.bridgeError },
      stats: this.main.stats(),
    }
  }

  async stop(): Promise<void> {
    for (const stop of this.unwatch.splice(0)) stop()
    this.bridgeGateways = []
    await this.bridgeChange
    await Promise.all([this.main?.stop(), this.bridge?.stop()])
    this.main = null
    this.bridge = null
  }

  private server(listen: ListenAddress[]): DnsServer {
    const { machine, forward, ttlSeconds, log } = this.init
    return new DnsServer({ listen, records: () => zoneRecordsFromStore(machine.store), forward, ttlSeconds, udpEventLoops: this.init.loops, warn: (m) => log.warn(m) })
  }

  /** Rebuild on every change of a container or host record, from any peer. */
  private watch(): void {
    const { watches, machine } = this.init
    for (const prefix of [CONTAINERS_PREFIX, HOSTS_PREFIX]) {
      const add = (): void => {
        const stop = watches.add(prefix, machine.store.revision, {
          deliver: () => {
            this.main?.changed()
            this.bridge?.changed()
            return true
          },
          compacted: () => {
            this.restored()
            queueMicrotask(add)
          },
        })
        this.unwatch.push(stop)
      }
      add()
    }
  }
}
