/** The CLI's only way to the daemon: HTTP+JSON over the peer's Unix socket. */
import { request, type IncomingMessage } from 'node:http'
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
  const res = await open(socket, method, path, body)
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new UserError(`the peer on ${socket} sent a non-JSON answer (HTTP ${res.statusCode}); is that a Shoal API socket?`)
  }
  if ((res.statusCode ?? 500) >= 400) {
    const message = typeof parsed === 'object' && parsed !== null && typeof (parsed as { error?: unknown }).error === 'string' ? (parsed as { error: string }).error : text
    throw new UserError(message)
  }
  return parsed as T
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

function open(socket: string, method: string, path: string, body?: unknown): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      resolve,
    )
    req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(socket, err)))
    req.end(payload)
  })
}
