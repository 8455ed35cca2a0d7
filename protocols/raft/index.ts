// Public surface of the pure Raft core.

export { RaftCore, type Ready, type RaftCoreConfig, type RaftStatus, type ProgressStatus } from './core.ts'
export {
  DEFAULT_MAX_INFLIGHT_MSGS,
  DEFAULT_MAX_PENDING_READ_INDEX_REQUESTS,
  DEFAULT_MAX_SIZE_PER_MSG_BYTES,
  DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES,
  DEFAULT_SNAPSHOT_TIMEOUT_ELECTIONS,
  type RaftConfig,
} from './config.ts'
export {
  BOOTSTRAP_INDEX,
  BOOTSTRAP_TERM,
  MemoryLogStorage,
  bootstrapHardState,
  bootstrapSnapshot,
  type MemoryLogStorageInit,
} from '../../storage/raft-log/memory-log-storage.ts'
export type { LogStorage, InitialState } from './storage.ts'
export {
  decodeConfChange,
  encodeConfChange,
  validateConfChange,
  type ConfChange,
  type ConfChangeRejection,
} from './conf-change.ts'
export type {
  ProposalRejection,
  ProposeResult,
  ReadIndexRejection,
  ReadIndexResult,
  StepResult,
  TransferRejection,
  TransferResult,
} from './results.ts'
export { FORWARDED_TERM, isForwardedRequest, isResponse, type Message, type MessageType } from './messages.ts'
export type * from './messages.ts'
export {
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  ENTRY_OVERHEAD_BYTES,
  RaftInvariantError,
  bytesEqual,
  entryBytes,
  entryEqual,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type LogLossEvent,
  type NodeId,
  type ProposedEntry,
  type ReadState,
  type Role,
  type Snapshot,
  type SnapshotMetadata,
  type SoftState,
} from './types.ts'
export { PENDING_PROPOSALS_MAX, PENDING_READS_MAX, REQUEST_TIMEOUT_MS, PendingRequests, type AdmitRefusal, type PendingRequestsInit, type ProposalEnd, type ReadEnd } from './requests.ts'
