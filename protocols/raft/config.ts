// Configuration of a Raft peer: every bound the core enforces, with its
// default, and the validation that turns a RaftConfig into settled values.

import type { LogStorage } from './storage.ts'
import { invariant, type NodeId } from './types.ts'

/** Default bound on the entry bytes of one append message. */
export const DEFAULT_MAX_SIZE_PER_MSG_BYTES = 1024 * 1024
/** Default bound on append messages in flight to one follower. */
export const DEFAULT_MAX_INFLIGHT_MSGS = 256
/** Default bound on the payload bytes of the leader's uncommitted tail. */
export const DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES = 64 * 1024 * 1024
/** Default bound on ReadIndex requests waiting on one leader. */
export const DEFAULT_MAX_PENDING_READ_INDEX_REQUESTS = 4096
/** Default snapshot retry, in election timeouts, when the driver never reports a snapshot's fate. */
export const DEFAULT_SNAPSHOT_TIMEOUT_ELECTIONS = 20

/**
 * Test-only switches that break the core on purpose, so that tests can prove
 * the simulator's checkers catch the bug (a checker that never fails proves
 * nothing). All off by default; never set them outside tests.
 */
export interface RaftTestingFaults {
  /** Count a vote granted in an older term toward the current election (a classic Raft bug). */
  readonly countStaleTermVotes?: boolean
}

/** Configuration of one Raft peer. */
export interface RaftConfig {
  /** This peer's id. */
  readonly id: NodeId
  /** The persisted log this peer restarts from. */
  readonly storage: LogStorage
  /** Ticks without a leader before a follower campaigns; the actual timeout is random in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number
  /** Ticks between leader heartbeats; must be < electionTicks. */
  readonly heartbeatTicks: number
  /** Uniform random number in [0, 1): the only source of randomness (election jitter, thesis §3.4). */
  readonly random: () => number
  /** Last index the state machine has applied (survives restarts); defaults to the snapshot index. */
  readonly applied?: number
  /** Run a pre-vote round before campaigning (thesis §9.6). Default true. */
  readonly preVote?: boolean
  /** Leader steps down without a quorum of recent contact; followers with a live leader ignore votes (thesis §6.2, §4.2.3). Default true. */
  readonly checkQuorum?: boolean
  /** Bound on the entry bytes of one append message (at least one entry is always sent). */
  readonly maxSizePerMsgBytes?: number
  /** Bound on append messages in flight to one follower in replicate state. */
  readonly maxInflightMsgs?: number
  /** Bound on payload bytes in flight to one follower; default unbounded (only maxInflightMsgs). */
  readonly maxInflightBytes?: number
  /** Bound on the payload bytes of the leader's uncommitted tail; proposals beyond it are refused. */
  readonly maxUncommittedEntriesBytes?: number
  /** Bound on committed-entry bytes handed out in one Ready; default maxSizePerMsgBytes * maxInflightMsgs. */
  readonly maxCommittedBytesPerReady?: number
  /** Bound on ReadIndex requests a leader holds unconfirmed. */
  readonly maxPendingReadIndexRequests?: number
  /** Ticks a follower may stay in snapshot state before the leader retries; default 20 election timeouts. */
  readonly snapshotTimeoutTicks?: number
  /** Refuse (rather than forward to the leader) proposals, reads and transfers made on a follower. */
  readonly disableProposalForwarding?: boolean
  /** Test-only broken variants (see RaftTestingFaults); default: none. */
  readonly testingFaults?: RaftTestingFaults
  /**
   * The log lost entries through this index after this peer may have acknowledged them
   * (storage found its tail cut short): it must not vote or campaign until its log reaches
   * this index again from a leader. 0 (default): nothing lost.
   */
  readonly repairIndex?: number
}

/** A RaftConfig with every default filled in and every bound checked. */
export interface ResolvedConfig {
  readonly id: NodeId
  readonly storage: LogStorage
  readonly electionTicks: number
  readonly heartbeatTicks: number
  readonly random: () => number
  readonly applied: number | undefined
  readonly preVote: boolean
  readonly checkQuorum: boolean
  readonly maxSizePerMsgBytes: number
  readonly maxInflightMsgs: number
  readonly maxInflightBytes: number
  readonly maxUncommittedEntriesBytes: number
  readonly maxCommittedBytesPerReady: number
  readonly maxPendingReadIndexRequests: number
  readonly snapshotTimeoutTicks: number
  readonly disableProposalForwarding: boolean
  readonly testingFaults: RaftTestingFaults
  readonly repairIndex: number
}

/** Fills in defaults and checks bounds; an invalid configuration is a bug (RaftInvariantError). */
export function resolveConfig(config: RaftConfig): ResolvedConfig {
  const maxSizePerMsgBytes = config.maxSizePerMsgBytes ?? DEFAULT_MAX_SIZE_PER_MSG_BYTES
  const maxInflightMsgs = config.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT_MSGS
  const resolved: ResolvedConfig = {
    id: config.id,
    storage: config.storage,
    electionTicks: config.electionTicks,
    heartbeatTicks: config.heartbeatTicks,
    random: config.random,
    applied: config.applied,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    maxSizePerMsgBytes,
    maxInflightMsgs,
    maxInflightBytes: config.maxInflightBytes ?? Infinity,
    maxUncommittedEntriesBytes: config.maxUncommittedEntriesBytes ?? DEFAULT_MAX_UNCOMMITTED_ENTRIES_BYTES,
    maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? maxSizePerMsgBytes * maxInflightMsgs,
    maxPendingReadIndexRequests: config.maxPendingReadIndexRequests ?? DEFAULT_MAX_PENDING_READ_INDEX_REQUESTS,
    snapshotTimeoutTicks: config.snapshotTimeoutTicks ?? DEFAULT_SNAPSHOT_TIMEOUT_ELECTIONS * config.electionTicks,
    disableProposalForwarding: config.disableProposalForwarding ?? false,
    testingFaults: config.testingFaults ?? {},
    repairIndex: config.repairIndex ?? 0,
  }
  invariant(resolved.id.length > 0, 'id must not be empty')
  invariant(Number.isInteger(resolved.heartbeatTicks) && resolved.heartbeatTicks > 0, 'heartbeatTicks must be > 0')
  invariant(
    Number.isInteger(resolved.electionTicks) && resolved.electionTicks > resolved.heartbeatTicks,
    'electionTicks must be > heartbeatTicks',
  )
  invariant(resolved.maxSizePerMsgBytes > 0, 'maxSizePerMsgBytes must be > 0')
  invariant(Number.isInteger(resolved.maxInflightMsgs) && resolved.maxInflightMsgs > 0, 'maxInflightMsgs must be > 0')
  invariant(resolved.maxInflightBytes > 0, 'maxInflightBytes must be > 0')
  invariant(resolved.maxUncommittedEntriesBytes > 0, 'maxUncommittedEntriesBytes must be > 0')
  invariant(resolved.maxCommittedBytesPerReady > 0, 'maxCommittedBytesPerReady must be > 0')
  invariant(resolved.maxPendingReadIndexRequests > 0, 'maxPendingReadIndexRequests must be > 0')
  invariant(resolved.snapshotTimeoutTicks > 0, 'snapshotTimeoutTicks must be > 0')
  invariant(Number.isSafeInteger(resolved.repairIndex) && resolved.repairIndex >= 0, 'repairIndex must be a non-negative integer')
  return resolved
}
