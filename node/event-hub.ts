/** Fans cluster events out to local subscribers (`shoal events`), keeping a short backlog. */
import type { TopicEvent } from '../protocols/gossip/event-topic.ts'
import type { MemberState } from '../protocols/gossip/failure-detector.ts'
import type { ServiceEvent, TaskEvent } from './service-events.ts'

/** A membership change as this peer observed it. */
export interface HostEvent {
  type: 'host'
  action: 'joined' | MemberState
  peerId: string
  name: string | null
  incarnation: number
  time: string
}

export type ClusterEvent = HostEvent | TopicEvent | ServiceEvent | TaskEvent

/** Events kept for a subscriber that asks for recent history; older ones are gone. */
const BACKLOG_MAX = 256
/** A subscriber this far behind is disconnected rather than buffering without bound. */
export const SUBSCRIBER_QUEUE_MAX = 4096

export class EventHub {
  private readonly backlog: ClusterEvent[] = []
  private readonly subscribers = new Set<(event: ClusterEvent) => void>()

  publish(event: ClusterEvent): void {
    this.backlog.push(event)
    if (this.backlog.length > BACKLOG_MAX) this.backlog.shift()
    for (const s of this.subscribers) s(event)
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: (event: ClusterEvent) => void): () => void {
    this.subscribers.add(listener)
    return () => this.subscribers.delete(listener)
  }

  /** The most recent events, oldest first. */
  recent(): ClusterEvent[] {
    return [...this.backlog]
  }
}
