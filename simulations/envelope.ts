// What travels between simulated nodes: Raft messages, SWIM messages, and the
// lease keep-alive round trip a session's peer makes to the leader.

import type { Message } from '../protocols/raft/index.ts'
import type { SwimMessage } from '../protocols/gossip/failure-detector.ts'
import type { RenewReply } from '../storage/statestore/index.ts'

/** One message on the simulated network. */
export type Envelope =
  | { readonly kind: 'raft'; readonly message: Message }
  | { readonly kind: 'swim'; readonly message: SwimMessage }
  /** Renew `leases` (owned by the sender), as sessions.ts's 'renew' frame; answered with 'keepalive-ack' tagged `id`. */
  | { readonly kind: 'keepalive'; readonly id: number; readonly leases: readonly number[] }
  | { readonly kind: 'keepalive-ack'; readonly id: number; readonly reply: RenewReply }

/** A small numeric code per envelope, for the trace digest. */
export function envelopeCode(e: Envelope): number {
  switch (e.kind) {
    case 'raft':
      return RAFT_CODES[e.message.type]
    case 'swim':
      return 32 + SWIM_CODES[e.message.type]
    case 'keepalive':
      return 48
    case 'keepalive-ack':
      return 49
  }
}

/** A short readable name of an envelope, for trace lines. */
export function envelopeName(e: Envelope): string {
  switch (e.kind) {
    case 'raft': {
      const m = e.message
      if (m.type === 'app') return `app(t${m.term} prev ${m.prevIndex} +${m.entries.length} c${m.commit})`
      if (m.type === 'app-resp') return `app-resp(t${m.term} ${m.reject ? 'reject' : 'ok'} ${m.index})`
      return `${m.type}(t${m.term})`
    }
    case 'swim':
      return `swim ${e.message.type}`
    case 'keepalive':
      return `keepalive(lease ${e.leases.join(',')})`
    case 'keepalive-ack':
      return `keepalive-ack(${e.reply.ok ? (e.reply.renewed.length > 0 ? 'ok' : 'refused') : 'refused'})`
  }
}

const RAFT_CODES: Record<Message['type'], number> = {
  app: 1,
  'app-resp': 2,
  vote: 3,
  'vote-resp': 4,
  'pre-vote': 5,
  'pre-vote-resp': 6,
  heartbeat: 7,
  'heartbeat-resp': 8,
  snap: 9,
  'timeout-now': 10,
  'read-index': 11,
  'read-index-resp': 12,
  'transfer-leader': 13,
  prop: 14,
}

const SWIM_CODES: Record<SwimMessage['type'], number> = { ping: 1, 'ping-req': 2, ack: 3, nack: 4, sync: 5 }
