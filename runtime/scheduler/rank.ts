/**
 * Ranking (nomad's `rank.go`, swarmkit's spread by task count): among feasible hosts, the
 * fewest instances of this service first (spread), then the fewest instances overall (least
 * loaded), then the host id, so the same inputs always give the same choice. Pure.
 */
import type { SchedHost, Usage } from './feasible.ts'

/** Orders candidates best first. */
export function rankHosts(service: string, candidates: readonly SchedHost[], usage: Usage): SchedHost[] {
  return [...candidates].sort((a, b) =>
    usage.countOf(service, a.id) - usage.countOf(service, b.id) ||
    usage.load(a.id) - usage.load(b.id) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** The best candidate, or undefined when there is none. */
export function bestHost(service: string, candidates: readonly SchedHost[], usage: Usage): SchedHost | undefined {
  return rankHosts(service, candidates, usage)[0]
}
