// `shoal start --link-interface NAME|none`: default shoal0, none (the operator's interface), bad names as usage errors with the fix.
import { describe, it, expect } from 'vitest'
import { resolveStartConfig } from '../../node/config.ts'
import { UsageError } from '../../node/errors.ts'

const env = { HOME: '/tmp/shoal-home-test' }

describe('--link-interface', () => {
  it('defaults to shoal0, takes another name, and none means the peer manages no interface', () => {
    expect(resolveStartConfig({}, env).linkInterface).toBe('shoal0')
    expect(resolveStartConfig({ linkInterface: 'links-1' }, env).linkInterface).toBe('links-1')
    expect(resolveStartConfig({ linkInterface: 'none' }, env).linkInterface).toBeNull()
  })
  it('refuses names Linux would not take, with a usage error naming the flag and the way out', () => {
    for (const bad of ['', 'a-name-of-16-chr', 'eth 0', 'a/b', '..']) {
      expect(() => resolveStartConfig({ linkInterface: bad }, env)).toThrow(UsageError)
      expect(() => resolveStartConfig({ linkInterface: bad }, env)).toThrow(/^--link-interface .*or none/)
    }
  })
})
