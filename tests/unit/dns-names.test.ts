// How cluster names become DNS names, and the address helpers of the DNS zone.
import { describe, it, expect } from 'vitest'
import { hostAddresses, ipText, labelsOf, nameKey, parseIp, parseIPv4, parseIPv6, reverseLabels, shortIdLabel } from '../../protocols/dns/names.ts'

describe('labelsOf', () => {
  it.each([
    ['web', ['web']],
    ['Web_1', ['web_1']],
    ['my.app', ['my', 'app']],
    ['a'.repeat(63), ['a'.repeat(63)]],
  ])('%s -> %j', (text, labels) => {
    expect(labelsOf(text)).toEqual(labels)
  })
  it.each(['', 'a..b', 'a.', '.a', 'a'.repeat(64), '_x', 'a._tcp', 'caf\u00e9', 'a b'])('refuses %j', (text) => {
    expect(labelsOf(text)).toBeNull()
  })
})

describe('addresses', () => {
  it('parses IPv4 strictly', () => {
    expect([...(parseIPv4('10.0.0.255') ?? [])]).toEqual([10, 0, 0, 255])
    for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', 'a.b.c.d', '']) expect(parseIPv4(bad)).toBeNull()
  })

  it('parses IPv6 text forms and prints them canonically (RFC 5952)', () => {
    const cases: Array<[string, string]> = [
      ['fd00::5', 'fd00::5'],
      ['::1', '::1'],
      ['::', '::'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ]
    for (const [text, canonical] of cases) {
      const ip = parseIp(text)
      expect(ip?.family, text).toBe(6)
      expect(ipText(ip!), text).toBe(canonical)
    }
    for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80::1%eth0', ':', 'g::1', '1:2:3:4:5:6:7::8:9']) expect(parseIPv6(bad), bad).toBeNull()
  })

  it('builds reverse names (RFC 1035 §3.5, RFC 3596 §2.5)', () => {
    expect(reverseLabels(parseIp('172.17.0.2')!).join('.')).toBe('2.0.17.172.in-addr.arpa')
    expect(reverseLabels(parseIp('2001:db8::567:89ab')!).join('.')).toBe('b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa')
  })

  it('picks a host address per family: first non-loopback, else loopback', () => {
    const texts = (addrs: string[]): string[] => hostAddresses(addrs).map(ipText)
    expect(texts(['/ip4/127.0.0.1/tcp/7946', '/ip4/10.0.0.5/tcp/7946/p2p/12D3', '/ip4/10.0.0.6/tcp/1'])).toEqual(['10.0.0.5'])
    expect(texts(['/ip4/127.0.0.1/tcp/7946'])).toEqual(['127.0.0.1'])
    expect(texts(['/ip4/0.0.0.0/tcp/7946', '/ip6/::1/tcp/1', '/ip6/fe80::1/tcp/1', '/ip6/fd00::7/tcp/1'])).toEqual(['fd00::7'])
    expect(texts(['/dns4/example.com/tcp/1', '/ip4/nonsense/tcp/1', '/ip6/::1/tcp/1'])).toEqual(['::1'])
    expect(texts([])).toEqual([])
  })

  it('takes the Docker short id as a label', () => {
    expect(shortIdLabel('A1B2C3D4E5F6789')).toBe('a1b2c3d4e5f6')
    expect(shortIdLabel('c1')).toBe('c1')
    expect(shortIdLabel('a_b')).toBeNull()
  })

  it('keys names by their wire form', () => {
    expect(nameKey(['web', 'shoal'])).toBe('\x03web\x05shoal\x00')
  })
})
