/**
 * The deciding cores must stay pure (DESIGN.md, "The one rule"): no clock, randomness, timers,
 * I/O or Promises, so the simulator can drive them deterministically. This guards it.
 */
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { REPO } from '../helpers/processes.ts'

const CORES = [
  'protocols/gossip/failure-detector.ts',
  'protocols/gossip/suspicion.ts',
  'protocols/gossip/swim-codec.ts',
  'protocols/prng.ts',
  ...(existsSync(join(REPO, 'protocols/raft')) ? readdirSync(join(REPO, 'protocols/raft')).filter((f) => f.endsWith('.ts') && !/transport|adapter/.test(f)).map((f) => `protocols/raft/${f}`) : []),
]
const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\b/, 'a clock (Date)'],
  [/\bperformance\.now\b/, 'a clock (performance.now)'],
  [/\bMath\.random\b/, 'unseeded randomness'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'a timer'],
  [/from ['"]node:/, 'a node: import'],
  [/\bcrypto\./, 'crypto'],
  [/\basync\b|\bawait\b|\bPromise\b/, 'asynchrony'],
]

describe('deciding cores are pure', () => {
  it.each(CORES)('%s', (file) => {
    const source = readFileSync(join(REPO, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '')
    for (const [pattern, what] of FORBIDDEN) {
      expect(pattern.test(source), `${file} uses ${what}`).toBe(false)
    }
  })
})
