/**
 * `shoal lock NAME [--ttl SECONDS] -- CMD [ARGS]`: runs CMD while holding the cluster-wide lock
 * NAME, as `etcdctl lock` and `consul lock` do. CMD sees SHOAL_LOCK_NAME and SHOAL_LOCK_TOKEN
 * (the fencing token: larger for every later holder; pass it to `shoal kv put --fence`).
 *
 * This process keeps its own deadline for the session (LeaseHolder): it renews the lease
 * itself through its peer (`POST /v1/leases/keepalive`, answered once the leader confirmed its
 * leadership), and counts on the lease only until TTL less a margin after it sent the last
 * renewal that was confirmed, on its monotonic clock. The peer it talks to may be the part
 * that froze, so nothing the peer says (or fails to say) can extend that. When the deadline
 * nears, CMD is asked to stop (SIGTERM) and killed (SIGKILL) before the deadline, so the next
 * holder, who can only get the lock after the leader expired this session, never overlaps it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { createInterface } from 'node:readline'
import { parseCommandArgs, stringFlag } from '../args.ts'
import { apiStream, resolveApiSocket } from '../client.ts'
import { UsageError, UserError } from '../../node/errors.ts'
import type { LockEvent } from '../../node/sessions.ts'
import { LeaseHolder, LEASE_CLOCK_DRIFT_MAX } from '../../storage/statestore/index.ts'

/** Most time CMD gets between SIGTERM and SIGKILL (less for short TTLs: a fifth of the TTL). */
const STOP_GRACE_MAX_MS = 2000
/** SIGKILL lands this long before the deadline, for the kernel to tear CMD down. */
const KILL_SLACK_MS = 100

type StreamLine = LockEvent | { state: 'queued'; lease: number; ttlMs: number } | { state: 'error'; error: string }

/** One renewal through the peer: 'ok' once the leader confirmed it, 'gone' if the lease no longer exists. */
function keepAlive(socket: string, lease: number, timeoutMs: number, inFlight: Set<{ destroy(): void }>): Promise<'ok' | 'gone' | string> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, method: 'POST', path: `/v1/leases/keepalive?id=${lease}`, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', () => resolve('the answer was cut off'))
      res.on('end', () => {
        if (res.statusCode === 200) return resolve('ok')
        if (res.statusCode === 404) return resolve('gone')
        let message = `HTTP ${res.statusCode}`
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: unknown }
          if (typeof body.error === 'string') message = body.error
        } catch {
          // keep the status
        }
        resolve(message)
      })
    })
    // A frozen peer accepts the connection and never answers: give up when the next renewal is due.
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', (err) => resolve(err.message))
    // Tracked so that exiting does not wait for a renewal a frozen peer never answers.
    inFlight.add(req)
    req.on('close', () => inFlight.delete(req))
    req.end()
  })
}

export async function lockCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('lock', argv, { api: { type: 'string' }, ttl: { type: 'string' } }, { min: 1, max: 1 })
  const [name] = p.positionals
  if (name === undefined || p.rest.length === 0) throw new UsageError('usage: shoal lock NAME [--ttl SECONDS] -- CMD [ARGS...]')
  const ttl = stringFlag(p, 'ttl') ?? '10'
  if (!/^\d+(\.\d+)?$/.test(ttl)) throw new UsageError('--ttl takes seconds, e.g. --ttl 10')
  const ttlMs = Math.round(Number(ttl) * 1000)
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  // Sent before the peer grants the lease: the leader starts the lease after this instant.
  const openedMs = performance.now()
  const res = await apiStream(socket, `/v1/locks?name=${encodeURIComponent(name)}&ttl=${ttl}`, 'POST')
  const holder = new LeaseHolder({ ttlMs, clockDriftMax: LEASE_CLOCK_DRIFT_MAX, stopGraceMs: Math.min(STOP_GRACE_MAX_MS, ttlMs / 5), killSlackMs: KILL_SLACK_MS })
  // A 200 means the grant committed (errors come as HTTP statuses, before the stream).
  holder.onConfirmed(openedMs)
  const [cmd, ...args] = p.rest as [string, ...string[]]

  return new Promise<number>((resolve, reject) => {
    let child: ChildProcess | null = null
    let lease: number | null = null
    let finished = false
    let stopping: string | null = null
    let lastRenewalProblem = ''
    let deadlineTimer: ReturnType<typeof setTimeout> | null = null
    let renewTimer: ReturnType<typeof setTimeout> | null = null
    let killTimer: ReturnType<typeof setTimeout> | null = null
    const signalHandlers: [NodeJS.Signals, () => void][] = []
    const renewals = new Set<{ destroy(): void }>()

    const cleanup = (): void => {
      for (const t of [deadlineTimer, renewTimer, killTimer]) if (t !== null) clearTimeout(t)
      for (const [signal, handler] of signalHandlers) process.off(signal, handler)
      for (const req of renewals) req.destroy()
      res.destroy() // closing the stream releases the lock
    }
    const finish = (outcome: number | Error): void => {
      if (finished) return
      finished = true
      cleanup()
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    }

    /**
     * Stops CMD because the lock can no longer be counted on: SIGTERM now, SIGKILL at
     * `killAtMs` (monotonic) at the latest; fails once CMD is gone.
     */
    const stop = (why: string, killAtMs: number): void => {
      if (finished) return
      if (stopping !== null) return
      stopping = why
      if (child === null || child.exitCode !== null || child.signalCode !== null) {
        finish(new UserError(why))
        return
      }
      process.stderr.write(`shoal lock: stopping ${cmd} (SIGTERM, then SIGKILL within ${Math.ceil(Math.max(0, killAtMs - performance.now()))} ms): lock ${name} can no longer be counted on\n`)
      child.kill('SIGTERM')
      const running = child
      killTimer = setTimeout(() => running.kill('SIGKILL'), Math.max(0, killAtMs - performance.now()))
    }

    const lostByDeadline = (): string =>
      `lost lock ${name}: no renewal was confirmed within the ${ttl} s session TTL (the peer on ${socket} or the cluster's leader is unreachable or frozen${lastRenewalProblem === '' ? '' : `; last renewal: ${lastRenewalProblem}`}); the leader may give the lock to another holder`

    /** Re-arms the one timer that enforces the deadline. */
    const armDeadline = (): void => {
      if (deadlineTimer !== null) clearTimeout(deadlineTimer)
      deadlineTimer = null
      if (finished || child === null || stopping !== null) return
      const now = performance.now()
      const action = holder.decide(now)
      switch (action.action) {
        case 'hold':
          deadlineTimer = setTimeout(armDeadline, Math.max(1, action.untilMs - now))
          return
        case 'stop':
          stop(lostByDeadline(), action.killAtMs)
          return
        case 'kill':
          stop(lostByDeadline(), now)
          return
      }
    }

    const renewLoop = (): void => {
      if (finished || lease === null) return
      const id = lease
      const sentMs = performance.now()
      renewTimer = setTimeout(renewLoop, holder.renewIntervalMs)
      void keepAlive(socket, id, holder.renewIntervalMs, renewals).then((outcome) => {
        if (finished) return
        if (outcome === 'ok') {
          holder.onConfirmed(sentMs)
          lastRenewalProblem = ''
          armDeadline()
        } else if (outcome === 'gone') {
          stop(`lost lock ${name}: its session expired or was revoked (the leader saw no renewal in time)`, performance.now() + holder.stopGraceMs)
        } else {
          lastRenewalProblem = outcome
        }
      })
    }

    res.on('error', () => undefined)
    const lines = createInterface({ input: res, crlfDelay: Infinity })
    lines.on('error', () => undefined)
    lines.on('line', (line) => {
      if (line === '' || finished) return
      let event: StreamLine
      try {
        event = JSON.parse(line) as StreamLine
      } catch {
        stop(`the peer sent a line that is not JSON on the lock stream: ${line.slice(0, 100)}`, performance.now() + holder.stopGraceMs)
        return
      }
      switch (event.state) {
        case 'queued':
          lease = event.lease
          renewLoop()
          return
        case 'error':
          stop(`lock ${name}: ${event.error}`, performance.now() + holder.stopGraceMs)
          return
        case 'waiting':
          process.stderr.write(`shoal lock: waiting for ${name}\n`)
          return
        case 'lost':
          stop(`lost lock ${name}: ${event.reason}`, Math.min(holder.killAtMs, performance.now() + holder.stopGraceMs))
          return
        case 'acquired': {
          if (child !== null || stopping !== null) return
          if (!holder.holds(performance.now())) {
            finish(new UserError(lostByDeadline()))
            return
          }
          const running = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, SHOAL_LOCK_NAME: name, SHOAL_LOCK_TOKEN: String(event.token) } })
          child = running
          for (const signal of ['SIGINT', 'SIGTERM'] as const) {
            const handler = (): void => {
              running.kill(signal)
            }
            signalHandlers.push([signal, handler])
            process.on(signal, handler)
          }
          running.on('error', (err) => finish(new UserError(`cannot run ${cmd}: ${err.message}`)))
          running.on('exit', (code, signal) => {
            if (stopping !== null) finish(new UserError(stopping))
            else finish(code ?? (signal === null ? 1 : 128))
          })
          armDeadline()
          return
        }
      }
    })
    // A peer that stops cleanly ends the stream; one killed resets it, which readline does not
    // report as an end: either way, without the stream the lock can no longer be trusted.
    const streamGone = (): void => {
      if (finished || stopping !== null) return
      if (child === null) {
        finish(new UserError(`the peer closed the lock stream before ${name} was acquired; is it stopping?`))
        return
      }
      stop(`lost lock ${name}: the peer holding it went away`, Math.min(holder.killAtMs, performance.now() + holder.stopGraceMs))
    }
    lines.on('close', streamGone)
    res.on('close', streamGone)
  })
}
