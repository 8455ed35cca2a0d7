/** The Raft transport between two real libp2p hosts on loopback. */
import { describe, it, expect, afterAll } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { createHost, type ShoalLibp2p } from '../../node/libp2p-host.ts'
import { newClusterSecret } from '../../node/data-dir.ts'
import { RaftTransport, RAFT_PROTOCOL } from '../../protocols/raft/transport.ts'
import { encodeMessage } from '../../protocols/raft/wire.ts'
import type { Message } from '../../protocols/raft/index.ts'
import { waitFor } from '../helpers/processes.ts'

describe('RaftTransport over libp2p', () => {
  const hosts: ShoalLibp2p[] = []
  const transports: RaftTransport[] = []
  afterAll(async () => {
    for (const t of transports) await t.stop()
    await Promise.all(hosts.map((h) => h.stop()))
  })

  it('delivers messages in order, snapshots on their own stream, and drops forged or garbage frames', async () => {
    const secret = newClusterSecret()
    const received: Message[][] = [[], []]
    for (let i = 0; i < 2; i++) {
      const { libp2p } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [multiaddr('/ip4/127.0.0.1/tcp/0')], bootstrap: [], clusterSecret: secret })
      await libp2p.start()
      hosts.push(libp2p)
      const t = new RaftTransport({ libp2p, onMessage: (m) => received[i]!.push(m), onUnreachable: () => undefined, onSnapshotFailed: () => undefined, debug: () => undefined })
      await t.start()
      transports.push(t)
    }
    const [a, b] = hosts.map((h) => h.peerId.toString()) as [string, string]
    await hosts[0]!.peerStore.merge(hosts[1]!.peerId, { multiaddrs: hosts[1]!.getMultiaddrs() })

    for (let i = 1; i <= 500; i++) transports[0]!.send({ type: 'heartbeat', from: a, to: b, term: 1, commit: i, readSeq: i })
    const snap: Message = { type: 'snap', from: a, to: b, term: 1, snapshot: { metadata: { index: 9, term: 1, confState: { voters: [a], learners: [b] } }, data: new Uint8Array(9 * 1024 * 1024 + 5).fill(7) } }
    transports[0]!.send(snap)
    await waitFor('500 heartbeats and a snapshot', () => (received[1]!.length === 501 ? true : undefined), 20_000)
    const beats = received[1]!.filter((m) => m.type === 'heartbeat')
    expect(beats.map((m) => (m.type === 'heartbeat' ? m.commit : 0))).toEqual(Array.from({ length: 500 }, (_, i) => i + 1))
    const got = received[1]!.find((m) => m.type === 'snap')
    expect(got?.type === 'snap' && got.snapshot.data.byteLength).toBe(9 * 1024 * 1024 + 5)
    expect(got?.type === 'snap' && got.snapshot.data.every((x) => x === 7)).toBe(true)

    // A raw stream from host 0 that forges a sender, addresses someone else, then sends garbage.
    const before = transports[1]!.stats.messages.invalidFrames
    const raw = lpStream(await hosts[0]!.dialProtocol(hosts[1]!.peerId, RAFT_PROTOCOL))
    const piece = (frame: Uint8Array): Uint8Array => new Uint8Array([0, ...frame])
    await raw.write(piece(encodeMessage({ type: 'timeout-now', from: b, to: b, term: 9 })))
    await raw.write(piece(encodeMessage({ type: 'timeout-now', from: a, to: a, term: 9 })))
    await raw.write(new Uint8Array([0, 0xc1, 0xff, 0x00])) // last piece of a frame that is not msgpack
    await waitFor('three invalid frames counted', () => (transports[1]!.stats.messages.invalidFrames >= before + 3 ? true : undefined))
    expect(received[1]!.some((m) => m.type === 'timeout-now')).toBe(false)
    // The transport still works afterwards.
    transports[0]!.send({ type: 'heartbeat', from: a, to: b, term: 1, commit: 501, readSeq: 501 })
    await waitFor('a heartbeat after the garbage', () => (received[1]!.length === 502 ? true : undefined))
  })
})
