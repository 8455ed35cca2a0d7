/**
 * The peer's DNS: one server on `--dns` for the host's own programs, and one on port 53 of
 * every container bridge gateway the runtime reports, because Docker's `--dns` takes an address
 * without a port. Both answer the zone `shoal.` from this replica, rebuilt after every change to
 * `containers/` or `hosts/` (the server coalesces bursts).
 *
 * Where containers should point (`--dns GATEWAY --dns-search shoal`, the default bridge's
 * gateway) is said in the log and in `shoal status`; so is, as a warning with what to do, a
 * Docker engine with no bridge gateway, or a gateway this peer cannot listen on.
 */
import { DnsServer, DnsListenError, type DnsStats, type ListenAddress } from '../protocols/dns/index.ts'
import { zoneRecordsFromStore } from '../runtime/dns-records.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'
import type { RuntimeStatus } from '../runtime/runtime.ts'
import { CONTAINERS_PREFIX, HOSTS_PREFIX, LINKS_PREFIX, LINK_ADDRS_PREFIX, TASKS_PREFIX } from '../storage/statestore/index.ts'
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
  /** This peer's id: its link aliases (issue 13) are answered to its source containers. Absent: none. */
  selfId?: string
}

/** What `shoal status` shows of DNS. */
export interface DnsView {
  listen: string[]
  /**
   * Where containers on this host reach it (bridge gateways, port 53), the flags to give
   * `docker run` for it, and why it cannot listen for them (no gateway, or a gateway it
   * cannot listen on) with what to do; all empty/null without a container runtime.
   */
  containers: { listen: string[]; dockerRunFlags: string | null; error: string | null }
  stats: DnsStats
}

const show = (a: ListenAddress): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)

/** What a container needs to use this peer's DNS through `gateway`. */
const dockerRunFlags = (gateway: string): string => `--dns ${gateway} --dns-search shoal`

/**
 * Why containers cannot reach this peer's DNS on `hosts`, and what to do, from listen errors;
 * gateways that failed the same way share one sentence.
 */
function bridgeListenProblems(failures: ReadonlyArray<{ host: string; err: unknown }>): string {
  const byCode = new Map<string, { hosts: string[]; message: string }>()
  for (const { host, err } of failures) {
    const message = err instanceof Error ? err.message : String(err)
    const code = /\((E[A-Z]+)\)/.exec(message)?.[1] ?? message
    const entry = byCode.get(code) ?? { hosts: [], message }
    entry.hosts.push(host)
    byCode.set(code, entry)
  }
  return [...byCode].map(([code, { hosts, message }]) => {
    const where = `port ${CONTAINER_DNS_PORT} of ${hosts.join(', ')}`
    switch (code) {
      case 'EADDRNOTAVAIL':
        return `cannot listen on ${where} (EADDRNOTAVAIL): the bridge is not in this peer's network namespace; run the peer on the Docker host itself (in a container only with --network host)`
      case 'EACCES':
        return `cannot listen on ${where} (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE; run the peer as root or grant it that capability`
      case 'EADDRINUSE':
        return `cannot listen on ${where} (EADDRINUSE): another DNS server holds it (dnsmasq, systemd-resolved?); make it leave the Docker bridges alone (e.g. dnsmasq --bind-interfaces --except-interface=docker0)`
      default:
        return `cannot listen on ${where}: ${message}`
    }
  }).join('; ')
}

export class DnsService {
  private readonly init: DnsServiceInit
  private main: DnsServer | null = null
  private bridge: DnsServer | null = null
  /** Gateways and missing-gateway problem last acted on, to skip repeats. */
  private bridgeKey = ''
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

  /**
   * Follows the runtime's status: (re)listens on port 53 of each bridge gateway, in the
   * runtime's order (the default bridge's first, which the advice names). A runtime that
   * answers with no gateway is a warning; one not yet reached is not (it keeps what it had
   * while degraded). Never throws.
   */
  runtimeChanged(status: RuntimeStatus): void {
    const next = [...status.gateways]
    const missing = next.length === 0 && status.runtime !== 'none' && status.degraded === null
      ? `the container runtime at ${status.socket ?? '?'} has no bridge network with a gateway address (its log lines say why), so containers on this host cannot reach this peer's DNS; give the engine a bridge (dockerd's default docker0, or docker network create NAME), or point containers at another peer's DNS`
      : null
    const key = `${next.join(',')}|${missing ?? ''}`
    if (key === this.bridgeKey) return
    this.bridgeKey = key
    this.bridgeChange = this.bridgeChange.then(async () => {
      await this.bridge?.stop()
      this.bridge = null
      this.bridgeError = missing
      if (missing !== null) this.init.log.warn(`containers cannot use this peer's DNS: ${missing}`)
      if (next.length === 0) return
      const failures: Array<{ host: string; err: unknown }> = []
      let hosts = next
      let server = this.server(hosts.map((host) => ({ host, port: CONTAINER_DNS_PORT })))
      try {
        await server.start()
      } catch (err) {
        if (hosts.length === 1) {
          failures.push({ host: hosts[0] as string, err })
          hosts = []
        } else {
          // One bad gateway must not cost the others: find which ones this peer can listen on.
          const good: string[] = []
          for (const host of hosts) {
            const probe = this.server([{ host, port: CONTAINER_DNS_PORT }])
            try {
              await probe.start()
              good.push(host)
            } catch (probeErr) {
              failures.push({ host, err: probeErr })
            }
            await probe.stop()
          }
          hosts = good
        }
        if (hosts.length > 0) {
          server = this.server(hosts.map((host) => ({ host, port: CONTAINER_DNS_PORT })))
          try {
            await server.start()
          } catch (err) {
            failures.push(...hosts.map((host) => ({ host, err })))
            hosts = []
          }
        }
      }
      if (failures.length > 0) {
        this.bridgeError = bridgeListenProblems(failures)
        this.init.log.warn(`containers cannot use this peer's DNS through ${failures.length} of ${next.length} bridge gateway(s): ${this.bridgeError}`)
      }
      if (hosts.length === 0) return
      this.bridge = server
      this.init.log.info(`DNS for containers on ${hosts.map((h) => show({ host: h, port: CONTAINER_DNS_PORT })).join(', ')}: run containers with ${dockerRunFlags(hosts[0] as string)}`)
    })
  }

  /** Where containers on this host reach this peer's DNS (bridge gateway IPs, port 53), or none. */
  containerResolvers(): string[] {
    return this.bridge?.addresses.map((a) => a.host) ?? []
  }

  view(): DnsView | null {
    if (this.main === null) return null
    return {
      listen: this.main.addresses.map(show),
      containers: {
        listen: this.bridge?.addresses.map(show) ?? [],
        dockerRunFlags: this.bridge === null ? null : dockerRunFlags(this.bridge.addresses[0]?.host ?? '?'),
        error: this.bridgeError,
      },
      stats: this.main.stats(),
    }
  }

  async stop(): Promise<void> {
    for (const stop of this.unwatch.splice(0)) stop()
    this.bridgeKey = ''
    await this.bridgeChange
    await Promise.all([this.main?.stop(), this.bridge?.stop()])
    this.main = null
    this.bridge = null
  }

  private server(listen: ListenAddress[]): DnsServer {
    const { machine, forward, ttlSeconds, log } = this.init
    return new DnsServer({ listen, records: () => zoneRecordsFromStore(machine.store, this.init.selfId), forward, ttlSeconds, udpEventLoops: this.init.loops, warn: (m) => log.warn(m) })
  }

  /** Rebuild on every change of a container, host, task or link record, and of this host's link addresses. */
  private watch(): void {
    const { watches, machine, selfId } = this.init
    const linkPrefixes = selfId === undefined ? [] : [LINKS_PREFIX, `${LINK_ADDRS_PREFIX}${selfId}/`]
    for (const prefix of [CONTAINERS_PREFIX, HOSTS_PREFIX, TASKS_PREFIX, ...linkPrefixes]) {
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
