// A worker thread of the pool: runs the jobs it is sent, answering each with
// its result, then says it is idle. Not part of the deterministic core.

import { parentPort } from 'node:worker_threads'
import { runJob, type Job, type WorkerReply } from './simulate-pool.ts'

const port = parentPort
if (port === null) throw new Error('cli/simulate-worker.ts runs only as a worker thread')
port.on('message', (jobs: readonly Job[]) => {
  try {
    for (const job of jobs) port.postMessage({ type: 'result', result: runJob(job) } satisfies WorkerReply)
    port.postMessage({ type: 'idle' } satisfies WorkerReply)
  } catch (err) {
    port.postMessage({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies WorkerReply)
  }
})
