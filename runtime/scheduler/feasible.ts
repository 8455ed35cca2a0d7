/**
 * Feasibility (nomad's `scheduler/feasible`, swarmkit's filters): may this service's instance
 * go on this host? Checks liveness and drain, constraints, resource reservations against the
 * host's capacity minus what other instances there reserve, and host-mode published-port conflicts.
 * Pure; `Usage` is the planning state the reconciler updates as it decides.
 */
import { matchAll } from './constraint.ts'
import type { ServiceSpec } from './spec.ts'

/** Liveness as the cluster's failure detector sees it (protocols/gossip MemberState). */
export type Liveness = 'alive' | 'suspect' | 'dead' | 'left'

/** A host as the scheduler sees it. */
export interface SchedHost {
  /** Peer id. */
  readonly id: string
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  /** Whole CPUs; 0 = not reported (CPU reservations are then not checked on this host). */
  readonly cpus: number
  /** Bytes; 0 = not reported (memory reservations are then not checked). */
  readonly memoryBytes: number
  readonly liveness: Liveness
  /** When the host entered `liveness` (ms, the leader's clock). */
  readonly livenessSinceMs: number
  /** `shoal host drain`: no new tasks, its tasks move away. */
  readonly drained: boolean
}

/** What is already committed on each host while planning. */
export class Usage {
  private readonly milliCpus = new Map<string, number>()
  private readonly memory = new Map<string, number>()
  // Counted, not a set: the store may already hold two instances on one port (written before
  // a crash, or by hand), and releasing one must not free the port.
  private readonly ports = new Map<string, Map<string, number>>()
  private readonly perService = new Map<string, Map<string, number>>()
  private readonly total = new Map<string, number>()

  /** Counts one instance of `spec` on `host` (`counted` false: reserves without counting toward spread/load, e.g. a retiring instance). */
  add(host: string, spec: ServiceSpec, counted = true): void {
    this.milliCpus.set(host, (this.milliCpus.get(host) ?? 0) + milli(spec.reservations.cpus))
    this.memory.set(host, (this.memory.get(host) ?? 0) + spec.reservations.memoryBytes)
    const ports = this.ports.get(host) ?? new Map<string, number>()
    for (const p of hostPorts(spec)) ports.set(portId(p.published, p.protocol), (ports.get(portId(p.published, p.protocol)) ?? 0) + 1)
    this.ports.set(host, ports)
    if (!counted) return
    const per = this.perService.get(spec.name) ?? new Map<string, number>()
    per.set(host, (per.get(host) ?? 0) + 1)
    this.perService.set(spec.name, per)
    this.total.set(host, (this.total.get(host) ?? 0) + 1)
  }

  /** Undoes `add`. */
  remove(host: string, spec: ServiceSpec, counted = true): void {
    this.milliCpus.set(host, (this.milliCpus.get(host) ?? 0) - milli(spec.reservations.cpus))
    this.memory.set(host, (this.memory.get(host) ?? 0) - spec.reservations.memoryBytes)
    const ports = this.ports.get(host)
    for (const p of hostPorts(spec)) ports?.set(portId(p.published, p.protocol), (ports.get(portId(p.published, p.protocol)) ?? 0) - 1)
    if (!counted) return
    const per = this.perService.get(spec.name)
    if (per !== undefined) per.set(host, (per.get(host) ?? 0) - 1)
    this.total.set(host, (this.total.get(host) ?? 0) - 1)
  }

  milliCpusOn(host: string): number {
    return this.milliCpus.get(host) ?? 0
  }

  memoryOn(host: string): number {
    return this.memory.get(host) ?? 0
  }

  portTaken(host: string, published: number, protocol: string): boolean {
    return (this.ports.get(host)?.get(portId(published, protocol)) ?? 0) > 0
  }

  /** Instances of `service` on `host`. */
  countOf(service: string, host: string): number {
    return this.perService.get(service)?.get(host) ?? 0
  }

  /** All instances on `host`. */
  load(host: string): number {
    return this.total.get(host) ?? 0
  }
}

function milli(cpus: number): number {
  return Math.round(cpus * 1000)
}

/** Ports Docker binds where an instance runs; mesh ports are open on every host and never conflict per host. */
function hostPorts(spec: ServiceSpec): ServiceSpec['published'] {
  return spec.published.filter((p) => p.mode === 'host')
}

function portId(port: number, protocol: string): string {
  return `${port}/${protocol}`
}

/** Why a host cannot take an instance (shown when nothing fits), or null when it can. */
export function infeasibleReason(spec: ServiceSpec, host: SchedHost, usage: Usage): string | null {
  if (host.liveness !== 'alive') return `host ${host.name} is ${host.liveness}`
  if (host.drained) return `host ${host.name} is drained`
  return staticReason(spec, host) ?? capacityReason(spec, host, usage)
}

/** Constraints only: whether the host may ever run this service, whatever its state. */
export function staticReason(spec: ServiceSpec, host: SchedHost): string | null {
  return matchAll(spec.constraints, host) ? null : `host ${host.name} does not satisfy the constraints ${spec.constraints.join(', ')}`
}

/** Resources and ports, given what is already on the host. */
export function capacityReason(spec: ServiceSpec, host: SchedHost, usage: Usage): string | null {
  const wantCpu = milli(spec.reservations.cpus)
  if (wantCpu > 0 && host.cpus > 0 && usage.milliCpusOn(host.id) + wantCpu > host.cpus * 1000) {
    return `host ${host.name} has ${(host.cpus * 1000 - usage.milliCpusOn(host.id)) / 1000} CPUs unreserved, ${spec.reservations.cpus} wanted`
  }
  const wantMem = spec.reservations.memoryBytes
  if (wantMem > 0 && host.memoryBytes > 0 && usage.memoryOn(host.id) + wantMem > host.memoryBytes) {
    return `host ${host.name} has ${host.memoryBytes - usage.memoryOn(host.id)} bytes unreserved, ${wantMem} wanted`
  }
  for (const p of hostPorts(spec)) {
    if (usage.portTaken(host.id, p.published, p.protocol)) return `host ${host.name} already publishes port ${p.published}/${p.protocol}`
  }
  return null
}

/** Hosts that can take one more instance of `spec`, in id order. */
export function feasibleHosts(spec: ServiceSpec, hosts: readonly SchedHost[], usage: Usage): SchedHost[] {
  return hosts.filter((h) => infeasibleReason(spec, h, usage) === null)
}
