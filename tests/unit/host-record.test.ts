import { describe, it, expect } from 'vitest'
import { decodeHostRecord, encodeHostRecord, type HostRecord } from '../../protocols/gossip/host-record.ts'

const record: HostRecord = { name: 'h1', addrs: ['/ip4/127.0.0.1/tcp/1/p2p/12D3KooWx'], version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z', cpus: 2, memoryBytes: 1024 }

describe('host record', () => {
  it('round-trips', () => {
    expect(decodeHostRecord(encodeHostRecord(record))).toEqual(record)
  })
  it.each([
    ['not json', '{'],
    ['not an object', '42'],
    ['missing fields', '{"name":"h"}'],
    ['negative cpus', JSON.stringify({ ...record, cpus: -1 })],
    ['too many addrs', JSON.stringify({ ...record, addrs: Array(17).fill('/ip4/1.2.3.4/tcp/1') })],
    ['non-string addr', JSON.stringify({ ...record, addrs: [1] })],
  ])('rejects %s', (_what, meta) => {
    expect(decodeHostRecord(meta)).toBeNull()
  })
})

describe('host record size', () => {
  it('drops trailing addresses until the record fits SWIM meta', () => {
    const many = { ...record, addrs: Array.from({ length: 16 }, (_, i) => `/ip4/10.0.0.${i}/tcp/7946/p2p/12D3KooW${'x'.repeat(200)}`) }
    const meta = encodeHostRecord(many)
    expect(Buffer.byteLength(meta)).toBeLessThanOrEqual(2048)
    const decoded = decodeHostRecord(meta)
    expect(decoded?.addrs.length).toBeGreaterThan(0)
    expect(decoded?.addrs).toEqual(many.addrs.slice(0, decoded?.addrs.length))
  })
})
