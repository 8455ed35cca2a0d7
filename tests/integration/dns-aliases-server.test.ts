// Alias answers through the real DNS server (issue 13): the querier address comes from the
// socket (UDP rinfo, TCP remoteAddress), and worker threads answering UDP get the aliases in
// their records too. Clients here query from 127.0.0.1 and from 127.0.0.2 (loopback addresses).
import { describe, it, expect, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { DnsServer } from '../../protocols/dns/index.ts'
import { container } from '../../protocols/dns/testing.ts'

async function dig(port: number, from: string, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('dig', ['@127.0.0.1', '-p', String(port), '-b', from, '+time=2', '+tries=1', '+short', ...args])
  return stdout.trim()
}

describe('alias answers through the server', () => {
  const servers: DnsServer[] = []
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()))
  })
  const records = () => ({
    containers: [container({ ips: ['127.0.0.1'] })],
    hosts: [],
    revision: 1,
    aliases: [{ querier: '127.0.0.1', name: 'pg', address: '100.127.0.9' }],
  })

  for (const loops of [1, 2]) {
    it(`${loops} event loop(s): the source address gets the link, another gets nothing, over UDP and TCP`, async () => {
      const server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], records, udpEventLoops: loops })
      servers.push(server)
      await server.start()
      const port = server.addresses[0]!.port
      // Several UDP queries: with two loops the kernel spreads them over both (by source port).
      for (let i = 0; i < 6; i++) expect(await dig(port, '127.0.0.1', 'pg.shoal')).toBe('100.127.0.9')
      expect(await dig(port, '127.0.0.1', '+tcp', 'pg.shoal')).toBe('100.127.0.9')
      expect(await dig(port, '127.0.0.2', 'pg.shoal')).toBe('')
      expect(await dig(port, '127.0.0.2', '+tcp', 'pg.shoal')).toBe('')
      expect(await dig(port, '127.0.0.2', '-x', '100.127.0.9')).toBe('pg.shoal.')
    })
  }
})
