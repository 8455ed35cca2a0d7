// The StateStore core: replicated keyspace, leases, watches, locks and typed
// records. Pure and synchronous; see store.ts for how a driver uses it.

export * from './commands.ts'
export * from './codec.ts'
export * from './kv.ts'
export * from './limits.ts'
export * from './options.ts'
export * from './pending.ts'
export * from './results.ts'
export * from './store.ts'
export * from './lease-clock.ts'
export * from './lease-holder.ts'
export * from './lease-keeper.ts'
export * from './locks.ts'
export * from './records.ts'
export { validateCommand, envelopeError, keyError, prefixError, isValidOrigin, isValidRequestId, isValidLeaseId } from './validate.ts'
export { compareKeys, utf8ByteLength } from './keys.ts'
export { fnv1a64 } from './hash.ts'
