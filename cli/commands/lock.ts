/**
 * `shoal lock NAME [--ttl SECONDS] -- CMD [ARGS]`: runs CMD while holding the cluster-wide lock
 * NAME, as `etcdctl lock` and `consul lock` do. CMD sees SHOAL_LOCK_NAME and SHOAL_LOCK_TOKEN
 * (the fencing token: larger for every later holder). If the lock is lost (the peer died and the
 * session expired), CMD is stopped and the command fails.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { parseCommandArgs, stringFlag } from '../args.ts'
import { apiStream, resolveApiSocket } from '../client.ts'
import { UsageError, UserError } from '../../node/errors.ts'
import type { LockEvent } from '../../node/sessions.ts'

export async function lockCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('lock', argv, { api: { type: 'string' }, ttl: { type: 'string' } }, { min: 1, max: 1 })
  const [name] = p.positionals
  if (name === undefined || p.rest.length === 0) throw new UsageError('usage: shoal lock NAME [--ttl SECONDS] -- CMD [ARGS...]')
  const ttl = stringFlag(p, 'ttl') ?? '10'
  if (!/^\d+(\.\d+)?$/.test(ttl)) throw new UsageError('--ttl takes seconds, e.g. --ttl 10')
  const res = await apiStream(resolveApiSocket(stringFlag(p, 'api')), `/v1/locks?name=${encodeURIComponent(name)}&ttl=${ttl}`, 'POST')
  const [cmd, ...args] = p.rest as [string, ...string[]]
  return new Promise<number>((resolve, reject) => {
    let child: ReturnType<typeof spawn> | null = null
    let finished = false
    const finish = (outcome: number | Error): void => {
      if (finished) return
      finished = true
      res.destroy() // closing the stream releases the lock
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    }
    res.on('error', () => undefined)
    const lines = createInterface({ input: res, crlfDelay: Infinity })
    lines.on('error', () => undefined)
    lines.on('line', (line) => {
      if (line === '' || finished) return
      const event = JSON.parse(line) as LockEvent | { state: 'error'; error: string }
      if (event.state === 'error') finish(new UserError(event.error))
      else if (event.state === 'waiting') process.stderr.write(`shoal lock: waiting for ${name}\n`)
      else if (event.state === 'lost') {
        child?.kill('SIGTERM')
        finish(new UserError(`lost lock ${name}: ${event.reason}`))
      } else if (child === null) {
        const running = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, SHOAL_LOCK_NAME: name, SHOAL_LOCK_TOKEN: String(event.token) } })
        child = running
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => running.kill(signal))
        running.on('error', (err) => finish(new UserError(`cannot run ${cmd}: ${err.message}`)))
        running.on('exit', (code, signal) => finish(code ?? (signal === null ? 1 : 128)))
      }
    })
    // A peer that stops cleanly ends the stream; one killed resets it, which readline does not
    // report as an end: either way, without the stream the lock can no longer be trusted.
    const streamGone = (): void => {
      if (finished) return
      child?.kill('SIGTERM')
      finish(new UserError(child === null
        ? `the peer closed the lock stream before ${name} was acquired; is it stopping?`
        : `lost lock ${name}: the peer holding it went away`))
    }
    lines.on('close', streamGone)
    res.on('close', streamGone)
  })
}
