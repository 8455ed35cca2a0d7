/**
 * The DNS server a peer runs: UDP and TCP on every listen address, answering from a Zone
 * rebuilt from the replica whenever the peer says its records changed (debounced here: a
 * burst of applied entries costs one rebuild, and rebuilds are spaced by at least
 * `rebuildMinIntervalMs` and twice the last rebuild's duration, so under constant churn they
 * take at most a third of the loop), forwarding
 * names outside the zone when an upstream is set, and counting everything for `status`.
 *
 * Lifecycle: `new DnsServer(options)`, `await start()`, `changed()` after every StateStore
 * change to containers/ or hosts/, `stats()` any time, `await stop()`.
 */
import { isIPv6 } from 'node:net'
import { Forwarder, type ForwarderOptions, type ForwarderStats } from './forwarder.ts'
import { TcpListeners, type TcpStats } from './tcp.ts'
import { UdpListeners, type ListenAddress, type UdpStats } from './udp.ts'
import { UdpWorkers } from './workers.ts'
import { Zone, type ZoneCounters, type ZoneOptions } from './zone.ts'
import type { ZoneRecords } from './zone-build.ts'

/** Options of the DNS server; only `listen` and `records` are required. */
export interface DnsServerOptions {
  /** Addresses to serve UDP and TCP on (port 0: a free port, the same for UDP and TCP). */
  readonly listen: readonly ListenAddress[]
  /** Reads the current records from the replica; called at start and on each rebuild. */
  readonly records: () => ZoneRecords
  /** TTL of answers and negative answers. Default 5. */
  readonly ttlSeconds?: number
  /** Upstream for names outside `shoal.` (`--dns-forward`); none: REFUSED. */
  readonly forward?: ListenAddress | null
  /** Default 2000. */
  readonly forwardTimeoutMs?: number
  /** Default 1024. */
  readonly forwardInflightMax?: number
  /** Largest UDP answer with EDNS. Default 1232. */
  readonly udpPayloadMaxBytes?: number
  /** Default 256. */
  readonly tcpConnectionsMax?: number
  /** Default 16: one client address may not hold every slot (RFC 7766 §6.2.2). */
  readonly tcpConnectionsPerClientMax?: number
  /** Default 10000: a connection with no complete message for this long is closed (partial bytes do not count). */
  readonly tcpIdleTimeoutMs?: number
  /** Default 2000, at most tcpIdleTimeoutMs: a message must arrive whole this soon after its first byte. */
  readonly tcpMessageTimeoutMs?: number
  /** Default 60000: a connection is closed this long after it opened, whatever it does. */
  readonly tcpConnectionAgeMaxMs?: number
  /** Least time between rebuilds (also at least twice the last rebuild's duration). Default 20. */
  readonly rebuildMinIntervalMs?: number
  /** Addresses `ns.shoal` answers. Default: the listen hosts that are not wildcards, else 127.0.0.1. */
  readonly nameservers?: readonly string[]
  /** Event loops answering UDP: 1 (this thread) or more (worker threads sharing the port). Default 1. */
  readonly udpEventLoops?: number
  /** Where warnings go (a record source that throws). */
  readonly warn?: (message: string) => void
}

/** What `stats()` returns. */
export interface DnsStats {
  /** Outcome of every message received, UDP and TCP, all event loops (worker counts may lag 0.5 s). */
  readonly queries: ZoneCounters
  readonly zone: { readonly names: number; readonly serial: number; readonly rebuilds: number; readonly lastRebuildMs: number }
  readonly udp: UdpStats & { readonly eventLoops: number }
  readonly tcp: TcpStats
  /** Null without an upstream. */
  readonly forward: ForwarderStats | null
}

/** Error with what to do next when the server cannot listen. */
export class DnsListenError extends Error {
  override readonly name = 'DnsListenError'
}

/** Attempts to find a port free for both UDP and TCP when asked for port 0. */
const PORT_PICK_ATTEMPTS = 8

/** The DNS server; see the file comment. */
export class DnsServer {
  readonly #options: DnsServerOptions
  readonly #zoneOptions: ZoneOptions
  readonly #zone: Zone
  readonly #forwardOptions: ForwarderOptions | null
  readonly #forwarder: Forwarder | null
  readonly #udp: UdpListeners
  readonly #tcp: TcpListeners
  readonly #workers: UdpWorkers | null
  #addresses: ListenAddress[] = []
  #rebuildTimer: NodeJS.Timeout | null = null
  #lastRebuildAt = -Infinity
  #rebuilds = 0
  #lastRebuildMs = 0
  #running = false

  constructor(options: DnsServerOptions) {
    this.#options = options
    const udpPayloadMaxBytes = options.udpPayloadMaxBytes ?? 1232
    const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::'
    const listened = options.listen.map((a) => a.host).filter((h) => !wildcard(h))
    this.#zoneOptions = {
      ttlSeconds: options.ttlSeconds ?? 5,
      udpPayloadMaxBytes,
      forwarding: options.forward != null,
      nameservers: options.nameservers ?? (listened.length > 0 ? listened : ['127.0.0.1']),
    }
    this.#zone = new Zone(this.#zoneOptions)
    this.#forwardOptions = options.forward == null ? null : {
      upstream: options.forward, timeoutMs: options.forwardTimeoutMs ?? 2000,
      inflightMax: options.forwardInflightMax ?? 1024, udpPayloadMaxBytes,
    }
    this.#forwarder = this.#forwardOptions === null ? null : new Forwarder(this.#forwardOptions)
    this.#udp = new UdpListeners(() => this.#zone, this.#forwarder)
    const idleTimeoutMs = options.tcpIdleTimeoutMs ?? 10_000
    this.#tcp = new TcpListeners(() => this.#zone, this.#forwarder, {
      connectionsMax: options.tcpConnectionsMax ?? 256,
      connectionsPerClientMax: options.tcpConnectionsPerClientMax ?? 16,
      idleTimeoutMs,
      messageTimeoutMs: options.tcpMessageTimeoutMs ?? Math.min(2_000, idleTimeoutMs),
      connectionAgeMaxMs: options.tcpConnectionAgeMaxMs ?? 60_000,
    })
    const loops = options.udpEventLoops ?? 1
    if (!Number.isInteger(loops) || loops < 1) throw new RangeError(`udpEventLoops must be a whole number of at least 1, not ${loops}`)
    this.#workers = loops > 1 ? new UdpWorkers() : null
  }

  /** Builds the zone, then listens; resolves with the bound addresses. Rejects with a DnsListenError saying what to change. */
  async start(): Promise<readonly ListenAddress[]> {
    if (this.#options.listen.length === 0) throw new DnsListenError('DNS has no listen address; give --dns HOST:PORT, or --dns off')
    const records = this.#readRecords()
    this.#zone.load(records ?? { containers: [], hosts: [], revision: 0 })
    this.#lastRebuildAt = performance.now()
    try {
      await this.#forwarder?.start()
      const addresses: ListenAddress[] = []
      for (const address of this.#options.listen) addresses.push(await this.#listenPair(address))
      this.#addresses = addresses
      const loops = this.#options.udpEventLoops ?? 1
      if (this.#workers !== null) {
        await this.#workers.start(loops, this.#zoneOptions, records ?? { containers: [], hosts: [], revision: 0 }, addresses, this.#forwardOptions)
      }
    } catch (err) {
      await this.#closeAll()
      throw err
    }
    this.#running = true
    return this.#addresses
  }

  /** The addresses bound by `start` (with the chosen ports). */
  get addresses(): readonly ListenAddress[] {
    return this.#addresses
  }

  /** The replica's containers or hosts changed: rebuild soon (coalesced; see `rebuildMinIntervalMs`). */
  changed(): void {
    if (!this.#running || this.#rebuildTimer !== null) return
    const minInterval = Math.max(this.#options.rebuildMinIntervalMs ?? 20, 2 * this.#lastRebuildMs)
    const wait = Math.max(0, this.#lastRebuildAt + minInterval - performance.now())
    // Even with no wait, a timer lets the rest of a burst of applied entries land first.
    this.#rebuildTimer = setTimeout(() => {
      this.#rebuildTimer = null
      this.#rebuild()
    }, wait)
  }

  /** Rebuilds now (tests; the peer calls `changed`). */
  rebuildNow(): void {
    if (this.#rebuildTimer !== null) clearTimeout(this.#rebuildTimer)
    this.#rebuildTimer = null
    this.#rebuild()
  }

  /** Counters for `status`. */
  stats(): DnsStats {
    const queries = { ...this.#zone.counters }
    const udp = { ...this.#udp.stats, eventLoops: this.#options.udpEventLoops ?? 1 }
    const forward = this.#forwarder === null ? null : { ...this.#forwarder.stats }
    for (const w of this.#workers?.stats() ?? []) {
      for (const key of Object.keys(queries) as Array<keyof ZoneCounters>) queries[key] += w.zone[key]
      udp.sendErrors += w.udp.sendErrors
      if (forward !== null && w.forward !== null) {
        for (const key of Object.keys(forward) as Array<keyof ForwarderStats>) forward[key] += w.forward[key]
      }
    }
    return {
      queries,
      zone: { names: this.#zone.nameCount, serial: this.#zone.serial, rebuilds: this.#rebuilds, lastRebuildMs: this.#lastRebuildMs },
      udp, tcp: { ...this.#tcp.stats }, forward,
    }
  }

  /** Stops listening, forwarding and rebuilding. */
  async stop(): Promise<void> {
    this.#running = false
    if (this.#rebuildTimer !== null) clearTimeout(this.#rebuildTimer)
    this.#rebuildTimer = null
    await this.#closeAll()
  }

  async #closeAll(): Promise<void> {
    await Promise.all([this.#udp.close(), this.#tcp.close(), this.#workers?.stop(), this.#forwarder?.stop()])
  }

  #rebuild(): void {
    const records = this.#readRecords()
    if (records === null) return
    const t0 = performance.now()
    this.#zone.load(records)
    this.#workers?.load(records)
    this.#lastRebuildAt = performance.now()
    this.#lastRebuildMs = this.#lastRebuildAt - t0
    this.#rebuilds++
  }

  #readRecords(): ZoneRecords | null {
    try {
      return this.#options.records()
    } catch (err) {
      // Keep answering from the last good zone; the next change retries.
      this.#options.warn?.(`DNS kept its previous answers: reading the records failed (${err instanceof Error ? err.message : String(err)})`)
      return null
    }
  }

  /** Binds TCP then UDP on one address; for port 0, retries until a port is free for both. */
  async #listenPair(address: ListenAddress): Promise<ListenAddress> {
    const attempts = address.port === 0 ? PORT_PICK_ATTEMPTS : 1
    for (let attempt = 1; ; attempt++) {
      let tcpBound: ListenAddress
      try {
        tcpBound = await this.#tcp.listen(address)
      } catch (err) {
        throw listenError(address, 'TCP', err)
      }
      const bound = { host: address.host, port: tcpBound.port }
      // With workers, they bind UDP (with SO_REUSEPORT); this thread checks the port is free for UDP first.
      const probe = this.#workers === null ? this.#udp : new UdpListeners(() => this.#zone, null)
      try {
        await probe.listen(bound, this.#workers !== null)
        if (probe !== this.#udp) await probe.close()
        return bound
      } catch (err) {
        if (probe !== this.#udp) await probe.close()
        const code = (err as NodeJS.ErrnoException).code
        await this.#tcp.unlisten(bound)
        if (code !== 'EADDRINUSE' || attempt >= attempts) throw listenError(bound, 'UDP', err)
      }
    }
  }
}

function listenError(address: ListenAddress, transport: string, err: unknown): DnsListenError {
  const e = err as NodeJS.ErrnoException
  const where = isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
  const next = (() => {
    switch (e.code) {
      case 'EADDRINUSE': return 'another program holds that port (an mDNS responder such as avahi often holds 5353); choose another with --dns HOST:PORT, or turn DNS off with --dns off'
      case 'EADDRNOTAVAIL': return 'that address is not on this machine; use one it has (e.g. 127.0.0.1) in --dns HOST:PORT'
      case 'EACCES': return 'ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port in --dns HOST:PORT'
      default: return 'check --dns HOST:PORT'
    }
  })()
  return new DnsListenError(`DNS cannot listen on ${where} over ${transport} (${e.code ?? e.message}): ${next}`)
}
