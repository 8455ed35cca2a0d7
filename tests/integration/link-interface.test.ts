/**
 * The link interface adapter against the real kernel, inside a network namespace this test
 * creates and deletes (never the machine's own interfaces).
 */
import { describe, it, expect } from 'vitest'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { LinkInterface, LinkInterfaceError, LINK_INTERFACE_MARK } from '../../node/link-interface.ts'

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' })

describe('LinkInterface', () => {
  it('rejects bad names and addresses before running anything', async () => {
    expect(() => new LinkInterface({ name: 'a-name-far-too-long' })).toThrow(LinkInterfaceError)
    expect(() => new LinkInterface({ name: 'x;rm' })).toThrow(/not valid/)
    await expect(new LinkInterface({ name: 'shoal-none', netns: 'nope' }).ensure(['100.127.0.300'])).rejects.toThrow(/not an IP address/)
  })

  it('creates its interface, adds missing and removes stale addresses, and leaves interfaces it did not make alone', async () => {
    if (process.getuid?.() !== 0) {
      // Without root the kernel refuses; the error must say what to do.
      await expect(new LinkInterface({ name: `shoalt${process.pid % 1000}` }).ensure(['100.127.0.2'])).rejects.toThrow(/CAP_NET_ADMIN/)
      return
    }
    const ns = `shoal-test-li-${randomBytes(4).toString('hex')}`
    ip('netns', 'add', ns)
    try {
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      const li = new LinkInterface({ name: 'shoaltest0', netns: ns })
      expect(await li.addresses()).toEqual([])

      expect(await li.ensure(['100.127.0.2', '100.127.0.3'])).toEqual({ added: ['100.127.0.2', '100.127.0.3'], removed: [] })
      expect((await li.addresses()).sort()).toEqual(['100.127.0.2', '100.127.0.3'])
      const shown = JSON.parse(ip('-n', ns, '-j', '-d', 'link', 'show', 'dev', 'shoaltest0')) as Array<{ ifalias?: string; flags: string[]; linkinfo: { info_kind: string } }>
      expect(shown[0]!.ifalias).toBe(LINK_INTERFACE_MARK)
      expect(shown[0]!.flags).toContain('UP')
      expect(['dummy', 'bridge']).toContain(shown[0]!.linkinfo.info_kind)
      // The namespace routes the address to itself: a listener there can bind it.
      expect(ip('-n', ns, 'route', 'get', '100.127.0.3')).toMatch(/^local 100\.127\.0\.3 /)

      // Idempotent, then a diff: one added, one removed.
      expect(await li.ensure(['100.127.0.3', '100.127.0.2'])).toEqual({ added: [], removed: [] })
      expect(await li.ensure(['100.127.0.3', '100.127.0.4'])).toEqual({ added: ['100.127.0.4'], removed: ['100.127.0.2'] })
      expect((await li.addresses()).sort()).toEqual(['100.127.0.3', '100.127.0.4'])
      expect(ip('-n', ns, 'route', 'show', 'table', 'local')).not.toMatch(/100\.127\.0\.2 /)

      // Two calls at once do not undo each other: the last one wins.
      await Promise.all([li.ensure(['100.127.0.5']), li.ensure(['100.127.0.6'])])
      expect(await li.addresses()).toEqual(['100.127.0.6'])
      expect(await li.ensure([])).toEqual({ added: [], removed: ['100.127.0.6'] })

      // Interfaces Shoal did not make: loopback, and a bridge without the mark (like docker0).
      await expect(new LinkInterface({ name: 'lo', netns: ns }).ensure(['100.127.0.9'])).rejects.toThrow(/not Shoal's/)
      ip('-n', ns, 'link', 'add', 'brother0', 'type', 'bridge')
      ip('-n', ns, 'addr', 'add', '10.9.0.1/24', 'dev', 'brother0')
      await expect(new LinkInterface({ name: 'brother0', netns: ns }).ensure(['100.127.0.9'])).rejects.toThrow(/without the alias/)
      expect(ip('-n', ns, '-br', 'addr', 'show', 'dev', 'brother0')).toMatch(/10\.9\.0\.1\/24/)
      expect(ip('-n', ns, '-br', 'addr', 'show', 'dev', 'brother0')).not.toMatch(/100\.127/)

      // Asking for a dummy on a kernel without one says how to get one; otherwise it is made.
      const dummy = new LinkInterface({ name: 'shoaldummy0', netns: ns, kind: 'dummy' })
      await dummy.ensure(['100.127.0.10']).then(
        async () => expect(await dummy.addresses()).toEqual(['100.127.0.10']),
        (err: unknown) => expect(String(err)).toMatch(/modprobe dummy/),
      )

      await li.remove()
      expect(ip('-n', ns, '-br', 'link')).not.toMatch(/shoaltest0/)
      expect(await li.addresses()).toEqual([])
      await li.remove() // idempotent
    } finally {
      ip('netns', 'del', ns)
    }
  })
})
