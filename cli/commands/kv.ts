/** `shoal kv put|get|del|list`: the replicated key-value store, as etcdctl and consul kv. */
import { parseCommandArgs, stringFlag, boolFlag } from '../args.ts'
import { apiCall, resolveApiSocket } from '../client.ts'
import { formatTable } from '../table.ts'
import { UsageError, UserError } from '../../node/errors.ts'
import type { KvView } from '../../node/kv-service.ts'

export const KV_USAGE = `Usage: shoal kv put KEY VALUE
       shoal kv get KEY [--consistent] [--json]
       shoal kv del KEY
       shoal kv list PREFIX [--consistent] [--json]`

const FLAGS = { api: { type: 'string' }, json: { type: 'boolean' }, consistent: { type: 'boolean' } } as const

export async function kvCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  const arity: Record<string, [number, number]> = { put: [2, 2], get: [1, 1], del: [1, 1], list: [0, 1] }
  const range = sub === undefined ? undefined : arity[sub]
  if (sub === undefined || range === undefined) throw new UsageError(`kv needs a subcommand: put, get, del or list\n${KV_USAGE}`)
  const p = parseCommandArgs(`kv ${sub}`, rest, FLAGS, { min: range[0], max: range[1] })
  const socket = resolveApiSocket(stringFlag(p, 'api'))
  const json = boolFlag(p, 'json')
  const consistent = boolFlag(p, 'consistent') ? '&consistent=1' : ''
  const [first = '', second = ''] = p.positionals
  switch (sub) {
    case 'put': {
      const r = await apiCall<{ revision: number }>(socket, 'PUT', '/v1/kv', { key: first, value: second })
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
    default: {
      const r = await apiCall<{ kvs: KvView[]; more: boolean }>(socket, 'GET', `/v1/kv/list?prefix=${encodeURIComponent(first)}${consistent}`)
      if (json) process.stdout.write(`${JSON.stringify(r.kvs, null, 2)}\n`)
      else process.stdout.write(formatTable(['key', 'value', 'revision'], r.kvs.map((kv) => [kv.key, kv.value, String(kv.modRevision)])))
      if (r.more) process.stderr.write('shoal kv list: more keys match; narrow the prefix\n')
      return 0
    }
  }
}
