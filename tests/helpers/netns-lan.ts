/**
 * A test LAN between hosts that each live in a network namespace of their own (stock engines of
 * tests/helpers/dockerd.ts): a namespace made here, the hub, holds a Linux bridge, and a veth
 * pair joins each host's namespace to it with an address the test chooses. Nothing appears in
 * the machine's own namespace (the veths are made from inside the hub), and deleting the hub
 * removes the bridge and every veth with it (a veth pair dies with either end's namespace).
 *
 *   const lan = new NetnsLan('links')                      // hub namespace shoal-lan-links-<pid>
 *   lan.attach(engineA.netnsPath, '10.78.0.11')           // lan0 in A's namespace, 10.78.0.11/24
 *   lan.remove()                                           // also done at process exit
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { basename } from 'node:path'

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** The interface name the LAN gets inside each host's namespace. */
export const LAN_INTERFACE = 'lan0'

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:${SYSTEM_PATH}` } })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status ?? r.signal}): ${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim()}`)
  return r.stdout
}

export class NetnsLan {
  readonly name: string
  private ports = 0
  private removed = false
  private readonly onExit = (): void => this.remove()
  // Runs before tests/helpers/dockerd.ts's handlers (prepended), which reap the engines and raise the signal again.
  private readonly onSignal = (): void => this.remove()

  constructor(name: string) {
    this.name = `shoal-lan-${name}-${process.pid}`
    if (existsSync(`/run/netns/${this.name}`)) ip(['netns', 'del', this.name])
    process.once('exit', this.onExit)
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.prependOnceListener(s, this.onSignal)
    ip(['netns', 'add', this.name])
    this.hub(['link', 'add', 'br0', 'type', 'bridge'])
    this.hub(['link', 'set', 'br0', 'up'])
  }

  /** Joins the namespace at `netnsPath` (/run/netns/NAME) to the LAN with `address`/24 on its end. */
  attach(netnsPath: string | null, address: string): void {
    if (netnsPath === null) throw new Error('this host has no network namespace of its own; start its engine with { stock: true }')
    const port = `p${this.ports++}`
    this.hub(['link', 'add', port, 'type', 'veth', 'peer', 'name', LAN_INTERFACE, 'netns', basename(netnsPath)])
    this.hub(['link', 'set', port, 'master', 'br0'])
    this.hub(['link', 'set', port, 'up'])
    ip(['-n', basename(netnsPath), 'addr', 'add', `${address}/24`, 'dev', LAN_INTERFACE])
    ip(['-n', basename(netnsPath), 'link', 'set', LAN_INTERFACE, 'up'])
  }

  /** Deletes the hub namespace, its bridge and every veth (idempotent; best effort at exit). */
  remove(): void {
    if (this.removed) return
    this.removed = true
    process.removeListener('exit', this.onExit)
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, this.onSignal)
    try {
      if (existsSync(`/run/netns/${this.name}`)) ip(['netns', 'del', this.name])
    } catch {
      // The name is per pid: a leftover never blocks a later run.
    }
  }

  private hub(args: string[]): string {
    return ip(['-n', this.name, ...args])
  }
}
