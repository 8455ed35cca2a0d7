/**
 * One driver (issue 11): the decisions the daemon's drivers make live in shared cores that
 * node/ and simulations/ both run, so the simulator tests what users run. This guards the
 * parts shared so far: each is used on both sides, the simulator declares no copy of a bound
 * the daemon also declares, and simulations/ never imports node/.
 */
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { REPO } from '../helpers/processes.ts'
import type { ConfState, Entry, HardState, Snapshot } from '../../protocols/raft/index.ts'
import { FileLogStorage } from '../../storage/raft-log/file-log-storage.ts'
import { openSnapshotStore } from '../../storage/snapshots/snapshot-store.ts'
import { SIM_SEGMENT_MAX_BYTES, SimDisk } from '../../simulations/disk.ts'

function sources(dir: string): Array<{ file: string; text: string }> {
  const out: Array<{ file: string; text: string }> = []
  for (const name of readdirSync(join(REPO, dir))) {
    const rel = `${dir}/${name}`
    if (statSync(join(REPO, rel)).isDirectory()) out.push(...sources(rel))
    else if (name.endsWith('.ts')) out.push({ file: rel, text: readFileSync(join(REPO, rel), 'utf8') })
  }
  return out
}

/** The daemon's drivers, and the adapter that runs the Raft log's jobs over real files. */
const DAEMON = [...sources('node'), ...sources('cli'), { file: 'storage/raft-log/file-log-storage.ts', text: readFileSync(join(REPO, 'storage/raft-log/file-log-storage.ts'), 'utf8') }]
const SIMULATOR = sources('simulations')

/** The shared cores and bounds, and where each lives. */
const SHARED: ReadonlyArray<[string, string]> = [
  ['PendingRequests', 'protocols/raft/requests.ts: proposals and ReadIndex reads waiting, retries, deadlines, outcomes'],
  ['PENDING_PROPOSALS_MAX', 'protocols/raft/requests.ts'],
  ['REQUEST_TIMEOUT_MS', 'protocols/raft/requests.ts'],
  ['RenewalRequests', 'storage/statestore/renewals.ts: lease renewals waiting on the leader'],
  ['renewAsLeader', 'storage/statestore/renewals.ts: the leader\'s confirmed answer'],
  ['RENEW_TIMEOUT_MS', 'storage/statestore/renewals.ts'],
  ['LeaseKeeper', 'storage/statestore/lease-keeper.ts: grants, expiry, owner-only renewals'],
  ['LEASE_EXPIRY_SCAN_MS', 'storage/statestore/lease-keeper.ts'],
  ['LeaseHolder', 'storage/statestore/lease-holder.ts: the holder\'s own deadline'],
  ['HeldLeases', 'storage/statestore/held-leases.ts: the leases a peer holds and when each is renewed'],
  ['SESSION_TICK_MS', 'storage/statestore/held-leases.ts'],
  ['WalLog', 'storage/raft-log/wal-log.ts: the Raft log on disk (FileLogStorage runs it over node:fs)'],
  ['LeaderDuties', 'runtime/leader-duties.ts: autopilot and lost-marking'],
  ['LeaveSequence', 'runtime/leave-sequence.ts: a graceful leave, step by step'],
  ['LEAVE_POLL_MS', 'runtime/leave-sequence.ts'],
  ['AgentLoop', 'runtime/agent/loop.ts: the host agent\'s driver'],
  ['SchedulerRounds', 'runtime/scheduler/loop.ts: the leader\'s scheduler driver'],
  ['ConvergeLoop', 'runtime/converge-loop.ts: container records converged on the engine'],
  ['nextHostSyncWrite', 'runtime/container-reconcile.ts: HostSync\'s next write (host record and containers)'],
  ['removeHostRecords', 'runtime/container-reconcile.ts: a graceful leave\'s write'],
]

function uses(files: ReadonlyArray<{ text: string }>, symbol: string): boolean {
  const word = new RegExp(`\\b${symbol}\\b`)
  return files.some((f) => word.test(f.text))
}

describe('one driver: what decides is shared by the daemon and the simulator', () => {
  it.each(SHARED)('%s is used by both (%s)', (symbol) => {
    expect(uses(DAEMON, symbol), `node/ or cli/ does not use ${symbol}`).toBe(true)
    expect(uses(SIMULATOR, symbol), `simulations/ does not use ${symbol}`).toBe(true)
  })

  it('the simulator declares none of the shared bounds itself (it imports them)', () => {
    const bounds = SHARED.map(([s]) => s).filter((s) => /^[A-Z_]+$/.test(s))
    for (const { file, text } of SIMULATOR) {
      for (const b of bounds) expect(new RegExp(`\\bconst ${b}\\s*=`).test(text), `${file} declares its own ${b}`).toBe(false)
    }
  })

  it('simulations/ never imports node/', () => {
    for (const { file, text } of SIMULATOR) expect(/from ['"][./]*\/node\//.test(text), `${file} imports node/`).toBe(false)
  })
})

describe('one driver, by behaviour: the Raft log', () => {
  const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
  const entry = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array(700).fill(index % 251) })
  const hs = (term: number, commit: number): HardState => ({ term, vote: 'a', commit })
  type Step =
    | { persist: { hardState?: HardState; entries: Entry[]; snapshot?: Snapshot; sync?: boolean } }
    | { snapshotAt: number }
    | { compact: number }
  const steps: Step[] = [
    ...Array.from({ length: 40 }, (_, i): Step => ({ persist: { hardState: hs(2, i + 1), entries: [entry(i + 2, 2)] } })),
    { persist: { hardState: hs(2, 41), entries: [], sync: false } },
    { snapshotAt: 30 },
    { compact: 25 },
    { persist: { hardState: hs(3, 41), entries: [entry(42, 3), entry(43, 3)] } },
    { persist: { entries: [], snapshot: { metadata: { index: 60, term: 4, confState: CONF }, data: new Uint8Array([6, 0]) }, hardState: hs(4, 60) } },
    ...Array.from({ length: 10 }, (_, i): Step => ({ persist: { hardState: hs(4, 60 + i), entries: [entry(61 + i, 4)] } })),
  ]

  it('the same batches leave the same bytes in the same files, through FileLogStorage and through the simulator', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-parity-'))
    try {
      const real = await FileLogStorage.open(dir, { snapshots: await openSnapshotStore(join(dir, 'state')), founding: CONF, bootstrapData: new Uint8Array([1]), segmentMaxBytes: SIM_SEGMENT_MAX_BYTES })
      const sim = SimDisk.founding(CONF, new Uint8Array([1]))
      sim.open()
      for (const step of steps) {
        if ('persist' in step) {
          await real.persist(step.persist)
          sim.runNow(sim.log.persist(step.persist))
        } else if ('snapshotAt' in step) {
          await real.createSnapshot(step.snapshotAt, CONF, new Uint8Array([3]))
          sim.runNow(sim.log.createSnapshot(step.snapshotAt, CONF, new Uint8Array([3])))
        } else {
          await real.compact(step.compact)
          sim.runNow(sim.log.compact(step.compact))
        }
      }
      await real.close()
      sim.stopCleanly()
      const simFiles = sim.fileBytes()
      const realNames = readdirSync(dir).filter((n) => n !== 'state').sort()
      expect(realNames).toEqual([...simFiles.keys()].sort())
      expect(realNames.filter((n) => n.startsWith('wal-')).length).toBeGreaterThan(1)
      for (const name of realNames) expect(new Uint8Array(readFileSync(join(dir, name))), name).toEqual(simFiles.get(name))
      const reopened = sim.open()
      expect([reopened.snapshot().metadata.index, reopened.lastIndex(), reopened.initialState().hardState]).toEqual([60, 70, hs(4, 69)])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
