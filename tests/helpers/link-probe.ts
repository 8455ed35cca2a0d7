/**
 * A libp2p peer that holds the cluster secret but hosts no container, asking another peer's link
 * forwarder for a link stream the way a source host's forwarder would (tests of issue 13: the
 * target's peer must refuse it). Prints the status it got as one JSON line and exits.
 *
 *   node tests/helpers/link-probe.ts SECRET_FILE PEER_MULTIADDR/p2p/ID LINK PORT
 *
 * Run it inside the test's network namespace of choice (`nsenter --net=...`), where the peer's
 * listen address is reachable.
 */
import { readFileSync } from 'node:fs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { StreamMessageEvent } from '@libp2p/interface'
import { createHost } from '../../node/libp2p-host.ts'
import { LINK_PROTOCOL, encodeHeader, decodeStatus, type LinkStatus } from '../../protocols/link/header.ts'

const PROBE_TIMEOUT_MS = 15_000

async function main(): Promise<void> {
  const [secretFile, target, link, portText] = process.argv.slice(2)
  if (secretFile === undefined || target === undefined || link === undefined || portText === undefined) {
    throw new Error('usage: link-probe.ts SECRET_FILE PEER_MULTIADDR/p2p/ID LINK PORT')
  }
  const addr = multiaddr(target)
  const id = addr.getComponents().find((c) => c.name === 'p2p')?.value
  if (id === undefined) throw new Error(`${target} names no /p2p/ peer id`)
  const { libp2p } = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [], bootstrap: [], clusterSecret: readFileSync(secretFile) })
  await libp2p.start()
  try {
    const signal = AbortSignal.timeout(PROBE_TIMEOUT_MS)
    const stream = await libp2p.dialProtocol(addr, LINK_PROTOCOL, { signal })
    const status = new Promise<LinkStatus>((resolve, reject) => {
      stream.addEventListener('message', (evt: StreamMessageEvent) => {
        const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
        if (bytes.byteLength > 0) resolve(decodeStatus(bytes[0] as number))
      })
      stream.addEventListener('close', () => reject(new Error('the stream closed before its status')))
      signal.addEventListener('abort', () => reject(new Error(`no status within ${PROBE_TIMEOUT_MS} ms`)))
    })
    stream.send(encodeHeader({ link, port: Number(portText), protocol: 'tcp' }))
    process.stdout.write(`${JSON.stringify({ self: libp2p.peerId.toString(), status: await status })}\n`)
    stream.abort(new Error('probe done'))
  } finally {
    await libp2p.stop()
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`link-probe: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
