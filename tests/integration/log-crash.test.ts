/**
 * kill -9 of a process in the middle of persisting: every batch whose persist() had
 * resolved (and so could have been acknowledged to a leader) is there after restart.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NODE, REPO } from '../helpers/processes.ts'
import { FileLogStorage } from '../../storage/raft-log/file-log-storage.ts'

const dir = mkdtempSync(join(tmpdir(), 'shoal-crash-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const WRITER = `
import { FileLogStorage } from ${JSON.stringify(join(REPO, 'storage/raft-log/file-log-storage.ts'))}
const log = await FileLogStorage.open(process.argv[2], { founding: { voters: ['a'], learners: [] } })
let next = log.lastIndex() + 1
for (;;) {
  const batch = Array.from({ length: 1 + (next % 7) }, (_, i) => ({ index: next + i, term: 2, type: 'normal', data: new Uint8Array(200).fill((next + i) % 251) }))
  await log.persist({ entries: batch, hardState: { term: 2, vote: 'a', commit: next } })
  next += batch.length
  process.stdout.write(String(next - 1) + '\\n')
}
`

describe('FileLogStorage under kill -9', () => {
  it('keeps every acknowledged batch across three crashes', async () => {
    const script = join(dir, 'writer.ts')
    writeFileSync(script, WRITER)
    const logDir = join(dir, 'log')
    for (let round = 0; round < 3; round++) {
      const acked = await new Promise<number>((resolve) => {
        const child = spawn(NODE, [script, logDir], { stdio: ['ignore', 'pipe', 'inherit'] })
        let last = 0
        let buffer = ''
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString()
          const lines = buffer.split('\n')
          buffer = lines.pop() ?? ''
          for (const l of lines) last = Number(l)
          if (last > (round + 1) * 300) child.kill('SIGKILL')
        })
        child.on('exit', () => resolve(last))
      })
      const log = await FileLogStorage.open(logDir)
      expect(log.lastIndex()).toBeGreaterThanOrEqual(acked)
      const check = log.entries(Math.max(2, acked - 50), acked + 1, Infinity)
      for (const e of check) expect(e.data[0]).toBe(e.index % 251)
      await log.close()
    }
  })
})
