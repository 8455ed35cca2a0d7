/**
 * The host agent's driver timing and its in-flight bookkeeping, shared by the daemon's driver
 * (node/task-agent.ts) and the simulator's, so both run exactly one rule: an action's key
 * stays busy while it runs and, for an engine operation, until the runtime's view shows that
 * operation's own effect (or TASK_AGENT_SETTLE_MS passes). Freeing it on any other container's
 * event let a burst run one task several times. Pure: time comes in as `nowMs`.
 */
import type { Container } from '../../storage/statestore/index.ts'
import { actionKey, type AgentAction } from './agent.ts'

/** Steps at least this often, for back-off and drain deadlines. */
export const TASK_AGENT_TICK_MS = 1000
/** A burst of changes within this window is one step. */
export const TASK_AGENT_DEBOUNCE_MS = 20
/** Engine operations at a time (each may wait out a stop grace). */
export const TASK_AGENT_ENGINE_CONCURRENCY = 4
/** Task-state writes at a time. */
export const TASK_AGENT_KV_CONCURRENCY = 8
/** Longest an engine operation's key waits for the runtime to show its effect. */
export const TASK_AGENT_SETTLE_MS = 5000
/** Actions waiting for a free slot; more are dropped and decided again by a later step. */
export const TASK_AGENT_QUEUE_MAX = 1024

/** Whether `containers` (the runtime's view) already shows what `a` did. */
export function actionShown(a: AgentAction, containers: readonly Container[]): boolean {
  switch (a.kind) {
    case 'run':
      return containers.some((c) => c.name === a.spec.name)
    case 'start':
      return containers.some((c) => c.id === a.containerId && c.state === 'running')
    case 'stop':
      return !containers.some((c) => c.id === a.containerId && c.state === 'running')
    case 'remove':
      return !containers.some((c) => c.id === a.containerId)
    case 'report':
    case 'unreport':
      return true
  }
}

/** The keys of actions in flight (what the core's `busy` input is). */
export class InFlight {
  /** Handed to the core as AgentInput.busy. */
  readonly busy = new Set<string>()
  private readonly settling = new Map<string, { atMs: number; action: AgentAction }>()

  begin(a: AgentAction): void {
    this.busy.add(actionKey(a))
  }

  /** `a` finished; `awaitEffect`: an engine operation that succeeded, whose effect the runtime must show before it may be decided again. */
  finished(a: AgentAction, awaitEffect: boolean, containers: readonly Container[], nowMs: number): void {
    const key = actionKey(a)
    if (awaitEffect && !actionShown(a, containers)) this.settling.set(key, { atMs: nowMs, action: a })
    else this.busy.delete(key)
  }

  /** The runtime's view changed: operations whose effect it now shows are free again. */
  runtimeChanged(containers: readonly Container[]): void {
    for (const [key, s] of this.settling) {
      if (actionShown(s.action, containers)) {
        this.settling.delete(key)
        this.busy.delete(key)
      }
    }
  }

  /** Frees operations whose effect never showed within TASK_AGENT_SETTLE_MS: a later step decides again. */
  expire(nowMs: number): void {
    for (const [key, s] of this.settling) {
      if (nowMs - s.atMs >= TASK_AGENT_SETTLE_MS) {
        this.settling.delete(key)
        this.busy.delete(key)
      }
    }
  }
}
