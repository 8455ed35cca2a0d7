// End-of-run checks on what clients were told:
//
//   acknowledged-write-lost  every write a client heard `ok` for was applied at
//                            some index; once the cluster has recovered, its
//                            log must reach that index (a different entry
//                            there is caught online as state-machine safety)
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
