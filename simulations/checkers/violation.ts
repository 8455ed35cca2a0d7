// What a checker reports. Online checkers throw a ViolationError at the first
// breach, which ends the run there (TigerBeetle-style: the trace stops at the
// bug); end-of-run checkers return their findings as a list.

/** Every checker's name, as reports and tests match on it. */
export type CheckerName =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'commit-agreement'
  | 'core-assertion'
  | 'acknowledged-write-lost'
  | 'phantom-read'
  | 'replica-divergence'
  | 'linearizability'
  | 'liveness'
  | 'lock-safety'
  | 'container-records'
  | 'service-convergence'
  | 'slot-uniqueness'
  | 'task-placement'
  | 'rolling-update-bounds'

/** One breach of a property. */
export interface Violation {
  readonly checker: CheckerName
  /** Simulated time of the breach (µs), or of the end of the run for end-of-run checks. */
  readonly atUs: number
  readonly message: string
}

/** Thrown by online checkers to stop the run at the first breach. */
export class ViolationError extends Error {
  override readonly name = 'ViolationError'
  readonly violation: Violation

  constructor(violation: Violation) {
    super(`${violation.checker}: ${violation.message}`)
    this.violation = violation
  }
}
