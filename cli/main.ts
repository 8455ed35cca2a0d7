/** The `shoal` command: dispatches to a subcommand; user errors print one line, never a stack. */
import { readFileSync } from 'node:fs'
import { UserError, UsageError, environmentError } from '../node/errors.ts'
import { SHOAL_VERSION } from '../node/version.ts'
import { startCommand, START_USAGE } from './commands/start.ts'
import { statusCommand, peersCommand } from './commands/cluster.ts'
import { eventsCommand, eventCommand } from './commands/events.ts'
import { kvCommand, KV_USAGE } from './commands/kv.ts'
import { lockCommand } from './commands/lock.ts'
import { psCommand, hostsCommand, PS_USAGE } from './commands/ps.ts'
import { simulateCommand, SIMULATE_USAGE } from './commands/simulate.ts'
import { serviceCommand, hostCommand, serviceUsage, HOST_USAGE } from './commands/service.ts'
import { linkCommand, dockerConfigCommand, LINK_USAGE, DOCKER_CONFIG_USAGE } from './commands/link.ts'

const USAGE = `Usage: shoal COMMAND [OPTIONS]

Run a peer:
  start              run a peer in the foreground (see 'shoal start --help')

Inspect the cluster (every command takes --api SOCKET or env SHOAL_API):
  status [--json]    this peer: id, addresses, role, members, runtime
  peers [--json]     every peer of the cluster and its liveness
  hosts [--json]     every host: liveness, containers, resources
  ps [--all] [--host NAME] [--json]
                     containers of every host of the cluster
  events [--json]    live stream of cluster events (--history: recent ones first)
  event NAME [DATA]  fire a user event to every peer

Services (the leader's scheduler places them; every host runs its share):
  service create NAME --image IMG [--replicas N] [--port P]... [-- CMD]   (--help: every flag)
  service apply -f FILE | ls | ps NAME | inspect NAME | scale NAME=N | update NAME ...
  service rollback NAME | rebalance NAME | rm NAME
  host drain NAME | host activate NAME

Links (SOURCE's containers reach TARGET as ALIAS, on any host):
  link create SOURCE TARGET --alias ALIAS [--port P[/udp]]... | link ls [--json] | link rm SOURCE ALIAS
  docker-config      daemon.json lines / docker run flags so containers use this peer's DNS

Replicated key-value store (writes through Raft, reads from this peer's replica):
  kv put KEY VALUE | kv get KEY [--consistent] | kv del KEY | kv list [PREFIX] [--json]
  kv watch [PREFIX] [--revision R]   one JSON line per change
  lock NAME [--ttl SECONDS] -- CMD   run CMD while holding the cluster-wide lock NAME

Test before you trust (see 'shoal simulate --help'):
  simulate --scenario NAME|all --seeds A..B [--nodes N] [--json]
                     partitions, crashes and message faults against the real cores

  version            print the version
`

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  start: startCommand,
  status: statusCommand,
  peers: peersCommand,
  events: eventsCommand,
  event: eventCommand,
  kv: kvCommand,
  lock: lockCommand,
  ps: psCommand,
  hosts: hostsCommand,
  simulate: simulateCommand,
  service: serviceCommand,
  host: hostCommand,
  link: linkCommand,
  'docker-config': dockerConfigCommand,
  version: async () => {
    process.stdout.write(`shoal ${SHOAL_VERSION}\n`)
    return 0
  },
}

/** What a shell reports for a process killed by SIGPIPE (128 + 13), as `cat big | head -1` gives. */
const EXIT_BROKEN_PIPE = 141
/** BSD sysexits EX_IOERR: the output could not be written. */
const EXIT_IO_ERROR = 74

/**
 * A reader that went away (`shoal kv get K | head -c 10`) ends a client command quietly, as
 * SIGPIPE ends other unix tools (Node ignores SIGPIPE, so without this every write would
 * raise an unhandled EPIPE with a stack trace). `shoal start` keeps running instead: a peer
 * must not leave its cluster because whoever read its log went away; log lines are dropped.
 */
function endOnClosedOutput(command: string | undefined): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (command === 'start') return
      if (err.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE)
      // Any other output error (EIO, ENOSPC): stderr may be what failed, so exit without a word.
      process.exit(EXIT_IO_ERROR)
    })
  }
}

/**
 * Linux hands Node its arguments as bytes and Node decodes them to strings, turning bytes that
 * are not UTF-8 into U+FFFD; passed on, `kv put` would store other bytes than typed. A U+FFFD
 * in an argument is checked against the raw bytes of /proc/self/cmdline, and refused when it
 * came from invalid UTF-8 (a real U+FFFD typed by the user is kept).
 */
function checkArgvIsUtf8(argv: string[]): void {
  if (!argv.some((a) => a.includes('\uFFFD'))) return
  let raw: Buffer
  try {
    raw = readFileSync('/proc/self/cmdline')
  } catch {
    return // no procfs: nothing to compare with
  }
  const decoder = new TextDecoder('utf-8', { fatal: true })
  const raws = raw.toString('latin1').split('\0')
  if (raws.at(-1) === '') raws.pop()
  // Only Shoal's own arguments, the last ones: Node's path and options are not the user's.
  for (const arg of raws.slice(-argv.length)) {
    try {
      decoder.decode(Buffer.from(arg, 'latin1'))
    } catch {
      throw new UsageError(`an argument is not valid UTF-8 text (${JSON.stringify(Buffer.from(arg, 'latin1').toString('utf8'))}); keys and values are UTF-8: convert it (e.g. with iconv) or encode binary data as base64`)
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  endOnClosedOutput(command)
  checkArgvIsUtf8(argv)
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE)
    return command === undefined ? 2 : 0
  }
  if (command === '--version') return COMMANDS['version']?.([]) ?? 0
  const run = COMMANDS[command]
  if (run === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest // what follows -- belongs to a child command
  if (own.includes('--help') || own.includes('-h')) {
    const usage: Record<string, string> = { start: START_USAGE, kv: KV_USAGE, ps: PS_USAGE, simulate: SIMULATE_USAGE, service: serviceUsage(rest[0]), host: HOST_USAGE, link: LINK_USAGE, 'docker-config': DOCKER_CONFIG_USAGE }
    process.stdout.write(usage[command] === undefined ? USAGE : `${usage[command]}\n`)
    return 0
  }
  return run(rest)
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (thrown) {
  // A full disk, a permission or a read-only file system is the machine's, not a bug.
  const err = thrown instanceof UserError ? thrown : (environmentError(thrown) ?? thrown)
  if (err instanceof UserError) {
    process.stderr.write(`shoal: ${err.message}\n`)
    if (err instanceof UsageError) process.stderr.write(`Run 'shoal --help' for usage.\n`)
    process.exitCode = err.exitCode
  } else {
    process.stderr.write(`shoal: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nThis is a bug; please report it with the command you ran.\n`)
    process.exitCode = 70
  }
  // Exit now: a handle a failed command left open (a half-started peer's socket, a timer)
  // must not keep the process, its data dir lock and its address alive. stderr is written
  // synchronously to files, pipes and terminals on Linux, so nothing above is lost.
  process.exit(process.exitCode)
}
