/**
 * How long taking a Raft snapshot of a large StateStore holds a peer's event loop (issue 17 §5):
 * the store as a peer's StoreMachine holds it (VALUES values of VALUE_BYTES bytes, ~100 MB
 * encoded, history included), snapshotted as RaftNode did before (one synchronous encode) and
 * as it does now (capture, then 256 KiB slices between turns of the loop). The figure is the
 * longest gap between two turns of the loop (what node/event-loop-monitor.ts reports as delayMaxMs).
 *
 *   node bench/snapshot-stall.ts [--values 7000] [--value-bytes 7000]
 */
import { parseArgs } from 'node:util'
import { StoreMachine } from '../node/store-machine.ts'
import { encodeCommand } from '../storage/statestore/codec.ts'

const { values: args } = parseArgs({ options: { values: { type: 'string', default: '7000' }, 'value-bytes': { type: 'string', default: '7000' } } })
const VALUES = Number(args.values)
const VALUE_BYTES = Number(args['value-bytes'])

const machine = new StoreMachine()
const value = new Uint8Array(VALUE_BYTES).fill(120)
for (let i = 0; i < VALUES; i++) {
  machine.apply(i + 1, encodeCommand({ origin: 'bench', requestId: `r${i}`, request: { type: 'put', key: `big/${String(i).padStart(6, '0')}`, value } }))
}

/** Runs `work` while a 5 ms timer samples the loop; returns the longest gap between its turns and the wall time. */
async function measure(work: () => Promise<Uint8Array | null>): Promise<{ stallMs: number; wallMs: number; bytes: number }> {
  let last = performance.now()
  let stallMs = 0
  const probe = setInterval(() => {
    const now = performance.now()
    stallMs = Math.max(stallMs, now - last)
    last = now
  }, 5)
  await new Promise((r) => setTimeout(r, 50))
  stallMs = 0
  const started = performance.now()
  const bytes = await work()
  const wallMs = performance.now() - started
  // One more turn, so a stall at the very end is sampled too.
  await new Promise((r) => setTimeout(r, 20))
  clearInterval(probe)
  return { stallMs, wallMs, bytes: bytes?.byteLength ?? 0 }
}

const signal = new AbortController().signal
for (let round = 1; round <= 2; round++) {
  const before = await measure(async () => machine.snapshot())
  const after = await measure(() => machine.snapshotInBackground(signal))
  // (Between rounds the garbage of the last one is collected, outside either measurement.)
  await new Promise((r) => setTimeout(r, 500))
  console.log(`round ${round}: ${(before.bytes / 1e6).toFixed(1)} MB snapshot — synchronous encode (before): longest stall ${before.stallMs.toFixed(0)} ms, ${before.wallMs.toFixed(0)} ms in all; ` +
    `sliced in the background (after): longest stall ${after.stallMs.toFixed(0)} ms, ${after.wallMs.toFixed(0)} ms in all`)
}
