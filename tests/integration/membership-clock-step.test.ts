/**
 * A wall-clock step (NTP correcting a drift, a VM resumed) changes nothing in membership: three
 * real libp2p hosts on loopback run SWIM on the monotonic clock while their wall clock jumps an
 * hour forward, then two back. Nobody is suspected or declared dead, and `stateSince` still
 * says how long each state has held; a member gone silent after
 * the steps is still detected.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost, type ShoalLibp2p } from '../../node/libp2p-host.ts'
import { newClusterSecret } from '../../node/data-dir.ts'
import { Membership, type MembershipClock } from '../../protocols/gossip/membership.ts'
import type { MemberChange } from '../../protocols/gossip/failure-detector.ts'
import { waitFor } from '../helpers/processes.ts'

const HOUR_MS = 3_600_000
const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined }

describe('membership under a wall-clock step', () => {
  const hosts: ShoalLibp2p[] = []
  const members: Membership[] = []
  afterAll(async () => {
    await Promise.all(members.map((m) => m.stop(false)))
    await Promise.all(hosts.map((h) => h.stop()))
  })

  it('suspects nobody when the wall clock jumps an hour forward, then two back', async () => {
    let offsetMs = 0
    const clock: MembershipClock = { monotonicMs: () => performance.now(), wallMs: () => Date.now() + offsetMs }
    const changes: MemberChange[] = []
    const secret = newClusterSecret()
    for (let i = 0; i < 3; i++) {
      const { libp2p } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [multiaddr('/ip4/127.0.0.1/tcp/0')], bootstrap: [], clusterSecret: secret })
      await libp2p.start()
      hosts.push(libp2p)
      const seed = i === 0 ? [] : [multiaddr(`${hosts[0]!.getMultiaddrs()[0]!.toString()}`)]
      const m = new Membership({
        libp2p, bootstrap: seed, log: quiet, clock,
        host: { name: `m${i}`, addrs: libp2p.getMultiaddrs().map(String), version: 'test', startedAt: new Date().toISOString(), cpus: 1, memoryBytes: 1 },
        onChange: (change) => changes.push(change),
      })
      await m.start()
      members.push(m)
    }
    const allAlive = (): boolean => members.every((m) => m.members().length === 3 && m.members().every((x) => x.state === 'alive'))
    await waitFor('three members alive on every peer', () => (allAlive() ? true : undefined), 30_000)
    // Past any join-time churn: only what follows the steps counts.
    await new Promise((r) => setTimeout(r, 1500))
    const before = changes.length

    offsetMs = HOUR_MS
    await new Promise((r) => setTimeout(r, 3000))
    offsetMs = -HOUR_MS
    await new Promise((r) => setTimeout(r, 3000))

    const after = changes.slice(before)
    expect(after.filter((c) => c.state !== 'alive').map((c) => `${c.peerId.slice(-6)} ${c.state}`)).toEqual([])
    expect(allAlive()).toBe(true)
    // Shown times follow the (stepped) wall clock; the durations they give are the monotonic ones.
    for (const m of members) {
      for (const x of m.members()) {
        const heldMs = clock.wallMs() - Date.parse(x.stateSince)
        expect(heldMs).toBeGreaterThanOrEqual(6000)
        expect(heldMs).toBeLessThan(120_000)
      }
    }

    // Detection still works after the backward step: on wall-clock timers every pending
    // deadline would now lie an hour ahead, and a crash would go unnoticed that long.
    // Its SWIM stops answering while its libp2p host stays up: no connection closes, so only
    // the probe timers can notice (as with a frozen process).
    const victim = hosts[2]!.peerId.toString()
    await members[2]!.stop(false)
    await waitFor('the silent member to be suspected or dead on both others', () =>
      members.slice(0, 2).every((m) => ['suspect', 'dead'].includes(m.stateOf(victim) ?? '')) ? true : undefined, 20_000)
  }, 90_000)
})
