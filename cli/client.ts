/**
 * The CLI's only way to the daemon: HTTP+JSON over the peer's Unix socket. A plain call speaks
 * HTTP/1.1 itself over `node:net`: loading `node:http` alone costs a client command about 50 ms
 * and 15 MB, more than the rest of it (streams, which need a real parser, still use it).
 */
import net from 'node:net'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { UserError } from '../node/errors.ts'
import { defaultDataDir } from '../node/data-home.ts'

/** The API socket: --api, else $SHOAL_API, else the default data dir's socket. */
export function resolveApiSocket(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined) return flag
  const fromEnv = env['SHOAL_API']
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  return join(defaultDataDir(env), 'shoal.sock')
}

function unreachable(socket: string, err: NodeJS.ErrnoException): UserError {
  return new UserError(
    `no Shoal peer is answering on ${socket} (${err.code ?? err.message}); start one with 'shoal start', or point at a running peer with --api SOCKET or SHOAL_API`,
  )
}

/** Sends one request; answers the parsed JSON body, or throws UserError with the API's message. */
export async function apiCall<T>(socket: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = parseResponse(await exchange(socket, method, path, body), socket)
  const text = res.body.toString('utf8')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new UserError(`the peer on ${socket} sent a non-JSON answer (HTTP ${res.status}); is that a Shoal API socket?`)
  }
  if (res.status >= 400) {
    const message = typeof parsed === 'object' && parsed !== null && typeof (parsed as { error?: unknown }).error === 'string' ? (parsed as { error: string }).error : text
    throw new UserError(message)
  }
  return parsed as T
}

/** One request on its own connection (`Connection: close`); resolves with every byte the peer sent back. */
function exchange(socket: string, method: string, path: string, body?: unknown): Promise<Buffer> {
  // What node:http would refuse: a path or method that could smuggle a header line.
  if (!/^[\x21-\x7e]+$/.test(path) || !/^[A-Z]+$/.test(method)) return Promise.reject(new Error(`bad request line: ${method} ${JSON.stringify(path)}`))
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body), 'utf8')
  const head = `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
    (payload === null ? '' : `Content-Type: application/json\r\nContent-Length: ${payload.byteLength}\r\n`) + '\r\n'
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const conn = net.createConnection({ path: socket })
    conn.on('connect', () => {
      conn.write(head)
      if (payload !== null) conn.write(payload)
    })
    conn.on('data', (chunk: Buffer) => chunks.push(chunk))
    conn.on('end', () => resolve(Buffer.concat(chunks)))
    // A close without an end (a reset after the answer, say): what came is parsed, and judged there.
    conn.on('close', () => resolve(Buffer.concat(chunks)))
    conn.on('error', (err: NodeJS.ErrnoException) => reject(chunks.length === 0 ? unreachable(socket, err) : err))
  })
}

/** Status and body of a whole HTTP/1.1 response (Content-Length, chunked, or up to the close). */
export function parseResponse(raw: Buffer, socket: string): { status: number; body: Buffer } {
  const bad = (): UserError => new UserError(`the peer on ${socket} sent something that is not an HTTP answer; is that a Shoal API socket?`)
  const end = raw.indexOf('\r\n\r\n')
  if (end < 0) throw bad()
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  if (status === null) throw bad()
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  let body = raw.subarray(end + 4)
  if (/\bchunked\b/i.test(headers.get('transfer-encoding') ?? '')) {
    const out: Buffer[] = []
    let at = 0
    for (;;) {
      const lineEnd = body.indexOf('\r\n', at)
      if (lineEnd < 0) throw bad()
      const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16)
      if (!Number.isSafeInteger(size) || size < 0 || lineEnd + 2 + size > body.length) throw bad()
      if (size === 0) break
      out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size))
      at = lineEnd + 2 + size + 2
    }
    body = Buffer.concat(out)
  } else if (headers.has('content-length')) {
    const length = Number(headers.get('content-length'))
    if (!Number.isSafeInteger(length) || length < 0 || length > body.length) throw bad()
    body = body.subarray(0, length)
  }
  return { status: Number(status[1]), body }
}

/** Opens a streaming response (NDJSON); the caller reads it line by line. */
export async function apiStream(socket: string, path: string, method = 'GET'): Promise<IncomingMessage> {
  const res = await open(socket, method, path)
  if ((res.statusCode ?? 500) >= 400) {
    // Errors come as {"error": "..."}: say what the peer said, not only its status.
    const chunks: Buffer[] = []
    for await (const chunk of res) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    let message = `the peer refused the stream: HTTP ${res.statusCode}`
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { error?: unknown }).error === 'string') message = (parsed as { error: string }).error
    } catch {
      // not JSON: keep the status line
    }
    throw new UserError(message)
  }
  return res
}

async function open(socket: string, method: string, path: string): Promise<IncomingMessage> {
  const { request } = await import('node:http')
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path }, resolve)
    req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(socket, err)))
    req.end()
  })
}
