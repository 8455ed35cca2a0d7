/**
 * A `shoal start` inside a host's network namespace, beside that host's stock engine
 * (tests/helpers/dockerd.ts `{ stock: true }`); PeerProcess spawns only in the test's own
 * namespace. The peer logs to `<dataDir>.log` and owns `shoal0` there.
 *
 *   const a = await new HostPeer('host-a', dir, engine, ['--listen', '/ip4/10.78.0.11/tcp/7946']).start()
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Dockerd } from './dockerd.ts'
import { apiGet, waitFor, NODE, MAIN } from './processes.ts'

export class HostPeer {
  readonly name: string
  readonly dataDir: string
  readonly api: string
  readonly logFile: string
  private readonly engine: Dockerd
  private readonly args: string[]
  private readonly logLevel: string
  /** The peer's process while it runs (a bench's interrupt handler kills it). */
  proc: ChildProcess | null = null
  private exitCode: number | null = null

  constructor(name: string, dataDir: string, engine: Dockerd, args: string[], logLevel = 'debug') {
    this.name = name
    this.dataDir = dataDir
    this.engine = engine
    this.args = args
    this.logLevel = logLevel
    this.api = join(dataDir, 'shoal.sock')
    this.logFile = `${dataDir}.log`
  }

  /** Starts the peer and waits until its API answers (throws with its log if it exits first). */
  async start(): Promise<this> {
    const [cmd, args] = this.engine.inNamespace(NODE, [
      MAIN, 'start', '--data-dir', this.dataDir, '--name', this.name, '--dns', '127.0.0.1:0',
      '--docker', this.engine.socket, '--link-interface', 'shoal0', '--log-level', this.logLevel, ...this.args,
    ])
    const fd = openSync(this.logFile, 'a')
    const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    this.proc = proc
    proc.on('exit', (code, signal) => { this.exitCode = code ?? (signal === null ? -1 : 128) })
    await waitFor(`${this.name} to serve its API`, async () => {
      if (this.exitCode !== null) throw new Error(`${this.name} exited with ${this.exitCode}: ${this.log().slice(-2000)}`)
      return existsSync(this.api) && (await this.status<{ peerId?: string }>()).peerId !== undefined
    }, 30_000)
    return this
  }

  /** GET /v1/status, typed as the caller reads it. */
  status<T>(): Promise<T> {
    return apiGet<T>(this.api, '/v1/status')
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : ''
  }

  /** SIGTERM (the peer's own stop path, link forwarder included), SIGKILL if it hangs. */
  async stop(): Promise<void> {
    const proc = this.proc
    if (proc === null || this.exitCode !== null) return
    const exited = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}
