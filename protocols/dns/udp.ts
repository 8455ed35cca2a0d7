/**
 * DNS over UDP (RFC 1035 §4.2.1): one socket per listen address, each datagram answered from
 * the zone, or handed to the forwarder. Used by the server's own event loop and by each
 * worker's (workers.ts), which bind the same address with SO_REUSEPORT.
 */
import dgram from 'node:dgram'
import { isIPv6 } from 'node:net'
import type { Forwarder } from './forwarder.ts'
import type { Zone } from './zone.ts'

/** Counters of the UDP transport. */
export interface UdpStats {
  /** Replies the kernel refused to send (client gone, buffer full). */
  sendErrors: number
}

/** A listen address. */
export interface ListenAddress {
  readonly host: string
  readonly port: number
}

// We only ever send to the source address of a datagram, an IP literal: skip dns.lookup and
// its extra tick on every reply.
const literal = (address: string, family: number, callback: (err: null, address: string, family: number) => void): void => callback(null, address, family)

/** The UDP side of the server on one event loop. */
export class UdpListeners {
  readonly stats: UdpStats = { sendErrors: 0 }
  readonly #zone: () => Zone
  readonly #forwarder: Forwarder | null
  readonly #sockets: dgram.Socket[] = []

  /** `zone` is read per datagram, so a rebuilt zone takes effect at once. */
  constructor(zone: () => Zone, forwarder: Forwarder | null) {
    this.#zone = zone
    this.#forwarder = forwarder
  }

  /** Binds `address`; with `reusePort`, other event loops may bind it too and the kernel spreads datagrams. */
  async listen(address: ListenAddress, reusePort: boolean): Promise<ListenAddress> {
    const socket = dgram.createSocket({ type: isIPv6(address.host) ? 'udp6' : 'udp4', reusePort, lookup: literal as never })
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(address.port, address.host, () => {
        socket.off('error', reject)
        resolve()
      })
    })
    // After binding, errors are per datagram (a reply that could not be sent): count, keep serving.
    socket.on('error', () => this.stats.sendErrors++)
    socket.on('message', (msg, rinfo) => this.#onMessage(socket, msg, rinfo))
    this.#sockets.push(socket)
    const bound = socket.address()
    return { host: bound.address, port: bound.port }
  }

  /** Closes every socket. */
  async close(): Promise<void> {
    const sockets = this.#sockets.splice(0)
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }

  #onMessage(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const answer = this.#zone().answer(msg, 'udp', rinfo.address)
    switch (answer.kind) {
      case 'reply':
        this.#send(socket, answer.bytes, rinfo)
        return
      case 'forward':
        if (this.#forwarder !== null) this.#forwarder.forward(msg, answer.query, 'udp', (bytes) => this.#send(socket, bytes, rinfo))
        return
      case 'drop':
        return
    }
  }

  #send(socket: dgram.Socket, bytes: Uint8Array, rinfo: dgram.RemoteInfo): void {
    try {
      // No callback: it would cost a tick per reply; a failed send arrives as an 'error' event.
      socket.send(bytes, rinfo.port, rinfo.address)
    } catch {
      // The socket closed under us (server stopping).
      this.stats.sendErrors++
    }
  }
}
