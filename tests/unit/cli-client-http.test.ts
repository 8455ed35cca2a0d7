// The CLI's own HTTP/1.1 response reader (cli/client.ts parseResponse): plain calls do without node:http.
import { describe, it, expect } from 'vitest'
import { parseResponse } from '../../cli/client.ts'
import { UserError } from '../../node/errors.ts'

const raw = (text: string): Buffer => Buffer.from(text, 'latin1')

describe('parseResponse', () => {
  it('reads a Content-Length body and ignores what follows it', () => {
    const r = parseResponse(raw('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}extra'), 's')
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('{"a":1}')
  })
  it('joins a chunked body', () => {
    const r = parseResponse(raw('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"er\r\na\r\nror":"no"}\r\n0\r\n\r\n'), 's')
    expect(r.status).toBe(404)
    expect(r.body.toString()).toBe('{"error":"no"}')
  })
  it('takes everything up to the close without either header, and keeps UTF-8 bytes whole', () => {
    const body = Buffer.from('{"v":"é✓"}', 'utf8')
    const r = parseResponse(Buffer.concat([raw('HTTP/1.0 200 OK\r\n\r\n'), body]), 's')
    expect(r.body.toString('utf8')).toBe('{"v":"é✓"}')
  })
  it('refuses what is not an HTTP answer, or one cut short, with what to check', () => {
    for (const bad of ['', 'hello', 'SSH-2.0-OpenSSH\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']) {
      expect(() => parseResponse(raw(bad), '/run/x.sock')).toThrow(UserError)
      expect(() => parseResponse(raw(bad), '/run/x.sock')).toThrow(/not an HTTP answer; is that a Shoal API socket/)
    }
  })
})
