// Runs many seeds, in parallel on worker threads (one per core by default) or
// in this thread. Results come back in completion order; callers that need a
// stable order (the combined digest) sort them by job index. Not part of the
// deterministic core: it only decides where a seed runs, never how.

import { Worker } from 'node:worker_threads'
import { runSeed, type Injection, type RunResult } from '../simulations/run.ts'
import type { Violation } from '../simulations/checkers/violation.ts'

/** One seed of one scenario to run. */
export interface Job {
  readonly index: number
  readonly scenario: string
  readonly nodes: number
  readonly seed: number
  readonly inject: readonly Injection[]
  /** Accept keys the linearizability search left undecided (RunOptions.allowInconclusive; default false). */
  readonly allowInconclusive?: boolean
}

/** What comes back from a job (a RunResult without its trace). */
export interface JobResult {
  readonly index: number
  readonly scenario: string
  readonly seed: number
  readonly digest: string
  readonly simulatedUs: number
  /** Wall time the run took in its thread (ms). */
  readonly wallMs: number
  readonly violations: readonly Violation[]
  readonly stats: RunResult['stats']
}

/** Messages from a worker. */
export type WorkerReply = { readonly type: 'result'; readonly result: JobResult } | { readonly type: 'idle' } | { readonly type: 'error'; readonly message: string }

/** Jobs handed to a worker at once: large enough to amortise messaging, small enough to balance the load. */
const BATCH_JOBS = 4

/** Runs one job in this thread. */
export function runJob(job: Job): JobResult {
  const started = performance.now()
  const r = runSeed({ scenario: job.scenario, nodes: job.nodes, seed: job.seed, inject: job.inject, allowInconclusive: job.allowInconclusive })
  return { index: job.index, scenario: r.scenario, seed: r.seed, digest: r.digest, simulatedUs: r.simulatedUs, wallMs: performance.now() - started, violations: r.violations, stats: r.stats }
}

/** Runs `jobs` on `workers` threads (1: in this thread), calling `onResult` as each finishes. */
export async function runJobs(jobs: readonly Job[], workers: number, onResult: (r: JobResult) => void): Promise<JobResult[]> {
  const results: JobResult[] = []
  if (workers <= 1 || jobs.length <= 1) {
    for (const job of jobs) {
      const r = runJob(job)
      results.push(r)
      onResult(r)
      // Let a progress bar repaint between seeds.
      await new Promise((resolve) => setImmediate(resolve))
    }
    return results
  }
  let next = 0
  const threads = Math.min(workers, Math.ceil(jobs.length / BATCH_JOBS))
  await Promise.all(Array.from({ length: threads }, () => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL('./simulate-worker.ts', import.meta.url))
    const feed = (): void => {
      if (next >= jobs.length) {
        void worker.terminate().then(() => resolve())
        return
      }
      const batch = jobs.slice(next, next + BATCH_JOBS)
      next += batch.length
      worker.postMessage(batch)
    }
    worker.on('message', (reply: WorkerReply) => {
      if (reply.type === 'result') {
        results.push(reply.result)
        onResult(reply.result)
      } else if (reply.type === 'idle') {
        feed()
      } else {
        void worker.terminate()
        reject(new Error(reply.message))
      }
    })
    worker.on('error', reject)
    feed()
  })))
  return results
}
