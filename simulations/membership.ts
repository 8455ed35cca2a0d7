// One node's membership: the pure SWIM failure detector driven as
// protocols/gossip/membership.ts drives it (tick every 50 ms, every output
// drained at once, unreachable peers reported back). The leader's autopilot
// reads its view through runtime/leader-duties.ts, as node/peer.ts does.

import { FailureDetector, type Member, type Ready, type SwimMessage } from '../protocols/gossip/failure-detector.ts'

export { AUTOPILOT_INTERVAL_MS } from '../runtime/leader-duties.ts'

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

}
