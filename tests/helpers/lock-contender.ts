/**
 * One contender for a data dir's lock, for the lock race test: waits until the start time
 * given (so every contender calls acquire at the same instant), tries once, prints `lost …`, or
 * holds a winning lock for a moment and prints `won FROM TO` (epoch ms), then releases it.
 *   node lock-contender.ts DIR START_EPOCH_MS HOLD_MS
 */
import { acquireDataDirLock } from '../../node/data-dir.ts'

const [dir, startAt, holdMs] = process.argv.slice(2)
if (dir === undefined || startAt === undefined || holdMs === undefined) throw new Error('usage: lock-contender.ts DIR START_EPOCH_MS HOLD_MS')
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())))
try {
  const release = await acquireDataDirLock(dir)
  const from = Date.now()
  await new Promise((r) => setTimeout(r, Number(holdMs)))
  // Printed before the release, so the interval covers the whole time the lock was held.
  process.stdout.write(`won ${from} ${Date.now()}\n`)
  release()
} catch (err) {
  process.stdout.write(`lost ${err instanceof Error ? err.message : String(err)}\n`)
}
