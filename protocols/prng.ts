// One seeded PRNG for the daemon's cores and the tests that drive them. The cores never draw
// randomness themselves: they get a `() => number` built from this, seeded by the OS in the
// daemon and by the test or simulator seed elsewhere, so a seed replays exactly.

/** mulberry32: a fast 32-bit PRNG, uniform in [0, 1); good enough to spread timeouts and probe order. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
