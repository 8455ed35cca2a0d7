// The storage contract the Raft core reads through; it lives with the log's storage.
export type { InitialState, LogStorage } from '../../storage/raft-log/log-storage.ts'
