/**
 * What the host agent asks the engine to run for one task (issue 12): a service spec, the
 * task and this peer's resolvers in, a `TaskContainerSpec` out. Pure.
 *
 * The labels make the container self-describing, so a restarted peer adopts it by its labels
 * alone (runtime/agent/agent.ts) and DNS groups it under its service (container-labels.ts):
 *   shoal.service       the service name (DNS `NAME.shoal`)
 *   shoal.task          `<service>.<slot>.<generation>` (taskId): which instance of which slot
 *   shoal.spec-version  the version of the spec it was created from
 *   shoal.port          the service's container ports for SRV (`80,53/udp`), when it has any
 * The user's labels come first, so they can never override Shoal's (validateSpec refuses
 * `shoal.*` user labels anyway; this also holds for a record written by another writer).
 */
import type { TaskContainerSpec } from '../runtime.ts'
import { PORT_LABEL, SERVICE_LABEL, SPEC_VERSION_LABEL, TASK_LABEL, parsePortLabel, type ServicePort } from '../../storage/statestore/container-labels.ts'
import type { ServiceRecord, ServiceSpec } from '../scheduler/spec.ts'
import { taskId, type Task } from '../scheduler/task.ts'

export { SPEC_VERSION_LABEL, TASK_LABEL }
/** The search domain handed to task containers, so `web` resolves as `web.shoal`. */
export const TASK_DNS_SEARCH = 'shoal'

/** A spec with the version it is stored under. */
export type VersionedSpec = ServiceSpec & { readonly version: number }

/**
 * The spec a task runs: the record itself when the task's version is the record's or runs the
 * same instance content (at or after `instanceVersion`: a scale or an update-config change
 * bumps the version but not what runs, and the record's grace and restart policy are the
 * newest), else the record's `previous` when the task is at its version (an update or rollback
 * in progress keeps the old version's tasks until they are replaced), else the record (the
 * replica has not seen the task's version yet; the newest spec is the best guess, and the
 * scheduler replaces the task if it is wrong).
 */
export function specForTask(record: ServiceRecord, specVersion: number): VersionedSpec {
  if (record.version === specVersion || specVersion >= record.instanceVersion) return record
  if (record.previous !== null && record.previous.version === specVersion) return record.previous
  return record
}

/** The ports the service answers on: its `ports` (TCP) and the targets of its published ports, sorted, distinct. */
export function servicePorts(spec: ServiceSpec): ServicePort[] {
  const text = [...spec.ports.map((p) => `${p}`), ...spec.published.map((p) => `${p.target}/${p.protocol}`)].join(',')
  return parsePortLabel(text)
}

/** `80,53/udp`: the `shoal.port` label's format (container-labels.ts). */
export function formatPortLabel(ports: readonly ServicePort[]): string {
  return ports.map((p) => (p.protocol === 'udp' ? `${p.port}/udp` : `${p.port}`)).join(',')
}

/** The container to run for `task` from `spec` (see `specForTask`), with `dns` as its resolvers. */
export function taskContainerSpec(spec: VersionedSpec, task: Pick<Task, 'service' | 'slot' | 'generation'>, dns: readonly string[]): TaskContainerSpec {
  const id = taskId(task)
  const ports = servicePorts(spec)
  // Spread defines own properties, so a "__proto__" label stays a label; Shoal's labels are set last.
  const labels: Record<string, string> = { ...spec.labels }
  labels[SERVICE_LABEL] = task.service
  labels[TASK_LABEL] = id
  labels[SPEC_VERSION_LABEL] = String(spec.version)
  if (ports.length > 0) labels[PORT_LABEL] = formatPortLabel(ports)
  else delete labels[PORT_LABEL]
  const hc = spec.healthCheck
  return {
    name: id,
    image: spec.image,
    entrypoint: [...spec.entrypoint],
    cmd: [...spec.cmd],
    env: { ...spec.env },
    labels,
    exposed: ports.map((p) => ({ port: p.port, protocol: p.protocol })),
    // Mesh ports are the peers' own listeners (node/link-dataplane.ts); only mode host is Docker's.
    published: spec.published.filter((p) => p.mode === 'host').map((p) => ({ hostPort: p.published, containerPort: p.target, protocol: p.protocol })),
    cpuLimit: spec.limits.cpus,
    memoryLimitBytes: spec.limits.memoryBytes,
    memoryReservationBytes: spec.reservations.memoryBytes,
    healthCheck: hc === null ? null : { cmd: [...hc.cmd], intervalMs: hc.intervalMs, timeoutMs: hc.timeoutMs, retries: hc.retries, startPeriodMs: hc.startPeriodMs },
    dns: [...dns],
    dnsSearch: dns.length > 0 ? [TASK_DNS_SEARCH] : [],
    stopGraceMs: spec.stopGracePeriodMs,
  }
}
