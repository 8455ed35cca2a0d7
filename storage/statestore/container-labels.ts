/**
 * How container labels map to DNS service membership (the one place this is decided).
 *
 * Registrator-style, opt-in:
 *   shoal.service=NAME   the container is an instance of service NAME (the DNS layer builds the
 *                        `NAME.shoal` A/AAAA and SRV answers from it).
 *                        Lowercased; it must then be a DNS label (RFC 1035 §2.3.1: a-z, 0-9, '-',
 *                        at most 63 characters, no '-' at either end), else it is ignored.
 *   shoal.port=PORTS     the service's ports for SRV, comma-separated `PORT` or `PORT/udp`
 *                        (`80`, `80,443`, `53/udp,53/tcp`). Without it: every distinct container
 *                        port the container exposes or publishes.
 *
 * A container without `shoal.service` belongs to no service: it is still `CONTAINER.shoal` by
 * its own name, but it does not answer for `NAME.shoal` of some service. Defaulting the
 * service to the container name would make every container a one-member service whose name
 * could collide with a real service (`docker run --name web` next to `shoal service create
 * web`), and to the image name (Registrator's default) would group unrelated containers.
 * Containers the scheduler creates for `shoal service create NAME` carry `shoal.service=NAME`.
 *
 * SRV ports are container ports: they are reached on the container's own addresses, which
 * `CONTAINER.shoal` answers. Host-side bindings stay available in `Container.ports`.
 */
import type { Container } from './records.ts'

/** Label naming the container's service. */
export const SERVICE_LABEL = 'shoal.service'
/** Label listing the service's ports. */
export const PORT_LABEL = 'shoal.port'
/** Label the host agent puts on a scheduled instance: `<service>.<slot>.<generation>` (runtime/scheduler/task.ts taskId). */
export const TASK_LABEL = 'shoal.task'
/** Label with the spec version an instance was started from. */
export const SPEC_VERSION_LABEL = 'shoal.spec-version'

/** A port a service answers on. */
export interface ServicePort {
  readonly port: number
  readonly protocol: 'tcp' | 'udp'
}

const DNS_LABEL_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const PORT_ENTRY_PATTERN = /^(\d{1,5})(?:\/(tcp|udp))?$/i

/** The service `container` belongs to, or null (no label, or a name that is not a DNS label). */
export function serviceOf(container: Pick<Container, 'labels'>): string | null {
  const raw = container.labels[SERVICE_LABEL]
  if (raw === undefined || !Object.hasOwn(container.labels, SERVICE_LABEL)) return null
  const name = raw.trim().toLowerCase()
  return DNS_LABEL_PATTERN.test(name) ? name : null
}

/** Parses a `shoal.port` value; invalid entries are skipped. Sorted, distinct. */
export function parsePortLabel(value: string): ServicePort[] {
  const ports: ServicePort[] = []
  for (const entry of value.split(',')) {
    const match = PORT_ENTRY_PATTERN.exec(entry.trim())
    if (match === null) continue
    const port = Number(match[1])
    if (port < 1 || port > 65535) continue
    ports.push({ port, protocol: match[2]?.toLowerCase() === 'udp' ? 'udp' : 'tcp' })
  }
  return distinctPorts(ports)
}

/** The ports of `container`'s service for SRV answers (see the file comment). */
export function servicePortsOf(container: Pick<Container, 'labels' | 'ports'>): ServicePort[] {
  const label = Object.hasOwn(container.labels, PORT_LABEL) ? container.labels[PORT_LABEL] : undefined
  if (label !== undefined) return parsePortLabel(label)
  return distinctPorts(container.ports.map((p) => ({ port: p.containerPort, protocol: p.protocol })))
}

function distinctPorts(ports: readonly ServicePort[]): ServicePort[] {
  const byKey = new Map<string, ServicePort>()
  for (const p of ports) byKey.set(`${String(p.port).padStart(5, '0')}/${p.protocol}`, p)
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p)
}
