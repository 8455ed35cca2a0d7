/** `shoal events` (live stream) and `shoal event NAME [PAYLOAD]` (fire a user event, as `consul event`). */
import { createInterface } from 'node:readline'
import { parseCommandArgs, stringFlag, boolFlag } from '../args.ts'
import { apiCall, apiStream, resolveApiSocket } from '../client.ts'
import { shortId } from '../table.ts'
import type { ClusterEvent } from '../../node/event-hub.ts'
import type { UserEvent } from '../../protocols/gossip/event-topic.ts'

function describe(e: ClusterEvent): string {
  if (e.type === 'host') return `${e.time}  host ${e.action.padEnd(7)} ${e.name ?? '?'} (${shortId(e.peerId)})`
  if (e.type === 'container') {
    const exit = e.action === 'exited' && e.exitCode !== null ? ` (exit ${e.exitCode})` : ''
    return `${e.time}  container ${e.action.padEnd(7)} ${e.name} ${e.id.slice(0, 12)} ${e.image} on ${e.hostName}${exit}`
  }
  if (e.type === 'service') return `${e.time}  service ${e.action.padEnd(7)} ${e.service}${e.version === null ? '' : ` v${e.version}`}`
  if (e.type === 'task') {
    const where = e.host === null ? '' : ` on ${shortId(e.host)}`
    return `${e.time}  task ${e.action.padEnd(7)} ${e.task ?? `${e.service}.${e.slot}`}${where}${e.error === null ? '' : `: ${e.error}`}`
  }
  return `${e.time}  user ${e.name} from ${e.originName}${e.payload === '' ? '' : `: ${e.payload}`}`
}

export async function eventsCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('events', argv, { api: { type: 'string' }, json: { type: 'boolean' }, history: { type: 'boolean' } }, { min: 0, max: 0 })
  const res = await apiStream(resolveApiSocket(stringFlag(p, 'api')), `/v1/events${boolFlag(p, 'history') ? '?history=1' : ''}`)
  const json = boolFlag(p, 'json')
  for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
    if (line === '') continue
    process.stdout.write(json ? `${line}\n` : `${describe(JSON.parse(line) as ClusterEvent)}\n`)
  }
  process.stderr.write('shoal events: the peer closed the stream (stopped?)\n')
  return 1
}

export async function eventCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('event', argv, { api: { type: 'string' }, json: { type: 'boolean' } }, { min: 1, max: 2 })
  const [name, payload] = p.positionals
  const event = await apiCall<UserEvent>(resolveApiSocket(stringFlag(p, 'api')), 'POST', '/v1/events', { name, payload: payload ?? '' })
  process.stdout.write(boolFlag(p, 'json') ? `${JSON.stringify(event)}\n` : `fired ${event.name} (${event.id})\n`)
  return 0
}
