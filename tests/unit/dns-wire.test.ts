// Reading queries off raw bytes: what is accepted, and which problem each bad packet gets.
import { describe, it, expect } from 'vitest'
import { parseQuery, responseLimit, QUERY_MAX_BYTES, type QueryProblem } from '../../protocols/dns/wire.ts'
import { query } from '../../protocols/dns/testing.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
// id 0x1234, RD, 1 question, `web.shoal` A IN
const HEADER = '1234 0100 0001 0000 0000 0000'
const WEB = '03776562 0573686f616c 00 0001 0001'

function problem(bytes: Uint8Array): QueryProblem | 'ok' {
  const r = parseQuery(bytes)
  return r.ok ? 'ok' : r.problem
}

describe('parseQuery', () => {
  it('reads id, flags, question and a lowercase key', () => {
    const r = parseQuery(hex('1234 0110 0001 0000 0000 0000 03574542 0573486f416c 00 001c 0001'))
    expect(r).toMatchObject({ ok: true, query: { id: 0x1234, opcode: 0, recursionDesired: true, checkingDisabled: true, qtype: 28, qclass: 1, key: '\x03web\x05shoal\x00', nameBytes: 11, questionEnd: 27, edns: null } })
  })

  it('reads EDNS: payload size (at least 512), version, DO', () => {
    const at = (bytes: Uint8Array) => { const r = parseQuery(bytes); return r.ok ? r.query.edns : null }
    expect(at(query('web.shoal', 'A', { edns: 4096, dnssecOk: true }))).toEqual({ udpPayloadBytes: 4096, version: 0, dnssecOk: true })
    expect(at(query('web.shoal', 'A', { edns: 100 }))).toEqual({ udpPayloadBytes: 512, version: 0, dnssecOk: false })
    expect(at(query('web.shoal', 'A', { ednsVersion: 1 }))?.version).toBe(1)
  })

  it.each<[string, string, QueryProblem]>([
    ['no header', '1234 0100 0001', 'short'],
    ['empty', '', 'short'],
    ['a response', `1234 8100 0001 0000 0000 0000 ${WEB}`, 'response'],
    ['two questions', `1234 0100 0002 0000 0000 0000 ${WEB} ${WEB}`, 'question-count'],
    ['no question', '1234 0100 0000 0000 0000 0000', 'question-count'],
    ['opcode UPDATE', `1234 2800 0001 0000 0000 0000 ${WEB}`, 'opcode'],
    ['an answer record in a query', `1234 0100 0001 0001 0000 0000 ${WEB}`, 'malformed'],
    ['name cut short', `${HEADER} 03776562 0573`, 'malformed'],
    ['no type and class', `${HEADER} 03776562 0573686f616c 00 0001`, 'malformed'],
    ['label longer than 63', `${HEADER} 40${'61'.repeat(64)} 00 0001 0001`, 'malformed'],
    ['compression pointer in the question', `${HEADER} c00c 0001 0001`, 'malformed'],
    ['trailing bytes', `${HEADER} ${WEB} ff`, 'malformed'],
    ['additional record cut short', `1234 0100 0001 0000 0000 0001 ${WEB} 00 0029 1000`, 'malformed'],
    ['two OPT records', `1234 0100 0001 0000 0000 0002 ${WEB} 00 0029 1000 00000000 0000 00 0029 1000 00000000 0000`, 'malformed'],
    ['OPT not owned by the root', `1234 0100 0001 0000 0000 0001 ${WEB} 0161 00 0029 1000 00000000 0000`, 'malformed'],
    ['OPT option overrunning its RDATA', `1234 0100 0001 0000 0000 0001 ${WEB} 00 0029 1000 00000000 0004 000a 0008`, 'malformed'],
  ])('%s -> %s', (_, bytes, expected) => {
    expect(problem(hex(bytes))).toBe(expected)
  })

  it('refuses a name longer than 255 bytes and accepts one of exactly 255', () => {
    const name = (labels: number[]): string => labels.map((n) => n.toString(16).padStart(2, '0') + '61'.repeat(n)).join('') + '00'
    // 3 labels of 63 + one of 61: 4*1 + 3*63 + 61 + 1 = 255.
    expect(problem(hex(`${HEADER} ${name([63, 63, 63, 61])} 0001 0001`))).toBe('ok')
    expect(problem(hex(`${HEADER} ${name([63, 63, 63, 62])} 0001 0001`))).toBe('malformed')
  })

  it('refuses anything over QUERY_MAX_BYTES as oversized', () => {
    const big = new Uint8Array(QUERY_MAX_BYTES + 1)
    big.set(hex(`${HEADER} ${WEB}`))
    expect(problem(big)).toBe('oversized')
  })

  it('keeps an OPT with well-formed options (e.g. the cookie dig sends)', () => {
    expect(problem(hex(`1234 0100 0001 0000 0000 0001 ${WEB} 00 0029 1000 00000000 000c 000a 0008 1122334455667788`))).toBe('ok')
  })
})

describe('responseLimit', () => {
  const q = (edns: number | false) => { const r = parseQuery(query('web.shoal', 'A', { edns })); if (!r.ok) throw new Error('bad query'); return r.query }
  it('is 512 without EDNS, the smaller of both sizes with it, 65535 over TCP', () => {
    expect(responseLimit(q(false), false, 1232)).toBe(512)
    expect(responseLimit(q(4096), false, 1232)).toBe(1232)
    expect(responseLimit(q(800), false, 1232)).toBe(800)
    expect(responseLimit(q(false), true, 1232)).toBe(65535)
  })
})
