/**
 * The deciding cores must stay pure (DESIGN.md, "The one rule"): no clock, randomness, timers,
 * I/O or Promises, so the simulator can drive them deterministically. This guards it.
 * The StateStore is held to a stricter rule set: every replica must compute byte-identical
 * state, so it also avoids Buffer, the process environment, `any` and imports from outside.
 */
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { REPO } from '../helpers/processes.ts'

function tsFiles(dir: string, exclude: RegExp = /$^/): string[] {
  return existsSync(join(REPO, dir)) ? readdirSync(join(REPO, dir)).filter((f) => f.endsWith('.ts') && !exclude.test(f)).map((f) => `${dir}/${f}`) : []
}

const CORES = [
  'protocols/gossip/failure-detector.ts',
  'protocols/gossip/suspicion.ts',
  'protocols/gossip/swim-codec.ts',
  'protocols/prng.ts',
  'runtime/container-reconcile.ts',
  'runtime/converge-loop.ts',
  'runtime/leave-sequence.ts',
  'runtime/leader-duties.ts',
  'protocols/piece-reader.ts',
  'node/container-views.ts',
  'runtime/docker-mapping.ts',
  'runtime/docker-task-config.ts',
  'protocols/dns/names.ts',
  'protocols/dns/wire.ts',
  'protocols/dns/zone-build.ts',
  'protocols/dns/zone.ts',
  'runtime/dns-records.ts',
  'protocols/dns/tcp-limits.ts',
  'protocols/pnet/keystream.ts',
  // Links (issue 13): endpoints, sources, targets, addresses; and the serving rule they share with DNS.
  'runtime/serving.ts',
  ...tsFiles('runtime/links'),
  ...tsFiles('protocols/raft', /transport|adapter/),
  // The link protocol's codec and instance order (issue 13); its I/O lives in node/link-forwarder.ts.
  ...tsFiles('protocols/link'),
  // The scheduler core (issue 12): it runs unchanged on the leader and in the simulator.
  ...tsFiles('runtime/scheduler'),
  // The host agent's core (issue 12): every peer runs it, and so does the simulator.
  ...tsFiles('runtime/agent'),
  // The Raft log's decisions and codecs (the simulator runs them over its own file system); only
  // file-log-storage.ts and fs-util.ts touch real files.
  ...tsFiles('storage/raft-log', /^(file-log-storage|fs-util)\.ts$/),
  // The snapshot store's layout and decisions (its Datastore adapter is snapshot-store.ts).
  'storage/snapshots/snapshot-jobs.ts',
  // The simulator, all of it (its worker-thread runner lives in cli/).
  ...tsFiles('simulations'),
  ...tsFiles('simulations/checkers'),
]
const STATESTORE = tsFiles('storage/statestore')

const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\b/, 'a clock (Date)'],
  [/\bperformance\.now\b/, 'a clock (performance.now)'],
  [/\bMath\.random\b/, 'unseeded randomness'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'a timer'],
  [/from ['"]node:/, 'a node: import'],
  [/\bcrypto\./, 'crypto'],
  [/\basync\b|\bawait\b|\bPromise\b/, 'asynchrony'],
]
const STATESTORE_FORBIDDEN: Array<[RegExp, string]> = [
  ...FORBIDDEN,
  [/\bcrypto\b/, 'crypto'],
  [/\bBuffer\b/, 'Buffer (use Uint8Array)'],
  [/\bprocess\./, 'the process environment'],
  [/:\s*any\b|\bas any\b|<any>/, 'the any type'],
  [/from ['"]\.\.\//, 'an import from outside the core'],
]

function check(file: string, rules: Array<[RegExp, string]>): void {
  const source = readFileSync(join(REPO, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
  for (const [pattern, what] of rules) {
    expect(pattern.test(source), `${file} uses ${what}`).toBe(false)
  }
}

describe('deciding cores are pure', () => {
  it.each(CORES)('%s', (file) => check(file, FORBIDDEN))
})

describe('the StateStore core is pure', () => {
  it('has files to check', () => {
    expect(STATESTORE.length).toBeGreaterThan(10)
  })
  it.each(STATESTORE)('%s', (file) => check(file, STATESTORE_FORBIDDEN))
})

/**
 * What a core imports runs inside it: a helper that reads the clock would make the core read it
 * too. So the closure of the cores' value imports (type-only imports vanish at run time) is held
 * to the rules that keep a run deterministic, however deep: no clock read, timer, randomness or
 * I/O. (A file listed above is checked there. Reached edges such as MemoryRuntime implement
 * async interfaces whose promises settle in order, and Date.parse or new Date(ms) only convert.)
 */
const REACHED_FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\.now\b|new Date\(\s*\)/, 'a clock (Date.now or new Date())'],
  ...FORBIDDEN.filter(([, what]) => what !== 'a clock (Date)' && what !== 'asynchrony'),
]

function valueImports(file: string): string[] {
  const source = readFileSync(join(REPO, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
  const out: string[] = []
  for (const m of source.matchAll(/^(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm)) {
    const target = m[1]
    if (target !== undefined) out.push(normalize(join(dirname(file), target)))
  }
  return out
}

function importClosure(roots: readonly string[]): string[] {
  const seen = new Set<string>(roots)
  const queue = [...roots]
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const next of valueImports(file)) {
      if (seen.has(next)) continue
      seen.add(next)
      queue.push(next)
    }
  }
  return [...seen].sort()
}

const REACHED = importClosure([...CORES, ...STATESTORE]).filter((f) => !CORES.includes(f) && !STATESTORE.includes(f))

describe('what the cores import is pure too', () => {
  it('the closure is found (the cores import shared helpers)', () => {
    expect(valueImports('runtime/scheduler/loop.ts')).toContain('storage/statestore/index.ts')
    expect(valueImports('protocols/raft/index.ts')).toContain('protocols/raft/requests.ts')
  })
  it.each(REACHED.length > 0 ? REACHED : ['(none)'])('%s', (file) => {
    if (file !== '(none)') check(file, REACHED_FORBIDDEN)
  })
})
