/**
 * Runs real Shoal processes for integration tests: `shoal start` peers on loopback with
 * temporary data dirs and ephemeral ports, and one-shot CLI commands.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { request } from 'node:http'

export const REPO = resolve(import.meta.dirname, '..', '..')
/** Tests run the CLI's TypeScript directly under the pinned Node, as `npx shoal` does. */
export const NODE = join(REPO, 'node_modules', '.bin', 'node')
export const MAIN = join(REPO, 'cli', 'main.ts')

/** A fresh temporary directory, removed by `cleanup`. */
export function tempDir(prefix = 'shoal-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs `shoal ARGS…` to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(NODE, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`shoal ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolveRun({ code: code ?? (signal === null ? -1 : 128), stdout, stderr })
    })
  })
}

/** Sends a JSON request to a peer's API socket; answers the status and parsed body. */
export function apiRequest<T = unknown>(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  return new Promise((resolveRequest, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request({ socketPath: socket, path, method, headers: payload === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        try {
          resolveRequest({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as T })
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)))
        }
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Sends exactly these body bytes with this content type; answers the status and raw body text. */
export function rawApiRequest(socket: string, method: string, path: string, body: Buffer | string, contentType = 'application/json'): Promise<{ status: number; body: string }> {
  return new Promise((resolveRequest, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { 'content-type': contentType } }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolveRequest({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** GETs a JSON endpoint of a peer's API socket. */
export async function apiGet<T>(socket: string, path: string): Promise<T> {
  return (await apiRequest<T>(socket, 'GET', path)).body
}

/** Polls `check` until it returns a value other than undefined/false, or fails with `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown = null
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      lastError = err
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === null ? '' : ` (last error: ${String(lastError)})`}`)
}

export interface PeerOptions {
  name: string
  dataDir?: string
  bootstrap?: string[]
  secretFile?: string
  /** The Docker socket (default: none). */
  docker?: string
  /** The DNS listen address (default: off); port 0 picks a free one, see `status().dns.listen`. */
  dns?: string
  /**
   * `--link-interface` (default: none). Peers of a test share the machine's network namespace,
   * so they must never create interfaces in it; a test that gives each peer its own namespace passes one.
   */
  linkInterface?: string
  extraArgs?: string[]
}

/** A running `shoal start` process. */
export class PeerProcess {
  readonly name: string
  readonly dataDir: string
  readonly api: string
  readonly logFile: string
  readonly options: PeerOptions
  proc: ChildProcess | null = null
  exitCode: number | null = null
  exited: Promise<number> = Promise.resolve(0)

  constructor(options: PeerOptions, root: string) {
    this.options = options
    this.name = options.name
    this.dataDir = options.dataDir ?? join(root, options.name)
    const apiFlag = options.extraArgs?.indexOf('--api') ?? -1
    this.api = apiFlag >= 0 ? (options.extraArgs?.[apiFlag + 1] ?? '') : join(this.dataDir, 'shoal.sock')
    this.logFile = join(root, `${options.name}.log`)
  }

  /** Spawns the peer; resolves once its API answers. */
  async start(): Promise<this> {
    const args = [
      MAIN, 'start',
      '--data-dir', this.dataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0',
      '--name', this.name,
      '--dns', this.options.dns ?? 'off',
      '--docker', this.options.docker ?? 'none',
      '--link-interface', this.options.linkInterface ?? 'none',
      '--log-level', 'debug',
      ...(this.options.bootstrap ?? []).flatMap((b) => ['--bootstrap', b]),
      ...(this.options.secretFile === undefined ? [] : ['--secret-file', this.options.secretFile]),
      ...(this.options.extraArgs ?? []),
    ]
    const fd = openSync(this.logFile, 'a')
    const proc = spawn(NODE, args, { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    this.proc = proc
    this.exitCode = null
    this.exited = new Promise((r) => proc.on('exit', (code, signal) => {
      this.exitCode = code ?? (signal === 'SIGKILL' ? 137 : 143)
      r(this.exitCode)
    }))
    await waitFor(`${this.name} to serve its API`, async () => {
      if (this.exitCode !== null) throw new Error(`${this.name} exited with ${this.exitCode}: ${this.log().slice(-2000)}`)
      return existsSync(this.api) && (await apiGet<{ peerId: string }>(this.api, '/v1/status')).peerId !== undefined
    }, 30_000)
    return this
  }

  status<T = Record<string, unknown> & { peerId: string; addrs: string[] }>(): Promise<T> {
    return apiGet<T>(this.api, '/v1/status')
  }

  peers(): Promise<Array<{ peerId: string; name: string | null; state: string; self: boolean }>> {
    return apiGet(this.api, '/v1/peers')
  }

  /** The state this peer reports for `peerId`, or undefined when not listed. */
  async stateOf(peerId: string): Promise<string | undefined> {
    return (await this.peers()).find((p) => p.peerId === peerId)?.state
  }

  signal(sig: NodeJS.Signals): void {
    this.proc?.kill(sig)
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : ''
  }
}

/** Every peer process any cluster started, killed if the harness itself exits or crashes. */
const LIVE_PEERS = new Set<PeerProcess>()
process.once('exit', () => {
  for (const p of LIVE_PEERS) if (p.exitCode === null) p.signal('SIGKILL')
})

/** A set of peers sharing one temp root; `cleanup` kills them all and removes their files. */
export class TestCluster {
  readonly root = tempDir('shoal-it-')
  readonly peers: PeerProcess[] = []

  async add(options: PeerOptions): Promise<PeerProcess> {
    const peer = new PeerProcess(options, this.root)
    this.peers.push(peer)
    LIVE_PEERS.add(peer)
    return peer.start()
  }

  /** Bootstrap address of a peer: its first full multiaddr. */
  async addrOf(peer: PeerProcess): Promise<string> {
    const s = await peer.status()
    const addr = s.addrs.find((a) => a.includes('/ip4/127.0.0.1/'))
    if (addr === undefined) throw new Error(`${peer.name} has no loopback address: ${s.addrs.join(', ')}`)
    return addr
  }

  async cleanup(): Promise<void> {
    for (const p of this.peers) if (p.exitCode === null) p.signal('SIGKILL')
    await Promise.all(this.peers.map((p) => (p.proc === null ? 0 : p.exited)))
    for (const p of this.peers) LIVE_PEERS.delete(p)
    rmSync(this.root, { recursive: true, force: true })
  }
}
