// Helpers for driving single RaftCores by hand in unit tests: build a core
// over a MemoryLogStorage, and run the driver's Ready loop (persist, collect
// messages, apply) without a network.

import { decodeConfChange } from '../conf-change.ts'
import { RaftCore, type RaftCoreConfig } from '../core.ts'
import { MemoryLogStorage } from '../../../storage/raft-log/memory-log-storage.ts'
import type { Message } from '../messages.ts'
import type { ConfState, Entry, LogLossEvent, NodeId, ReadState } from '../types.ts'
import { createPrng } from './prng.ts'

/** A core with its storage. */
export interface RawNode {
  readonly core: RaftCore
  readonly storage: MemoryLogStorage
}

/** Options for rawNode(); anything in RaftCoreConfig except id and storage. */
export type RawNodeOptions = Partial<Omit<RaftCoreConfig, 'id' | 'storage'>> & {
  /** Storage to use (default: a founding one for `voters`). */
  readonly storage?: MemoryLogStorage
  /** Seed of the election-jitter PRNG. */
  readonly seed?: number
}

/** A core for `id` in a founding cluster of `conf` (electionTicks 10, heartbeatTicks 1 by default). */
export function rawNode(id: NodeId, conf: ConfState, options: RawNodeOptions = {}): RawNode {
  const storage = options.storage ?? new MemoryLogStorage({ confState: conf })
  const prng = createPrng(options.seed ?? 1)
  const { storage: _s, seed: _seed, ...rest } = options
  const core = new RaftCore({
    electionTicks: 10,
    heartbeatTicks: 1,
    random: () => prng.next(),
    ...rest,
    id,
    storage,
  })
  return { core, storage }
}

/** What drain() saw. */
export interface Drained {
  readonly messages: Message[]
  readonly committed: Entry[]
  readonly readStates: ReadState[]
  /** Whether any Ready asked for an fsync. */
  readonly mustSync: boolean
  /** Log losses the core reported. */
  readonly logLoss: LogLossEvent[]
}

/** Handles every pending Ready of `node` (persist, collect, apply conf changes, advance). */
export function drain(node: RawNode): Drained {
  const messages: Message[] = []
  const committed: Entry[] = []
  const readStates: ReadState[] = []
  const logLoss: LogLossEvent[] = []
  let mustSync = false
  for (let i = 0; i < 100 && node.core.hasReady(); i++) {
    const rd = node.core.ready()
    if (rd.snapshot !== undefined) node.storage.applySnapshot(rd.snapshot)
    node.storage.append(rd.entries)
    if (rd.hardState !== undefined) node.storage.setHardState(rd.hardState)
    messages.push(...rd.messages)
    for (const e of rd.committedEntries) {
      committed.push(e)
      if (e.type === 'conf-change') {
        const cc = decodeConfChange(e.data)
        if (cc !== undefined) node.core.applyConfChange(cc)
      }
    }
    readStates.push(...rd.readStates)
    logLoss.push(...rd.logLoss)
    mustSync ||= rd.mustSync
    node.core.advance(rd)
    node.core.assertInvariants()
  }
  return { messages, committed, readStates, mustSync, logLoss }
}

/** Messages of one type, narrowed. */
export function ofType<T extends Message['type']>(messages: readonly Message[], type: T): Extract<Message, { type: T }>[] {
  return messages.filter((m): m is Extract<Message, { type: T }> => m.type === type)
}

/** Entries as (index, term) pairs, for compact assertions. */
export function ids(entries: readonly Entry[]): [number, number][] {
  return entries.map((e) => [e.index, e.term])
}

/** Bound on pump() rounds (a livelock detector). */
const MAX_PUMP_ROUNDS = 10_000

/** What pump() saw. */
export interface Pumped {
  /** Every delivered message, in delivery order. */
  readonly delivered: Message[]
  /** Read states each node produced. */
  readonly readStates: Map<NodeId, ReadState[]>
  /** Entries each node applied. */
  readonly committed: Map<NodeId, Entry[]>
  /** Log losses each node reported. */
  readonly logLoss: Map<NodeId, LogLossEvent[]>
}

/**
 * Delivers messages among `nodes` until none are left: each round drains
 * every node's Ready and steps the messages into their targets (FIFO).
 * `drop` loses messages; `onDeliver` sees each one before it is stepped.
 */
export function pump(
  nodes: ReadonlyMap<NodeId, RawNode>,
  options: { readonly drop?: (m: Message) => boolean; readonly onDeliver?: (m: Message) => void } = {},
): Pumped {
  const out: Pumped = { delivered: [], readStates: new Map(), committed: new Map(), logLoss: new Map() }
  for (let round = 0; round < MAX_PUMP_ROUNDS; round++) {
    const inFlight: Message[] = []
    for (const [id, node] of nodes) {
      const d = drain(node)
      inFlight.push(...d.messages)
      out.readStates.set(id, [...(out.readStates.get(id) ?? []), ...d.readStates])
      out.committed.set(id, [...(out.committed.get(id) ?? []), ...d.committed])
      if (d.logLoss.length > 0) out.logLoss.set(id, [...(out.logLoss.get(id) ?? []), ...d.logLoss])
    }
    if (inFlight.length === 0) return out
    for (const m of inFlight) {
      const target = nodes.get(m.to)
      if (target === undefined || options.drop?.(m) === true) continue
      options.onDeliver?.(m)
      out.delivered.push(m)
      target.core.step(m)
      target.core.assertInvariants()
    }
  }
  throw new Error('pump: messages did not quiesce')
}

/** Storage of a founding cluster `conf` whose log continues with entries of the given terms from index 2. */
export function storageWithTerms(conf: ConfState, terms: readonly number[], commit = 1): MemoryLogStorage {
  const storage = new MemoryLogStorage({ confState: conf })
  storage.append(terms.map((term, i) => ({ index: i + 2, term, type: 'normal', data: new Uint8Array([i & 0xff]) })))
  const lastTerm = terms.length === 0 ? 1 : Math.max(1, ...terms)
  storage.setHardState({ term: lastTerm, vote: null, commit })
  return storage
}
