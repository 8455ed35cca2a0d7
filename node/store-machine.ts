/** The StateStore as the Raft driver's replicated state machine. */
import { StateStore, decodeCommand, encodeCommand, type ApplyResult, type Command } from '../storage/statestore/index.ts'
import type { ReplicatedStateMachine } from './raft-node.ts'

/** The proposal key the driver matches applied entries by: origin and request id. */
export function proposalKey(origin: string, requestId: string): string {
  return `${origin}/${requestId}`
}

/**
 * Bytes encoded between two turns of the event loop while a snapshot is taken in the
 * background: a few milliseconds of work, far below the 50 ms tick.
 */
const SNAPSHOT_SLICE_BYTES = 256 * 1024

export class StoreMachine implements ReplicatedStateMachine {
  private current = new StateStore()
  /** Called after every applied command (watch fan-out). */
  onApplied: () => void = () => undefined
  /** Called with each decoded command and its result (lease mirroring). */
  onCommand: (command: Command, result: ApplyResult) => void = () => undefined
  /** Called after a snapshot replaced the whole store. */
  onRestored: () => void = () => undefined
  /** Forwarded proposals refused by vetting (undecodable), for `status`. */
  refusedForwarded = 0

  /** The live store; replaced wholesale when a snapshot is installed. */
  get store(): StateStore {
    return this.current
  }

  apply(index: number, data: Uint8Array): { key: string | null; result: ApplyResult } {
    const decoded = decodeCommand(data)
    const result = this.current.applyEntry(index, data)
    if (decoded.ok) this.onCommand(decoded.command, result)
    this.onApplied()
    return { key: decoded.ok ? proposalKey(decoded.command.origin, decoded.command.requestId) : null, result }
  }

  applyNoop(index: number): void {
    this.current.applyNoop(index)
  }

  /**
   * A follower can only speak for itself: the origin of what it forwards becomes the
   * authenticated sender, and it may not claim the leader's authority (asLeader).
   */
  authorizeForwarded(from: string, data: Uint8Array): Uint8Array | null {
    const decoded = decodeCommand(data)
    if (!decoded.ok) {
      this.refusedForwarded++
      return null
    }
    const { asLeader: _dropped, ...rest } = decoded.command
    return encodeCommand({ ...rest, origin: from })
  }

  snapshot(): Uint8Array {
    return this.current.snapshot()
  }

  /**
   * Encodes the store as of now a slice at a time, letting the event loop run between slices:
   * the same bytes as snapshot(), without holding Raft's and SWIM's timers for the seconds a
   * 100 MB store takes (issue 17 §5). Encoding stays on this thread: handing the image to a
   * worker would copy every value first, a stall of its own.
   */
  async snapshotInBackground(signal: AbortSignal): Promise<Uint8Array | null> {
    const encoder = this.current.snapshotEncoder()
    for (;;) {
      if (signal.aborted) return null
      const bytes = encoder.step(SNAPSHOT_SLICE_BYTES)
      if (bytes !== null) return bytes
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  restore(data: Uint8Array, index: number): void {
    const restored = StateStore.restore(data)
    if (!restored.ok) throw new Error(`snapshot at index ${index} does not restore: ${restored.message}`)
    this.current = restored.store
    this.onRestored()
  }
}
