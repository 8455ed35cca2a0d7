/**
 * The StateStore is a deciding core (DESIGN.md, "The one rule"): no clock,
 * randomness, timers, I/O, Buffer or Promises, so every replica and the
 * simulator compute the same state. The shared purity suite does not list this
 * folder, so this one guards it with the same patterns and a few more.
 */
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO } from '../helpers/processes.ts'

const DIR = 'storage/statestore'
const FILES = readdirSync(join(REPO, DIR)).filter((f) => f.endsWith('.ts')).map((f) => `${DIR}/${f}`)
const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\b/, 'a clock (Date)'],
  [/\bperformance\.now\b/, 'a clock (performance.now)'],
  [/\bMath\.random\b/, 'unseeded randomness'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'a timer'],
  [/from ['"]node:/, 'a node: import'],
  [/\bcrypto\b/, 'crypto'],
  [/\bBuffer\b/, 'Buffer (use Uint8Array)'],
  [/\basync\b|\bawait\b|\bPromise\b/, 'asynchrony'],
  [/\bprocess\./, 'the process environment'],
  [/:\s*any\b|\bas any\b|<any>/, 'the any type'],
  [/from ['"]\.\.\//, 'an import from outside the core'],
]

describe('the StateStore core is pure', () => {
  it('has files to check', () => {
    expect(FILES.length).toBeGreaterThan(10)
  })

  it.each(FILES)('%s', (file) => {
    const source = readFileSync(join(REPO, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '')
    for (const [pattern, what] of FORBIDDEN) {
      expect(pattern.test(source), `${file} uses ${what}`).toBe(false)
    }
  })
})
