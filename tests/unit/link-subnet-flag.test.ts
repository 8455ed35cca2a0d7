// `shoal start --link-subnet CIDR`: default, a good value, and bad values as usage errors with the fix.
import { describe, it, expect } from 'vitest'
import { resolveStartConfig } from '../../node/config.ts'
import { UsageError } from '../../node/errors.ts'

const env = { HOME: '/tmp/shoal-home-test' }

describe('--link-subnet', () => {
  it('defaults to 100.127.0.0/16 and takes another allowed subnet (10/8 is the user\'s choice)', () => {
    expect(resolveStartConfig({}, env).linkSubnet).toEqual({ network: 0x647f0000, prefix: 16 })
    expect(resolveStartConfig({ linkSubnet: '10.77.0.0/20' }, env).linkSubnet).toEqual({ network: 0x0a4d0000, prefix: 20 })
  })
  it('refuses Docker pools, bad prefixes and non-CIDRs with a usage error naming the flag', () => {
    for (const bad of ['172.17.0.0/16', '192.168.0.0/24', '100.127.0.0/8', 'banana', '100.127.0.5/16']) {
      expect(() => resolveStartConfig({ linkSubnet: bad }, env)).toThrow(UsageError)
      expect(() => resolveStartConfig({ linkSubnet: bad }, env)).toThrow(/^--link-subnet: /)
    }
  })
})
