/**
 * kill -9 of a process in the middle of persisting: every batch whose persist() had
 * resolved (and so could have been acknowledged to a leader) is there after restart, and so
 * is a snapshot, though the writer snapshots and compacts all along (snapshots live in
 * LevelDB, segments in files: the crash may fall between the two).
 */
import { describe, it, expect, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NODE, REPO } from '../helpers/processes.ts'
import { FileLogStorage } from '../../storage/raft-log/file-log-storage.ts'
import { openSnapshotStore } from '../../storage/snapshots/snapshot-store.ts'

const dir = mkdtempSync(join(tmpdir(), 'shoal-crash-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const WRITER = `
import { FileLogStorage } from ${JSON.stringify(join(REPO, 'storage/raft-log/file-log-storage.ts'))}
import { openSnapshotStore } from ${JSON.stringify(join(REPO, 'storage/snapshots/snapshot-store.ts'))}
const dir = process.argv[2]
const log = await FileLogStorage.open(dir, { snapshots: await openSnapshotStore(dir + '/state'), founding: { voters: ['a'], learners: [] }, segmentMaxBytes: 16384 })
let next = log.lastIndex() + 1
let snapped = log.snapshot().metadata.index
for (;;) {
  const batch = Array.from({ length: 1 + (next % 7) }, (_, i) => ({ index: next + i, term: 2, type: 'normal', data: new Uint8Array(200).fill((next + i) % 251) }))
  await log.persist({ entries: batch, hardState: { term: 2, vote: 'a', commit: next + batch.length - 1 } })
  next += batch.length
  process.stdout.write(String(next - 1) + '\\n')
  if (next - 1 - snapped >= 40) {
    snapped = next - 11
    // The state at an index is a function of it, so the reader can check any snapshot it finds.
    await log.createSnapshot(snapped, { voters: ['a'], learners: [] }, new Uint8Array(3000).fill(snapped % 251))
    await log.compact(snapped)
  }
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
      const log = await FileLogStorage.open(logDir, { snapshots: await openSnapshotStore(join(logDir, 'state')) })
      expect(log.lastIndex()).toBeGreaterThanOrEqual(acked)
      // A crash tears at most the write in flight: never taken for a log that lost acknowledged entries.
      expect(log.recovery.lostTail).toBeNull()
      expect(log.recovery.repairIndex).toBe(0)
      const snap = log.snapshot()
      expect(snap.metadata.index).toBeGreaterThan(acked - 70) // snapshots every ~40 entries; the crash may beat the newest
      expect(snap.data.every((b) => b === snap.metadata.index % 251)).toBe(true)
      expect(log.firstIndex()).toBe(snap.metadata.index + 1)
      const check = log.entries(Math.max(log.firstIndex(), acked - 50), acked + 1, Infinity)
      for (const e of check) expect(e.data[0]).toBe(e.index % 251)
      await log.close()
    }
  })
})
