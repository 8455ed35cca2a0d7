/** `shoal start`: runs one peer in the foreground until SIGTERM/SIGINT. */
import { parseCommandArgs, stringFlag, listFlag } from '../args.ts'
import { resolveStartConfig } from '../../node/config.ts'
import { createLogger } from '../../node/logger.ts'
import { Peer } from '../../node/peer.ts'

export const START_USAGE = `Usage: shoal start [--data-dir DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]...
                   [--api SOCKET] [--name NAME] [--secret-file FILE]
                   [--dns HOST:PORT|off] [--docker SOCKET|none] [--log-level LEVEL]
                   [--voters N] [--dead-grace SECONDS] [--snapshot-entries N]
                   [--dns-forward IP[:PORT]] [--dns-ttl SECONDS] [--dns-loops N]
                   [--label KEY=VALUE]... [--reschedule-grace SECONDS]
                   [--link-subnet CIDR]   link addresses on this host (default 100.127.0.0/16;
                                          /16 to /28, not in 172.16.0.0/12 or 192.168.0.0/16)
                   [--link-interface NAME|none]  interface the peer puts link addresses on
                                          (default shoal0; needs root or CAP_NET_ADMIN;
                                          none: you put them on an interface yourself)
                   [--publish-address ADDR|none]  where services' published ports (routing
                                          mesh) are answered (default 0.0.0.0; none: not here)`

/** How long a failed start may spend tearing down what it started before the process exits. */
const FAILED_START_STOP_MS = 10_000

export async function startCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('start', argv, {
    'data-dir': { type: 'string' },
    listen: { type: 'string', multiple: true },
    bootstrap: { type: 'string', multiple: true },
    api: { type: 'string' },
    name: { type: 'string' },
    'secret-file': { type: 'string' },
    dns: { type: 'string' },
    'dns-forward': { type: 'string' },
    'dns-ttl': { type: 'string' },
    'dns-loops': { type: 'string' },
    docker: { type: 'string' },
    'log-level': { type: 'string' },
    voters: { type: 'string' },
    'dead-grace': { type: 'string' },
    'snapshot-entries': { type: 'string' },
    label: { type: 'string', multiple: true },
    'reschedule-grace': { type: 'string' },
    'link-subnet': { type: 'string' },
    'link-interface': { type: 'string' },
    'publish-address': { type: 'string' },
  }, { min: 0, max: 0 })
  const config = resolveStartConfig({
    dataDir: stringFlag(p, 'data-dir'),
    listen: listFlag(p, 'listen'),
    bootstrap: listFlag(p, 'bootstrap'),
    api: stringFlag(p, 'api'),
    name: stringFlag(p, 'name'),
    secretFile: stringFlag(p, 'secret-file'),
    dns: stringFlag(p, 'dns'),
    dnsForward: stringFlag(p, 'dns-forward'),
    dnsTtl: stringFlag(p, 'dns-ttl'),
    dnsLoops: stringFlag(p, 'dns-loops'),
    docker: stringFlag(p, 'docker'),
    logLevel: stringFlag(p, 'log-level'),
    voters: stringFlag(p, 'voters'),
    deadGrace: stringFlag(p, 'dead-grace'),
    snapshotEntries: stringFlag(p, 'snapshot-entries'),
    labels: listFlag(p, 'label'),
    rescheduleGrace: stringFlag(p, 'reschedule-grace'),
    linkSubnet: stringFlag(p, 'link-subnet'),
    linkInterface: stringFlag(p, 'link-interface'),
    publishAddress: stringFlag(p, 'publish-address'),
  })
  const log = createLogger(config.logLevel)
  // A network library's stray rejection must not take the whole peer down with it.
  process.on('unhandledRejection', (reason) => log.warn(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`))

  const peer = new Peer(config, log)
  let stopping: Promise<void> | null = null
  let stopped: () => void = () => undefined
  const done = new Promise<void>((resolve) => (stopped = resolve))
  let starting = true
  let signalWhileStarting: string | null = null
  const stop = (signal: string): void => {
    if (starting) {
      // Stopping half-built layers would race start(); leave as soon as start-up is done.
      signalWhileStarting = signal
      return
    }
    if (stopping !== null) {
      log.warn(`${signal} again: exiting without a graceful leave`)
      process.exit(130)
    }
    log.info(`${signal}: leaving the cluster`)
    stopping = peer.stop().then(stopped)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  try {
    await peer.start()
  } catch (err) {
    // Tear down what did start (a leave is announced if the peer had joined), within a bound:
    // the failure is reported and the process exits either way (cli/main.ts).
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      peer.stop().catch((stopErr: unknown) => log.warn(`stopping after the failed start: ${stopErr instanceof Error ? stopErr.message : String(stopErr)}`)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, FAILED_START_STOP_MS))),
    ])
    clearTimeout(timer)
    throw err
  }
  starting = false
  if (signalWhileStarting !== null) stop(signalWhileStarting)
  await done
  return 0
}
