/**
 * Builds the peer's libp2p node: TCP, a private network (pre-shared key, protocols/pnet) in front
 * of Noise and Yamux, Identify, bootstrap discovery and gossipsub. Counts connections refused by the
 * private-network handshake, which is how a process without the cluster secret shows up.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { pskProtector } from '../protocols/pnet/protector.ts'
import type { ConnectionProtector, MessageStream, PrivateKey, AbortOptions } from '@libp2p/interface'
import type { Identify } from '@libp2p/identify'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Counts of connections that failed the cluster-secret handshake, by direction. */
export interface HandshakeStats {
  rejectedInbound: number
  rejectedOutbound: number
  lastRejectedAddr: string | null
  lastRejectedAt: string | null
}

/** The services Shoal's libp2p node carries. */
export type ShoalServices = {
  identify: Identify
  pubsub: GossipSub
}

export type ShoalLibp2p = Libp2p<ShoalServices>

export interface HostInit {
  privateKey: PrivateKey
  listen: Multiaddr[]
  bootstrap: Multiaddr[]
  clusterSecret: Uint8Array
  /** Bound on concurrent connections; SWIM probes every member, so this caps cluster size. */
  maxConnections?: number
}

/**
 * Tracks raw connections from the moment the private-network handshake starts until
 * encryption succeeds. A connection that closes in between never proved it holds the
 * cluster secret (with a different key, the bytes after the nonce exchange are noise to
 * multistream-select), so it is counted as rejected.
 */
class HandshakeTracker {
  readonly stats: HandshakeStats = { rejectedInbound: 0, rejectedOutbound: 0, lastRejectedAddr: null, lastRejectedAt: null }
  private readonly pending = new WeakSet<object>()

  begin(conn: MessageStream & { remoteAddr?: Multiaddr }): void {
    this.pending.add(conn)
    conn.addEventListener('close', () => {
      if (!this.pending.has(conn)) return
      this.pending.delete(conn)
      if (conn.direction === 'inbound') this.stats.rejectedInbound++
      else this.stats.rejectedOutbound++
      this.stats.lastRejectedAddr = conn.remoteAddr?.toString() ?? null
      this.stats.lastRejectedAt = new Date().toISOString()
    }, { once: true })
  }

  succeeded(conn: object): void {
    this.pending.delete(conn)
  }
}

/** Creates (but does not start) the libp2p node, and the handshake counters it feeds. */
export async function createHost(init: HostInit): Promise<{ libp2p: ShoalLibp2p; handshakes: HandshakeStats }> {
  const tracker = new HandshakeTracker()
  const psk = pskProtector({ psk: init.clusterSecret })
  const libp2p = await createLibp2p<ShoalServices>({
    privateKey: init.privateKey,
    start: false,
    addresses: { listen: init.listen.map((ma) => ma.toString()) },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: () => {
      const inner = psk()
      const protector: ConnectionProtector = {
        async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
          tracker.begin(connection)
          return inner.protect(connection, options)
        },
      }
      return protector
    },
    connectionGater: {
      // Shoal runs on private networks and loopback; libp2p's public-internet defaults would
      // refuse exactly the addresses a cluster uses.
      denyDialMultiaddr: () => false,
      denyInboundEncryptedConnection: (_peer, maConn) => {
        tracker.succeeded(maConn)
        return false
      },
      denyOutboundEncryptedConnection: (_peer, maConn) => {
        tracker.succeeded(maConn)
        return false
      },
    },
    connectionManager: {
      maxConnections: init.maxConnections ?? 1024,
      // libp2p's defaults (5 connections/s per IP, 10 pending handshakes) are tuned for the
      // public DHT; a cluster restarting behind one NAT, or several peers on one host, dials
      // in bursts. The PSK handshake still rejects strangers at once.
      inboundConnectionThreshold: 64,
      maxIncomingPendingConnections: 128,
    },
    peerDiscovery: init.bootstrap.length > 0 ? [bootstrap({ list: init.bootstrap.map((ma) => ma.toString()), timeout: 0 })] : [],
    services: {
      identify: identify(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        fallbackToFloodsub: false,
        // Every gossip peer has already proven the cluster secret, so IP colocation says nothing
        // about Sybils here; its default penalty (past 10 peers per IP) ungrafts hosts behind
        // one NAT and every multi-peer host, leaving the mesh empty.
        scoreParams: { IPColocationFactorWeight: 0 },
      }),
    },
  })
  return { libp2p, handshakes: tracker.stats }
}
