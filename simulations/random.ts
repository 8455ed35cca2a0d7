// Seeded randomness for the simulator. One run seed is split into independent
// named streams (network, disk, workload, faults, each node's election jitter),
// so a draw added to one concern never shifts another's sequence: a new
// workload operation does not move the partitions a seed produces (VOPR does
// the same with its per-concern PRNGs).

import { mulberry32 } from '../protocols/prng.ts'

/** A deterministic random stream. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [0, n); n must be a positive integer. */
  int(n: number): number
  /** Uniform integer in [lo, hi] (inclusive). */
  between(lo: number, hi: number): number
  /** True with probability p. */
  chance(p: number): boolean
  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T
  /** The items in a uniformly random order (a new array). */
  shuffle<T>(items: readonly T[]): T[]
}

/** A stream over mulberry32 seeded with `seed`. */
export function createRng(seed: number): Rng {
  const next = mulberry32(seed)
  const int = (n: number): number => {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int: ${n} is not a positive integer`)
    return Math.floor(next() * n)
  }
  return {
    next,
    int,
    between: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => p > 0 && next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new RangeError('Rng.pick: empty array')
      return items[int(items.length)] as T
    },
    shuffle: <T>(items: readonly T[]): T[] => {
      const out = [...items]
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(i + 1)
        const t = out[i] as T
        out[i] = out[j] as T
        out[j] = t
      }
      return out
    },
  }
}

/**
 * The seed of stream `name` under run seed `seed`: FNV-1a of the name, mixed
 * with the seed through murmur3's finaliser so nearby seeds give unrelated streams.
 */
export function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193)
  h = (h ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** The independent stream `name` of run seed `seed`. */
export function stream(seed: number, name: string): Rng {
  return createRng(streamSeed(seed, name))
}
