// Autopilot: the leader's policy for Raft membership, as one pure decision per call.
// It keeps every live peer in the log (learners receive everything, so every host has the
// full state), keeps the voter set at its target size with caught-up, healthy peers, and
// removes voters that left or stayed dead past a grace period — one change at a time, as
// single-server membership changes require (thesis §4.1), and never in a way that leaves
// fewer live voters than the new configuration's quorum.

import type { ConfChange } from './conf-change.ts'

/** Liveness of a peer as the failure detector sees it. */
export type Liveness = 'alive' | 'suspect' | 'dead' | 'left'

/** What autopilot looks at. */
export interface AutopilotInput {
  readonly selfId: string
  readonly nowMs: number
  readonly voters: readonly string[]
  readonly learners: readonly string[]
  /** The leader's last log index, to judge who is caught up. */
  readonly lastIndex: number
  /** Match index per member (leader's progress). */
  readonly match: Readonly<Record<string, number>>
  readonly members: readonly { readonly peerId: string; readonly state: Liveness; readonly stateSinceMs: number }[]
}

/** Autopilot's knobs. */
export interface AutopilotConfig {
  /** Voters wanted; undefined = 3, or 5 once 5 or more peers are alive (Consul's and etcd's advice). */
  readonly targetVoters?: number | undefined
  /** A voter or learner dead this long is removed. */
  readonly deadGraceMs: number
  /** A learner within this many entries of the leader counts as caught up. */
  readonly caughtUpLagEntries: number
}

/** Default knobs. */
export const DEFAULT_AUTOPILOT: AutopilotConfig = { deadGraceMs: 30_000, caughtUpLagEntries: 128 }

/** The next membership change to propose, or null when the membership is as wanted. */
export function autopilotDecide(input: AutopilotInput, config: AutopilotConfig = DEFAULT_AUTOPILOT): ConfChange | null {
  const state = new Map(input.members.map((m) => [m.peerId, m]))
  const live = (id: string): boolean => id === input.selfId || state.get(id)?.state === 'alive' || state.get(id)?.state === 'suspect'
  const gone = (id: string): boolean => {
    if (id === input.selfId) return false
    const m = state.get(id)
    if (m === undefined) return false // not heard of yet (e.g. just restarted): no verdict
    return m.state === 'left' || (m.state === 'dead' && input.nowMs - m.stateSinceMs >= config.deadGraceMs)
  }
  const inConfig = new Set([...input.voters, ...input.learners])

  // 1. A voter that left gracefully said so itself: remove it at once.
  const leftVoter = input.voters.find((id) => id !== input.selfId && state.get(id)?.state === 'left')
  if (leftVoter !== undefined && quorumSurvives(input.voters, leftVoter, live)) return { type: 'remove-node', nodeId: leftVoter }

  // 2. Every live peer receives the log as a learner.
  const newcomer = input.members.find((m) => m.state === 'alive' && m.peerId !== input.selfId && !inConfig.has(m.peerId))
  if (newcomer !== undefined) return { type: 'add-learner', nodeId: newcomer.peerId }

  // 3. Promote caught-up learners while healthy voters are fewer than wanted; this comes
  //    before removing a dead voter, so the replacement is in place first.
  const aliveCount = input.members.filter((m) => m.state === 'alive' || m.peerId === input.selfId).length
  const target = config.targetVoters ?? (aliveCount >= 5 ? 5 : 3)
  const healthyVoters = input.voters.filter((id) => !gone(id) && live(id)).length
  if (healthyVoters < target) {
    const candidate = input.learners
      .filter((id) => state.get(id)?.state === 'alive' && (input.match[id] ?? 0) >= input.lastIndex - config.caughtUpLagEntries)
      .sort((a, b) => (input.match[b] ?? 0) - (input.match[a] ?? 0) || (a < b ? -1 : 1))[0]
    if (candidate !== undefined) return { type: 'add-voter', nodeId: candidate }
  }

  // 4. Remove voters dead past the grace period, keeping a quorum of live voters.
  const deadVoter = input.voters.find((id) => gone(id) && quorumSurvives(input.voters, id, live))
  if (deadVoter !== undefined) return { type: 'remove-node', nodeId: deadVoter }

  // 5. Learners that left or stayed dead only cost the leader replication work.
  const deadLearner = input.learners.find(gone)
  if (deadLearner !== undefined) return { type: 'remove-node', nodeId: deadLearner }
  return null
}

/** Whether the voters left after removing `id` still have a live quorum among them. */
function quorumSurvives(voters: readonly string[], id: string, live: (id: string) => boolean): boolean {
  const rest = voters.filter((v) => v !== id)
  if (rest.length === 0) return false
  return rest.filter(live).length >= Math.floor(rest.length / 2) + 1
}
