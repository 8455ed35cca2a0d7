/**
 * The I/O the Raft log asks for, as values. The log's decisions (wal-log.ts) are written as
 * generators that yield these requests and receive their results, so one body of code runs
 * over two file systems: the daemon's (node-log-fs.ts, real files, async where the disk is
 * slow) and the simulator's (a file system that loses unsynced writes and tears the last one
 * at a crash), which completes each request at a simulated time of its choosing.
 *
 * Names are plain file names inside the log's directory; the executor owns the directory, and
 * the snapshot store beside it (its requests are the snapshot jobs', snapshot-jobs.ts).
 */
import type { SnapshotIo } from '../snapshots/snapshot-jobs.ts'

/** One request to the file system or the snapshot store. */
export type LogIo =
  /** Creates the directory if needed. → void */
  | { readonly op: 'mkdir' }
  /** Names in the directory. → string[] */
  | { readonly op: 'list' }
  /** A whole file, or null when it does not exist. → Uint8Array | null */
  | { readonly op: 'read'; readonly name: string }
  /** Cuts a file to `length` bytes. → void */
  | { readonly op: 'truncate'; readonly name: string; readonly length: number }
  /** Creates the file if absent (its directory entry is durable only after sync-dir). → void */
  | { readonly op: 'create'; readonly name: string }
  /** Makes `name` the file `append` writes to (creating it), closing the previous one. → void */
  | { readonly op: 'open-append'; readonly name: string }
  /** One write at the end of the append file, on stable storage when it completes (O_DSYNC). → void */
  | { readonly op: 'append'; readonly bytes: Uint8Array }
  /** Writes at an offset into a page cache; with `sync`, waits for the disk too. → void */
  | { readonly op: 'write-at'; readonly name: string; readonly offset: number; readonly bytes: Uint8Array; readonly sync: boolean }
  | { readonly op: 'unlink'; readonly name: string }
  /** fsync of the directory: created and deleted entries survive a power cut from here on. → void */
  | { readonly op: 'sync-dir' }
  /** Closes every file the executor holds open. → void */
  | { readonly op: 'close' }
  /** The snapshot store's key-value requests (storage/snapshots/snapshot-jobs.ts). */
  | SnapshotIo

/** A piece of the log's work: yields I/O requests, gets their results back, returns T. */
export type LogJob<T> = Generator<LogIo, T, unknown>

/** Carries out one request: at once (a value) or later (a thenable, in the daemon). Errors are thrown into the job. */
export type LogIoExecutor = (io: LogIo) => unknown

/** Runs a job whose every request the executor answers at once; a promise is a bug. */
export function runLogJobNow<T>(job: LogJob<T>, execute: LogIoExecutor): T {
  let step = job.next()
  while (step.done !== true) {
    let result: unknown
    try {
      result = execute(step.value)
      if (typeof (result as { then?: unknown } | null)?.then === 'function') throw new Error(`log I/O '${step.value.op}' cannot complete synchronously here`)
    } catch (err) {
      step = job.throw(err)
      continue
    }
    step = job.next(result)
  }
  return step.value
}

// Typed requests: each yields one LogIo and returns its result under the type the table above promises.

export function* ioDo(io: LogIo): LogJob<void> {
  yield io
}
export function* ioList(): LogJob<string[]> {
  return (yield { op: 'list' }) as string[]
}
export function* ioRead(name: string): LogJob<Uint8Array | null> {
  return (yield { op: 'read', name }) as Uint8Array | null
}
