/**
 * The admin API: versioned HTTP+JSON on a Unix socket (mode 0600), as Docker's engine API.
 * Only the local user who owns the socket can drive the peer; the CLI is its only client.
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { connect } from 'node:net'
import { chmodSync, unlinkSync, lstatSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { UserError, errorMessage } from './errors.ts'

/** Requests larger than this are refused: the API takes small commands, not uploads. */
const REQUEST_BODY_MAX_BYTES = 1024 * 1024

/** A handler's answer: a JSON body, or a stream it writes itself (events). */
export type ApiResult = { status: number; body: unknown } | { stream: (res: ServerResponse, req: IncomingMessage) => void }

/** The parsed request a handler sees. */
export interface ApiRequest {
  query: URLSearchParams
  body: unknown
}

export type ApiHandler = (req: ApiRequest) => ApiResult | Promise<ApiResult>

/** A client error with an HTTP status; its message goes to the user as is. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * Whether a Content-Type header names JSON: the media type exactly application/json (case
 * insensitive, RFC 9110 §8.3.1), parameters such as charset allowed; a charset other than
 * UTF-8 is refused, since JSON is UTF-8 (RFC 8259 §8.1). `application/jsonfoo` is not JSON.
 */
export function contentTypeProblem(header: string | undefined): string | null {
  const [mediaType = '', ...params] = (header ?? '').split(';')
  if (mediaType.trim().toLowerCase() !== 'application/json') return `send the request body as application/json (got ${JSON.stringify(header ?? '')})`
  for (const param of params) {
    const eq = param.indexOf('=')
    const name = param.slice(0, eq === -1 ? param.length : eq).trim().toLowerCase()
    const value = eq === -1 ? '' : param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase()
    if (name === 'charset' && value !== 'utf-8' && value !== 'utf8') return `JSON bodies are UTF-8; charset=${value} is not supported`
  }
  return null
}

// fatal: bytes that are not UTF-8 are refused; the default decoder would store U+FFFD instead.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > REQUEST_BODY_MAX_BYTES) throw new ApiError(413, `request body is over ${REQUEST_BODY_MAX_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return undefined
  const problem = contentTypeProblem(req.headers['content-type'])
  if (problem !== null) throw new ApiError(415, problem)
  let text: string
  try {
    text = strictUtf8.decode(Buffer.concat(chunks))
  } catch {
    throw new ApiError(400, 'request body is not valid UTF-8; send keys and values as UTF-8 text')
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ApiError(400, `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/**
 * The query of a request URL, refusing percent-escapes that are not UTF-8: URLSearchParams
 * would quietly decode them to U+FFFD, so a GET could read another key than was named.
 */
export function parseQuery(search: string): URLSearchParams {
  for (const part of search.replace(/^\?/, '').split(/[&=]/)) {
    try {
      decodeURIComponent(part.replaceAll('+', ' '))
    } catch {
      throw new ApiError(400, 'the request URL has a query parameter that is not percent-encoded UTF-8')
    }
  }
  return new URLSearchParams(search)
}

/** True when something accepts connections on the Unix socket at `path`. */
export function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path)
    sock.once('connect', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })
}

/** sun_path's size on Linux, less its terminating NUL: a longer socket path cannot be bound. */
const SOCKET_PATH_MAX_BYTES = 107

/**
 * Checks `--api` before the peer joins anything: its directory exists, the path fits a Unix
 * socket, and what is there already (if anything) is a socket no live peer serves. Whatever
 * else is at the path (a file, a directory, a link) is the user's, and is never removed.
 * Answers whether a stale socket is there to be replaced.
 */
export async function checkApiSocketPath(path: string): Promise<boolean> {
  if (Buffer.byteLength(path) > SOCKET_PATH_MAX_BYTES) {
    throw new UserError(`API socket path ${path} is over ${SOCKET_PATH_MAX_BYTES} bytes, the most a Unix socket path may have; pass a shorter --api`)
  }
  const dir = dirname(path)
  let dirStat
  try {
    dirStat = statSync(dir)
  } catch (err) {
    throw new UserError(`cannot use --api ${path}: its directory ${dir} is not there (${errorMessage(err)}); create it or pass another --api`)
  }
  if (!dirStat.isDirectory()) throw new UserError(`cannot use --api ${path}: ${dir} is not a directory; pass another --api`)
  let stat
  try {
    stat = lstatSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new UserError(`cannot use --api ${path}: ${errorMessage(err)}; pass another --api`)
  }
  if (!stat.isSocket()) {
    const kind = stat.isDirectory() ? 'a directory' : stat.isSymbolicLink() ? 'a symbolic link' : stat.isFile() ? 'a regular file' : 'not a socket'
    throw new UserError(`--api ${path} is ${kind}, not a socket; Shoal creates its API socket itself and never replaces other files: pass a path where nothing is, such as ${join(dir, 'shoal.sock')}`)
  }
  if (await socketIsLive(path)) {
    throw new UserError(`API socket ${path} is already served by a running peer; stop that peer or pass another --api`)
  }
  return true
}

/** Serves `routes` ("METHOD /path") on the socket; refuses a socket a live process serves. */
export async function startApiServer(path: string, routes: Map<string, ApiHandler>, log: { debug(m: string): void; warn(m: string): void }): Promise<Server> {
  // Checked again here, just before the path is taken: only a stale socket is ever removed.
  if (await checkApiSocketPath(path)) unlinkSync(path) // left behind by a peer that crashed
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://shoal')
      const route = routes.get(`${req.method ?? 'GET'} ${url.pathname}`)
      try {
        if (route === undefined) {
          const pathKnown = [...routes.keys()].some((k) => k.endsWith(` ${url.pathname}`))
          throw pathKnown ? new ApiError(405, `${req.method} is not allowed on ${url.pathname}`) : new ApiError(404, `no such endpoint: ${url.pathname}`)
        }
        const result = await route({ query: parseQuery(url.search), body: await readBody(req) })
        if ('stream' in result) result.stream(res, req)
        else sendJson(res, result.status, result.body)
      } catch (err) {
        if (err instanceof ApiError) {
          sendJson(res, err.status, { error: err.message })
        } else {
          log.warn(`API ${req.method} ${url.pathname} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
          sendJson(res, 500, { error: `internal error: ${err instanceof Error ? err.message : String(err)}; see the peer's log` })
        }
      }
    })()
  })
  server.on('clientError', (_err, socket) => {
    // Unparseable HTTP: answer 400 rather than leaving the client hanging.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":"malformed HTTP request"}')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new UserError(`cannot serve the API on ${path}: ${err.message}; pass a writable --api path`)),
    )
    // umask-proof: nobody but the owner may connect even between listen() and chmod().
    const oldMask = process.umask(0o177)
    server.listen(path, () => {
      process.umask(oldMask)
      resolve()
    })
  })
  chmodSync(path, 0o600)
  log.debug(`API listening on ${path}`)
  return server
}
