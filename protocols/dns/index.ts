// The DNS server of a peer: zone `shoal.` answered from the local replica (README.md).
export { DnsServer, DnsListenError, type DnsServerOptions, type DnsStats } from './server.ts'
export { Zone, DEFAULT_ZONE_OPTIONS, type ZoneOptions, type ZoneAnswer, type ZoneCounters } from './zone.ts'
export type { ZoneRecords, ZoneAlias } from './zone-build.ts'
export type { ListenAddress } from './udp.ts'
export type { ForwarderStats } from './forwarder.ts'
export type { TcpStats } from './tcp.ts'
