/**
 * The data path of cross-host links (issue 13): TCP listeners on this host's link addresses,
 * and the carrying of each accepted connection to an instance of the link's target.
 *
 * - A local instance is reached with a plain TCP connection: no libp2p hop.
 * - A remote one through a `/shoal/link/1.0.0` stream to the peer hosting it (so the bytes are
 *   encrypted and authenticated like all cluster traffic): a header names the link and port, the
 *   acceptor answers one status byte, then both sides pipe raw bytes.
 * - The acceptor serves only a peer that `authorize` admits for that link and port, and connects
 *   only to an instance it resolves itself on its own host: it is never an open proxy.
 *
 * Piping is faithful: a FIN becomes a stream half-close and back (`close()` / 'end'), a TCP reset
 * a stream reset and back (`abort()` / 'close' with an error), and back-pressure holds end to end:
 * a TCP socket is paused while the stream's send buffer is full, the stream is paused (yamux then
 * withholds window updates, so the remote stops sending) while the socket's write buffer is full.
 * What one connection can hold is thus bounded by one yamux window plus a socket high-water mark.
 */
import net from 'node:net'
import { peerIdFromString } from '@libp2p/peer-id'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Libp2p, Stream, Connection, StreamMessageEvent, StreamCloseEvent } from '@libp2p/interface'
import { LINK_PROTOCOL, HEADER_MAX_BYTES, encodeHeader, readHeader, encodeStatus, decodeStatus, type RefusalReason, type LinkStatus, type HeaderRead } from '../protocols/link/header.ts'
import { orderTargets, type LinkInstance } from '../protocols/link/targets.ts'
import type { Logger } from './logger.ts'
import { meshService } from '../runtime/links/mesh.ts'

export { LINK_PROTOCOL } from '../protocols/link/header.ts'
export type { LinkInstance } from '../protocols/link/targets.ts'

/** Instances tried for one connection before the client is reset. */
const ATTEMPTS_MAX = 3
/** A local TCP connect to a container that takes longer than this counts as a failure. */
const CONNECT_TIMEOUT_MS = 2_000
/** Dialing the target's peer, opening the stream and receiving its status. */
const DIAL_TIMEOUT_MS = 5_000
/** An inbound stream must deliver its header within this. */
const HEADER_TIMEOUT_MS = 5_000
/** After refusing, the acceptor waits this long for the dialer to reset before resetting itself. */
const REFUSAL_LINGER_MS = 5_000
/**
 * A link stream's yamux receive window stops growing here (yamux's default is 16 MiB). A paused
 * stream still receives what the remote was already allowed to send, up to this window, so it
 * bounds what a slow reader makes a peer hold per connection and direction (about twice this:
 * the paused read buffer and the socket's write buffer it was last emptied into). 4 MiB still
 * fills a 1 Gbit/s link at 30 ms of round trip.
 */
const LINK_STREAM_WINDOW_MAX_BYTES = 4 * 1024 * 1024
/**
 * libp2p resets a stream whose paused read buffer passes `maxReadBufferLength` (4 MiB by
 * default). Set past the largest window a stream may have (yamux's own 16 MiB, should the cap
 * above not apply to some muxer) so that back-pressure never turns into a reset.
 */
const STREAM_READ_BUFFER_MAX_BYTES = 16 * 1024 * 1024 + 1024 * 1024
/** Link streams per protocol and connection (yamux allows 1000 streams per connection). */
const LINK_STREAMS_PER_CONNECTION_MAX = 900
/** Round-robin positions kept (one per link and port in use). */
const CURSORS_MAX = 4_096
/** Streams accepted from other peers at once; past this, new ones are refused 'unavailable'. */
const ACCEPTED_CONNECTIONS_MAX = 4_096

/** One link address and port this peer answers on. */
export interface ListenSpec {
  address: string
  port: number
  /** The link's id, `<source>/<alias>`, handed to `resolveTargets` and sent in the header. */
  link: string
  /** The target's port, when it differs from the listening one (a published port: HOSTPORT:PORT). */
  targetPort?: number
}

export interface LinkForwarderInit {
  libp2p: Libp2p
  /** This peer's id: targets whose `host` equals it are local. */
  selfId: string
  log: Logger
  /** Whether `remotePeer` may open streams for this link and target port (it hosts a source container of it). */
  authorize(remotePeer: string, link: string, port: number): boolean
  /** The healthy running instances of the link's target, on every host, answering on `port`. */
  resolveTargets(link: string, port: number): LinkInstance[]
  /**
   * Whether a client at `clientAddress` may use `link` through this host's link address (for
   * example: only the link's source containers, as Docker's legacy links open the target to the
   * source alone). Default: every client. A published port (routing mesh) admits everyone.
   */
  admitClient?(clientAddress: string, link: string): boolean
}

export interface LinkForwarderStats {
  listeners: number
  /** Connections being carried now (client side and accepted streams). */
  active: number
  /** Client connections carried, by path, and streams accepted from other peers. */
  connections: { local: number; remote: number; accepted: number }
  /** Bytes read from clients of this host's link addresses, and written back to them. */
  bytesIn: number
  bytesOut: number
  /** Bytes carried for streams accepted from other peers: into the target, and back from it. */
  acceptedBytesIn: number
  acceptedBytesOut: number
  /** Streams this peer refused, by reason (bad headers included, as 'bad-header'). */
  refused: Record<RefusalReason, number>
  /** Refusals other peers answered to this peer's streams. */
  refusedByRemote: Record<RefusalReason, number>
  /** Streams to a target's peer that could not be opened or died before their status. */
  dialFailures: number
  /** TCP connects to a target instance that failed. */
  targetFailures: number
  /** Client connections reset because no instance could be reached. */
  clientResets: number
  /** Client connections reset because `admitClient` refused their address. */
  clientsRefused: number
}

function reasons(): Record<RefusalReason, number> {
  return { unauthorized: 0, 'no-target': 0, 'target-unreachable': 0, 'bad-header': 0, unavailable: 0, unknown: 0 }
}

/** A connection being carried; `bufferedBytes` is what this process holds for it in memory. */
interface Pipe {
  bufferedBytes(): number
  reset(): void
}

interface Listener {
  spec: ListenSpec
  server: net.Server
}

/** Raised by `listen` when the address cannot be listened on; the message says what to do. */
export class LinkListenError extends Error {
  override readonly name = 'LinkListenError'
}

class RefusedError extends Error {
  override readonly name = 'RefusedError'
  readonly reason: RefusalReason
  constructor(reason: RefusalReason) {
    super(`the target's peer refused the stream: ${reason}`)
    this.reason = reason
  }
}

const key = (address: string, port: number): string => `${address}|${port}`
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

export class LinkForwarder {
  readonly stats: LinkForwarderStats = {
    listeners: 0,
    active: 0,
    connections: { local: 0, remote: 0, accepted: 0 },
    bytesIn: 0,
    bytesOut: 0,
    acceptedBytesIn: 0,
    acceptedBytesOut: 0,
    refused: reasons(),
    refusedByRemote: reasons(),
    dialFailures: 0,
    targetFailures: 0,
    clientResets: 0,
    clientsRefused: 0,
  }
  private readonly init: LinkForwarderInit
  private readonly listeners = new Map<string, Listener>()
  private readonly pipes = new Set<Pipe>()
  /** Sockets and streams still being set up, so `stop` can reset them too. */
  private readonly pending = new Set<{ reset(): void }>()
  /** Round-robin position per link (and per target port), so connections spread over instances. */
  private readonly cursors = new Map<string, number>()
  private accepted = 0
  private running = false

  constructor(init: LinkForwarderInit) {
    this.init = init
  }

  async start(): Promise<void> {
    this.running = true
    await this.init.libp2p.handle(LINK_PROTOCOL, (stream, connection) => this.onInboundStream(stream, connection), {
      maxInboundStreams: LINK_STREAMS_PER_CONNECTION_MAX,
      maxOutboundStreams: LINK_STREAMS_PER_CONNECTION_MAX,
    })
  }

  /** Closes every listener and resets every connection being carried. */
  async stop(): Promise<void> {
    this.running = false
    await this.init.libp2p.unhandle(LINK_PROTOCOL)
    for (const [k, l] of [...this.listeners]) this.closeListener(k, l)
    for (const p of [...this.pipes, ...this.pending]) p.reset()
  }

  /** Bytes held in memory for every connection being carried (stream buffers and socket buffers). */
  bufferedBytes(): number {
    let total = 0
    for (const p of this.pipes) total += p.bufferedBytes()
    return total
  }

  /** The link addresses and ports this peer answers on now. */
  listening(): ListenSpec[] {
    return [...this.listeners.values()].map((l) => ({ ...l.spec }))
  }

  /** Answers on `address:port` for `link` (or retargets the listener already there). */
  async listen(address: string, port: number, link: string, targetPort?: number): Promise<void> {
    const spec: ListenSpec = targetPort === undefined ? { address, port, link } : { address, port, link, targetPort }
    const k = key(address, port)
    const existing = this.listeners.get(k)
    if (existing !== undefined) {
      existing.spec = spec
      return
    }
    if (net.isIP(address) === 0) throw new LinkListenError(`cannot listen for link ${link} on ${address}: not an IP address`)
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new LinkListenError(`cannot listen for link ${link} on port ${port}: ports are 1-65535`)
    const listener: Listener = { spec, server: net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }) }
    listener.server.on('connection', (socket: net.Socket) => void this.onClient(socket, listener.spec))
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const hint =
          err.code === 'EADDRNOTAVAIL'
            ? 'the address is not on any interface of this host; put it on the link interface first'
            : err.code === 'EADDRINUSE'
              ? (meshService(link) === null
                ? 'another process listens there; stop it or give the link another address'
                : 'another process listens there; stop it, publish the service on another port, or start this peer with another --publish-address')
              : err.code === 'EACCES'
                ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE'
                : 'see the error'
        reject(new LinkListenError(`cannot listen for link ${link} on ${address}:${port}: ${err.code ?? err.message} (${hint})`))
      }
      listener.server.once('error', onError)
      listener.server.listen({ host: address, port, exclusive: true }, () => {
        listener.server.off('error', onError)
        resolve()
      })
    })
    listener.server.on('error', (err) => this.init.log.warn(`link listener ${address}:${port}: ${errorText(err)}`))
    this.listeners.set(k, listener)
    this.stats.listeners = this.listeners.size
  }

  /**
   * Stops answering on `address:port`: new connections are refused by the kernel. Connections
   * already carried go on until either side ends them, as with a removed Docker port mapping.
   */
  async unlisten(address: string, port: number): Promise<void> {
    const k = key(address, port)
    const l = this.listeners.get(k)
    if (l !== undefined) this.closeListener(k, l)
  }

  /**
   * Opens and closes listeners to match `wanted`. A listener that cannot open is reported (and
   * tried again by the next sync), never thrown: one bad address must not block the others.
   */
  async sync(wanted: readonly ListenSpec[]): Promise<{ opened: number; closed: number; failed: Array<{ spec: ListenSpec; error: string }> }> {
    const want = new Map(wanted.map((s) => [key(s.address, s.port), s]))
    let closed = 0
    for (const [k, l] of [...this.listeners]) {
      if (want.has(k)) continue
      this.closeListener(k, l)
      closed++
    }
    let opened = 0
    const failed: Array<{ spec: ListenSpec; error: string }> = []
    for (const [k, spec] of want) {
      const fresh = !this.listeners.has(k)
      try {
        await this.listen(spec.address, spec.port, spec.link, spec.targetPort)
        if (fresh) opened++
      } catch (err) {
        failed.push({ spec, error: errorText(err) })
      }
    }
    return { opened, closed, failed }
  }

  private closeListener(k: string, l: Listener): void {
    this.listeners.delete(k)
    this.stats.listeners = this.listeners.size
    // close() stops listening at once; its callback waits for every carried connection to end,
    // which may be hours away, so it is not awaited.
    l.server.close()
  }

  private nextCursor(k: string): number {
    // Links come and go; forgetting every position now and then only restarts the rotation.
    if (!this.cursors.has(k) && this.cursors.size >= CURSORS_MAX) this.cursors.clear()
    const at = this.cursors.get(k) ?? 0
    this.cursors.set(k, at + 1)
    return at
  }

  /** A client connected to a link address: carry it to an instance, or reset it. */
  private async onClient(socket: net.Socket, spec: ListenSpec): Promise<void> {
    const targetPort = spec.targetPort ?? spec.port
    let clientGone = false
    const onEarlyError = (): void => {
      clientGone = true
    }
    socket.on('error', onEarlyError)
    const setup = { reset: () => socket.resetAndDestroy() }
    this.pending.add(setup)
    try {
      const admit = this.init.admitClient
      if (admit !== undefined && !admit(normalizeAddress(socket.remoteAddress ?? ''), spec.link)) {
        this.stats.clientsRefused++
        this.init.log.debug(`link ${spec.link}: refused a client at ${socket.remoteAddress ?? '?'}`)
        socket.resetAndDestroy()
        return
      }
      const targets = orderTargets(this.init.resolveTargets(spec.link, targetPort), this.init.selfId, this.nextCursor(`${spec.link}|${targetPort}`))
      for (const target of targets.slice(0, ATTEMPTS_MAX)) {
        if (clientGone || socket.destroyed || !this.running) break
        if (target.host === this.init.selfId) {
          try {
            const upstream = await connectTcp(target.ip, target.port)
            if (clientGone || socket.destroyed) {
              upstream.resetAndDestroy()
              break
            }
            this.stats.connections.local++
            socket.off('error', onEarlyError)
            this.track(pipeSockets(socket, upstream, (n) => (this.stats.bytesIn += n), (n) => (this.stats.bytesOut += n), (p) => this.untrack(p)))
            return
          } catch (err) {
            this.stats.targetFailures++
            this.init.log.debug(`link ${spec.link}: local instance ${target.ip}:${target.port} refused: ${errorText(err)}`)
          }
          continue
        }
        try {
          const stream = await this.openStream(target, spec.link)
          if (clientGone || socket.destroyed) {
            stream.abort(new Error('the client went away'))
            break
          }
          this.stats.connections.remote++
          socket.off('error', onEarlyError)
          this.track(pipeStream(socket, stream, (n) => (this.stats.bytesIn += n), (n) => (this.stats.bytesOut += n), (p) => this.untrack(p)))
          return
        } catch (err) {
          if (err instanceof RefusedError) this.stats.refusedByRemote[err.reason]++
          else this.stats.dialFailures++
          this.init.log.debug(`link ${spec.link}: instance ${target.ip}:${target.port} on ${target.host}: ${errorText(err)}`)
        }
      }
      if (targets.length === 0) this.init.log.debug(`link ${spec.link}: no healthy instance of its target to carry a connection to`)
      // Nothing answered: a reset tells the client at once, as a closed port would.
      this.stats.clientResets++
      if (!socket.destroyed) socket.resetAndDestroy()
    } catch (err) {
      this.init.log.warn(`link ${spec.link}: ${errorText(err)}`)
      if (!socket.destroyed) socket.resetAndDestroy()
    } finally {
      this.pending.delete(setup)
    }
  }

  /** Opens a link stream to the target's peer and waits for its status; throws RefusedError or a dial error. */
  private async openStream(target: LinkInstance, link: string): Promise<Stream> {
    const signal = AbortSignal.timeout(DIAL_TIMEOUT_MS)
    // negotiateFully: false sends the protocol name with the header, saving a round trip on
    // every new connection; a peer without the protocol still refuses it (the status read fails).
    const stream = await this.init.libp2p.dialProtocol(peerIdFromString(target.host), LINK_PROTOCOL, { signal, negotiateFully: false })
    tuneStream(stream)
    try {
      stream.send(encodeHeader({ link, port: target.port, protocol: 'tcp' }))
      const status = await readStatus(stream, signal)
      if (!status.ok) throw new RefusedError(status.reason)
      return stream
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }

  /** Another peer opened a link stream: check it, find the instance here, carry it. */
  private async onInboundStream(stream: Stream, connection: Connection): Promise<void> {
    const remote = connection.remotePeer.toString()
    tuneStream(stream)
    const setup = { reset: () => stream.abort(new Error('the link forwarder stopped')) }
    this.pending.add(setup)
    try {
      const read = await readStreamHeader(stream, AbortSignal.timeout(HEADER_TIMEOUT_MS))
      if (read.kind === 'bad') {
        this.stats.refused['bad-header']++
        this.init.log.debug(`link stream from ${remote}: reset: ${read.problem}`)
        stream.abort(new Error(`bad link header: ${read.problem}`))
        return
      }
      const { link, port } = read.header
      if (!this.running || this.accepted >= ACCEPTED_CONNECTIONS_MAX) return this.refuse(stream, 'unavailable', remote, link)
      if (!this.init.authorize(remote, link, port)) return this.refuse(stream, 'unauthorized', remote, link)
      // Only instances on this host, resolved here: the dialer never names an address.
      const local = this.init.resolveTargets(link, port).filter((t) => t.host === this.init.selfId)
      const targets = orderTargets(local, this.init.selfId, this.nextCursor(`${link}|${port}`))
      if (targets.length === 0) return this.refuse(stream, 'no-target', remote, link)
      for (const target of targets.slice(0, ATTEMPTS_MAX)) {
        let upstream: net.Socket
        try {
          upstream = await connectTcp(target.ip, target.port)
        } catch (err) {
          this.stats.targetFailures++
          this.init.log.debug(`link ${link}: instance ${target.ip}:${target.port} refused: ${errorText(err)}`)
          continue
        }
        try {
          if (stream.status !== 'open') throw new Error('the dialer went away')
          stream.send(encodeStatus({ ok: true }))
        } catch (err) {
          upstream.resetAndDestroy()
          throw err
        }
        this.stats.connections.accepted++
        this.accepted++
        this.track(
          pipeStream(upstream, stream, (n) => (this.stats.acceptedBytesOut += n), (n) => (this.stats.acceptedBytesIn += n), (p) => {
            this.accepted--
            this.untrack(p)
          }),
        )
        return
      }
      return this.refuse(stream, 'target-unreachable', remote, link)
    } catch (err) {
      this.init.log.debug(`link stream from ${remote}: ${errorText(err)}`)
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.pending.delete(setup)
    }
  }

  private refuse(stream: Stream, reason: RefusalReason, remote: string, link: string): void {
    this.stats.refused[reason]++
    this.init.log.debug(`link ${link}: refused a stream from ${remote}: ${reason}`)
    try {
      stream.send(encodeStatus({ ok: false, reason }))
    } catch {
      stream.abort(new Error(`refused: ${reason}`))
      return
    }
    // Half-close so the status arrives; the dialer resets on reading it, or we do after a while.
    void stream.close().then(
      () => setTimeout(() => stream.abort(new Error(`refused: ${reason}`)), REFUSAL_LINGER_MS).unref(),
      () => undefined,
    )
  }

  private track(pipe: Pipe): void {
    this.pipes.add(pipe)
    this.stats.active = this.pipes.size
  }

  private untrack(pipe: Pipe): void {
    this.pipes.delete(pipe)
    this.stats.active = this.pipes.size
  }
}

/**
 * Caps the stream's receive window and raises its paused-read bound. The window cap is yamux's
 * per-stream `maxStreamWindowSize` (the muxer-wide option would also slow Raft snapshots), set
 * only where the stream has it; it is read before each window update, so it applies at once.
 */
function tuneStream(stream: Stream): void {
  stream.maxReadBufferLength = STREAM_READ_BUFFER_MAX_BYTES
  const yamux = stream as Stream & { maxStreamWindowSize?: unknown }
  if (typeof yamux.maxStreamWindowSize === 'number') yamux.maxStreamWindowSize = Math.min(yamux.maxStreamWindowSize, LINK_STREAM_WINDOW_MAX_BYTES)
}

/** An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; containers know it as a.b.c.d. */
function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address
}

/** Connects to a target instance; rejects on refusal or after CONNECT_TIMEOUT_MS. */
function connectTcp(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true, timeout: CONNECT_TIMEOUT_MS })
    const fail = (err: Error): void => {
      socket.destroy()
      reject(err)
    }
    socket.once('error', fail)
    socket.once('timeout', () => fail(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)))
    socket.once('connect', () => {
      socket.off('error', fail)
      socket.setTimeout(0)
      socket.removeAllListeners('timeout')
      socket.pause()
      resolve(socket)
    })
  })
}

/** Waits for the acceptor's status byte; bytes after it are put back for the pipe. */
function readStatus(stream: Stream, signal: AbortSignal): Promise<LinkStatus> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      if (bytes.byteLength === 0) return
      done()
      if (bytes.byteLength > 1) stream.unshift(bytes.subarray(1))
      resolve(decodeStatus(bytes[0] as number))
    }
    const onClose = (evt: StreamCloseEvent): void => {
      done()
      reject(new Error(`the stream closed before its status${evt.error === undefined ? '' : `: ${evt.error.message}`}`))
    }
    const onAbort = (): void => {
      done()
      reject(new Error(`no status within ${DIAL_TIMEOUT_MS} ms`))
    }
    if (signal.aborted) return onAbort()
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

/** Reads the dialer's header; bytes after it are put back for the pipe. */
function readStreamHeader(stream: Stream, signal: AbortSignal): Promise<Exclude<HeaderRead, { kind: 'incomplete' }>> {
  return new Promise((resolve, reject) => {
    const got = new Uint8ArrayList()
    const done = (): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('remoteCloseWrite', onEnd)
      signal.removeEventListener('abort', onAbort)
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      got.append(evt.data)
      // Only the first HEADER_MAX_BYTES + 2 bytes can hold a header; never look at more.
      const read = readHeader(got.subarray(0, Math.min(got.byteLength, HEADER_MAX_BYTES + 2)))
      if (read.kind === 'incomplete') return
      done()
      if (read.kind === 'header' && got.byteLength > read.consumed) stream.unshift(got.sublist(read.consumed))
      resolve(read)
    }
    const onEnd = (): void => {
      done()
      resolve({ kind: 'bad', problem: 'the stream ended inside its header' })
    }
    const onClose = (evt: StreamCloseEvent): void => {
      done()
      reject(new Error(`the stream closed before its header${evt.error === undefined ? '' : `: ${evt.error.message}`}`))
    }
    const onAbort = (): void => {
      done()
      resolve({ kind: 'bad', problem: `no header within ${HEADER_TIMEOUT_MS} ms` })
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onEnd)
    signal.addEventListener('abort', onAbort)
  })
}

/**
 * Carries bytes between a TCP socket and a libp2p stream until both are done. The socket may
 * be paused (pauseOnConnect): it is resumed here once every listener is in place.
 */
function pipeStream(socket: net.Socket, stream: Stream, fromSocket: (n: number) => void, toSocket: (n: number) => void, onDone: (pipe: Pipe) => void): Pipe {
  let socketClosed = false
  let streamClosed = false
  let waitingForSocketDrain = false
  let pauseScheduled = false
  const pipe: Pipe = {
    bufferedBytes: () => stream.readBufferLength + stream.writeBufferLength + socket.writableLength + socket.readableLength,
    reset: () => {
      stream.abort(new Error('the link forwarder stopped'))
      if (!socket.destroyed) socket.resetAndDestroy()
    },
  }
  const finish = (): void => {
    if (socketClosed && streamClosed) onDone(pipe)
  }
  const resetSocket = (): void => {
    if (!socket.destroyed) socket.resetAndDestroy()
  }

  // socket -> stream
  socket.on('data', (chunk: Buffer) => {
    fromSocket(chunk.byteLength)
    let more: boolean
    try {
      more = stream.send(chunk)
    } catch (err) {
      // The stream is closed for writing (reset by the other side): the socket goes the same way.
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      resetSocket()
      return
    }
    if (!more) {
      socket.pause()
      resumeSocketOnStreamDrain()
    }
  })
  // Not `stream.onDrain()`: in @libp2p/utils 7.4 its promise is made once and never renewed, so
  // after the first drain it resolves at once and back-pressure would be lost.
  let waitingForStreamDrain = false
  const resumeSocketOnStreamDrain = (): void => {
    if (waitingForStreamDrain) return
    waitingForStreamDrain = true
    const onDrain = (): void => {
      if (stream.writableNeedsDrain) return
      stream.removeEventListener('drain', onDrain)
      waitingForStreamDrain = false
      if (!socket.destroyed) socket.resume()
    }
    stream.addEventListener('drain', onDrain)
  }
  // FIN from the socket: half-close the stream once everything queued is sent.
  socket.on('end', () => {
    stream.close().catch((err: unknown) => stream.abort(err instanceof Error ? err : new Error(String(err))))
  })
  socket.on('error', () => undefined)
  socket.on('close', (hadError) => {
    socketClosed = true
    // A socket reset (or write failure) resets the stream; a clean close was already a FIN.
    if (hadError) stream.abort(new Error('the TCP connection was reset'))
    else if (stream.status === 'open' && stream.writeStatus === 'writable') stream.abort(new Error('the TCP connection closed'))
    finish()
  })

  // stream -> socket
  const onMessage = (evt: StreamMessageEvent): void => {
    if (socket.destroyed) return
    let ok = true
    for (const chunk of evt.data instanceof Uint8Array ? [evt.data] : evt.data) {
      toSocket(chunk.byteLength)
      ok = socket.write(chunk)
    }
    if (!ok && !waitingForSocketDrain && !pauseScheduled) {
      // Not here: `resume()` dispatches the read buffer to this very handler and only then
      // re-opens the yamux window, which would undo a pause made during that dispatch and let
      // the remote send on while nothing reads. A microtask runs after `resume()` returns.
      pauseScheduled = true
      queueMicrotask(pauseUntilSocketDrains)
    }
  }
  const pauseUntilSocketDrains = (): void => {
    pauseScheduled = false
    if (socket.destroyed || !socket.writableNeedDrain || stream.readStatus !== 'readable') return
    waitingForSocketDrain = true
    stream.pause()
    socket.once('drain', () => {
      waitingForSocketDrain = false
      try {
        if (stream.readStatus === 'paused') stream.resume()
      } catch (err) {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
        resetSocket()
      }
    })
  }
  const onEnd = (): void => {
    // 'end' also fires on a reset; only a clean end of the remote's writes becomes a FIN.
    if (stream.status === 'open' || stream.status === 'closing' || stream.status === 'closed') {
      if (!socket.destroyed) socket.end()
    }
  }
  const onClose = (evt: StreamCloseEvent): void => {
    streamClosed = true
    // A clean close can come while the stream is paused with bytes still unread (the remote's
    // last bytes and its FIN arrived together): the message listener stays, so they reach the
    // socket on resume, and the 'end' after them becomes its FIN.
    if (evt.error !== undefined) resetSocket()
    finish()
  }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('end', onEnd)
  stream.addEventListener('close', onClose)
  // Events that may have passed during setup.
  if (stream.status === 'aborted' || stream.status === 'reset') {
    streamClosed = true
    resetSocket()
  } else if (stream.status === 'closed') {
    streamClosed = true
  }
  if (stream.readableEnded) onEnd()
  socket.resume()
  return pipe
}

/** Carries bytes between two TCP sockets (a local target: no libp2p hop), FIN and RST included. */
function pipeSockets(client: net.Socket, upstream: net.Socket, fromClient: (n: number) => void, toClient: (n: number) => void, onDone: (pipe: Pipe) => void): Pipe {
  let closed = 0
  const pipe: Pipe = {
    bufferedBytes: () => client.writableLength + client.readableLength + upstream.writableLength + upstream.readableLength,
    reset: () => {
      if (!client.destroyed) client.resetAndDestroy()
      if (!upstream.destroyed) upstream.resetAndDestroy()
    },
  }
  const oneWay = (from: net.Socket, to: net.Socket, count: (n: number) => void): void => {
    from.on('data', (chunk: Buffer) => {
      count(chunk.byteLength)
      if (to.destroyed) return
      if (!to.write(chunk)) {
        from.pause()
        to.once('drain', () => {
          if (!from.destroyed) from.resume()
        })
      }
    })
    from.on('end', () => {
      if (!to.destroyed) to.end()
    })
    from.on('error', () => undefined)
    from.on('close', (hadError) => {
      if (hadError && !to.destroyed) to.resetAndDestroy()
      if (++closed === 2) onDone(pipe)
    })
  }
  oneWay(client, upstream, fromClient)
  oneWay(upstream, client, toClient)
  client.resume()
  upstream.resume()
  return pipe
}
