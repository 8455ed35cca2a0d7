/**
 * When a DNS-over-TCP connection must be closed, and who may open one: pure (times come in as
 * numbers), so the rules are tested without sockets. RFC 7766 §6.2 asks servers to protect
 * their connection slots: limit connections per client (§6.2.2) and close connections that
 * hold a slot without using it (§6.2.3). An idle timer that any byte resets does not: a client
 * that sends one byte every few seconds holds its slot for ever. So here nothing but a
 * complete message counts as activity, a message must arrive whole within a deadline from its
 * first byte, and a connection lives at most so long in total.
 */

/** The time limits of a connection, in ms. */
export interface TcpTimeouts {
  /** No complete message for this long since the last one (or the accept): closed. */
  readonly idleTimeoutMs: number
  /** A message must arrive whole within this long of its first byte. */
  readonly messageTimeoutMs: number
  /** Closed this long after the accept whatever it does; clients reconnect (RFC 7766 §6.2.3). */
  readonly connectionAgeMaxMs: number
}

/** What the timers of one connection depend on, in ms of a monotonic clock. */
export interface ConnectionTimes {
  readonly acceptedAtMs: number
  /** When the last complete message arrived; the accept time before the first. */
  readonly lastMessageAtMs: number
  /** When the first byte of a message not yet complete arrived; null when none is pending. */
  readonly partialSinceMs: number | null
}

/** Why a connection was closed by its timers. */
export type TcpCloseReason = 'idle' | 'slow-message' | 'age'

/** The next time the connection must be closed, and why (the earliest of its limits). */
export function connectionDeadline(times: ConnectionTimes, limits: TcpTimeouts): { readonly atMs: number; readonly reason: TcpCloseReason } {
  const candidates: Array<{ atMs: number; reason: TcpCloseReason }> = [
    { atMs: times.acceptedAtMs + limits.connectionAgeMaxMs, reason: 'age' },
    { atMs: times.lastMessageAtMs + limits.idleTimeoutMs, reason: 'idle' },
  ]
  if (times.partialSinceMs !== null) candidates.push({ atMs: times.partialSinceMs + limits.messageTimeoutMs, reason: 'slow-message' })
  return candidates.reduce((a, b) => (b.atMs < a.atMs ? b : a))
}

/**
 * The times after `bytes` arrived at `nowMs`: `completed` messages were read whole and
 * `partialLeft` says whether bytes of another are still waiting for the rest.
 */
export function afterData(times: ConnectionTimes, nowMs: number, completed: number, partialLeft: boolean): ConnectionTimes {
  const lastMessageAtMs = completed > 0 ? nowMs : times.lastMessageAtMs
  // A partial message that was already pending and is still pending keeps its start time;
  // one that began in these bytes starts now.
  const partialSinceMs = !partialLeft ? null : completed === 0 && times.partialSinceMs !== null ? times.partialSinceMs : nowMs
  return { acceptedAtMs: times.acceptedAtMs, lastMessageAtMs, partialSinceMs }
}

/** Why a new connection is refused, or null when it is admitted. */
export function admissionProblem(openTotal: number, openFromClient: number, limits: { readonly connectionsMax: number; readonly connectionsPerClientMax: number }): 'full' | 'client-full' | null {
  if (openTotal >= limits.connectionsMax) return 'full'
  if (openFromClient >= limits.connectionsPerClientMax) return 'client-full'
  return null
}

/** The client a connection counts against: its address, IPv4-mapped IPv6 written as IPv4. */
export function clientOf(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return ''
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice('::ffff:'.length) : remoteAddress
}
