// Majority arithmetic for a single (non-joint) configuration (thesis §3.4,
// §3.6): an election is won, and an index committed, by a majority of voters.

import type { NodeId } from './types.ts'

/** Outcome of counting votes so far. */
export type VoteResult = 'won' | 'lost' | 'pending'

/** Votes needed for a majority of `voters` voters. */
export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1
}

/**
 * The highest index acknowledged by a majority of `voters`; `acked` gives each
 * voter's acknowledged index (undefined counts as 0). Returns 0 for no voters,
 * so an empty configuration commits nothing.
 */
export function committedIndex(voters: Iterable<NodeId>, acked: (id: NodeId) => number | undefined): number {
  const values: number[] = []
  for (const id of voters) values.push(acked(id) ?? 0)
  if (values.length === 0) return 0
  values.sort((a, b) => b - a)
  return values[majority(values.length) - 1] as number
}

/**
 * Whether the recorded votes (true = granted) already decide an election among
 * `voters`. Votes from non-voters are ignored.
 */
export function voteResult(voters: Iterable<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let total = 0
  let granted = 0
  let missing = 0
  for (const id of voters) {
    total++
    const v = votes.get(id)
    if (v === undefined) missing++
    else if (v) granted++
  }
  // An empty configuration has nobody to elect; it can never win.
  if (total === 0) return 'lost'
  const q = majority(total)
  if (granted >= q) return 'won'
  if (granted + missing >= q) return 'pending'
  return 'lost'
}
