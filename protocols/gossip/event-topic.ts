/**
 * The cluster events topic over gossipsub: fast, best-effort fan-out of events to every peer
 * (the authoritative copy of state goes through Raft). Messages are signed by their publisher
 * (gossipsub StrictSign); one whose publisher is not a cluster member, or that does not parse,
 * is rejected before it is forwarded, and counted.
 */
import { randomUUID } from 'node:crypto'
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

export const EVENTS_TOPIC = 'shoal/events/1'
/** User event payloads are small signals (as Consul's 512 B-class user events), not data transfer. */
export const USER_EVENT_PAYLOAD_MAX_BYTES = 8192
const EVENT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/** A user event fired with `shoal event NAME [PAYLOAD]`. */
export interface UserEvent {
  type: 'user'
  id: string
  name: string
  payload: string
  origin: string
  originName: string
  time: string
}

/**
 * A container change on its host, gossiped the moment the host sees it so every peer's event
 * stream shows it within milliseconds; the record itself reaches the StateStore through Raft.
 */
export interface ContainerEvent {
  type: 'container'
  /** Docker's lifecycle word for what happened: the new state, or 'removed'. */
  action: 'created' | 'running' | 'paused' | 'exited' | 'dead' | 'removed'
  id: string
  name: string
  image: string
  host: string
  hostName: string
  ips: string[]
  exitCode: number | null
  time: string
}

const CONTAINER_ACTIONS: ReadonlySet<string> = new Set(['created', 'running', 'paused', 'exited', 'dead', 'removed'])

/** Any event carried on the topic. */
export type TopicEvent = UserEvent | ContainerEvent

/** Counters visible in `shoal status`. */
export interface EventTopicStats {
  published: number
  received: number
  droppedNotMember: number
  droppedInvalid: number
}

/** Returns an error message when `name` cannot be a user event name, else null. */
export function userEventNameProblem(name: string): string | null {
  return EVENT_NAME_PATTERN.test(name) ? null : 'an event name is 1-128 characters of letters, digits, ".", "_", ":" and "-", starting with a letter or digit'
}

const shortText = (x: unknown, max: number): x is string => typeof x === 'string' && x.length <= max

function parseContainerEvent(v: Record<string, unknown>, from: string): ContainerEvent | null {
  const ips = v['ips']
  const exitCode = v['exitCode']
  if (
    typeof v['action'] !== 'string' || !CONTAINER_ACTIONS.has(v['action']) ||
    !shortText(v['id'], 64) || !shortText(v['name'], 128) || !shortText(v['image'], 256) ||
    !shortText(v['hostName'], 253) || !shortText(v['time'], 40) ||
    !Array.isArray(ips) || ips.length > 64 || !ips.every((ip) => shortText(ip, 45)) ||
    !(exitCode === null || (typeof exitCode === 'number' && Number.isSafeInteger(exitCode))) ||
    v['host'] !== from // only a host speaks for its own containers
  ) {
    return null
  }
  return {
    type: 'container', action: v['action'] as ContainerEvent['action'], id: v['id'], name: v['name'], image: v['image'],
    host: from, hostName: v['hostName'], ips: ips as string[], exitCode: exitCode as number | null, time: v['time'],
  }
}

function parseEvent(data: Uint8Array, from: string): TopicEvent | null {
  if (data.byteLength > USER_EVENT_PAYLOAD_MAX_BYTES + 4096) return null
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const v = value as Record<string, unknown>
  return v['type'] === 'container' ? parseContainerEvent(v, from) : parseUserEvent(v, from)
}

function parseUserEvent(v: Record<string, unknown>, from: string): UserEvent | null {
  if (
    v['type'] !== 'user' || typeof v['id'] !== 'string' || v['id'].length > 64 ||
    typeof v['name'] !== 'string' || userEventNameProblem(v['name']) !== null ||
    typeof v['payload'] !== 'string' || Buffer.byteLength(v['payload']) > USER_EVENT_PAYLOAD_MAX_BYTES ||
    typeof v['originName'] !== 'string' || v['originName'].length > 63 ||
    typeof v['time'] !== 'string' || v['time'].length > 40 ||
    v['origin'] !== from // the signed publisher is the only origin we believe
  ) {
    return null
  }
  return { type: 'user', id: v['id'], name: v['name'], payload: v['payload'], origin: from, originName: v['originName'], time: v['time'] }
}

export interface EventTopicInit {
  pubsub: GossipSub
  selfId: string
  selfName: string
  isMember: (peerId: string) => boolean
  onEvent: (event: TopicEvent) => void
  debug: (message: string) => void
}

/** Publishes and receives cluster events on the gossip topic. */
export class EventTopic {
  readonly stats: EventTopicStats = { published: 0, received: 0, droppedNotMember: 0, droppedInvalid: 0 }
  private readonly init: EventTopicInit
  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== EVENTS_TOPIC || msg.type !== 'signed') return
    const event = parseEvent(msg.data, msg.from.toString())
    if (event !== null) {
      this.stats.received++
      this.init.onEvent(event)
    }
  }

  constructor(init: EventTopicInit) {
    this.init = init
  }

  start(): void {
    const { pubsub } = this.init
    pubsub.topicValidators.set(EVENTS_TOPIC, (_peer: PeerId, msg: Message) => {
      if (msg.type !== 'signed') {
        this.stats.droppedInvalid++
        return TopicValidatorResult.Reject
      }
      const from = msg.from.toString()
      if (!this.init.isMember(from)) {
        this.stats.droppedNotMember++
        this.init.debug(`dropped an event from ${from}, which is not a member of this cluster`)
        return TopicValidatorResult.Reject
      }
      if (parseEvent(msg.data, from) === null) {
        this.stats.droppedInvalid++
        this.init.debug(`dropped a malformed event from ${from}`)
        return TopicValidatorResult.Reject
      }
      return TopicValidatorResult.Accept
    })
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(EVENTS_TOPIC)
  }

  stop(): void {
    const { pubsub } = this.init
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(EVENTS_TOPIC)
    try {
      pubsub.unsubscribe(EVENTS_TOPIC)
    } catch {
      // Already stopped with libp2p.
    }
  }

  /** Peers subscribed to the topic, and those in this peer's gossipsub mesh for it. */
  topology(): { subscribers: number; mesh: number } {
    // The implementation has getMeshPeers; the exported interface does not declare it.
    const pubsub = this.init.pubsub as GossipSub & { getMeshPeers?: (topic: string) => string[] }
    return { subscribers: pubsub.getSubscribers(EVENTS_TOPIC).length, mesh: pubsub.getMeshPeers?.(EVENTS_TOPIC).length ?? 0 }
  }

  /** Fires a user event to the whole cluster; delivered locally too. Returns the event. */
  async fire(name: string, payload: string): Promise<UserEvent> {
    const event: UserEvent = {
      type: 'user',
      id: randomUUID(),
      name,
      payload,
      origin: this.init.selfId,
      originName: this.init.selfName,
      time: new Date().toISOString(),
    }
    await this.publish(event)
    return event
  }

  /** Gossips a change of one of this host's containers; delivered locally too. */
  async containerChanged(event: Omit<ContainerEvent, 'type' | 'host' | 'hostName' | 'time'>): Promise<void> {
    await this.publish({ type: 'container', ...event, host: this.init.selfId, hostName: this.init.selfName, time: new Date().toISOString() })
  }

  private async publish(event: TopicEvent): Promise<void> {
    await this.init.pubsub.publish(EVENTS_TOPIC, new TextEncoder().encode(JSON.stringify(event)))
    this.stats.published++
    this.init.onEvent(event)
  }
}
