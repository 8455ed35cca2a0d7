// A replayable fault scenario over a Cluster: a list of actions (ticks,
// deliveries, proposals, partitions, crashes, compactions, membership changes,
// reads, transfers) followed by a recovery phase that must converge. The
// property tests generate scenarios with fast-check; a failing one can be
// replayed from its JSON.

import type { ConfChange } from '../conf-change.ts'
import type { NodeId } from '../types.ts'
import { Cluster, SafetyViolation } from './cluster.ts'

/** Node ids used by scenarios: three founding voters, one learner, one spare. */
export const SCENARIO_IDS = ['n1', 'n2', 'n3', 'n4', 'n5'] as const
/** Election timeout of scenario clusters, in ticks. */
export const SCENARIO_ELECTION_TICKS = 10
/** Rounds (tick + deliver) the healed cluster gets to elect a leader and commit. */
export const LIVENESS_ROUNDS = 60 * SCENARIO_ELECTION_TICKS

/** One step of a scenario; `node` indexes SCENARIO_IDS. */
export type Action =
  | { readonly t: 'tick'; readonly node: number; readonly n: number }
  | { readonly t: 'tickAll'; readonly n: number }
  | { readonly t: 'round'; readonly n: number; readonly deliver: number; readonly process: boolean }
  | { readonly t: 'deliver'; readonly n: number }
  | { readonly t: 'process'; readonly node: number }
  | { readonly t: 'propose'; readonly node: number; readonly n: number }
  | { readonly t: 'partition'; readonly groups: readonly number[] }
  | { readonly t: 'heal' }
  | { readonly t: 'crash'; readonly node: number }
  | { readonly t: 'restart'; readonly node: number }
  | { readonly t: 'compact'; readonly node: number }
  | { readonly t: 'loss'; readonly rate: number }
  | { readonly t: 'read'; readonly node: number }
  | { readonly t: 'transfer'; readonly node: number }
  | { readonly t: 'conf'; readonly kind: ConfChange['type']; readonly node: number }

/** A whole scenario: cluster settings and actions. */
export interface Scenario {
  readonly seed: number
  readonly preVote: boolean
  readonly checkQuorum: boolean
  readonly reorder: boolean
  readonly autoProcess: boolean
  readonly duplicateRate: number
  readonly maxSizePerMsgBytes: number
  readonly maxInflightMsgs: number
  /** Start from a cluster with an elected leader (otherwise from a cold start). */
  readonly warmup: boolean
  /** Found the cluster with all five nodes as voters (otherwise three voters, a learner and a spare). */
  readonly fiveVoters?: boolean
  readonly actions: readonly Action[]
}

/** What a run exercised, for judging the generator. */
export interface ScenarioStats {
  leaders: number
  applied: number
  delivered: Map<string, number>
  /** Digest of the whole run (deliveries and applications): replaying the scenario must reproduce it. */
  digest: number
}

function idOf(i: number): NodeId {
  return SCENARIO_IDS[i] as NodeId
}

/** Runs a scenario; throws SafetyViolation (or an invariant error) on any breach. */
export function runScenario(s: Scenario, trace?: (line: string) => void): ScenarioStats {
  const c = new Cluster({
    ...(s.fiveVoters === true
      ? { voters: [...SCENARIO_IDS] }
      : { voters: ['n1', 'n2', 'n3'], learners: ['n4'], spares: ['n5'] }),
    seed: s.seed,
    electionTicks: SCENARIO_ELECTION_TICKS,
    heartbeatTicks: 1,
    preVote: s.preVote,
    checkQuorum: s.checkQuorum,
    reorder: s.reorder,
    autoProcess: s.autoProcess,
    duplicateRate: s.duplicateRate,
    maxSizePerMsgBytes: s.maxSizePerMsgBytes,
    maxInflightMsgs: s.maxInflightMsgs,
  })
  if (s.warmup) c.runUntil(() => c.leader() !== undefined, 10 * SCENARIO_ELECTION_TICKS)
  let seq = 0
  s.actions.forEach((a, step) => {
    trace?.(`#${step} ${JSON.stringify(a)}`)
    seq = applyAction(c, a, seq)
    if (step % 25 === 24) c.checkLogMatching()
  })
  c.checkLogMatching()
  recover(c)
  return { leaders: c.leaders.size, applied: c.applied.size, delivered: c.delivered, digest: c.digest }
}

/** Applies one action; returns the updated proposal/read counter. */
export function applyAction(c: Cluster, a: Action, seq: number): number {
  switch (a.t) {
    case 'tick':
      for (let i = 0; i < a.n; i++) c.tick(idOf(a.node))
      return seq
    case 'tickAll':
      for (let i = 0; i < a.n; i++) c.tickAll()
      return seq
    case 'round':
      for (let r = 0; r < a.n; r++) {
        c.tickAll()
        for (let i = 0; i < a.deliver && c.deliverOne(); i++);
        if (a.process) c.processAll()
      }
      return seq
    case 'deliver':
      for (let i = 0; i < a.n && c.deliverOne(); i++);
      return seq
    case 'process':
      c.processReady(idOf(a.node))
      return seq
    case 'propose':
      if (!c.node(idOf(a.node)).alive) return seq
      for (let i = 0; i < a.n; i++) c.propose(idOf(a.node), `p${++seq}`)
      return seq
    case 'partition':
      c.partition(...[0, 1, 2].map((g) => SCENARIO_IDS.filter((_, i) => a.groups[i] === g)))
      return seq
    case 'heal':
      c.heal()
      return seq
    case 'crash':
      c.crash(idOf(a.node))
      return seq
    case 'restart':
      c.restart(idOf(a.node))
      return seq
    case 'compact':
      c.compact(idOf(a.node))
      return seq
    case 'loss':
      c.dropRate = a.rate
      return seq
    case 'read':
      if (c.node(idOf(a.node)).alive) c.readIndex(idOf(a.node), `r${++seq}`)
      return seq
    case 'transfer': {
      const leader = c.leader()
      if (leader !== undefined) c.transferLeadership(leader, a.node === 0 ? undefined : idOf(a.node))
      return seq
    }
    case 'conf': {
      const leader = c.leader()
      if (leader !== undefined) c.proposeConfChange(leader, { type: a.kind, nodeId: idOf(a.node) })
      return seq
    }
  }
}

/** Voters and learners as applied by the node that has applied the most entries. */
function currentMembers(c: Cluster): NodeId[] {
  let best = c.node(SCENARIO_IDS[0])
  for (const id of SCENARIO_IDS) {
    const n = c.node(id)
    if (n.stateMachine.length > best.stateMachine.length) best = n
  }
  return [...best.confState.voters, ...best.confState.learners]
}

/**
 * Liveness phase: heal the network, restart everyone and require a fresh
 * proposal to be applied by every current member, with every entry anyone
 * ever applied still in place. Removed peers keep running: one may still be
 * needed to finish its own removal (see RaftStatus.leaving).
 */
export function recover(c: Cluster): void {
  c.heal()
  c.dropRate = 0
  c.duplicateRate = 0
  for (const n of SCENARIO_IDS) c.restart(n)
  c.processAll()
  let marker: { index: number; term: number } | undefined
  let members: NodeId[] = []
  const done = (): boolean => {
    // The newest membership is the one applied furthest along the log (a
    // deposed leader's view can be arbitrarily stale). It can still change
    // while we wait, as pending conf changes commit.
    members = currentMembers(c)
    const leader = c.leader()
    if (leader === undefined) return false
    const st = c.node(leader).core.status()
    if (marker === undefined || marker.term !== st.term) {
      const r = c.propose(leader, `final-${st.term}`)
      if (r.ok && r.kind === 'appended') marker = { index: r.index, term: r.term }
      return false
    }
    const m = marker
    return members.every((n) => {
      const e = c.node(n).stateMachine[m.index - 1]
      return e !== undefined && e.term === m.term
    })
  }
  if (!c.runUntil(done, LIVENESS_ROUNDS)) {
    throw new SafetyViolation(`liveness: no convergence; leader=${c.leader()} marker=${JSON.stringify(marker)}`)
  }
  c.checkLogMatching()
  c.checkConvergence(members, (marker as { index: number }).index)
}
