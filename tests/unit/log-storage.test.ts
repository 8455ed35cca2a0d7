/**
 * One contract for every Raft LogStorage (memory for the simulator, files for the daemon),
 * then what only the file storage promises: recovery after restart, torn tails, corruption.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, rmSync, readdirSync, statSync, truncateSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryLogStorage, type Entry, type Snapshot, type ConfState } from '../../protocols/raft/index.ts'
import { FileLogStorage, LogCorruptionError, type FileLogStorageOptions } from '../../storage/raft-log/file-log-storage.ts'
import { encodeRecords, scanRecords } from '../../storage/raft-log/wal-record.ts'
import { TAIL_MARK_FILE } from '../../storage/raft-log/tail-mark.ts'
import { openSnapshotStore } from '../../storage/snapshots/snapshot-store.ts'

const dirs: string[] = []
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'shoal-log-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** Opens the file log in `dir` with its snapshots in a LevelDB beside the segments, as the daemon does. */
async function openLog(dir: string, options: Omit<FileLogStorageOptions, 'snapshots'> = {}): Promise<FileLogStorage> {
  return FileLogStorage.open(dir, { snapshots: await openSnapshotStore(join(dir, 'state')), ...options })
}

const CONF: ConfState = { voters: ['a'], learners: [] }
/** The one (active) segment of a small log. */
function segmentPath(dir: string): string {
  return join(dir, readdirSync(dir).filter((n) => /^wal-\d+\.log$/.test(n)).sort().at(-1)!)
}
function ents(from: number, to: number, term: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term, type: 'normal' as const, data: new TextEncoder().encode(`e${from + i}t${term}`) }))
}

/** The writes both storages support, behind one face. */
interface Writable {
  storage: MemoryLogStorage | FileLogStorage
  append(entries: Entry[]): Promise<void>
  snapshotAt(index: number, data: Uint8Array): Promise<void>
  compact(index: number): Promise<void>
  install(snap: Snapshot): Promise<void>
}

const implementations: Array<[string, () => Promise<Writable>]> = [
  ['MemoryLogStorage', async () => {
    const storage = new MemoryLogStorage({ confState: CONF })
    return {
      storage,
      append: async (e) => storage.append(e),
      snapshotAt: async (i, d) => void storage.createSnapshot(i, CONF, d),
      compact: async (i) => storage.compact(i),
      install: async (s) => void storage.applySnapshot(s),
    }
  }],
  ['FileLogStorage', async () => {
    const storage = await openLog(tmp(), { founding: CONF })
    return {
      storage,
      append: (e) => storage.persist({ entries: e }),
      snapshotAt: async (i, d) => void (await storage.createSnapshot(i, CONF, d)),
      compact: (i) => storage.compact(i),
      install: (s) => storage.persist({ entries: [], snapshot: s }),
    }
  }],
]

describe.each(implementations)('LogStorage contract: %s', (_name, make) => {
  it('starts with the founding snapshot at index 1', async () => {
    const w = await make()
    expect(w.storage.firstIndex()).toBe(2)
    expect(w.storage.lastIndex()).toBe(1)
    expect(w.storage.snapshot()?.metadata.confState).toEqual(CONF)
    expect(w.storage.initialState().hardState.commit).toBe(1)
  })

  it('appends, reads ranges cut to a byte budget, and answers terms', async () => {
    const w = await make()
    await w.append(ents(2, 10, 2))
    expect(w.storage.lastIndex()).toBe(10)
    expect(w.storage.entries(3, 6, Infinity).map((e) => e.index)).toEqual([3, 4, 5])
    expect(w.storage.entries(3, 6, 1).map((e) => e.index)).toEqual([3])
    expect(w.storage.term(1)).toBe(1)
    expect(w.storage.term(10)).toBe(2)
  })

  it('an append at index i replaces i and everything after it', async () => {
    const w = await make()
    await w.append(ents(2, 10, 2))
    await w.append(ents(6, 7, 3))
    expect(w.storage.lastIndex()).toBe(7)
    expect(w.storage.term(6)).toBe(3)
    expect(w.storage.term(5)).toBe(2)
  })

  it('snapshot then compaction keeps the term of the compaction point', async () => {
    const w = await make()
    await w.append(ents(2, 10, 2))
    await w.snapshotAt(8, new Uint8Array([8]))
    await w.compact(8)
    expect(w.storage.firstIndex()).toBe(9)
    expect(w.storage.term(8)).toBe(2)
    expect(w.storage.snapshot()?.metadata.index).toBe(8)
    expect(() => w.storage.entries(5, 9, Infinity)).toThrow()
  })

  it('an installed snapshot replaces the whole log', async () => {
    const w = await make()
    await w.append(ents(2, 10, 2))
    await w.install({ metadata: { index: 20, term: 4, confState: CONF }, data: new Uint8Array([20]) })
    expect(w.storage.firstIndex()).toBe(21)
    expect(w.storage.lastIndex()).toBe(20)
    expect(w.storage.initialState().hardState.commit).toBeGreaterThanOrEqual(20)
  })
})

describe('FileLogStorage recovery', () => {
  it('a reopened log has every persisted entry, the hard state and the membership', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 50, 2), hardState: { term: 2, vote: 'a', commit: 40 } })
    await a.persist({ entries: ents(30, 35, 3), hardState: { term: 3, vote: 'a', commit: 33 } })
    await a.close()
    const b = await openLog(dir)
    expect(b.lastIndex()).toBe(35)
    expect(b.term(29)).toBe(2)
    expect(b.term(30)).toBe(3)
    expect(b.initialState().hardState).toEqual({ term: 3, vote: 'a', commit: 33 })
    expect(b.initialState().confState).toEqual(CONF)
    expect(b.recovery.tornTail).toBeNull()
    expect(new TextDecoder().decode(b.entries(35, 36, Infinity)[0]!.data)).toBe('e35t3')
  })

  it('a torn last record is cut off, and appends continue after it', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 10, 2) })
    await a.close()
    const seg = segmentPath(dir)
    // The crash interrupted the next write: only part of its bytes reached the file.
    const interrupted = encodeRecords([{ kind: 'entry', entry: ents(11, 11, 2)[0]! }, { kind: 'hard-state', hardState: { term: 2, vote: 'a', commit: 11 } }])
    appendFileSync(seg, interrupted.subarray(0, interrupted.byteLength - 3))
    const b = await openLog(dir)
    expect(b.lastIndex()).toBe(11) // the write's complete first record stays: it was simply synced first
    expect(b.recovery.tornTail).not.toBeNull()
    expect(b.recovery.lostTail).toBeNull()
    expect(b.recovery.repairIndex).toBe(0)
    await b.persist({ entries: ents(11, 12, 3) })
    await b.close()
    const c = await openLog(dir)
    expect(c.lastIndex()).toBe(12)
    expect(c.term(11)).toBe(3)
    expect(c.recovery.tornTail).toBeNull()
    expect(c.recovery.lostTail).toBeNull()
  })

  it('a segment cut short in the middle is a lost tail, not a torn one, on a record boundary or not', async () => {
    for (const cut of ['mid-record', 'record boundary'] as const) {
      const dir = tmp()
      const a = await openLog(dir, { founding: CONF })
      await a.persist({ entries: ents(2, 100, 2), hardState: { term: 2, vote: 'a', commit: 90 } })
      const kept = statSync(segmentPath(dir)).size
      for (let i = 101; i <= 1000; i += 10) await a.persist({ entries: ents(i, i + 9, 3), hardState: { term: 3, vote: 'b', commit: i } })
      await a.close()
      // A disk that lost acknowledged writes (or a file restored from an old copy): most of the segment is gone.
      truncateSync(segmentPath(dir), cut === 'record boundary' ? kept : kept + 30)
      const b = await openLog(dir)
      expect(b.lastIndex(), cut).toBe(100)
      expect(b.recovery.lostTail, cut).toMatchObject({ expectedLastIndex: 1000, lastIndex: 100 })
      expect(b.recovery.lostTail!.foundBytes).toBeLessThan(b.recovery.lostTail!.expectedBytes)
      expect(b.recovery.repairIndex).toBe(1000)
      // The term and vote of the lost records are kept: a vote must never be cast twice in a term.
      expect(b.initialState().hardState).toEqual({ term: 3, vote: 'b', commit: 90 })
      await b.close()
    }
  })

  it('keeps the duty to repair across restarts until the log reaches the lost index again', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 20, 2) })
    const kept = statSync(segmentPath(dir)).size
    await a.persist({ entries: ents(21, 60, 2) })
    await a.close()
    truncateSync(segmentPath(dir), kept)
    const b = await openLog(dir)
    expect(b.recovery.repairIndex).toBe(60)
    await b.persist({ entries: ents(21, 70 - 30, 4) }) // copied back from a leader, partly
    await b.close()
    // The segment has regrown, but not to where it was: the duty is still on disk.
    const c = await openLog(dir)
    expect(c.recovery.lostTail).toBeNull()
    expect(c.recovery.repairIndex).toBe(60)
    await c.persist({ entries: ents(41, 65, 4) })
    expect(c.repairIndex).toBe(0)
    await c.close()
    const d = await openLog(dir)
    expect(d.recovery.repairIndex).toBe(0)
    expect(d.lastIndex()).toBe(65)
    await d.close()
  })

  it('remembers a loss the Raft core found at run time', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 20, 2) })
    a.markRepairNeeded(50) // a leader said entries through 50 are committed here
    a.markRepairNeeded(10) // already held: nothing to repair
    await a.close()
    const b = await openLog(dir)
    expect(b.recovery.repairIndex).toBe(50)
    await b.close()
  })

  it('a log written before the tail mark existed opens as before', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 30, 2) })
    await a.close()
    rmSync(join(dir, TAIL_MARK_FILE))
    truncateSync(segmentPath(dir), statSync(segmentPath(dir)).size - 3)
    const b = await openLog(dir)
    expect(b.lastIndex()).toBe(29)
    expect(b.recovery.lostTail).toBeNull()
    expect(b.recovery.repairIndex).toBe(0)
    await b.close()
  })

  it('damage before the tail refuses to start instead of serving a log with a hole', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 10, 2) })
    await a.close()
    const seg = join(dir, readdirSync(dir).find((n) => n.startsWith('wal-'))!)
    const original = readFileSync(seg)
    // Every byte of the segment but those of its last record, damaged one at a time: a payload
    // byte fails the record's CRC, a length byte fails the header's. None may pass as torn.
    const lastRecordStart = original.length - (12 + 17 + 'e10t2'.length)
    for (let at = 0; at < lastRecordStart; at += 7) {
      const bytes = Buffer.from(original)
      bytes[at]! ^= 0xff
      writeFileSync(seg, bytes)
      await expect(openLog(dir), `damage at byte ${at}`).rejects.toThrow(LogCorruptionError)
    }
    await expect(openLog(dir)).rejects.toThrow('Restore the data dir from a backup')
  })

  it('entries superseded by an installed snapshot do not come back on restart', async () => {
    const dir = tmp()
    const a = await openLog(dir)
    await a.persist({ entries: [], snapshot: { metadata: { index: 5, term: 1, confState: CONF }, data: new Uint8Array([5]) } })
    await a.persist({ entries: ents(6, 12, 2) }) // 9..12 never commit
    await a.persist({ entries: [], snapshot: { metadata: { index: 10, term: 3, confState: CONF }, data: new Uint8Array([10]) } })
    await a.persist({ entries: ents(11, 11, 3) })
    await a.close()
    const b = await openLog(dir)
    expect(b.firstIndex()).toBe(11)
    expect(b.lastIndex()).toBe(11)
    expect(b.term(11)).toBe(3)
    expect(b.snapshot().data).toEqual(new Uint8Array([10]))
  })

  it('compaction deletes old segments and a restart still recovers from the snapshot', async () => {
    const dir = tmp()
    const a = await openLog(dir, { founding: CONF, segmentMaxBytes: 512 })
    for (let i = 2; i <= 200; i += 10) await a.persist({ entries: ents(i, i + 9, 2), hardState: { term: 2, vote: 'a', commit: i + 9 } })
    const before = readdirSync(dir).filter((n) => n.startsWith('wal-')).length
    await a.createSnapshot(150, CONF, new Uint8Array([150]))
    await a.compact(150)
    const after = readdirSync(dir).filter((n) => n.startsWith('wal-')).length
    expect(after).toBeLessThan(before)
    await a.close()
    const b = await openLog(dir)
    expect(b.firstIndex()).toBe(151)
    expect(b.lastIndex()).toBe(201)
    expect(b.initialState().hardState.commit).toBe(201)
    expect(b.snapshot().data).toEqual(new Uint8Array([150]))
  })

  it('groups a batch into one sync', async () => {
    const a = await openLog(tmp(), { founding: CONF })
    const syncs = a.stats.syncs
    await a.persist({ entries: ents(2, 101, 2), hardState: { term: 2, vote: 'a', commit: 1 } })
    expect(a.stats.syncs - syncs).toBe(1)
  })

  it('writes a commit-only hard state with the next batch, or on close, never alone', async () => {
    const dir = tmp()
    /** The hard state a crash now would recover: the last one in the segments on disk. */
    const onDisk = () => readdirSync(dir).filter((n) => n.startsWith('wal-')).sort()
      .flatMap((n) => scanRecords(readFileSync(join(dir, n))).records)
      .filter((r) => r.kind === 'hard-state').at(-1)
    const a = await openLog(dir, { founding: CONF })
    await a.persist({ entries: ents(2, 5, 2), hardState: { term: 2, vote: 'a', commit: 1 } })
    const bytes = a.stats.bytesWritten
    await a.persist({ entries: [], hardState: { term: 2, vote: 'a', commit: 5 }, sync: false })
    expect(a.stats.bytesWritten, 'a commit-only Ready costs no disk trip').toBe(bytes)
    expect(a.initialState().hardState.commit).toBe(5)
    // A crash now keeps the older commit index: harmless (the leader sends it again).
    expect(onDisk()).toMatchObject({ hardState: { term: 2, vote: 'a', commit: 1 } })
    // The next batch carries it.
    await a.persist({ entries: ents(6, 6, 2) })
    expect(onDisk()).toMatchObject({ hardState: { term: 2, vote: 'a', commit: 5 } })
    await a.persist({ entries: [], hardState: { term: 2, vote: 'a', commit: 6 }, sync: false })
    expect(onDisk()).toMatchObject({ hardState: { commit: 5 } })
    // A clean close writes the last one.
    await a.close()
    const b = await openLog(dir)
    expect(b.initialState().hardState).toEqual({ term: 2, vote: 'a', commit: 6 })
    expect(b.lastIndex()).toBe(6)
  })
})
