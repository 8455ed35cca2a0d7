// Helpers for DNS tests and the benchmark: records to build a zone from, and queries and
// responses through dns-packet, so tests check our raw-byte path against an independent codec.
import * as dnsPacket from 'dns-packet'
import type { Container, Host } from '../../storage/statestore/index.ts'

/** A running container record; `over` replaces any field. */
export function container(over: Partial<Container> = {}): Container {
  return {
    id: 'a1b2c3d4e5f60000000000000000000000000000000000000000000000000001', name: 'web-1', image: 'app:1',
    host: 'hostA', hostName: 'alpha', ips: ['172.17.0.2'], ports: [{ containerPort: 8080, protocol: 'tcp' }],
    labels: {}, state: 'running', ...over,
  }
}

/** A host record; `over` replaces any field. */
export function host(over: Partial<Host> = {}): Host {
  return { peerId: 'hostA', name: 'alpha', addrs: ['/ip4/127.0.0.1/tcp/7946', '/ip4/10.0.0.1/tcp/7946'], version: '0.1.0', cpus: 2, memoryBytes: 1e9, ...over }
}

/** Options of `query`. */
export interface QueryOptions {
  readonly id?: number
  /** EDNS UDP payload size to advertise; false: no OPT record. Default 1232. */
  readonly edns?: number | false
  readonly dnssecOk?: boolean
  readonly ednsVersion?: number
  readonly qclass?: dnsPacket.RecordClass
}

/** A query type: a record type, or ANY (which dns-packet encodes but does not type). */
export type QueryType = dnsPacket.RecordType | 'ANY'

/** A query for `name` `type` as a client would send it. */
export function query(name: string, type: QueryType, options: QueryOptions = {}): Uint8Array {
  const edns = options.edns ?? 1232
  const opt: dnsPacket.Answer = {
    type: 'OPT', name: '.', udpPayloadSize: edns === false ? 0 : edns, extendedRcode: 0, ednsVersion: options.ednsVersion ?? 0,
    flags: options.dnssecOk === true ? dnsPacket.DNSSEC_OK : 0, flag_do: options.dnssecOk === true, options: [],
  }
  return dnsPacket.encode({
    type: 'query', id: options.id ?? 4242, flags: dnsPacket.RECURSION_DESIRED,
    // dns-packet maps the type name to its number itself, ANY included.
    questions: [{ name, type: type as dnsPacket.RecordType, class: options.qclass ?? 'IN' }],
    additionals: edns === false ? [] : [opt],
  })
}

/** A decoded response, with the rcode dns-packet adds. */
export type Response = dnsPacket.DecodedPacket & { rcode: string }

/** Decodes a response. */
export function decode(bytes: Uint8Array): Response {
  return dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Response
}

/** The `data` of each answer record, as dns-packet decodes it. */
export function answerData(r: Response): unknown[] {
  return (r.answers ?? []).map((a) => ('data' in a ? a.data : null))
}
