// Helpers for tests and the simulator: a driver that numbers entries and
// request ids, so a scenario reads as a list of requests.

import type { Command, Request } from './commands.ts'
import type { ApplyResult } from './results.ts'
import { StateStore } from './store.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** UTF-8 bytes of `s`. */
export function text(s: string): Uint8Array {
  return encoder.encode(s)
}

/** `bytes` read as UTF-8. */
export function readText(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

/** Who proposes a command in a test, and as what. */
export interface ProposeOptions {
  readonly origin?: string
  readonly asLeader?: boolean
  readonly requestId?: string
  /** The command's base (default: the store's applied index, as a real proposer's); null: none, as entries from before it. */
  readonly base?: number | null
}

/** Applies requests to a store as consecutive log entries with fresh request ids. */
export class StoreDriver {
  /** The store being driven. */
  store: StateStore
  /** Default origin of commands. */
  readonly origin: string
  #nextRequest = 1

  constructor(store: StateStore = new StateStore(), origin = 'peerA') {
    this.store = store
    this.origin = origin
  }

  /** The command `run` would apply for `request`. */
  command(request: Request, options: ProposeOptions = {}): Command {
    return {
      origin: options.origin ?? this.origin,
      requestId: options.requestId ?? `req-${this.#nextRequest++}`,
      ...(options.asLeader === true ? { asLeader: true } : {}),
      request,
      ...(options.base === null ? {} : { base: options.base ?? this.store.appliedIndex }),
    }
  }

  /** Applies `request` at the next index. */
  run(request: Request, options: ProposeOptions = {}): ApplyResult {
    return this.apply(this.command(request, options))
  }

  /** Applies a prepared command at the next index. */
  apply(cmd: Command): ApplyResult {
    return this.store.apply(this.store.appliedIndex + 1, cmd)
  }

  /** Puts a UTF-8 value. */
  put(key: string, value: string, options: ProposeOptions & { readonly lease?: number } = {}): ApplyResult {
    return this.run({ type: 'put', key, value: text(value), ...(options.lease !== undefined ? { lease: options.lease } : {}) }, options)
  }

  /** Deletes a key. */
  del(key: string, options: ProposeOptions = {}): ApplyResult {
    return this.run({ type: 'delete', key }, options)
  }

  /** The UTF-8 value at `key`, or null. */
  value(key: string): string | null {
    const kv = this.store.get(key)
    return kv ? readText(kv.value) : null
  }
}
