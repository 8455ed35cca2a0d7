/**
 * Relays queries for names outside the zone to one upstream resolver (`--dns-forward`), over
 * the transport the client used: UDP queries go out on one shared UDP socket under a fresh
 * random id (RFC 5452 §9.2: unpredictable ids against spoofed answers), and an answer is only
 * taken when it comes from the upstream's address and echoes the question; TCP queries get a
 * TCP connection of their own. A query that gets no answer in time, or finds too many already
 * in flight, is answered SERVFAIL so the client does not wait out its own timeout.
 */
import dgram from 'node:dgram'
import net, { isIPv6 } from 'node:net'
import { randomInt } from 'node:crypto'
import { HEADER_BYTES, RCODE, TCP_MAX_BYTES, rcodeResponse, readId, writeId, type Query } from './wire.ts'

/** Where and how to forward. */
export interface ForwarderOptions {
  readonly upstream: { readonly host: string; readonly port: number }
  /** How long to wait for the upstream before answering SERVFAIL. */
  readonly timeoutMs: number
  /** Most queries waiting on the upstream at once; beyond it SERVFAIL at once (bounded memory). */
  readonly inflightMax: number
  /** Advertised in the OPT of the SERVFAIL answers we make ourselves. */
  readonly udpPayloadMaxBytes: number
}

/** Counters of the forwarder. */
export interface ForwarderStats {
  /** Upstream answers relayed to clients. */
  relayed: number
  /** Queries the upstream did not answer in time (answered SERVFAIL). */
  timeouts: number
  /** Upstream connection or send failures (answered SERVFAIL). */
  errors: number
  /** Queries refused because `inflightMax` were already waiting (answered SERVFAIL). */
  overflows: number
  /** Answers dropped: unknown id, wrong sender or question (late, duplicate or spoofed). */
  mismatched: number
  /** Waiting now. */
  inflight: number
}

interface Pending {
  readonly clientId: number
  readonly question: Uint8Array
  readonly timer: NodeJS.Timeout
  readonly finish: (bytes: Uint8Array) => void
}

/** The upstream forwarder; see the file comment. */
export class Forwarder {
  readonly stats: ForwarderStats = { relayed: 0, timeouts: 0, errors: 0, overflows: 0, mismatched: 0, inflight: 0 }
  readonly #options: ForwarderOptions
  #udp: dgram.Socket | null = null
  readonly #byId = new Map<number, Pending>()
  readonly #tcp = new Set<net.Socket>()

  constructor(options: ForwarderOptions) {
    this.#options = options
  }

  /** Opens the UDP socket towards the upstream. */
  async start(): Promise<void> {
    const socket = dgram.createSocket(isIPv6(this.#options.upstream.host) ? 'udp6' : 'udp4')
    socket.on('message', (msg, rinfo) => this.#onUdpAnswer(msg, rinfo))
    // A send error (ICMP port unreachable shows up here on Linux) fails nothing in particular; timeouts answer.
    socket.on('error', () => this.stats.errors++)
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(0, () => {
        socket.off('error', reject)
        resolve()
      })
    })
    this.#udp = socket
  }

  /** Closes everything; queries still waiting get no answer. */
  async stop(): Promise<void> {
    for (const p of this.#byId.values()) clearTimeout(p.timer)
    this.#byId.clear()
    for (const s of this.#tcp) s.destroy()
    this.#tcp.clear()
    this.stats.inflight = 0
    const socket = this.#udp
    this.#udp = null
    if (socket !== null) await new Promise<void>((resolve) => socket.close(() => resolve()))
  }

  /** Forwards `msg` (parsed as `query`); `reply` is called exactly once, with the answer or a SERVFAIL. */
  forward(msg: Uint8Array, query: Query, transport: 'udp' | 'tcp', reply: (bytes: Uint8Array) => void): void {
    const servfail = (): Uint8Array => rcodeResponse(msg, query, RCODE.SERVFAIL, true, this.#options.udpPayloadMaxBytes)
    if (this.stats.inflight >= this.#options.inflightMax || this.#udp === null) {
      this.stats.overflows++
      reply(servfail())
      return
    }
    if (transport === 'tcp') this.#forwardTcp(msg, reply, servfail)
    else this.#forwardUdp(msg, query, reply, servfail)
  }

  #forwardUdp(msg: Uint8Array, query: Query, reply: (bytes: Uint8Array) => void, servfail: () => Uint8Array): void {
    const socket = this.#udp as dgram.Socket
    let id = randomInt(0, 0x10000)
    while (this.#byId.has(id)) id = randomInt(0, 0x10000)
    const out = Uint8Array.from(msg)
    const clientId = readId(msg)
    writeId(out, id)
    const timer = setTimeout(() => {
      if (this.#byId.get(id) !== pending) return
      this.#byId.delete(id)
      this.stats.inflight--
      this.stats.timeouts++
      reply(servfail())
    }, this.#options.timeoutMs)
    const pending: Pending = { clientId, question: msg.slice(HEADER_BYTES, query.questionEnd), timer, finish: reply }
    this.#byId.set(id, pending)
    this.stats.inflight++
    socket.send(out, this.#options.upstream.port, this.#options.upstream.host)
  }

  #onUdpAnswer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const { host, port } = this.#options.upstream
    const pending = msg.length >= HEADER_BYTES ? this.#byId.get(readId(msg)) : undefined
    const fromUpstream = rinfo.port === port && sameAddress(rinfo.address, host)
    if (pending === undefined || !fromUpstream || !startsWithQuestion(msg, pending.question)) {
      this.stats.mismatched++
      return
    }
    this.#byId.delete(readId(msg))
    clearTimeout(pending.timer)
    this.stats.inflight--
    this.stats.relayed++
    writeId(msg, pending.clientId)
    pending.finish(msg)
  }

  #forwardTcp(msg: Uint8Array, reply: (bytes: Uint8Array) => void, servfail: () => Uint8Array): void {
    const { host, port } = this.#options.upstream
    this.stats.inflight++
    let done = false
    const socket = net.connect({ host, port })
    this.#tcp.add(socket)
    const finish = (bytes: Uint8Array | null): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      this.stats.inflight--
      this.#tcp.delete(socket)
      socket.destroy()
      if (bytes !== null) {
        this.stats.relayed++
        reply(bytes)
      } else {
        reply(servfail())
      }
    }
    const timer = setTimeout(() => {
      this.stats.timeouts++
      finish(null)
    }, this.#options.timeoutMs)
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (buffered.length < 2) return
      const length = buffered.readUInt16BE(0)
      if (buffered.length >= 2 + length) finish(buffered.subarray(2, 2 + length))
    })
    socket.on('error', () => {
      if (!done) this.stats.errors++
      finish(null)
    })
    socket.on('close', () => {
      if (!done) this.stats.errors++
      finish(null)
    })
    if (msg.length > TCP_MAX_BYTES) {
      finish(null)
      return
    }
    const frame = Buffer.allocUnsafe(2 + msg.length)
    frame.writeUInt16BE(msg.length, 0)
    frame.set(msg, 2)
    socket.write(frame)
  }
}

function startsWithQuestion(msg: Uint8Array, question: Uint8Array): boolean {
  if (msg.length < HEADER_BYTES + question.length) return false
  for (let i = 0; i < question.length; i++) if (msg[HEADER_BYTES + i] !== question[i]) return false
  return true
}

function sameAddress(a: string, b: string): boolean {
  // An IPv4 upstream answering on a dual-stack socket shows up as ::ffff:a.b.c.d.
  return a === b || a === `::ffff:${b}` || b === `::ffff:${a}`
}
