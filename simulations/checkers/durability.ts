// End-of-run checks on what clients were told:
//
//   acknowledged-write-lost  every write a client heard `ok` for was applied at
//                            some index; once the cluster has recovered, its
//                            log must reach that index (a different entry
//                            there is caught online as state-machine safety);
//                            a run that ends without a leader is held to what
//                            keeps the write alive through the next election:
//                            a majority of the voters hold it on disk
//   phantom-read             every value a read returned was written by an
//                            operation invoked before the read returned, and
//                            not one that certainly failed
//   replica-divergence       replicas that applied the same index hold
//                            byte-identical StateStores

import type { KvOp } from '../history.ts'
import { describeOp } from '../history.ts'
import { formatTime } from '../trace.ts'
import type { Violation } from './violation.ts'

/** Acknowledged writes whose index the recovered cluster never reached. */
export function checkAcknowledgedWrites(ops: readonly KvOp[], recoveredIndex: number, atUs: number): Violation[] {
  const out: Violation[] = []
  for (const op of ops) {
    if (op.kind === 'get' || op.kind === 'cget' || op.outcome !== 'ok' || op.index === null) continue
    if (op.index > recoveredIndex) {
      out.push({
        checker: 'acknowledged-write-lost',
        atUs,
        message: `${op.client} was told ${describeOp(op)} succeeded (applied at index ${op.index} on ${op.node} at ${formatTime(op.returnUs)}), but the recovered cluster's log ends at ${recoveredIndex}`,
      })
    }
  }
  return out
}

/** One voter's disk at the end of a run. */
export interface DurableReplica {
  readonly id: string
  /** The last log index a restart of it would find (log or snapshot), synced records only. */
  readonly durableIndex: number
}

/**
 * Acknowledged writes not durable on a majority of `voters` (the latest committed
 * configuration), for a run that ends without a leader, where no commit index can be trusted.
 *
 * Why a majority of disks: a write is acknowledged once committed, i.e. fsynced by a majority,
 * and committed entries are never truncated; the next leader needs the votes of a majority,
 * and a voter refuses a candidate whose log is behind its own, so the write survives every
 * election exactly as long as some majority holds it. Fewer than that and an election can
 * elect a leader without it: the write is lost even if no leader exists yet to overwrite it.
 * A node's memory does not count (a power loss takes it), nor does a non-voter's disk. Like
 * the leader path, this compares indexes only: a different entry at the index is a
 * state-machine-safety breach, caught online once it is applied.
 */
export function checkAcknowledgedWritesDurable(ops: readonly KvOp[], voters: readonly DurableReplica[], atUs: number): Violation[] {
  const majority = Math.floor(voters.length / 2) + 1
  const out: Violation[] = []
  for (const op of ops) {
    if (op.kind === 'get' || op.kind === 'cget' || op.outcome !== 'ok' || op.index === null) continue
    const index = op.index
    const holders = voters.filter((v) => v.durableIndex >= index)
    if (holders.length >= majority) continue
    out.push({
      checker: 'acknowledged-write-lost',
      atUs,
      message: `${op.client} was told ${describeOp(op)} succeeded (applied at index ${index} on ${op.node} at ${formatTime(op.returnUs)}), but the run ended without a leader and only ${holders.length} of the ${voters.length} voters (${voters.map((v) => `${v.id}: ${v.durableIndex}`).join(', ')}) hold index ${index} on disk, fewer than the majority of ${majority} the next election needs`,
    })
  }
  return out
}

/** Reads that returned a value nobody could have written. */
export function checkNoPhantomReads(ops: readonly KvOp[], atUs: number): Violation[] {
  const writers = new Map<string, KvOp>()
  for (const op of ops) {
    if ((op.kind === 'put' || op.kind === 'cas') && op.value !== null) writers.set(`${op.key}\u0000${op.value}`, op)
  }
  const out: Violation[] = []
  for (const op of ops) {
    if ((op.kind !== 'get' && op.kind !== 'cget') || op.outcome !== 'ok' || op.read === null) continue
    const writer = writers.get(`${op.key}\u0000${op.read}`)
    let why: string | null = null
    if (writer === undefined) why = 'no client ever wrote it'
    else if (writer.invokeUs > op.returnUs) why = `its write was only invoked at ${formatTime(writer.invokeUs)}`
    else if (writer.outcome === 'fail') why = `its write (${describeOp(writer)} via ${writer.node}) was refused`
    if (why !== null) {
      out.push({ checker: 'phantom-read', atUs, message: `${op.client} ${describeOp(op)} via ${op.node} at ${formatTime(op.returnUs)}, but ${why}` })
    }
  }
  return out
}

/** Replicas (id, applied index, store digest) that applied the same index but hold different state. */
export function checkReplicasAgree(replicas: ReadonlyArray<{ readonly id: string; readonly applied: number; readonly digest: string }>, atUs: number): Violation[] {
  const byIndex = new Map<number, { id: string; digest: string }>()
  const out: Violation[] = []
  for (const r of replicas) {
    const first = byIndex.get(r.applied)
    if (first === undefined) byIndex.set(r.applied, { id: r.id, digest: r.digest })
    else if (first.digest !== r.digest) {
      out.push({ checker: 'replica-divergence', atUs, message: `${first.id} and ${r.id} both applied index ${r.applied} but their StateStores differ (${first.digest} vs ${r.digest})` })
    }
  }
  return out
}
