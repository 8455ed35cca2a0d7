/**
 * One driver (issue 11): the decisions the daemon's drivers make live in shared cores that
 * node/ and simulations/ both run, so the simulator tests what users run. This guards the
 * parts shared so far: each is used on both sides, the simulator declares no copy of a bound
 * the daemon also declares, and simulations/ never imports node/.
 */
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { REPO } from '../helpers/processes.ts'

function sources(dir: string): Array<{ file: string; text: string }> {
  const out: Array<{ file: string; text: string }> = []
  for (const name of readdirSync(join(REPO, dir))) {
    const rel = `${dir}/${name}`
    if (statSync(join(REPO, rel)).isDirectory()) out.push(...sources(rel))
    else if (name.endsWith('.ts')) out.push({ file: rel, text: readFileSync(join(REPO, rel), 'utf8') })
  }
  return out
}

const DAEMON = [...sources('node'), ...sources('cli')]
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
  ['LeaderDuties', 'runtime/leader-duties.ts: autopilot and lost-marking'],
  ['LEAVE_VOTERS_TIMEOUT_MS', 'runtime/leader-duties.ts'],
  ['AgentLoop', 'runtime/agent/loop.ts: the host agent\'s driver'],
  ['SchedulerRounds', 'runtime/scheduler/loop.ts: the leader\'s scheduler driver'],
  ['ConvergeLoop', 'runtime/converge-loop.ts: container records converged on the engine'],
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
