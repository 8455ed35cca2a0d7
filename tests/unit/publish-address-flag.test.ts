// `shoal start --publish-address ADDR|none`: default 0.0.0.0 (every address, as docker run -p), an IP of the host, or none.
import { describe, it, expect } from 'vitest'
import { resolveStartConfig } from '../../node/config.ts'
import { UsageError } from '../../node/errors.ts'

const env = { HOME: '/tmp/shoal-home-test' }

describe('--publish-address', () => {
  it('defaults to every address, takes one IPv4 or IPv6 address, and none answers no published port', () => {
    expect(resolveStartConfig({}, env).publishAddress).toBe('0.0.0.0')
    expect(resolveStartConfig({ publishAddress: '10.0.0.7' }, env).publishAddress).toBe('10.0.0.7')
    expect(resolveStartConfig({ publishAddress: '::1' }, env).publishAddress).toBe('::1')
    expect(resolveStartConfig({ publishAddress: 'none' }, env).publishAddress).toBeNull()
  })
  it('refuses what is not an address, naming the flag and the way out', () => {
    for (const bad of ['', 'localhost', '10.0.0', '10.0.0.0/8', '0.0.0.0:80']) {
      expect(() => resolveStartConfig({ publishAddress: bad }, env)).toThrow(UsageError)
      expect(() => resolveStartConfig({ publishAddress: bad }, env)).toThrow(/^--publish-address .*or none/)
    }
  })
})
