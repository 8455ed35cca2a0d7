/**
 * Shoal's private-network protector speaks libp2p's PSK v1 wire protocol: a Shoal host and a
 * stock js-libp2p host using @libp2p/pnet (the xsalsa20 package's cipher) with the same key
 * talk over real TCP on loopback in both dial directions, bytes intact; one with another key
 * is refused and counted.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { lpStream } from '@libp2p/utils'
import { createHost, type ShoalLibp2p } from '../../node/libp2p-host.ts'
import { newClusterSecret } from '../../node/data-dir.ts'
import { waitFor } from '../helpers/processes.ts'

const ECHO = '/shoal-test/echo/1'

async function stockHost(secret: Uint8Array): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: secret }),
    connectionGater: { denyDialMultiaddr: () => false },
  })
  return node
}

/** Length-prefixed echo: every frame read is written back. */
async function serveEcho(node: Libp2p | ShoalLibp2p): Promise<void> {
  await node.handle(ECHO, async (stream) => {
    const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
    try {
      for (;;) await lp.write(await lp.read())
    } catch {
      // the dialer closed the stream
    }
  })
}

/** Sends frames of assorted sizes (a few bytes to 200 KB, ~2 MB in all) and checks each echo. */
async function roundTrip(from: Libp2p | ShoalLibp2p, to: Libp2p | ShoalLibp2p): Promise<void> {
  const lp = lpStream(await from.dialProtocol(to.getMultiaddrs()[0]!, ECHO), { maxDataLength: 1024 * 1024 })
  const sizes = [1, 63, 64, 65, 1000, 16_384, 16_385, 65_536, 200_000, 7, 150_001, 4096]
  for (let round = 0; round < 3; round++) {
    for (const [i, size] of sizes.entries()) {
      const frame = Uint8Array.from({ length: size }, (_, j) => (j * 7 + i + round) & 0xff)
      await lp.write(frame)
      const echoed = (await lp.read()).subarray()
      expect(echoed.byteLength).toBe(size)
      expect(Buffer.compare(echoed, frame)).toBe(0)
    }
  }
  await lp.unwrap().close()
}

describe('PSK v1 private network, Shoal and @libp2p/pnet', () => {
  const nodes: Array<Libp2p | ShoalLibp2p> = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('carries bytes intact both ways between a Shoal host and a stock libp2p host with the same key', async () => {
    const secret = newClusterSecret()
    const { libp2p: shoal, handshakes } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [multiaddr('/ip4/127.0.0.1/tcp/0')], bootstrap: [], clusterSecret: secret })
    nodes.push(shoal)
    await shoal.start()
    // One stock host the Shoal host dials, one that dials it: each side is the initiator once.
    const dialed = await stockHost(secret)
    const dialing = await stockHost(secret)
    nodes.push(dialed, dialing)
    await serveEcho(shoal)
    await serveEcho(dialed)

    await roundTrip(shoal, dialed)
    await roundTrip(dialing, shoal)
    expect(handshakes.rejectedInbound + handshakes.rejectedOutbound).toBe(0)

    // A stock host with another key gets nowhere, and the Shoal host counts the refusal.
    const stranger = await stockHost(newClusterSecret())
    nodes.push(stranger)
    await expect(stranger.dial(shoal.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) })).rejects.toThrow()
    await waitFor('the refused handshake to be counted', () => (handshakes.rejectedInbound >= 1 ? true : undefined), 15_000)
  })
})
