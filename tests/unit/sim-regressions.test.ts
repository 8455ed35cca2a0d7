// Every seed the simulator ever failed on, against the real cores, stays here
// as a regression test, with the unit test that pins the fix in the core.

import { describe, expect, it } from 'vitest'
import { Raft } from '../../protocols/raft/raft.ts'
import type { Message } from '../../protocols/raft/messages.ts'
import { Cluster } from '../../protocols/raft/testing/cluster.ts'
import { runSeed } from '../../simulations/run.ts'

/** Runs `fn` with the core relaying forwarded proposals again, as it did before the fix. */
function withRelayingCore<T>(fn: () => T): T {
  const step = Object.getOwnPropertyDescriptor(Raft.prototype, 'step')?.value as (this: Raft, m: Message) => void
  Raft.prototype.step = function (this: Raft, m: Message): void {
    if (m.type === 'prop' && this.role === 'follower' && this.lead !== null && this.lead !== m.from) {
      this.msgs.push({ ...m, from: this.id, to: this.lead, term: 0 })
      return
    }
    step.call(this, m)
  }
  try {
    return fn()
  } finally {
    Raft.prototype.step = step
  }
}

describe('regression: a follower must not relay a proposal another peer forwarded to it', () => {
  // Found by `shoal simulate --scenario minority-partition --seeds 17..17`: n1 forwarded a
  // client's put to n5, which it still took for the leader; n5, a follower by then, relayed it
  // to the new leader under its own name, so the leader stamped the command's origin n5. It
  // committed, but n1 never recognised it (its proposal key is origin/requestId), proposed it
  // again, and the retry applied as 'request-id-conflict': the client was told its write
  // failed although it had taken effect.
  it('drops a forwarded proposal instead of relaying it under its own name', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    const relayed: string[] = []
    c.onDeliver = (m) => {
      if (m.type === 'prop') relayed.push(`${m.from}>${m.to}`)
    }
    // b believes c leads (it does not): the core must not pass the proposal on to a.
    c.stepInto({ type: 'prop', from: 'b', to: 'c', term: 0, entries: [{ type: 'normal', data: new TextEncoder().encode('x') }] })
    c.deliverAll()
    c.run(3)
    expect(relayed).toEqual([])
    expect(c.appliedData('a')).toEqual([])
  })

  it('a follower still forwards its own proposals to the leader', () => {
    const c = new Cluster({ voters: ['a', 'b', 'c'] })
    c.elect('a')
    expect(c.propose('b', 'mine')).toEqual({ ok: true, kind: 'forwarded', to: 'a' })
    c.run(2)
    expect(c.appliedData('a')).toEqual(['mine'])
  })

  // minority-partition 17 found it; the workload has changed since (container records, then
  // host records joined it), and seed 1407 fails without the fix today (one in 2,400 seeds;
  // 284 and 374 did before host records). Search again with the relaying core when it stops.
  it.each([
    ['minority-partition', 17],
    ['minority-partition', 284],
    ['minority-partition', 374],
    ['minority-partition', 1407],
  ] as const)('%s seed %i passes', (scenario, seed) => {
    const r = runSeed({ scenario, nodes: 5, seed })
    expect(r.violations).toEqual([])
  })

  it('those seeds do fail with the old relaying core (the regression test bites)', () => {
    const failed = withRelayingCore(() => [1407].map((seed) => runSeed({ scenario: 'minority-partition', nodes: 5, seed }).violations.map((v) => v.checker)))
    for (const checkers of failed) expect(checkers.some((c) => c === 'phantom-read' || c === 'linearizability')).toBe(true)
  })
})

describe('regression: a voter leaving gracefully waits to be removed from the voters', () => {
  // Found by `shoal simulate --scenario membership-change-under-faults --nodes 3 --seeds 102..102`
  // (and 143). Autopilot removed a voter dead past its grace, leaving two voters; then one of
  // them stopped gracefully. Peer.stop handed leadership over and stopped without waiting for
  // its own removal, which commits under the old configuration and so needed both voters: the
  // remaining voter could never be elected again. Peer.stop (leaveVoters) now waits, as
  // Consul's leave does, and simulations/node.ts mirrors it.
  it.each([102, 143])('membership-change-under-faults, 3 nodes, seed %i recovers', (seed) => {
    const r = runSeed({ scenario: 'membership-change-under-faults', nodes: 3, seed })
    expect(r.violations).toEqual([])
  })
})
