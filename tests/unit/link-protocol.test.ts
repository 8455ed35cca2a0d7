/** The `/shoal/link/1.0.0` header and status codec, and the order in which link instances are tried. */
import { describe, it, expect } from 'vitest'
import { encodeHeader, readHeader, encodeStatus, decodeStatus, HEADER_MAX_BYTES, type LinkStatus } from '../../protocols/link/header.ts'
import { orderTargets, type LinkInstance } from '../../protocols/link/targets.ts'

const body = (json: string): Uint8Array => {
  const b = new TextEncoder().encode(json)
  return new Uint8Array([b.byteLength >> 8, b.byteLength & 0xff, ...b])
}

describe('link header', () => {
  it('round-trips a header and says how many bytes it used', () => {
    const bytes = encodeHeader({ link: 'web/db', port: 5432, protocol: 'tcp' })
    const withData = new Uint8Array([...bytes, 1, 2, 3])
    const read = readHeader(withData)
    expect(read).toEqual({ kind: 'header', header: { link: 'web/db', port: 5432, protocol: 'tcp' }, consumed: bytes.byteLength })
  })

  it('asks for more bytes until the header is complete', () => {
    const bytes = encodeHeader({ link: 'web/db', port: 1, protocol: 'tcp' })
    for (let n = 0; n < bytes.byteLength; n++) expect(readHeader(bytes.subarray(0, n)).kind).toBe('incomplete')
    expect(readHeader(bytes).kind).toBe('header')
  })

  it('ignores unknown fields, so a newer dialer may add optional ones', () => {
    expect(readHeader(body('{"link":"a/b","port":80,"protocol":"tcp","via":"x"}'))).toMatchObject({ kind: 'header', header: { link: 'a/b', port: 80 } })
  })

  it.each([
    ['a zero length', new Uint8Array([0, 0])],
    ['a length over the bound', new Uint8Array([(HEADER_MAX_BYTES + 1) >> 8, (HEADER_MAX_BYTES + 1) & 0xff])],
    ['a length of 65535', new Uint8Array([0xff, 0xff, 0x7b])],
    ['bytes that are not UTF-8', new Uint8Array([0, 2, 0xc3, 0x28])],
    ['text that is not JSON', body('link=a/b')],
    ['a JSON array', body('["a/b",80,"tcp"]')],
    ['JSON null', body('null')],
    ['no link', body('{"port":80,"protocol":"tcp"}')],
    ['an empty link', body('{"link":"","port":80,"protocol":"tcp"}')],
    ['a link without a slash', body('{"link":"ab","port":80,"protocol":"tcp"}')],
    ['a link with a space', body('{"link":"a/b c","port":80,"protocol":"tcp"}')],
    ['a link with a control byte', body('{"link":"a/b\\u0000","port":80,"protocol":"tcp"}')],
    ['a link of 301 characters', body(`{"link":"a/${'b'.repeat(299)}","port":80,"protocol":"tcp"}`)],
    ['port 0', body('{"link":"a/b","port":0,"protocol":"tcp"}')],
    ['port 65536', body('{"link":"a/b","port":65536,"protocol":"tcp"}')],
    ['a fractional port', body('{"link":"a/b","port":80.5,"protocol":"tcp"}')],
    ['a port as a string', body('{"link":"a/b","port":"80","protocol":"tcp"}')],
    ['udp', body('{"link":"a/b","port":53,"protocol":"udp"}')],
    ['no protocol', body('{"link":"a/b","port":53}')],
  ])('refuses %s', (_what, bytes) => {
    const read = readHeader(bytes)
    expect(read.kind).toBe('bad')
    expect(read.kind === 'bad' && read.problem.length).toBeGreaterThan(0)
  })

  it('refuses to encode a header it would itself refuse', () => {
    expect(() => encodeHeader({ link: 'no-slash', port: 80, protocol: 'tcp' })).toThrow(/link must look like/)
    expect(() => encodeHeader({ link: 'a/b', port: 0, protocol: 'tcp' })).toThrow(/port/)
  })

  it('round-trips every status and reads an unknown code as a refusal', () => {
    const all: LinkStatus[] = [{ ok: true }, ...(['unauthorized', 'no-target', 'target-unreachable', 'bad-header', 'unavailable'] as const).map((reason) => ({ ok: false as const, reason }))]
    for (const s of all) {
      const bytes = encodeStatus(s)
      expect(bytes.byteLength).toBe(1)
      expect(decodeStatus(bytes[0] as number)).toEqual(s)
    }
    expect(decodeStatus(200)).toEqual({ ok: false, reason: 'unknown' })
    expect(encodeStatus({ ok: true })[0]).toBe(0)
  })
})

describe('link instance order', () => {
  const t = (host: string, ip: string, port = 80): LinkInstance => ({ host, ip, port })

  it('spreads over every instance round-robin, local ones first in the rotation', () => {
    const targets = [t('B', '10.0.0.2'), t('A', '10.0.0.3'), t('A', '10.0.0.4'), t('C', '10.0.0.5')]
    const firsts = [0, 1, 2, 3, 4, 5, 6, 7].map((c) => orderTargets(targets, 'A', c)[0]?.ip)
    expect(firsts).toEqual(['10.0.0.3', '10.0.0.4', '10.0.0.2', '10.0.0.5', '10.0.0.3', '10.0.0.4', '10.0.0.2', '10.0.0.5'])
  })

  it('falls back to the other local instances first, then the remote ones, each once', () => {
    const targets = [t('B', '10.0.0.2'), t('A', '10.0.0.3'), t('A', '10.0.0.4'), t('C', '10.0.0.5')]
    // Cursor 2 picks B; A's two come next (no hop), then C.
    expect(orderTargets(targets, 'A', 2).map((x) => x.ip)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'])
    // Cursor 1 picks A's second; A's first, then the remote ones.
    expect(orderTargets(targets, 'A', 1).map((x) => x.ip)).toEqual(['10.0.0.4', '10.0.0.3', '10.0.0.5', '10.0.0.2'])
  })

  it('spreads over remote instances when there is no local one, each once per round', () => {
    const targets = [t('B', '10.0.0.2'), t('C', '10.0.0.5'), t('D', '10.0.0.6')]
    const firsts = [0, 1, 2, 3, 4, 5].map((c) => orderTargets(targets, 'A', c)[0]?.host)
    expect(firsts).toEqual(['B', 'C', 'D', 'B', 'C', 'D'])
  })

  it('drops duplicates, keeps every instance once, and has nothing to offer for no instances', () => {
    const targets = [t('B', '10.0.0.2'), t('B', '10.0.0.2'), t('B', '10.0.0.2', 81)]
    expect(orderTargets(targets, 'A', 7)).toHaveLength(2)
    expect(orderTargets([], 'A', 3)).toEqual([])
    // A cursor past 2^31 or negative still picks a valid instance.
    expect(orderTargets(targets, 'A', 2 ** 40 + 1)).toHaveLength(2)
    expect(orderTargets(targets, 'A', -1)).toHaveLength(2)
  })
})
