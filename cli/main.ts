/** The `shoal` command: dispatches to a subcommand; user errors print one line, never a stack. */
import { readFileSync } from 'node:fs'
import { enableCompileCache } from 'node:module'
import { UserError, UsageError, environmentError } from '../node/errors.ts'
import { SHOAL_VERSION } from '../node/version.ts'

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

/** A command, loaded on demand: its runner and its usage text. */
interface Command {
  run: (argv: string[]) => Promise<number>
  usage?: (rest: string[]) => string
}

// Node strips TypeScript types with a WebAssembly compiler that stays in memory once loaded
// (about 20 MB for a client, 30 for a peer) and costs start-up time on every run. The compile
// cache (under the OS temp dir, keyed by each file's contents, so an edited file is compiled
// afresh) keeps the stripped code and its bytecode: later runs never load the compiler. A cache
// that cannot be opened (read-only temp dir, another user's directory) only costs that saving.
// Modules imported after this line are cached; `cli/shoal.js` enables it before this file too.
enableCompileCache()

// Each command's module is imported only when that command runs: a client command must not
// pay for loading the daemon (libp2p, Raft, Docker) it talks to over a socket.
const COMMANDS: Record<string, () => Promise<Command>> = {
  start: async () => {
    const m = await import('./commands/start.ts')
    return { run: m.startCommand, usage: () => m.START_USAGE }
  },
  status: async () => ({ run: (await import('./commands/cluster.ts')).statusCommand }),
  peers: async () => ({ run: (await import('./commands/cluster.ts')).peersCommand }),
  events: async () => ({ run: (await import('./commands/events.ts')).eventsCommand }),
  event: async () => ({ run: (await import('./commands/events.ts')).eventCommand }),
  kv: async () => {
    const m = await import('./commands/kv.ts')
    return { run: m.kvCommand, usage: () => m.KV_USAGE }
  },
  lock: async () => ({ run: (await import('./commands/lock.ts')).lockCommand }),
  ps: async () => {
    const m = await import('./commands/ps.ts')
    return { run: m.psCommand, usage: () => m.PS_USAGE }
  },
  hosts: async () => ({ run: (await import('./commands/ps.ts')).hostsCommand }),
  simulate: async () => {
    const m = await import('./commands/simulate.ts')
    return { run: m.simulateCommand, usage: () => m.SIMULATE_USAGE }
  },
  service: async () => {
    const m = await import('./commands/service.ts')
    return { run: m.serviceCommand, usage: (rest) => m.serviceUsage(rest[0]) }
  },
  host: async () => {
    const m = await import('./commands/service.ts')
    return { run: m.hostCommand, usage: () => m.HOST_USAGE }
  },
  link: async () => {
    const m = await import('./commands/link.ts')
    return { run: m.linkCommand, usage: () => m.LINK_USAGE }
  },
  'docker-config': async () => {
    const m = await import('./commands/link.ts')
    return { run: m.dockerConfigCommand, usage: () => m.DOCKER_CONFIG_USAGE }
  },
  version: () => Promise.resolve({
    run: () => {
      process.stdout.write(`shoal ${SHOAL_VERSION}\n`)
      return Promise.resolve(0)
    },
  }),
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
  const load = COMMANDS[command === '--version' ? 'version' : command]
  if (load === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  const loaded = await load()
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest // what follows -- belongs to a child command
  if (own.includes('--help') || own.includes('-h')) {
    const usage = loaded.usage?.(rest)
    process.stdout.write(usage === undefined ? USAGE : `${usage}\n`)
    return 0
  }
  return loaded.run(rest)
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
