import { describe, it, expect } from 'vitest'
import { resolveStartConfig, parseDnsListen, parseDnsForward, defaultDataDir } from '../../node/config.ts'
import { UsageError } from '../../node/errors.ts'

const env = { HOME: '/home/u', XDG_DATA_HOME: '' }

describe('resolveStartConfig', () => {
  it('fills the documented defaults', () => {
    const c = resolveStartConfig({ name: 'h1', docker: 'none' }, env)
    expect(c.dataDir).toBe(defaultDataDir(env))
    expect(c.listen.map(String)).toEqual(['/ip4/0.0.0.0/tcp/7946'])
    expect(c.apiSocket).toBe(`${c.dataDir}/shoal.sock`)
    expect(c.dns).toEqual({ host: '127.0.0.1', port: 5353 })
    expect(c.logLevel).toBe('info')
    expect(c.bootstrap).toEqual([])
    expect(c.voters).toBeUndefined()
    expect(c.deadGraceMs).toBe(30_000)
    expect(c.snapshotEntries).toBe(10_000)
  })

  it('honours XDG_DATA_HOME', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/x/data' })).toBe('/x/data/shoal')
  })

  it.each([
    [{ listen: ['garbage'] }, 'is not a valid multiaddr'],
    [{ listen: ['/ip4/1.2.3.4/udp/5'] }, 'speak TCP'],
    [{ bootstrap: ['/ip4/127.0.0.1/tcp/7946'] }, 'must end with /p2p/'],
    [{ name: 'not a label!' }, 'DNS label'],
    [{ logLevel: 'loud' }, 'expected one of error, warn, info, debug'],
    [{ dns: '127.0.0.1' }, 'expected HOST:PORT'],
    [{ dns: '127.0.0.1:70000' }, 'expected HOST:PORT'],
    [{ api: `/tmp/${'x'.repeat(120)}.sock` }, 'longer than 107 bytes'],
    [{ voters: '4' }, 'use an odd number'],
    [{ voters: '9' }, 'from 1 to 7'],
    [{ deadGrace: 'soon' }, 'expected a number'],
    [{ snapshotEntries: '5' }, 'from 10 to'],
  ])('rejects %j with a usage error', (options, message) => {
    expect(() => resolveStartConfig({ name: 'h', docker: 'none', ...options }, env)).toThrow(UsageError)
    expect(() => resolveStartConfig({ name: 'h', docker: 'none', ...options }, env)).toThrow(message)
  })

  it('parses --dns forms', () => {
    expect(parseDnsListen('off')).toBe('off')
    expect(parseDnsListen('[::1]:53')).toEqual({ host: '::1', port: 53 })
    expect(parseDnsListen('0.0.0.0:5353')).toEqual({ host: '0.0.0.0', port: 5353 })
    expect(() => parseDnsListen('127.0.0.1')).toThrow('expected HOST:PORT')
  })

  it('parses --dns-forward (port 53 by default, an IP only) and --dns-ttl', () => {
    expect(parseDnsForward('10.0.0.2')).toEqual({ host: '10.0.0.2', port: 53 })
    expect(parseDnsForward('127.0.0.1:5300')).toEqual({ host: '127.0.0.1', port: 5300 })
    expect(parseDnsForward('[fd00::2]:53')).toEqual({ host: 'fd00::2', port: 53 })
    expect(parseDnsForward('fd00::2')).toEqual({ host: 'fd00::2', port: 53 })
    expect(() => parseDnsForward('dns.example:53')).toThrow('must be an IP address')
    expect(() => parseDnsForward('10.0.0.2:99999')).toThrow('expected an upstream resolver')
    const env = { HOME: '/home/u' }
    expect(resolveStartConfig({ name: 'h', docker: 'none' }, env)).toMatchObject({ dnsForward: null, dnsTtl: 5 })
    expect(resolveStartConfig({ name: 'h', docker: 'none', dnsForward: '10.0.0.2', dnsTtl: '30' }, env)).toMatchObject({ dnsForward: { host: '10.0.0.2', port: 53 }, dnsTtl: 30 })
    expect(() => resolveStartConfig({ name: 'h', docker: 'none', dnsTtl: '-1' }, env)).toThrow('--dns-ttl')
  })

  it('parses --dns-loops: a whole number from 1 to 16, default 1', () => {
    const env = { HOME: '/home/u' }
    expect(resolveStartConfig({ name: 'h', docker: 'none' }, env).dnsLoops).toBe(1)
    expect(resolveStartConfig({ name: 'h', docker: 'none', dnsLoops: '2' }, env).dnsLoops).toBe(2)
    for (const bad of ['0', '17', '1.5', 'two', '-2']) {
      expect(() => resolveStartConfig({ name: 'h', docker: 'none', dnsLoops: bad }, env)).toThrow(/--dns-loops .*expected a (whole )?number from 1 to 16/)
    }
  })
})
