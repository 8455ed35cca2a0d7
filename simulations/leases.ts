// Leases in the simulator: each node runs the daemon's own bookkeeping
// (storage/statestore/lease-keeper.ts, which node/sessions.ts runs too), on
// the daemon's own expiry-scan period.

export { LEASE_EXPIRY_SCAN_MS as LEASE_TIMER_MS } from '../storage/statestore/index.ts'
