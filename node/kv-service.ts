/**
 * The user-facing key-value store (`shoal kv`): keys live in the StateStore's `kv/` bucket;
 * writes go through Raft, reads come from this peer's replica (or after a ReadIndex round).
 */
import { randomBytes } from 'node:crypto'
import { encodeCommand, validateCommand, KEY_MAX_BYTES, VALUE_MAX_BYTES, type ApplyResult, type Fence, type KeyValue, type Request } from '../storage/statestore/index.ts'
import type { RaftNode } from './raft-node.ts'
import type { StoreMachine } from './store-machine.ts'
import { proposalKey } from './store-machine.ts'
import { ApiError } from './api-server.ts'

/** The bucket user keys live in. */
export const KV_PREFIX = 'kv/'
/** The longest user key: the store's limit less the bucket prefix. */
export const USER_KEY_MAX_BYTES = KEY_MAX_BYTES - KV_PREFIX.length

/** A key-value pair as the API shows it. */
export interface KvView {
  key: string
  value: string
  createRevision: number
  modRevision: number
  version: number
  lease: number
}

/** One page of `kv list`: pass `next` back as `after` while `more` is true. */
export interface KvPage {
  kvs: KvView[]
  more: boolean
  /** The last key of this page when more follow, else null. */
  next: string | null
  revision: number
}

/**
 * Most key and value bytes in one page of a listing (plus at most one value over it, so a
 * page is under 1.5 MiB). Big enough that paging costs little; small enough that encoding a
 * page takes milliseconds, not the seconds a 69 MB answer took.
 */
export const KV_PAGE_MAX_BYTES = 1024 * 1024

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/** Checks a user key; throws a 400 that says what is wrong. */
export function checkUserKey(key: unknown): string {
  if (typeof key !== 'string' || key === '') throw new ApiError(400, 'key must be a non-empty string')
  if (Buffer.byteLength(key) > USER_KEY_MAX_BYTES) throw new ApiError(400, `key is longer than ${USER_KEY_MAX_BYTES} bytes`)
  // A lone surrogate has no UTF-8 form: encoding would silently store U+FFFD instead.
  if (!key.isWellFormed()) throw new ApiError(400, 'key is not valid Unicode (it has a lone surrogate); send keys as UTF-8 text')
  if (key.includes('\0')) throw new ApiError(400, 'key must not contain NUL')
  if (key.startsWith('/')) throw new ApiError(400, "key must not start with '/' (use e.g. config/x)")
  return key
}

function view(kv: KeyValue): KvView {
  return { key: kv.key.slice(KV_PREFIX.length), value: fromUtf8.decode(kv.value), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease }
}

export class KvService {
  private readonly raft: RaftNode
  private readonly machine: StoreMachine
  private readonly selfId: string

  constructor(raft: RaftNode, machine: StoreMachine, selfId: string) {
    this.raft = raft
    this.machine = machine
    this.selfId = selfId
  }

  /** Commits `request` through Raft; resolves with the store's result once applied here. */
  async write(request: Request, asLeader = false): Promise<Extract<ApplyResult, { ok: true }>> {
    const requestId = randomBytes(16).toString('hex')
    // base: every attempt of this request lands above the index applied here now (Command.base).
    const base = this.raft.applied
    const command = asLeader ? { origin: this.selfId, requestId, request, asLeader, base } : { origin: this.selfId, requestId, request, base }
    const problem = validateCommand(command)
    if (problem !== null) throw new ApiError(400, problem.message)
    const result = (await this.raft.propose(encodeCommand(command), proposalKey(this.selfId, requestId))) as ApplyResult
    if (!result.ok) throw new ApiError(result.code === 'lease-not-found' ? 404 : result.code === 'outcome-unknown' ? 504 : 409, result.message)
    return result
  }

  /** `fence`: apply only while that lock is held with that token (409 fence-rejected otherwise). */
  async put(key: string, value: string, fence?: Fence): Promise<{ revision: number }> {
    // TextEncoder would turn a lone surrogate into U+FFFD: refuse rather than store other bytes than were sent.
    if (!value.isWellFormed()) throw new ApiError(400, 'value is not valid Unicode (it has a lone surrogate); send values as UTF-8 text')
    const bytes = utf8.encode(value)
    if (bytes.byteLength > VALUE_MAX_BYTES) throw new ApiError(413, `value is over ${VALUE_MAX_BYTES} bytes; keep large data elsewhere and store a reference`)
    const r = await this.write({ type: 'put', key: KV_PREFIX + checkUserKey(key), value: bytes, ...(fence === undefined ? {} : { fence }) })
    return { revision: r.response.revision }
  }

  async del(key: string): Promise<{ deleted: number; revision: number }> {
    const r = await this.write({ type: 'delete', key: KV_PREFIX + checkUserKey(key) })
    return { deleted: r.response.type === 'delete' ? r.response.deleted : 0, revision: r.response.revision }
  }

  /** Reads from this replica; `consistent` first confirms with the leader (ReadIndex). */
  async get(key: string, consistent: boolean): Promise<{ kv: KvView | null; revision: number; appliedIndex: number }> {
    checkUserKey(key)
    if (consistent) await this.raft.linearizableRead()
    const kv = this.machine.store.get(KV_PREFIX + key)
    return { kv: kv === null ? null : view(kv), revision: this.machine.store.revision, appliedIndex: this.raft.applied }
  }

  /**
   * One page of the keys under `prefix`, in key order, after the user key `after` (exclusive;
   * the previous page's `next`). A page holds at most `limit` pairs and about
   * KV_PAGE_MAX_BYTES of keys and values (always at least one pair), as etcd's range
   * `limit` + `more`: the work per request stays bounded however large the keyspace, so a big
   * listing never holds the event loop long enough to starve Raft's and SWIM's timers.
   * Pages are read from the live replica, not one snapshot: a key that exists throughout the
   * listing is returned exactly once; one written or deleted meanwhile may or may not be.
   */
  async list(prefix: string, consistent: boolean, limit: number, after: string | null = null): Promise<KvPage> {
    if (typeof prefix !== 'string') throw new ApiError(400, 'prefix must be a string')
    if (!prefix.isWellFormed()) throw new ApiError(400, 'prefix is not well-formed Unicode')
    if (after !== null && !after.isWellFormed()) throw new ApiError(400, 'after is not well-formed Unicode')
    if (consistent) await this.raft.linearizableRead()
    const r = this.machine.store.range(KV_PREFIX + prefix, { limit, maxBytes: KV_PAGE_MAX_BYTES, ...(after === null ? {} : { startAfter: KV_PREFIX + after }) })
    const kvs = r.kvs.map(view)
    const last = kvs[kvs.length - 1]
    return { kvs, more: r.more, next: r.more && last !== undefined ? last.key : null, revision: this.machine.store.revision }
  }
}
