// Membership changes, one server at a time (thesis §4.1, §4.2.1 for learners).
//
// A change travels as a 'conf-change' log entry whose data is the encoded
// ConfChange. As in etcd, it takes effect when the driver applies the
// committed entry and calls RaftCore.applyConfChange(); the leader accepts a
// new change only once the previous one has been applied, so at most one is
// ever uncommitted, and consecutive configurations differ by one voter, so any
// two of their majorities overlap.

import type { ConfState, NodeId } from './types.ts'

/** One membership change. 'add-voter' on a learner promotes it; 'add-learner' on a voter demotes it. */
export type ConfChange =
  | { readonly type: 'add-voter'; readonly nodeId: NodeId; readonly context?: string }
  | { readonly type: 'add-learner'; readonly nodeId: NodeId; readonly context?: string }
  | { readonly type: 'remove-node'; readonly nodeId: NodeId; readonly context?: string }

/** Why a conf change is refused at proposal time. */
export type ConfChangeRejection = 'already-voter' | 'already-learner' | 'not-member' | 'last-voter'

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Encodes a conf change as an entry payload (UTF-8 JSON, stable field order). */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const wire: { type: string; nodeId: string; context?: string } = { type: cc.type, nodeId: cc.nodeId }
  if (cc.context !== undefined) wire.context = cc.context
  return encoder.encode(JSON.stringify(wire))
}

/** Decodes an entry payload; undefined if it is not a valid conf change. */
export function decodeConfChange(data: Uint8Array): ConfChange | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(data))
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const type: unknown = Reflect.get(parsed, 'type')
  const nodeId: unknown = Reflect.get(parsed, 'nodeId')
  const context: unknown = Reflect.get(parsed, 'context')
  if (typeof nodeId !== 'string' || nodeId.length === 0) return undefined
  if (context !== undefined && typeof context !== 'string') return undefined
  const extra = context === undefined ? {} : { context }
  switch (type) {
    case 'add-voter':
      return { type, nodeId, ...extra }
    case 'add-learner':
      return { type, nodeId, ...extra }
    case 'remove-node':
      return { type, nodeId, ...extra }
    default:
      return undefined
  }
}

/**
 * Why `cc` would be a no-op or unsafe against membership `cs`; undefined if it
 * is a valid single-server change.
 */
export function validateConfChange(cs: ConfState, cc: ConfChange): ConfChangeRejection | undefined {
  const isVoter = cs.voters.includes(cc.nodeId)
  const isLearner = cs.learners.includes(cc.nodeId)
  switch (cc.type) {
    case 'add-voter':
      return isVoter ? 'already-voter' : undefined
    case 'add-learner':
      if (isLearner) return 'already-learner'
      // Demoting the only voter would leave nobody to elect a leader.
      return isVoter && cs.voters.length === 1 ? 'last-voter' : undefined
    case 'remove-node':
      if (!isVoter && !isLearner) return 'not-member'
      return isVoter && cs.voters.length === 1 ? 'last-voter' : undefined
  }
}
