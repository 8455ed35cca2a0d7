/** The `shoal` command: dispatches to a subcommand; user errors print one line, never a stack. */
import { UserError, UsageError } from '../node/errors.ts'
import { SHOAL_VERSION } from '../node/version.ts'
import { startCommand, START_USAGE } from './commands/start.ts'
import { statusCommand, peersCommand } from './commands/cluster.ts'
import { eventsCommand, eventCommand } from './commands/events.ts'
import { kvCommand, KV_USAGE } from './commands/kv.ts'
import { lockCommand } from './commands/lock.ts'
import { psCommand, hostsCommand, PS_USAGE } from './commands/ps.ts'
import { simulateCommand, SIMULATE_USAGE } from './commands/simulate.ts'

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
  version: async () => {
    process.stdout.write(`shoal ${SHOAL_VERSION}\n`)
    return 0
  },
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE)
    return command === undefined ? 2 : 0
  }
  if (command === '--version') return COMMANDS['version']?.([]) ?? 0
  const run = COMMANDS[command]
  if (run === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest // what follows -- belongs to a child command
  if (own.includes('--help') || own.includes('-h')) {
    const usage: Record<string, string> = { start: START_USAGE, kv: KV_USAGE, ps: PS_USAGE, simulate: SIMULATE_USAGE }
    process.stdout.write(usage[command] === undefined ? USAGE : `${usage[command]}\n`)
    return 0
  }
  return run(rest)
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (err instanceof UserError) {
    process.stderr.write(`shoal: ${err.message}\n`)
    if (err instanceof UsageError) process.stderr.write(`Run 'shoal --help' for usage.\n`)
    process.exitCode = err.exitCode
  } else {
    process.stderr.write(`shoal: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nThis is a bug; please report it with the command you ran.\n`)
    process.exitCode = 70
  }
}
