// Client requests waiting on one Raft node: proposals until their entry is applied here, and
// linearizable reads until the leader has confirmed them (ReadIndex, thesis §6.4) and this node
// has applied up to their index. The daemon (node/raft-node.ts) and the simulator
// (simulations/node.ts) both run this one copy, each turning the ends into what its callers
// hear. Pure: the time is an argument, the core is reached through two functions.

import type { ProposeResult, ReadIndexResult } from './results.ts'

/** How a proposal ended. */
export type ProposalEnd<R = unknown> =
  /** Its entry was applied here at `index`, with the state machine's `result`. */
  | { readonly kind: 'applied'; readonly result: R; readonly index: number }
  /** Refused, and no attempt ever left this node: it certainly had no effect. */
  | { readonly kind: 'refused'; readonly reason: string }
  /** Refused now, but an earlier attempt was appended or forwarded: it may still commit. */
  | { readonly kind: 'uncertain'; readonly reason: string }
  /** Not applied here in time; `sent`: an attempt left this node, so it may still commit. */
  | { readonly kind: 'timeout'; readonly sent: boolean }
  /** The node stopped or crashed while it waited; `sent` as for a timeout. */
  | { readonly kind: 'dropped'; readonly sent: boolean }

/** How a read ended: confirmed and applied here, or not. */
export type ReadEnd = { readonly ok: true } | { readonly ok: false; readonly kind: 'refused' | 'timeout' | 'dropped'; readonly reason: string }

/** Why a request was not even taken. */
export type AdmitRefusal = 'duplicate-key' | 'too-many'

/** What PendingRequests needs of the node. */
export interface PendingRequestsInit {
  /** The Raft core's propose (the current life's core). */
  propose(data: Uint8Array): ProposeResult
  /** The Raft core's readIndex. */
  readIndex(context: Uint8Array): ReadIndexResult
  /** An unanswered request is attempted again after this long (an election timeout): its forward may have been lost. */
  readonly retryAfterMs: number
  /** Most proposals waiting at once. */
  readonly proposalsMax: number
  /** Most reads waiting at once. */
  readonly readsMax: number
}

interface Proposal<R> {
  readonly data: Uint8Array
  readonly deadlineMs: number
  lastAttemptMs: number
  /** An attempt was appended to this node's log or forwarded to a leader. */
  sent: boolean
  readonly onEnd: (end: ProposalEnd<R>) => void
}

interface Read {
  /** The index the leader confirmed, once it did. */
  index: number | null
  readonly deadlineMs: number
  lastAttemptMs: number
  readonly onEnd: (end: ReadEnd) => void
}

/** How long a proposal or read waits on a peer (through elections) before it ends as timed out. */
export const REQUEST_TIMEOUT_MS = 5000
/** The daemon's bound on proposals waiting on one peer (the simulator's nodes use it too). */
export const PENDING_PROPOSALS_MAX = 65_536
/** The daemon's bound on linearizable reads waiting on one peer. */
export const PENDING_READS_MAX = 4096

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/** Proposals and reads waiting on one node, with their deadlines and retries; R: what the state machine answers. */
export class PendingRequests<R = unknown> {
  readonly #init: PendingRequestsInit
  #proposals = new Map<string, Proposal<R>>()
  #reads = new Map<string, Read>()

  constructor(init: PendingRequestsInit) {
    this.#init = init
  }

  /** Proposals waiting. */
  get proposals(): number {
    return this.#proposals.size
  }

  /** Reads waiting. */
  get reads(): number {
    return this.#reads.size
  }

  /**
   * Proposes `data`, matched later by `key` (unique per request, the same on every retry: the
   * state machine answers a repeated key with its first result). `onEnd` hears once, possibly
   * at once (a refusal). Returns why it was not taken, and then `onEnd` never hears.
   */
  propose(key: string, data: Uint8Array, nowMs: number, timeoutMs: number, onEnd: (end: ProposalEnd<R>) => void): AdmitRefusal | null {
    if (this.#proposals.has(key)) return 'duplicate-key'
    if (this.#proposals.size >= this.#init.proposalsMax) return 'too-many'
    this.#proposals.set(key, { data, deadlineMs: nowMs + timeoutMs, lastAttemptMs: 0, sent: false, onEnd })
    this.#attemptProposal(key, nowMs)
    return null
  }

  /** Starts a linearizable read named `context` (unique); `onEnd` hears once. Returns why it was not taken. */
  read(context: string, nowMs: number, timeoutMs: number, onEnd: (end: ReadEnd) => void): AdmitRefusal | null {
    if (this.#reads.has(context)) return 'duplicate-key'
    if (this.#reads.size >= this.#init.readsMax) return 'too-many'
    this.#reads.set(context, { index: null, deadlineMs: nowMs + timeoutMs, lastAttemptMs: 0, onEnd })
    this.#attemptRead(context, nowMs)
    return null
  }

  /** An entry was applied here: ends the proposal of `key`, if it waits on this node. */
  applied(key: string, result: R, index: number): void {
    const p = this.#proposals.get(key)
    if (p === undefined) return
    this.#proposals.delete(key)
    p.onEnd({ kind: 'applied', result, index })
  }

  /** The leader confirmed the read named by `context` at `index` (a Ready's ReadState). */
  confirmed(context: Uint8Array, index: number): void {
    const r = this.#reads.get(fromUtf8.decode(context))
    if (r !== undefined) r.index = index
  }

  /** Ends every confirmed read whose index this node has applied. */
  settleReads(appliedIndex: number): void {
    for (const [context, r] of this.#reads) {
      if (r.index !== null && r.index <= appliedIndex) {
        this.#reads.delete(context)
        r.onEnd({ ok: true })
      }
    }
  }

  /** A new leader is known: what waited on the old one (maybe dead, its forwards lost) goes to it now. */
  retryAll(nowMs: number): void {
    for (const key of [...this.#proposals.keys()]) this.#attemptProposal(key, nowMs)
    for (const [context, r] of [...this.#reads]) if (r.index === null) this.#attemptRead(context, nowMs)
  }

  /**
   * Every tick: ends what waited past its deadline and attempts again what went unanswered for
   * retryAfterMs (no leader then, or forwarded to a leader that lost its office).
   */
  tick(nowMs: number): void {
    for (const [key, p] of [...this.#proposals]) {
      if (nowMs >= p.deadlineMs) {
        this.#proposals.delete(key)
        p.onEnd({ kind: 'timeout', sent: p.sent })
      } else if (nowMs - p.lastAttemptMs >= this.#init.retryAfterMs) {
        this.#attemptProposal(key, nowMs)
      }
    }
    for (const [context, r] of [...this.#reads]) {
      if (nowMs >= r.deadlineMs) {
        this.#reads.delete(context)
        r.onEnd({ ok: false, kind: 'timeout', reason: 'not confirmed in time (no leader with a quorum)' })
      } else if (r.index === null && nowMs - r.lastAttemptMs >= this.#init.retryAfterMs) {
        this.#attemptRead(context, nowMs)
      }
    }
  }

  /** The node stops or crashed: every waiting request ends. */
  dropAll(): void {
    const proposals = [...this.#proposals.values()]
    const reads = [...this.#reads.values()]
    this.#proposals = new Map()
    this.#reads = new Map()
    for (const p of proposals) p.onEnd({ kind: 'dropped', sent: p.sent })
    for (const r of reads) r.onEnd({ ok: false, kind: 'dropped', reason: 'the node stopped' })
  }

  #attemptProposal(key: string, nowMs: number): void {
    const p = this.#proposals.get(key)
    if (p === undefined) return
    p.lastAttemptMs = nowMs
    const result = this.#init.propose(p.data)
    if (result.ok) {
      p.sent = true
      return
    }
    // Without a leader (or during a transfer) the proposal waits for the next attempt.
    if (result.reason === 'no-leader' || result.reason === 'transfer-in-progress') return
    this.#proposals.delete(key)
    // A refusal now says nothing of an earlier attempt that reached a log: that one may commit.
    p.onEnd(p.sent ? { kind: 'uncertain', reason: result.reason } : { kind: 'refused', reason: result.reason })
  }

  #attemptRead(context: string, nowMs: number): void {
    const r = this.#reads.get(context)
    if (r === undefined) return
    r.lastAttemptMs = nowMs
    const result = this.#init.readIndex(utf8.encode(context))
    if (result.ok || result.reason === 'no-leader' || result.reason === 'not-leader') return
    this.#reads.delete(context)
    r.onEnd({ ok: false, kind: 'refused', reason: result.reason })
  }
}
