/**
 * Puts this host's link addresses (issue 13) on an interface the peer owns (default `shoal0`),
 * so its link listeners can bind them. Its addresses are local to the host: containers reach
 * them through their bridge gateway, as the host routes them to itself, and nothing outside the
 * host learns of them. Thin adapter over iproute2 (`ip`, run with execFile: no shell); what to
 * add and remove is decided here only by set difference.
 *
 * The interface is a dummy one; on a kernel built without dummy interfaces (CONFIG_DUMMY unset,
 * as in some VM kernels) it is an empty bridge instead, which every Docker host has and whose
 * addresses are just as local. Either way the interface is marked with an alias, so Shoal never
 * takes over a bridge it did not make (such as docker0).
 */
import { execFile } from 'node:child_process'
import net from 'node:net'

/** How long one `ip` command may take. */
const IP_COMMAND_TIMEOUT_MS = 10_000
/** Linux's IFNAMSIZ less the terminating zero. */
const INTERFACE_NAME_MAX_CHARS = 15

export const DEFAULT_LINK_INTERFACE = 'shoal0'
/** The interface alias (`ip link set NAME alias ...`) that marks an interface as Shoal's. */
export const LINK_INTERFACE_MARK = 'shoal link addresses'

/** `auto`: a dummy interface, or an empty bridge where the kernel has no dummy driver. */
export type LinkInterfaceKind = 'auto' | 'dummy' | 'bridge'

export interface LinkInterfaceInit {
  /** Interface name; default `shoal0`. */
  name?: string
  /** Run in this named network namespace (`ip -n NAME`) instead of the peer's own: for tests. */
  netns?: string
  /** The `ip` binary; default `ip` from PATH. */
  ipCommand?: string
  /** Default `auto`. */
  kind?: LinkInterfaceKind
}

/** `ip` failed; the message says what happened and what to do. */
export class LinkInterfaceError extends Error {
  override readonly name = 'LinkInterfaceError'
}

interface IpAddrInfo {
  family?: string
  local?: string
  prefixlen?: number
  scope?: string
}
interface IpLink {
  ifname?: string
  ifalias?: string
  linkinfo?: { info_kind?: string }
  addr_info?: IpAddrInfo[]
}

export class LinkInterface {
  readonly name: string
  private readonly netns: string | undefined
  private readonly ip: string
  private readonly kind: LinkInterfaceKind
  /** `ensure` calls run one at a time: two interleaved diffs could undo each other. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(init: LinkInterfaceInit = {}) {
    const name = init.name ?? DEFAULT_LINK_INTERFACE
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.length > INTERFACE_NAME_MAX_CHARS || name === '.' || name === '..') {
      throw new LinkInterfaceError(`link interface name ${JSON.stringify(name)} is not valid: use 1-${INTERFACE_NAME_MAX_CHARS} letters, digits, '_', '.' or '-'`)
    }
    if (init.netns !== undefined && !/^[A-Za-z0-9_.-]+$/.test(init.netns)) throw new LinkInterfaceError(`network namespace name ${JSON.stringify(init.netns)} is not valid`)
    this.name = name
    this.netns = init.netns
    this.ip = init.ipCommand ?? 'ip'
    this.kind = init.kind ?? 'auto'
  }

  /**
   * Makes the interface exist, be up, and hold exactly `addresses` (each as a /32 or /128):
   * adds the missing ones and removes the stale ones. Idempotent; safe to call after every change.
   */
  ensure(addresses: readonly string[]): Promise<{ added: string[]; removed: string[] }> {
    for (const a of addresses) {
      if (net.isIP(a) === 0) return Promise.reject(new LinkInterfaceError(`cannot put ${JSON.stringify(a)} on ${this.name}: not an IP address`))
    }
    const run = this.queue.then(() => this.ensureNow(addresses))
    this.queue = run.catch(() => undefined)
    return run
  }

  /** The addresses the interface holds now (none if it does not exist). */
  async addresses(): Promise<string[]> {
    const link = await this.show()
    return link === null ? [] : managedAddresses(link)
  }

  /** Deletes the interface and with it every link address (the peer is leaving links behind). */
  async remove(): Promise<void> {
    if ((await this.show()) === null) return
    await this.run(['link', 'del', this.name])
  }

  private async ensureNow(addresses: readonly string[]): Promise<{ added: string[]; removed: string[] }> {
    let link = await this.show()
    if (link === null) {
      await this.create()
      link = await this.show()
      if (link === null) throw new LinkInterfaceError(`created interface ${this.name}, but it is not there; is another process deleting it?`)
    }
    const kind = link.linkinfo?.info_kind
    // Never touch an interface Shoal did not make: its addresses may be someone's network. A
    // dummy carries no traffic of anyone's; a bridge must bear Shoal's mark.
    if (kind !== 'dummy' && !(kind === 'bridge' && link.ifalias === LINK_INTERFACE_MARK)) {
      throw new LinkInterfaceError(`interface ${this.name} exists and is not Shoal's (it is ${kind === undefined ? 'a physical or unknown interface' : `a ${kind} interface`}${kind === 'bridge' ? ` without the alias "${LINK_INTERFACE_MARK}"` : ''}); choose another link interface name, or delete it if it is a leftover`)
    }
    await this.run(['link', 'set', this.name, 'up'])
    const have = new Set(managedAddresses(link))
    const want = new Set(addresses)
    const added: string[] = []
    const removed: string[] = []
    for (const a of want) {
      if (have.has(a)) continue
      await this.run(['addr', 'add', withPrefix(a), 'dev', this.name], /File exists/)
      added.push(a)
    }
    for (const a of have) {
      if (want.has(a)) continue
      await this.run(['addr', 'del', withPrefix(a), 'dev', this.name], /Cannot assign requested address/)
      removed.push(a)
    }
    return { added, removed }
  }

  /** Creates the interface and marks it as Shoal's; one that appeared meanwhile is left to the kind check. */
  private async create(): Promise<void> {
    const mark = async (): Promise<void> => void (await this.run(['link', 'set', this.name, 'alias', LINK_INTERFACE_MARK]))
    if (this.kind !== 'bridge') {
      if ((await this.run(['link', 'add', this.name, 'type', 'dummy'], /File exists|Unknown device type|not supported/)) !== null) return mark()
      if ((await this.show()) !== null) return
      if (this.kind === 'dummy') {
        throw new LinkInterfaceError(`cannot create dummy interface ${this.name}: this kernel has no dummy interfaces; load the module (modprobe dummy), or let Shoal use an empty bridge (link interface kind auto or bridge)`)
      }
    }
    if ((await this.run(['link', 'add', this.name, 'type', 'bridge'], /File exists/)) !== null) await mark()
  }

  private async show(): Promise<IpLink | null> {
    const out = await this.run(['-j', '-d', 'addr', 'show', 'dev', this.name], /does not exist|Cannot find device/)
    if (out === null) return null
    let parsed: unknown
    try {
      parsed = JSON.parse(out)
    } catch {
      throw new LinkInterfaceError(`\`ip -j addr show dev ${this.name}\` printed something that is not JSON; is iproute2 older than 4.14?`)
    }
    if (!Array.isArray(parsed) || parsed.length === 0) return null
    return parsed[0] as IpLink
  }

  /** Runs `ip ARGS`; returns its stdout, or null when stderr matches `tolerated`. */
  private run(args: readonly string[], tolerated?: RegExp): Promise<string | null> {
    const full = this.netns === undefined ? [...args] : ['-n', this.netns, ...args]
    return new Promise((resolve, reject) => {
      execFile(this.ip, full, { timeout: IP_COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err === null) return resolve(stdout)
        const text = `${stderr}`.trim() || err.message
        if (tolerated !== undefined && tolerated.test(text)) return resolve(null)
        const command = `${this.ip} ${full.join(' ')}`
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          return reject(new LinkInterfaceError(`cannot run ${this.ip}: not found; install iproute2 (apt-get install iproute2), or turn links off`))
        }
        if (/Operation not permitted|Permission denied/i.test(text)) {
          return reject(new LinkInterfaceError(`\`${command}\` was not permitted: managing the link interface ${this.name} needs root or CAP_NET_ADMIN; run the peer as root, grant it (setcap cap_net_admin+ep on the node binary, or --cap-add NET_ADMIN for a container), or turn links off`))
        }
        if (/Unknown device type|not supported/i.test(text)) {
          return reject(new LinkInterfaceError(`\`${command}\` failed: this kernel has no dummy interfaces (${text}); load the module (modprobe dummy) or turn links off`))
        }
        reject(new LinkInterfaceError(`\`${command}\` failed: ${text}`))
      })
    })
  }
}

/** The addresses Shoal manages: all but the kernel's own IPv6 link-local one. */
function managedAddresses(link: IpLink): string[] {
  return (link.addr_info ?? []).filter((a) => a.local !== undefined && !(a.family === 'inet6' && a.scope === 'link')).map((a) => a.local as string)
}

function withPrefix(address: string): string {
  return net.isIPv6(address) ? `${address}/128` : `${address}/32`
}
