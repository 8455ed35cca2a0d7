// Leases in the simulator: each node runs the daemon's own bookkeeping
// (storage/statestore/lease-keeper.ts, which node/sessions.ts runs too); only
// the lease timer's period is the simulator's to mirror.

/** How often the lease timer runs (sessions.ts EXPIRY_SCAN_MS). */
export const LEASE_TIMER_MS = 1000
