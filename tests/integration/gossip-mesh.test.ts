/**
 * Real libp2p hosts as Shoal builds them, over loopback: more peers on one IP than gossipsub's
 * colocation threshold (10) must still form a mesh and deliver to everyone. With libp2p's
 * defaults they scored each other negative and the mesh stayed empty.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost, type ShoalLibp2p } from '../../node/libp2p-host.ts'
import { newClusterSecret } from '../../node/data-dir.ts'
import { waitFor } from '../helpers/processes.ts'

/** Past gossipsub's default colocation threshold of 10 peers per IP, seen from every host. */
const HOSTS = 14
const TOPIC = 'shoal-test/mesh'

describe('gossipsub mesh among many peers on one address', () => {
  const hosts: ShoalLibp2p[] = []
  afterAll(async () => {
    await Promise.all(hosts.map((h) => h.stop()))
  })

  it('forms a mesh and delivers a message to every peer', async () => {
    const secret = newClusterSecret()
    for (let i = 0; i < HOSTS; i++) {
      const { libp2p } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [multiaddr('/ip4/127.0.0.1/tcp/0')], bootstrap: [], clusterSecret: secret })
      await libp2p.start()
      libp2p.services.pubsub.subscribe(TOPIC)
      hosts.push(libp2p)
    }
    // Every host connected to every other, as SWIM probing makes a real cluster: each one sees
    // 13 peers on 127.0.0.1, which the default scoring counts as a Sybil colocation.
    for (let i = 0; i < HOSTS; i++) {
      for (let j = i + 1; j < HOSTS; j++) await hosts[i]!.dial(hosts[j]!.getMultiaddrs()[0]!)
    }
    const meshOf = (h: ShoalLibp2p): number => (h.services.pubsub as unknown as { getMeshPeers(t: string): string[] }).getMeshPeers(TOPIC).length
    await waitFor('every host to have mesh peers', () => (hosts.every((h) => meshOf(h) > 0) ? true : undefined), 20_000)
    // Scores are applied at heartbeats (1 s): the mesh must survive them, not just form.
    await new Promise((r) => setTimeout(r, 3500))
    expect(hosts.map(meshOf).filter((m) => m === 0)).toEqual([])

    const received = new Set<string>()
    for (const h of hosts.slice(1)) {
      h.services.pubsub.addEventListener('message', (evt) => {
        if (evt.detail.topic === TOPIC) received.add(h.peerId.toString())
      })
    }
    await hosts[0]!.services.pubsub.publish(TOPIC, new TextEncoder().encode('hello'))
    await waitFor('every other host to receive the message', () => (received.size === HOSTS - 1 ? true : undefined), 10_000)
    expect(received.size).toBe(HOSTS - 1)
  })
})
