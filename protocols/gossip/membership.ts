/**
 * Drives the pure SWIM failure detector with real time and libp2p: a ticker feeds `tick(now)`,
 * the transport feeds `step`, libp2p disconnects feed `onConnectionLost`, and every output
 * batch is drained at once (send frames, publish changes, teach libp2p new addresses).
 */
import { randomInt } from 'node:crypto'
import { mulberry32 } from '../prng.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { FailureDetector, type FailureDetectorConfig, type MemberChange, type MemberState } from './failure-detector.ts'
import { SwimTransport, type SwimTransportStats } from './swim-transport.ts'
import { decodeHostRecord, encodeHostRecord, type HostRecord } from './host-record.ts'

/** How often the driver ticks the core; the core's own periods are multiples of this. */
const TICK_INTERVAL_MS = 50
/** While no other member is known alive, retry joining through the bootstrap peers this often. */
const JOIN_RETRY_MS = 1000
/** Bound on how long a graceful leave waits for its messages to go out. */
const LEAVE_FLUSH_MS = 1500

/** One member as the API shows it. */
export interface MemberView {
  peerId: string
  state: MemberState
  incarnation: number
  stateSince: string
  host: HostRecord | null
  self: boolean
}

export interface MembershipInit {
  libp2p: Libp2p
  host: HostRecord
  bootstrap: Multiaddr[]
  onChange: (change: MemberChange, host: HostRecord | null) => void
  log: { info(m: string): void; warn(m: string): void; debug(m: string): void }
  detector?: Partial<Omit<FailureDetectorConfig, 'selfId' | 'meta' | 'nowMs' | 'random'>>
  /** The clocks (tests step them): `monotonicMs` drives every SWIM timer, `wallMs` only dates what is shown. */
  clock?: MembershipClock
}

/** A monotonic clock for deadlines and the wall clock for display. */
export interface MembershipClock {
  monotonicMs(): number
  wallMs(): number
}

const SYSTEM_CLOCK: MembershipClock = { monotonicMs: () => performance.now(), wallMs: () => Date.now() }

/** Cluster membership of this peer: who is alive, suspect, dead or left. */
export class Membership {
  private readonly core: FailureDetector
  private readonly transport: SwimTransport
  private readonly init: MembershipInit
  private readonly selfId: string
  private readonly seedIds: string[]
  // Every time the core sees is monotonic: a wall-clock step (NTP, a VM resumed) must not expire
  // suspicions or probes at once and have healthy peers declared dead (nor hold them back).
  private readonly clock: MembershipClock
  private ticker: ReturnType<typeof setInterval> | null = null
  private lastJoinAttemptMs = -Infinity
  private joinAttempts = 0
  private leaving = false
  private stopped = false
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    this.transport.connectionClosed(id)
    if (this.leaving) return
    this.core.onConnectionLost(id, this.clock.monotonicMs())
    this.drain()
  }

  constructor(init: MembershipInit) {
    this.init = init
    this.clock = init.clock ?? SYSTEM_CLOCK
    this.selfId = init.libp2p.peerId.toString()
    this.seedIds = [...new Set(init.bootstrap.map((ma) => ma.getComponents().findLast((c) => c.name === 'p2p')?.value ?? ''))].filter(
      (id) => id !== '' && id !== this.selfId,
    )
    this.core = new FailureDetector({
      ...init.detector,
      selfId: this.selfId,
      meta: encodeHostRecord(init.host),
      nowMs: this.clock.monotonicMs(),
      // Seeded from the OS once per process; the core only ever sees the function.
      random: mulberry32(randomInt(1, 2 ** 31)),
    })
    this.transport = new SwimTransport(
      init.libp2p,
      {
        onMessage: (from, message) => {
          if (this.leaving) return
          this.core.step(from, message, this.clock.monotonicMs())
          this.drain()
        },
        onUnreachable: (peerId) => {
          if (this.leaving) return
          this.core.onUnreachable(peerId, this.clock.monotonicMs())
          this.drain()
        },
      },
      (m) => init.log.debug(m),
    )
  }

  /** Counters of the SWIM transport. */
  get transportStats(): SwimTransportStats {
    return this.transport.stats
  }

  async start(): Promise<void> {
    for (const ma of this.init.bootstrap) {
      const id = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (id === undefined || id === this.selfId) continue
      await this.init.libp2p.peerStore.merge(peerIdFromString(id), { multiaddrs: [ma.decapsulateCode(421)] })
    }
    await this.transport.start()
    this.init.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.drain() // the core reports itself as a new member
    this.ticker = setInterval(() => this.onTick(), TICK_INTERVAL_MS)
    this.onTick()
  }

  /** Stops; with `leave`, first tells the cluster so others mark this peer `left` at once. */
  async stop(leave: boolean): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.ticker !== null) clearInterval(this.ticker)
    this.ticker = null
    if (leave) {
      this.core.leave(this.clock.monotonicMs())
      this.drain()
      this.leaving = true
      await this.transport.flush(LEAVE_FLUSH_MS)
    }
    this.leaving = true
    this.init.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    await this.transport.stop()
  }

  /**
   * Every known member, this peer included. `stateSince` is the wall-clock time now less the
   * monotonic time since the change, so `Date.now() - Date.parse(stateSince)` is how long the
   * state has held even across a wall-clock step.
   */
  members(): MemberView[] {
    const wall = this.clock.wallMs()
    const mono = this.clock.monotonicMs()
    return this.core.members().map((m) => ({
      peerId: m.peerId,
      state: m.state,
      incarnation: m.incarnation,
      stateSince: new Date(wall - (mono - m.stateSinceMs)).toISOString(),
      host: decodeHostRecord(m.meta),
      self: m.peerId === this.selfId,
    }))
  }

  /** The state of one member, if known. */
  stateOf(peerId: string): MemberState | undefined {
    return this.core.member(peerId)?.state
  }

  /** Publishes a changed host record (e.g. new listen addresses). */
  updateHost(host: HostRecord): void {
    this.core.updateMeta(encodeHostRecord(host), this.clock.monotonicMs())
    this.drain()
  }

  private onTick(): void {
    const now = this.clock.monotonicMs()
    this.core.tick(now)
    this.maybeJoin(now)
    this.drain()
  }

  /**
   * SWIM has no rendezvous of its own: until some other member is alive, keep asking the
   * bootstrap peers for their member list. This also re-joins a peer that everyone else
   * declared dead while it was cut off.
   */
  private maybeJoin(now: number): void {
    if (this.seedIds.length === 0 || now - this.lastJoinAttemptMs < JOIN_RETRY_MS) return
    const othersAlive = this.core.members().some((m) => m.peerId !== this.selfId && (m.state === 'alive' || m.state === 'suspect'))
    if (othersAlive) return
    this.lastJoinAttemptMs = now
    this.joinAttempts++
    if (this.joinAttempts === 5 || this.joinAttempts % 30 === 0) {
      this.init.log.warn(
        `still no answer from the bootstrap peers after ${this.joinAttempts} attempts; check the --bootstrap addresses and that --secret-file holds this cluster's cluster.key`,
      )
    }
    this.core.join(this.seedIds, now)
  }

  private drain(): void {
    const ready = this.core.ready()
    for (const change of ready.changes) this.onCoreChange(change)
    for (const out of ready.messages) this.transport.send(out.to, out.message)
  }

  private onCoreChange(change: MemberChange): void {
    const host = decodeHostRecord(change.meta)
    if (host !== null && change.peerId !== this.selfId && (change.state === 'alive' || change.state === 'suspect')) {
      const addrs: Multiaddr[] = []
      for (const a of host.addrs) {
        try {
          addrs.push(multiaddr(a).decapsulateCode(421))
        } catch {
          // A bad address in a peer's record costs only that address.
        }
      }
      if (addrs.length > 0) {
        this.init.libp2p.peerStore.merge(peerIdFromString(change.peerId), { multiaddrs: addrs }).catch((err: unknown) => {
          this.init.log.debug(`cannot record addresses of ${change.peerId}: ${String(err)}`)
        })
      }
    }
    // Events carry a wall-clock time; the core's is monotonic.
    this.init.onChange({ ...change, atMs: this.clock.wallMs() - (this.clock.monotonicMs() - change.atMs) }, host)
  }
}
