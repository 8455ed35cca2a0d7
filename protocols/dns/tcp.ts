/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): two-byte length-prefixed messages, several per
 * connection, answered as they complete (pipelined). Bounded: at most `connectionsMax` open
 * connections and `connectionsPerClientMax` from one address (more are closed on accept);
 * an idle timeout that only complete messages reset, a deadline per message and a maximum
 * age (see tcp-limits.ts: a client trickling bytes cannot hold a slot); and a cap on unsent
 * replies so a client that does not read cannot make us buffer without end.
 */
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { admissionProblem, afterData, clientOf, connectionDeadline, type ConnectionTimes, type TcpTimeouts } from './tcp-limits.ts'
import type { Forwarder } from './forwarder.ts'
import type { ListenAddress } from './udp.ts'
import type { Zone } from './zone.ts'

/** TCP limits. */
export interface TcpOptions extends TcpTimeouts {
  /** Open connections at most, all addresses together. */
  readonly connectionsMax: number
  /** Open connections at most from one client address (RFC 7766 §6.2.2). */
  readonly connectionsPerClientMax: number
}

/** Counters of the TCP transport. */
export interface TcpStats {
  /** Open now. */
  open: number
  accepted: number
  /** Closed on accept: `connectionsMax` were already open, or `connectionsPerClientMax` from that address. */
  rejected: number
  /** Of `rejected`: the client's own limit was reached, not the server's. */
  rejectedPerClient: number
  /** No complete message within `idleTimeoutMs` of the last one (bytes of a partial one do not count). */
  idleClosed: number
  /** A message still incomplete `messageTimeoutMs` after its first byte. */
  slowMessageClosed: number
  /** Open `connectionAgeMaxMs`. */
  ageClosed: number
  /** Closed because the client left more than REPLY_BACKLOG_MAX_BYTES of replies unread. */
  slowClosed: number
}

/** Unsent reply bytes per connection before it is closed. */
const REPLY_BACKLOG_MAX_BYTES = 1 << 20

/** The TCP side of the server. */
export class TcpListeners {
  readonly stats: TcpStats = { open: 0, accepted: 0, rejected: 0, rejectedPerClient: 0, idleClosed: 0, slowMessageClosed: 0, ageClosed: 0, slowClosed: 0 }
  readonly #zone: () => Zone
  readonly #forwarder: Forwarder | null
  readonly #options: TcpOptions
  readonly #servers = new Map<string, net.Server>()
  readonly #connections = new Set<net.Socket>()
  /** Open connections per client address (entries removed at zero). */
  readonly #perClient = new Map<string, number>()

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
    const client = clientOf(socket.remoteAddress)
    const fromClient = this.#perClient.get(client) ?? 0
    const refused = admissionProblem(this.#connections.size, fromClient, this.#options)
    if (refused !== null) {
      this.stats.rejected++
      if (refused === 'client-full') this.stats.rejectedPerClient++
      socket.destroy()
      return
    }
    this.stats.accepted++
    this.#connections.add(socket)
    this.#perClient.set(client, fromClient + 1)
    this.stats.open = this.#connections.size
    socket.setNoDelay(true)
    const acceptedAtMs = performance.now()
    let times: ConnectionTimes = { acceptedAtMs, lastMessageAtMs: acceptedAtMs, partialSinceMs: null }
    let timer: NodeJS.Timeout | null = null
    let armedAtMs = -1
    // One timer per connection, moved only when the deadline moves (not on every byte).
    const arm = (): void => {
      const deadline = connectionDeadline(times, this.#options)
      if (deadline.atMs === armedAtMs) return
      armedAtMs = deadline.atMs
      if (timer !== null) clearTimeout(timer)
      timer = setTimeout(() => {
        if (deadline.reason === 'idle') this.stats.idleClosed++
        else if (deadline.reason === 'slow-message') this.stats.slowMessageClosed++
        else this.stats.ageClosed++
        socket.destroy()
      }, Math.max(0, deadline.atMs - performance.now()))
    }
    arm()
    socket.on('error', () => socket.destroy())
    socket.on('close', () => {
      if (timer !== null) clearTimeout(timer)
      this.#connections.delete(socket)
      const left = (this.#perClient.get(client) ?? 1) - 1
      if (left > 0) this.#perClient.set(client, left)
      else this.#perClient.delete(client)
      this.stats.open = this.#connections.size
    })
    let pending: Buffer | null = null
    socket.on('data', (chunk: Buffer) => {
      let data = pending === null ? chunk : Buffer.concat([pending, chunk])
      let completed = 0
      // Each complete frame is answered now; a partial one waits (at most 2 + 65535 bytes).
      while (data.length >= 2) {
        const length = data.readUInt16BE(0)
        if (data.length < 2 + length) break
        completed++
        this.#onMessage(socket, data.subarray(2, 2 + length))
        data = data.subarray(2 + length)
      }
      pending = data.length > 0 ? data : null
      times = afterData(times, performance.now(), completed, pending !== null)
      if (!socket.destroyed) arm()
    })
  }

  #onMessage(socket: net.Socket, msg: Buffer): void {
    const answer = this.#zone().answer(msg, 'tcp', socket.remoteAddress)
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
