/** `shoal kv put|get|del|list`: the replicated key-value store, as etcdctl and consul kv. */
import { parseCommandArgs, stringFlag, boolFlag } from '../args.ts'
import { createInterface } from 'node:readline'
import { apiCall, apiStream, resolveApiSocket } from '../client.ts'
import { UsageError, UserError } from '../../node/errors.ts'
import { readValueFromStdin } from '../stdin-value.ts'
import { VALUE_MAX_BYTES } from '../../storage/statestore/limits.ts'
import type { KvPage, KvView } from '../../node/kv-service.ts'

export const KV_USAGE = `Usage: shoal kv put KEY [VALUE] [--fence LOCK:TOKEN]   (no VALUE: read from stdin)
       shoal kv get KEY [--consistent] [--json]
       shoal kv del KEY
       shoal kv list PREFIX [--consistent] [--json]
       shoal kv watch PREFIX [--revision R]`

const FLAGS = { api: { type: 'string' }, json: { type: 'boolean' }, consistent: { type: 'boolean' }, fence: { type: 'string' } } as const

export async function kvCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === 'watch') return kvWatchCommand(rest)
  const arity: Record<string, [number, number]> = { put: [1, 2], get: [1, 1], del: [1, 1], list: [0, 1] }
  const range = sub === undefined ? undefined : arity[sub]
  if (sub === undefined || range === undefined) throw new UsageError(`kv needs a subcommand: put, get, del, list or watch\n${KV_USAGE}`)
  const p = parseCommandArgs(`kv ${sub}`, rest, FLAGS, { min: range[0], max: range[1] })
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  const json = boolFlag(p, 'json')
  const consistent = boolFlag(p, 'consistent') ? '&consistent=1' : ''
  const [first = '', second = ''] = p.positionals
  switch (sub) {
    case 'put': {
      const fence = parseFence(stringFlag(p, 'fence'))
      // No VALUE: read it from stdin, as etcdctl does (a 512 KiB value cannot be one argument).
      const value = p.positionals.length >= 2 ? second : await readValueFromStdin(process.stdin, VALUE_MAX_BYTES)
      const r = await apiCall<{ revision: number }>(socket, 'PUT', '/v1/kv', { key: first, value, ...fence })
      process.stdout.write(json ? `${JSON.stringify(r)}\n` : 'OK\n')
      return 0
    }
    case 'get': {
      let r: { kv: KvView }
      try {
        r = await apiCall<{ kv: KvView }>(socket, 'GET', `/v1/kv?key=${encodeURIComponent(first)}${consistent}`)
      } catch (err) {
        if (err instanceof UserError && err.message === 'not found') throw new UserError('not found')
        throw err
      }
      process.stdout.write(json ? `${JSON.stringify(r.kv)}\n` : `${r.kv.value}\n`)
      return 0
    }
    case 'del': {
      const r = await apiCall<{ deleted: number; revision: number }>(socket, 'DELETE', `/v1/kv?key=${encodeURIComponent(first)}`)
      process.stdout.write(json ? `${JSON.stringify(r)}\n` : `${r.deleted}\n`)
      return 0
    }
    default:
      return kvList(socket, first, consistent, json)
  }
}

/** Pairs asked for per page; the peer also caps each page by bytes (KV_PAGE_MAX_BYTES). */
const KV_LIST_PAGE_LIMIT = 1000
const LIST_HEADERS = ['key', 'value', 'revision']

/**
 * `kv list`: fetches page after page (each bounded by the peer) and prints each as it comes,
 * so neither the peer nor this process holds the whole listing. `--json` prints the very text
 * JSON.stringify(array, null, 2) would, one element at a time. The table's columns are as wide
 * as the widest cell seen so far: a one-page listing looks as it always did; later pages may
 * widen columns (as kubectl's chunked lists do).
 */
async function kvList(socket: string, prefix: string, consistent: string, json: boolean): Promise<number> {
  let after: string | null = null
  let printed = 0
  const widths = LIST_HEADERS.map((h) => h.length)
  if (json) process.stdout.write('[')
  for (;;) {
    const query = `prefix=${encodeURIComponent(prefix)}&limit=${KV_LIST_PAGE_LIMIT}${after === null ? '' : `&after=${encodeURIComponent(after)}`}${consistent}`
    const page: Partial<KvPage> & { kvs: KvView[] } = await apiCall(socket, 'GET', `/v1/kv/list?${query}`)
    if (json) {
      const items = page.kvs.map((kv, i) => `${printed + i === 0 ? '\n' : ',\n'}${JSON.stringify(kv, null, 2).replaceAll(/^/gm, '  ')}`)
      process.stdout.write(items.join(''))
    } else {
      const rows = page.kvs.map((kv) => [kv.key, kv.value, String(kv.modRevision)])
      for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
      const lines = rows.map((row) => tableLine(row, widths))
      if (after === null) lines.unshift(tableLine(LIST_HEADERS.map((h) => h.toUpperCase()), widths))
      process.stdout.write(lines.map((l) => `${l}\n`).join(''))
    }
    printed += page.kvs.length
    if (page.more !== true) break
    if (typeof page.next !== 'string') {
      // A peer from before paging: it cut the list short and cannot go on.
      process.stderr.write('shoal kv list: more keys match than this peer sends at once; upgrade it or narrow the prefix\n')
      break
    }
    after = page.next
  }
  if (json) process.stdout.write(printed === 0 ? ']\n' : '\n]\n')
  return 0
}

/** One row as formatTable lays it out, for columns of the given widths. */
function tableLine(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ').trimEnd()
}

/**
 * `shoal kv watch PREFIX [--revision R]`: one JSON line per change. If the stream breaks (the
 * peer restarts), it reconnects and resumes after the last revision it printed, so no change
 * is missed or printed twice.
 */
export async function kvWatchCommand(argv: string[]): Promise<number> {
  const p = parseCommandArgs('kv watch', argv, { api: { type: 'string' }, revision: { type: 'string' } }, { min: 0, max: 1 })
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  const prefix = p.positionals[0] ?? ''
  const given = stringFlag(p, 'revision')
  let revision: number | null = given === undefined ? null : Number(given)
  if (revision !== null && (!Number.isSafeInteger(revision) || revision < 0)) throw new UsageError('--revision takes a non-negative integer: changes after it are printed')
  let failures = 0
  for (;;) {
    try {
      const res = await apiStream(socket, `/v1/kv/watch?prefix=${encodeURIComponent(prefix)}${revision === null ? '' : `&revision=${revision}`}`)
      failures = 0
      for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
        if (line === '') continue
        const event = JSON.parse(line) as { revision?: number; error?: string }
        if (event.error !== undefined) throw new UserError(event.error)
        if (typeof event.revision === 'number') revision = event.revision
        process.stdout.write(`${line}\n`)
      }
    } catch (err) {
      if (err instanceof UserError && !/no Shoal peer is answering/.test(err.message)) throw err
      if (++failures > 60) throw err
    }
    process.stderr.write(`shoal kv watch: stream interrupted; resuming after revision ${revision ?? 'now'}\n`)
    await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** failures)))
  }
}

/**
 * `--fence LOCK:TOKEN` (TOKEN: the SHOAL_LOCK_TOKEN `shoal lock` gave its command): the write
 * applies only while LOCK is held with TOKEN, so a holder that lost the lock cannot overwrite
 * what the next holder wrote.
 */
function parseFence(flag: string | undefined): { fence?: { lock: string; token: number } } {
  if (flag === undefined) return {}
  const at = flag.lastIndexOf(':')
  const lock = flag.slice(0, at)
  const token = Number(flag.slice(at + 1))
  if (at <= 0 || !/^\d+$/.test(flag.slice(at + 1)) || !Number.isSafeInteger(token) || token < 1) {
    throw new UsageError(`--fence takes LOCK:TOKEN, e.g. --fence deploy:$SHOAL_LOCK_TOKEN (got ${JSON.stringify(flag)})`)
  }
  return { fence: { lock, token } }
}
