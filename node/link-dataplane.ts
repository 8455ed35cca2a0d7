/**
 * The links' data path on this host (issue 13): keeps the link interface's addresses and the
 * forwarder's listeners in step with the cluster state, and answers the forwarder's three
 * questions from this peer's replica: which clients a link address serves (the link's source
 * containers on this host), who may open a link stream here (a peer hosting a source container
 * of that link, for one of its ports), and where a link's target runs.
 *
 * Published service ports (the routing mesh, runtime/links/mesh.ts) ride the same path: this
 * host answers each on `--publish-address` for any client, and any host of the cluster may open
 * a stream for one, to the service's target port only.
 *
 * It re-syncs after every change of links, containers, tasks or this host's link addresses,
 * one sync at a time; a failed sync (no CAP_NET_ADMIN, an address in use) is logged once per
 * distinct error and retried on the next change or tick.
 */
import type { Libp2p } from 'libp2p'
import { LinkForwarder, type ListenSpec } from './link-forwarder.ts'
import type { LinkInterface } from './link-interface.ts'
import type { LinkAddresses } from './link-addresses.ts'
import type { StoreMachine } from './store-machine.ts'
import type { WatchHub } from './watch-hub.ts'
import type { Logger } from './logger.ts'
import { errorMessage } from './errors.ts'
import { readLinkView, type LinkView } from '../runtime/links/store.ts'
import { hostHasSource, linkName, linkSourcesOn, linkTargets } from '../runtime/links/links.ts'
import { meshAuthorized, meshService } from '../runtime/links/mesh.ts'
import { CONTAINERS_PREFIX, HOSTS_PREFIX, LINKS_PREFIX, SERVICES_PREFIX } from '../storage/statestore/index.ts'
import { TASKS_PREFIX } from '../runtime/scheduler/task.ts'
import type { LinkInstance } from '../protocols/link/targets.ts'

/** How often the data path is re-synced without a change (a listener that failed is retried). */
const RESYNC_MS = 5_000

export interface LinkDataplaneInit {
  selfId: string
  libp2p: Libp2p
  machine: Pick<StoreMachine, 'store'>
  watches: WatchHub
  addresses: LinkAddresses
  /** Null: addresses are not put on an interface (tests that listen on loopback). */
  iface: LinkInterface | null
  /** Where this host answers published service ports; null: it does not. */
  publishAddress: string | null
  log: Logger
}

export class LinkDataplane {
  readonly forwarder: LinkForwarder
  private readonly init: LinkDataplaneInit
  private view: LinkView | null = null
  /** Per link: the addresses of its running source containers on this host (built with the view). */
  private clients: Map<string, Set<string>> | null = null
  private unwatch: Array<() => void> = []
  private timer: ReturnType<typeof setInterval> | null = null
  private syncing = false
  private again = false
  private stopped = false
  private lastError: string | null = null
  /**
   * Whether the interface may hold link addresses that must go (null: not known yet). A host
   * without links leaves the interface alone: no `shoal0` made for nothing, and no warning on
   * hosts where the peer runs without CAP_NET_ADMIN and nobody links anything.
   */
  private ifaceHolds: boolean | null = null

  constructor(init: LinkDataplaneInit) {
    this.init = init
    this.forwarder = new LinkForwarder({
      libp2p: init.libp2p,
      selfId: init.selfId,
      log: init.log,
      authorize: (remote, link, port) => this.authorize(remote, link, port),
      admitClient: (address, link) => this.admit(address, link),
      resolveTargets: (link, port) => this.targets(link, port),
    })
  }

  async start(): Promise<void> {
    await this.forwarder.start()
    const { watches, machine, addresses } = this.init
    for (const prefix of [LINKS_PREFIX, CONTAINERS_PREFIX, TASKS_PREFIX, SERVICES_PREFIX, HOSTS_PREFIX]) {
      this.unwatch.push(watches.add(prefix, machine.store.revision, {
        deliver: () => {
          this.forget()
          this.kick()
          return true
        },
        compacted: () => {
          this.forget()
          this.kick()
        },
      }))
    }
    this.unwatch.push(addresses.subscribe(() => this.kick()))
    this.timer = setInterval(() => this.kick(), RESYNC_MS)
    this.timer.unref()
    this.kick()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    for (const u of this.unwatch) u()
    this.unwatch = []
    await this.forwarder.stop()
  }

  private forget(): void {
    this.view = null
    this.clients = null
  }

  /** The links, containers and out-of-service ids as of the last change (read once per change, not per connection). */
  private current(): LinkView {
    this.view ??= readLinkView(this.init.machine.store)
    return this.view
  }

  private authorize(remote: string, link: string, port: number): boolean {
    const view = this.current()
    if (meshService(link) !== null) return meshAuthorized(remote, link, port, view.mesh, view.hosts)
    const l = view.links.find((x) => linkName(x) === link)
    return l !== undefined && l.ports.some((p) => p.port === port && p.protocol === 'tcp') && hostHasSource(remote, l, view.containers)
  }

  /**
   * A link address serves only the link's source containers on this host, as Docker's legacy
   * links open the target to the source alone: another container here (which gets NXDOMAIN for
   * the alias) must not reach the target by dialling the address it guessed.
   */
  private admit(address: string, link: string): boolean {
    // A published port is public, as Docker's `-p` is: whoever reaches the host may connect.
    if (meshService(link) !== null) return true
    if (this.clients === null) {
      const view = this.current()
      this.clients = new Map(linkSourcesOn(this.init.selfId, view.links, view.containers).map(({ link: l, containers }) => [linkName(l), new Set(containers.flatMap((c) => c.ips))]))
    }
    return this.clients.get(link)?.has(address) === true
  }

  private targets(link: string, port: number): LinkInstance[] {
    const view = this.current()
    const service = meshService(link)
    const l = service !== null
      ? (view.mesh.some((r) => r.link === link && r.target === port) ? { target: service, targetKind: 'service' as const } : undefined)
      : view.links.find((x) => linkName(x) === link)
    if (l === undefined) return []
    return linkTargets(l, view.containers, view.outOfService, this.init.selfId).flatMap((t) => {
      const ip = t.ips.find((x) => !x.includes(':')) ?? t.ips[0]
      return ip === undefined ? [] : [{ host: t.host, ip, port }]
    })
  }

  private kick(): void {
    if (this.stopped) return
    if (this.syncing) {
      this.again = true
      return
    }
    this.syncing = true
    void this.sync().finally(() => {
      this.syncing = false
      if (this.again && !this.stopped) {
        this.again = false
        this.kick()
      }
    })
  }

  /** Addresses on the interface, then one listener per link address and TCP port, and one per published port. */
  private async sync(): Promise<void> {
    const { addresses, iface, log } = this.init
    const view = this.current()
    const mine = addresses.addresses()
    const wanted: ListenSpec[] = []
    for (const l of view.links) {
      const address = mine.get(linkName(l))
      if (address === undefined) continue
      for (const p of l.ports) if (p.protocol === 'tcp') wanted.push({ address, port: p.port, link: linkName(l) })
    }
    const publishAddress = this.init.publishAddress
    if (publishAddress !== null) for (const r of view.mesh) wanted.push({ address: publishAddress, port: r.published, link: r.link, targetPort: r.target })
    try {
      if (iface !== null) {
        const want = [...new Set(mine.values())]
        this.ifaceHolds ??= (await iface.addresses()).length > 0
        if (want.length > 0 || this.ifaceHolds) {
          await iface.ensure(want)
          this.ifaceHolds = want.length > 0
        }
      }
      const r = await this.forwarder.sync(wanted)
      const problem = r.failed.length === 0 ? null : r.failed.map((f) => `${f.spec.address}:${f.spec.port} (${f.spec.link}): ${f.error}`).join('; ')
      if (problem !== null && problem !== this.lastError) log.warn(`link listeners not open: ${problem}`)
      this.lastError = problem
    } catch (err) {
      const message = errorMessage(err)
      if (message !== this.lastError) log.warn(`links: ${message}`)
      this.lastError = message
    }
  }
}
