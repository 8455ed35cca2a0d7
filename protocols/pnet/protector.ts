/**
 * libp2p private networks (PSK v1, as @libp2p/pnet and go-libp2p-pnet speak it): each side sends
 * a random 24-byte nonce, then every byte in each direction is XORed with the XSalsa20 keystream
 * of the shared key and the sender's nonce. A peer with another key reads noise, so Noise's
 * multistream-select fails and the connection closes before any peer learns anything.
 *
 * This is @libp2p/pnet's protector with its cipher replaced (see keystream.ts for why); the
 * handshake and the wrapping stream are the same library building blocks it uses.
 */
import { InvalidParametersError } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection, Logger } from '@libp2p/interface'
import type { SendResult } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { XSalsa20Stream, PSK_NONCE_BYTES, decodePskV1 } from './keystream.ts'

export interface PskProtectorInit {
  /** The key file's bytes: `/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits. */
  psk: Uint8Array
  /** Bound on the nonce exchange when the caller gives no abort signal (as @libp2p/pnet: 1 s). */
  timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 1000

interface XorStreamInit {
  maConn: MultiaddrConnection
  key: Uint8Array
  localNonce: Uint8Array
  remoteNonce: Uint8Array
  log: Logger
}

/** The connection after the nonce exchange: ciphers what it sends and what it receives. */
class XorMessageStream extends AbstractMultiaddrConnection {
  private readonly maConn: MultiaddrConnection
  private readonly inbound: XSalsa20Stream
  private readonly outbound: XSalsa20Stream

  constructor(init: XorStreamInit) {
    super({ log: init.log, remoteAddr: init.maConn.remoteAddr, direction: init.maConn.direction })
    this.maConn = init.maConn
    this.inbound = new XSalsa20Stream(init.key, init.remoteNonce)
    this.outbound = new XSalsa20Stream(init.key, init.localNonce)
    // Listeners go on synchronously: byteStream's unwrap() re-emits bytes that arrived with the
    // nonce in a microtask, and they must be deciphered too.
    this.maConn.addEventListener('message', (evt) => {
      try {
        const data = evt.data
        if (data instanceof Uint8Array) {
          this.onData(this.inbound.update(data))
        } else {
          for (const piece of data) this.onData(this.inbound.update(piece))
        }
      } catch (err) {
        // An event listener must not throw (it would be an uncaught exception, killing the
        // process); the only failure, a used-up keystream, ends this connection alone.
        this.abort(err instanceof Error ? err : new Error(String(err)))
      }
    })
    this.maConn.addEventListener('drain', () => {
      this.onMuxerDrain()
    })
    this.maConn.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local) this.abort(evt.error)
        else this.onRemoteReset()
      } else {
        this.onTransportClosed()
      }
    })
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    await this.maConn.close(options)
  }

  sendData(data: Uint8ArrayList): SendResult {
    // A throw here (used-up keystream) makes AbstractMessageStream abort this connection.
    const sealed = this.outbound.update(data.subarray())
    return { sentBytes: data.byteLength, canSendMore: this.maConn.send(sealed) }
  }

  sendReset(err: Error): void {
    this.maConn.abort(err)
  }

  sendPause(): void {
    this.maConn.pause()
  }

  sendResume(): void {
    this.maConn.resume()
  }
}

class PskProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = 'shoal/pnet'
  private readonly key: Uint8Array
  private readonly timeoutMs: number

  constructor(init: PskProtectorInit) {
    this.key = decodePskV1(init.psk)
    this.timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    if (!isMultiaddrConnection(connection)) throw new InvalidParametersError('the private network protects raw transport connections only')
    const log = connection.log.newScope('pnet')
    const localNonce = crypto.getRandomValues(new Uint8Array(PSK_NONCE_BYTES))
    const opts: AbortOptions = options?.signal != null ? options : { ...options, signal: AbortSignal.timeout(this.timeoutMs) }
    const bytes = byteStream(connection)
    const [remote] = await Promise.all([bytes.read({ bytes: PSK_NONCE_BYTES, ...opts }), bytes.write(localNonce, opts)])
    log('exchanged nonces')
    return new XorMessageStream({ maConn: bytes.unwrap(), key: this.key, localNonce, remoteNonce: remote.subarray(), log })
  }
}

function isMultiaddrConnection(stream: MessageStream): stream is MultiaddrConnection {
  return 'remoteAddr' in stream
}

/**
 * A libp2p `connectionProtector` for a PSK v1 private network. Throws a RangeError at once when
 * the key file is not in PSK v1 format.
 */
export function pskProtector(init: PskProtectorInit): () => ConnectionProtector {
  const protector = new PskProtector(init)
  return () => protector
}
