// One node's membership: the pure SWIM failure detector driven as
// protocols/gossip/membership.ts drives it (tick every 50 ms, every output
// drained at once, unreachable peers reported back), and the leader's
// autopilot decision made from its view, as node/peer.ts does every second.

import { FailureDetector, type Member, type Ready, type SwimMessage } from '../protocols/gossip/failure-detector.ts'
import { autopilotDecide, type AutopilotConfig } from '../protocols/raft/autopilot.ts'
import type { ConfChange, RaftStatus } from '../protocols/raft/index.ts'

/** How often the leader reconsiders the Raft membership (peer.ts AUTOPILOT_INTERVAL_MS). */
export const AUTOPILOT_INTERVAL_MS = 1000

/** A node's failure detector. */
export class NodeMembership {
  private readonly fd: FailureDetector

  /** A fresh detector (a restarted peer starts over and refutes, SWIM §4.2) that joins through `seeds`. */
  constructor(selfId: string, nowMs: number, random: () => number, seeds: readonly string[]) {
    this.fd = new FailureDetector({ selfId, meta: '', nowMs, random })
    this.fd.join([...seeds], nowMs)
  }

  /** Timer input. */
  tick(nowMs: number): void {
    this.fd.tick(nowMs)
  }

  /** A SWIM message from `from`. */
  step(from: string, message: SwimMessage, nowMs: number): void {
    this.fd.step(from, message, nowMs)
  }

  /** The transport could not reach `peerId`. */
  unreachable(peerId: string, nowMs: number): void {
    this.fd.onUnreachable(peerId, nowMs)
  }

  /** Announces a graceful leave. */
  leave(nowMs: number): void {
    this.fd.leave(nowMs)
  }

  /** Outputs to send and membership changes to report. */
  drain(): Ready {
    return this.fd.ready()
  }

  /** The detector's view of every member. */
  members(): Member[] {
    return this.fd.members()
  }

  /** The detector's own consistency checks. */
  assertInvariants(): void {
    this.fd.assertInvariants()
  }

  /** The next membership change autopilot wants, on the leader (peer.ts runAutopilot). */
  autopilot(selfId: string, status: RaftStatus, nowMs: number, config: AutopilotConfig): ConfChange | null {
    if (status.role !== 'leader' || status.progress === undefined) return null
    const match: Record<string, number> = {}
    for (const [id, p] of Object.entries(status.progress)) match[id] = p.match
    return autopilotDecide(
      {
        selfId,
        nowMs,
        voters: status.voters,
        learners: status.learners,
        lastIndex: status.lastIndex,
        match,
        members: this.fd.members().map((m) => ({ peerId: m.peerId, state: m.state, stateSinceMs: m.stateSinceMs })),
      },
      config,
    )
  }
}
