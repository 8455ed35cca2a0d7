/**
 * Extra event loops for DNS over UDP: worker threads that each hold their own Zone and bind
 * every UDP listen address with SO_REUSEPORT, so the kernel spreads datagrams over them (by
 * a hash of the client's address and port). Measured: one Node loop spends about 1.5x
 * dnsmasq's CPU per query, nearly all of it in dgram receive/send rather than in the zone
 * (README.md "Speed"), so more loops are the only way to more queries per second.
 *
 * The server rebuilds from the StateStore and posts the same records to every worker, which
 * rebuilds its own table (a table of Maps and byte arrays would cost as much to clone as to
 * build). Each worker posts its counters every STATS_INTERVAL_MS and once more when stopped.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { Forwarder, type ForwarderOptions, type ForwarderStats } from './forwarder.ts'
import { UdpListeners, type ListenAddress, type UdpStats } from './udp.ts'
import { Zone, type ZoneCounters, type ZoneOptions } from './zone.ts'
import type { ZoneRecords } from './zone-build.ts'

/** How often a worker reports its counters. */
const STATS_INTERVAL_MS = 500

interface WorkerInit {
  readonly kind: 'shoal-dns-worker'
  readonly zone: ZoneOptions
  readonly records: ZoneRecords
  readonly addresses: readonly ListenAddress[]
  readonly forward: ForwarderOptions | null
}

type ToWorker = { readonly type: 'load'; readonly records: ZoneRecords } | { readonly type: 'stop' }

/** Counters one worker reports. */
export interface WorkerStats {
  readonly zone: ZoneCounters
  readonly udp: UdpStats
  readonly forward: ForwarderStats | null
}

type FromWorker =
  | { readonly type: 'listening' }
  | { readonly type: 'failed'; readonly message: string; readonly code: string | undefined }
  | { readonly type: 'stats'; readonly stats: WorkerStats }

/** Error raised when a worker cannot listen; `code` is the bind error's (EADDRINUSE, ...). */
export class DnsWorkerError extends Error {
  override readonly name = 'DnsWorkerError'
  readonly code: string | undefined
  constructor(message: string, code: string | undefined) {
    super(message)
    this.code = code
  }
}

/** The worker threads serving UDP; created and driven by the server. */
export class UdpWorkers {
  readonly #workers: Worker[] = []
  readonly #stats = new Map<Worker, WorkerStats>()

  /** Starts `count` workers listening on `addresses` (ports already chosen); rejects if any cannot bind. */
  async start(count: number, zone: ZoneOptions, records: ZoneRecords, addresses: readonly ListenAddress[], forward: ForwarderOptions | null): Promise<void> {
    const init: WorkerInit = { kind: 'shoal-dns-worker', zone, records, addresses, forward }
    const started = Array.from({ length: count }, () => {
      const worker = new Worker(new URL(import.meta.url), { workerData: init })
      this.#workers.push(worker)
      return new Promise<void>((resolve, reject) => {
        worker.on('message', (m: FromWorker) => {
          if (m.type === 'listening') resolve()
          else if (m.type === 'failed') reject(new DnsWorkerError(m.message, m.code))
          else this.#stats.set(worker, m.stats)
        })
        worker.once('error', reject)
        worker.once('exit', (code) => reject(new Error(`DNS worker exited with code ${code} before listening`)))
      })
    })
    try {
      await Promise.all(started)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Hands freshly read records to every worker. */
  load(records: ZoneRecords): void {
    for (const w of this.#workers) w.postMessage({ type: 'load', records } satisfies ToWorker)
  }

  /** The last counters of every worker. */
  stats(): WorkerStats[] {
    return [...this.#stats.values()]
  }

  /** Stops every worker after its final counters arrive. */
  async stop(): Promise<void> {
    const workers = this.#workers.splice(0)
    await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
      w.once('exit', () => resolve())
      w.postMessage({ type: 'stop' } satisfies ToWorker)
    })))
  }
}

async function runWorker(init: WorkerInit): Promise<void> {
  const port = parentPort
  if (port === null) return
  const zone = new Zone(init.zone)
  zone.load(init.records)
  const forwarder = init.forward === null ? null : new Forwarder(init.forward)
  const udp = new UdpListeners(() => zone, forwarder)
  const report = (): void => port.postMessage({ type: 'stats', stats: { zone: { ...zone.counters }, udp: { ...udp.stats }, forward: forwarder === null ? null : { ...forwarder.stats } } } satisfies FromWorker)
  try {
    await forwarder?.start()
    for (const address of init.addresses) await udp.listen(address, true)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    port.postMessage({ type: 'failed', message: e.message, code: e.code } satisfies FromWorker)
    await udp.close()
    await forwarder?.stop()
    port.close()
    return
  }
  const timer = setInterval(report, STATS_INTERVAL_MS)
  port.on('message', (m: ToWorker) => {
    if (m.type === 'load') {
      zone.load(m.records)
      return
    }
    clearInterval(timer)
    report()
    void Promise.all([udp.close(), forwarder?.stop()]).then(() => port.close())
  })
  port.postMessage({ type: 'listening' } satisfies FromWorker)
}

const init = workerData as WorkerInit | null
if (!isMainThread && init?.kind === 'shoal-dns-worker') void runWorker(init)
