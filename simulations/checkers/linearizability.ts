// Linearizability of the KV history, per key (a register: a value or absent),
// by the Wing–Gong / Lowe search as Porcupine implements it: walk the history's
// call/return events in time order, try to linearize the earliest pending
// call, backtrack when a return is reached whose call is not linearized yet,
// and memoise every (linearized set, state) pair already explored, so no
// configuration is searched twice.
//
// Unknown outcomes (a timeout, a crash with the request in flight) never
// return: their return event sits at +infinity, so the search may linearize
// them at any point after their invocation, or leave them for the end, which
// is the same as never (nothing is observed after the end). Their outputs are
// not checked. Failed operations had no effect and are left out. Calls sort
// before returns at the same instant, so nothing is ordered that was not
// strictly ordered in real time (no false alarm from ties).
//
// Plain 'get' reads the node's replica, which may be stale by design; only
// consistent reads ('cget') are held to linearizability (phantom-read checks
// every read).

import { describeOp, type KvOp } from '../history.ts'
import { formatTime } from '../trace.ts'
import type { Violation } from './violation.ts'

/** Register state: the key's value, or null when absent. */
type State = string | null

/** Outcome of checking one key. */
export type KeyVerdict =
  | { readonly kind: 'ok' }
  | { readonly kind: 'violation'; readonly stuck: readonly KvOp[] }
  /** The search ran out of its step budget: neither proved nor refuted. */
  | { readonly kind: 'inconclusive' }

/** Default bound on search steps per key. */
export const SEARCH_STEPS_MAX = 2_000_000

/** One call or return in the search's doubly linked list. */
interface Entry {
  readonly op: number
  readonly isCall: boolean
  readonly timeUs: number
  match: Entry | null
  prev: Entry | null
  next: Entry | null
}

/** Whether `op` may take effect in `state`, and the state after it. */
function step(state: State, op: KvOp): { readonly ok: boolean; readonly next: State } {
  const known = op.outcome === 'ok'
  switch (op.kind) {
    case 'put':
      return { ok: true, next: op.value }
    case 'delete':
      return { ok: !known || op.deleted === (state === null ? 0 : 1), next: null }
    case 'cget':
    case 'get':
      return { ok: state === op.read, next: state }
    case 'cas':
      if (state !== null && state === op.expected) return { ok: !known || op.succeeded === true, next: op.value }
      return { ok: !known || op.succeeded === false, next: state }
  }
}

/** Whether `op` takes part in the check. */
function checkable(op: KvOp): boolean {
  if (op.kind === 'get') return false
  if (op.outcome === 'ok') return true
  // Unknown reads observed nothing and changed nothing.
  return op.outcome !== 'fail' && op.kind !== 'cget'
}

/** Checks one key's operations (any order); the key starts absent. */
export function checkKey(all: readonly KvOp[], maxSteps: number = SEARCH_STEPS_MAX): KeyVerdict {
  const ops = all.filter(checkable)
  const n = ops.length
  if (n === 0) return { kind: 'ok' }
  const entries: Entry[] = []
  for (let i = 0; i < n; i++) {
    const op = ops[i] as KvOp
    const call: Entry = { op: i, isCall: true, timeUs: op.invokeUs, match: null, prev: null, next: null }
    const ret: Entry = { op: i, isCall: false, timeUs: op.outcome === 'ok' ? op.returnUs : Infinity, match: null, prev: null, next: null }
    call.match = ret
    entries.push(call, ret)
  }
  entries.sort((a, b) => a.timeUs - b.timeUs || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1))
  const head: Entry = { op: -1, isCall: false, timeUs: -Infinity, match: null, prev: null, next: null }
  let prev = head
  for (const e of entries) {
    prev.next = e
    e.prev = prev
    prev = e
  }

  const words = (n + 31) >>> 5
  const linearized = new Uint32Array(words)
  const cache = new Map<number, Array<{ bits: Uint32Array; state: State }>>()
  const calls: Array<{ entry: Entry; state: State }> = []
  let best: Uint32Array = linearized.slice()
  let bestCount = 0
  let state: State = null
  let entry: Entry | null = head.next
  let steps = 0

  while (head.next !== null) {
    if (++steps > maxSteps) return { kind: 'inconclusive' }
    if (entry === null) throw new Error('linearizability search walked off the history')
    if (entry.isCall) {
      const op = ops[entry.op] as KvOp
      const r = step(state, op)
      if (r.ok) {
        setBit(linearized, entry.op)
        if (remember(cache, linearized, r.next)) {
          calls.push({ entry, state })
          state = r.next
          lift(entry)
          if (calls.length > bestCount) {
            bestCount = calls.length
            best = linearized.slice()
          }
          entry = head.next
          continue
        }
        clearBit(linearized, entry.op)
      }
      entry = entry.next
    } else {
      const top = calls.pop()
      if (top === undefined) return { kind: 'violation', stuck: stuckOps(ops, best) }
      clearBit(linearized, top.entry.op)
      state = top.state
      unlift(top.entry)
      entry = top.entry.next
    }
  }
  return { kind: 'ok' }
}

/** What checkHistory found, per key. */
export interface HistoryVerdict {
  /** Keys with no linearization, with the operations the search could not place. */
  readonly violations: Array<{ key: string; stuck: readonly KvOp[] }>
  /** Keys whose search hit its step bound: neither proved nor refuted. */
  readonly inconclusive: string[]
}

/** Checks every key of a history; returns the keys that are not linearizable and those left undecided. */
export function checkHistory(ops: readonly KvOp[], maxSteps: number = SEARCH_STEPS_MAX): HistoryVerdict {
  const byKey = new Map<string, KvOp[]>()
  for (const op of ops) {
    let list = byKey.get(op.key)
    if (list === undefined) {
      list = []
      byKey.set(op.key, list)
    }
    list.push(op)
  }
  const violations: Array<{ key: string; stuck: readonly KvOp[] }> = []
  const inconclusive: string[] = []
  for (const key of [...byKey.keys()].sort()) {
    const verdict = checkKey(byKey.get(key) ?? [], maxSteps)
    if (verdict.kind === 'violation') violations.push({ key, stuck: verdict.stuck })
    else if (verdict.kind === 'inconclusive') inconclusive.push(key)
  }
  return { violations, inconclusive }
}

/**
 * The run's verdict from checkHistory's: every key without a linearization is a violation, and
 * so is every key the search could not decide within its bound, unless `allowInconclusive`: an
 * undecided key proves nothing, and a run that passed on it would pass off a guess as a check.
 */
export function linearizabilityViolations(verdict: HistoryVerdict, atUs: number, allowInconclusive: boolean, maxSteps: number = SEARCH_STEPS_MAX): Violation[] {
  const out: Violation[] = verdict.violations.map((v) => ({
    checker: 'linearizability',
    atUs,
    message: `key ${v.key} has no linearization; the search could not place, earliest first: ${v.stuck.map((op) => `${op.client} ${describeOp(op)} via ${op.node} [${formatTime(op.invokeUs)}, ${formatTime(op.returnUs)}]`).join('; ')}`,
  }))
  if (allowInconclusive) return out
  for (const key of verdict.inconclusive) {
    out.push({
      checker: 'linearizability',
      atUs,
      message: `key ${key} is undecided: the linearizability search hit its bound of ${maxSteps} steps before proving or refuting the history; rerun with --allow-inconclusive to accept undecided keys (they are still counted as inconclusive)`,
    })
  }
  return out
}

/** Completed operations outside the longest linearizable prefix found, earliest first: where the history breaks. */
function stuckOps(ops: readonly KvOp[], best: Uint32Array): KvOp[] {
  const out: KvOp[] = []
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as KvOp
    if (op.outcome === 'ok' && !hasBit(best, i)) out.push(op)
  }
  return out.sort((a, b) => a.returnUs - b.returnUs).slice(0, 4)
}

/** Adds (bits, state) to the cache; false if it was already there. */
function remember(cache: Map<number, Array<{ bits: Uint32Array; state: State }>>, bits: Uint32Array, state: State): boolean {
  let h = 0x811c9dc5
  for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ (bits[i] as number), 0x01000193)
  if (state === null) h = Math.imul(h ^ 0x55, 0x01000193)
  else for (let i = 0; i < state.length; i++) h = Math.imul(h ^ state.charCodeAt(i), 0x01000193)
  const bucket = cache.get(h)
  if (bucket === undefined) {
    cache.set(h, [{ bits: bits.slice(), state }])
    return true
  }
  for (const seen of bucket) {
    if (seen.state === state && sameBits(seen.bits, bits)) return false
  }
  bucket.push({ bits: bits.slice(), state })
  return true
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function setBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = ((bits[i >>> 5] as number) | (1 << (i & 31))) >>> 0
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = ((bits[i >>> 5] as number) & ~(1 << (i & 31))) >>> 0
}

function hasBit(bits: Uint32Array, i: number): boolean {
  return (((bits[i >>> 5] as number) >>> (i & 31)) & 1) === 1
}

/** Takes a call and its return out of the list (Porcupine lift). */
function lift(call: Entry): void {
  const ret = call.match as Entry
  ;(call.prev as Entry).next = call.next
  ;(call.next as Entry).prev = call.prev
  ;(ret.prev as Entry).next = ret.next
  if (ret.next !== null) ret.next.prev = ret.prev
}

/** Puts them back (Porcupine unlift). */
function unlift(call: Entry): void {
  const ret = call.match as Entry
  ;(ret.prev as Entry).next = ret
  if (ret.next !== null) ret.next.prev = ret
  ;(call.prev as Entry).next = call
  ;(call.next as Entry).prev = call
}
