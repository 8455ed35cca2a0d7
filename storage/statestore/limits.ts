// Bounds of the StateStore. Every replica must use the same values: they decide
// which commands are rejected and when history is evicted, so they are part of
// the replicated state machine's definition, not local tuning.

/** Longest key in UTF-8 bytes (etcd allows more; DNS-facing names never need it). */
export const KEY_MAX_BYTES = 512
/** Largest value in bytes; a container record is a few KiB, 512 KiB leaves room for config blobs. */
export const VALUE_MAX_BYTES = 512 * 1024
/** Most entries in each of a txn's compare, success and failure lists (etcd --max-txn-ops). */
export const TXN_MAX_OPS = 128
/** Shortest lease TTL; shorter would expire between two keep-alives of a healthy client. */
export const LEASE_TTL_MIN_MS = 1_000
/** Longest lease TTL; a session silent for an hour is gone. */
export const LEASE_TTL_MAX_MS = 3_600_000
/** Lease ids are positive safe integers (0 means "no lease", as etcd's NoLease). */
export const LEASE_ID_MAX = Number.MAX_SAFE_INTEGER
/** Longest origin (a libp2p peer id is ~52 chars). */
export const ORIGIN_MAX_CHARS = 128
/** Longest client request id. */
export const REQUEST_ID_MAX_CHARS = 128
/** Largest encoded command (etcd's default --max-request-bytes is 1.5 MiB). */
export const COMMAND_MAX_BYTES = 1_572_864
/**
 * Most key, prefix and value bytes one command may carry. The 64 KiB reserve
 * covers the envelope: at most 3 x 128 txn entries of well under 100 bytes each.
 */
export const COMMAND_MAX_PAYLOAD_BYTES = COMMAND_MAX_BYTES - 65_536
/** Most keys the store holds; a put that would create more is refused. */
export const STORE_MAX_KEYS = 1_000_000
/** Most live leases; a grant beyond it is refused. */
export const STORE_MAX_LEASES = 100_000

/** Default bound of the watch history ring, in revisions (older ones are compacted). */
export const HISTORY_MAX_REVISIONS = 10_000
/** Default bound of the watch history ring, in accounted bytes (see eventBytes). */
export const HISTORY_MAX_BYTES = 64 * 1024 * 1024
/** Default bound of the request-id dedup window, in requests. */
export const DEDUP_MAX_ENTRIES = 10_000
/** Default bound of the request-id dedup window, in encoded result bytes. */
export const DEDUP_MAX_BYTES = 16 * 1024 * 1024
/** Default bound of events buffered between two drainEvents() calls. */
export const PENDING_EVENTS_MAX = 100_000
/** Default most events eventsSince() collects before stopping at a revision boundary. */
export const WATCH_BATCH_MAX_EVENTS = 1_000

/** Accounting overhead per history event or dedup entry, so tiny entries still count. */
export const ENTRY_OVERHEAD_BYTES = 64

/** Version of the command wire format (first array element). */
export const COMMAND_FORMAT_VERSION = 1
/** Version of the snapshot format. */
export const SNAPSHOT_FORMAT_VERSION = 2
