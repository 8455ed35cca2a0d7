// The pure rules that close DNS-over-TCP connections and admit new ones (RFC 7766 §6.2).
import { describe, it, expect } from 'vitest'
import { admissionProblem, afterData, clientOf, connectionDeadline, type ConnectionTimes } from '../../protocols/dns/tcp-limits.ts'

const LIMITS = { idleTimeoutMs: 10_000, messageTimeoutMs: 2_000, connectionAgeMaxMs: 60_000 }
const fresh: ConnectionTimes = { acceptedAtMs: 0, lastMessageAtMs: 0, partialSinceMs: null }

describe('connectionDeadline', () => {
  it('a silent connection closes at the idle timeout', () => {
    expect(connectionDeadline(fresh, LIMITS)).toEqual({ atMs: 10_000, reason: 'idle' })
  })

  it('one byte every few seconds does not move the deadline: the message must finish by its own', () => {
    let t = afterData(fresh, 1_000, 0, true)
    expect(connectionDeadline(t, LIMITS)).toEqual({ atMs: 3_000, reason: 'slow-message' })
    t = afterData(t, 2_500, 0, true)
    expect(connectionDeadline(t, LIMITS)).toEqual({ atMs: 3_000, reason: 'slow-message' })
  })

  it('a complete message resets idleness; the rest of a next one starts its own deadline', () => {
    const whole = afterData(fresh, 5_000, 1, false)
    expect(whole).toEqual({ acceptedAtMs: 0, lastMessageAtMs: 5_000, partialSinceMs: null })
    expect(connectionDeadline(whole, LIMITS)).toEqual({ atMs: 15_000, reason: 'idle' })
    const withTail = afterData(fresh, 5_000, 2, true)
    expect(withTail.partialSinceMs).toBe(5_000)
    expect(connectionDeadline(withTail, LIMITS)).toEqual({ atMs: 7_000, reason: 'slow-message' })
  })

  it('a busy connection still ends at its maximum age', () => {
    const busy = afterData(fresh, 59_000, 1, false)
    expect(connectionDeadline(busy, LIMITS)).toEqual({ atMs: 60_000, reason: 'age' })
  })
})

describe('admissionProblem', () => {
  const limits = { connectionsMax: 256, connectionsPerClientMax: 16 }
  it('refuses when the server or the client is at its bound', () => {
    expect(admissionProblem(0, 0, limits)).toBeNull()
    expect(admissionProblem(255, 15, limits)).toBeNull()
    expect(admissionProblem(256, 0, limits)).toBe('full')
    expect(admissionProblem(100, 16, limits)).toBe('client-full')
  })

  it('counts an IPv4 client the same over IPv4 and IPv4-mapped IPv6', () => {
    expect(clientOf('::ffff:127.0.0.2')).toBe('127.0.0.2')
    expect(clientOf('127.0.0.2')).toBe('127.0.0.2')
    expect(clientOf('::1')).toBe('::1')
  })
})
