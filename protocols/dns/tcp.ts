/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): two-byte length-prefixed messages, several per
 * connection, answered as they complete (pipelined). Bounded: at most `connectionsMax` open
 * connections (more are closed on accept), an idle timeout, and a cap on unsent replies so a
 * client that does not read cannot make us buffer without end.
 */
import net from 'node:net'
import type { Forwarder } from './forwarder.ts'
import type { ListenAddress } from './udp.ts'
import type { Zone } from './zone.ts'

/** TCP limits. */
export interface TcpOptions {
  /** Open connections at most, all addresses together. */
  readonly connectionsMax: number
  /** A connection with nothing received for this long is closed (RFC 7766 §6.2.3: seconds, not minutes). */
  readonly idleTimeoutMs: number
}

/** Counters of the TCP transport. */
export interface TcpStats {
  /** Open now. */
  open: number
  accepted: number
  /** Closed on accept: `connectionsMax` were already open. */
  rejected: number
  idleClosed: number
  /** Closed because the client left more than REPLY_BACKLOG_MAX_BYTES of replies unread. */
  slowClosed: number
}

/** Unsent reply bytes per connection before it is closed. */
const REPLY_BACKLOG_MAX_BYTES = 1 << 20

/** The TCP side of the server. */
export class TcpListeners {
  readonly stats: TcpStats = { open: 0, accepted: 0, rejected: 0, idleClosed: 0, slowClosed: 0 }
  readonly #zone: () => Zone
  readonly #forwarder: Forwarder | null
  readonly #options: TcpOptions
  readonly #servers = new Map<string, net.Server>()
  readonly #connections = new Set<net.Socket>()

  constructor(zone: () => Zone, forwarder: Forwarder | null, options: TcpOptions) {
    this.#zone = zone
    this.#forwarder = forwarder
    this.#options = options
  }

  /** Listens on `address` (port 0: any free port); resolves with the bound address. */
  async listen(address: ListenAddress): Promise<ListenAddress> {
    const server = net.createServer((socket) => this.#onConnection(socket))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const bound = server.address() as net.AddressInfo
    this.#servers.set(`${address.host}|${bound.port}`, server)
    return { host: bound.address, port: bound.port }
  }

  /** Stops listening on one address `listen` bound (host as given to it). */
  async unlisten(address: ListenAddress): Promise<void> {
    const server = this.#servers.get(`${address.host}|${address.port}`)
    this.#servers.delete(`${address.host}|${address.port}`)
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const s of this.#connections) s.destroy()
    this.#connections.clear()
    const servers = [...this.#servers.values()]
    this.#servers.clear()
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }

  #onConnection(socket: net.Socket): void {
    if (this.#connections.size >= this.#options.connectionsMax) {
      this.stats.rejected++
      socket.destroy()
      return
    }
    this.stats.accepted++
    this.#connections.add(socket)
    this.stats.open = this.#connections.size
    socket.setNoDelay(true)
    socket.setTimeout(this.#options.idleTimeoutMs, () => {
      this.stats.idleClosed++
      socket.destroy()
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => {
      this.#connections.delete(socket)
      this.stats.open = this.#connections.size
    })
    let pending: Buffer | null = null
    socket.on('data', (chunk: Buffer) => {
      let data = pending === null ? chunk : Buffer.concat([pending, chunk])
      // Each complete frame is answered now; a partial one waits (at most 2 + 65535 bytes).
      while (data.length >= 2) {
        const length = data.readUInt16BE(0)
        if (data.length < 2 + length) break
        this.#onMessage(socket, data.subarray(2, 2 + length))
        data = data.subarray(2 + length)
      }
      pending = data.length > 0 ? data : null
    })
  }

  #onMessage(socket: net.Socket, msg: Buffer): void {
    const answer = this.#zone().answer(msg, 'tcp')
    switch (answer.kind) {
      case 'reply':
        this.#send(socket, answer.bytes)
        return
      case 'forward':
        if (this.#forwarder !== null) this.#forwarder.forward(Buffer.from(msg), answer.query, 'tcp', (bytes) => this.#send(socket, bytes))
        return
      case 'drop':
        return
    }
  }

  #send(socket: net.Socket, bytes: Uint8Array): void {
    if (socket.destroyed) return
    if (socket.writableLength > REPLY_BACKLOG_MAX_BYTES) {
      this.stats.slowClosed++
      socket.destroy()
      return
    }
    const frame = Buffer.allocUnsafe(2 + bytes.length)
    frame.writeUInt16BE(bytes.length, 0)
    frame.set(bytes, 2)
    socket.write(frame)
  }
}
