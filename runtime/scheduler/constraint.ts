/**
 * Placement constraints (issue 12): `host.name==X`, `host.name!=X`, `host.label.K==V`,
 * `host.label.K!=V`, as `docker service create --constraint`. Pure; parse errors are values.
 *
 * Matching follows Swarm: `==` on a label the host lacks is false, `!=` on a missing label is
 * true; host names compare case-insensitively (they are DNS-ish), label values exactly.
 */

/** A parsed constraint. */
export interface Constraint {
  readonly field: 'host.name' | 'host.label'
  /** The label key when `field` is `host.label`. */
  readonly key?: string
  readonly op: '==' | '!='
  readonly value: string
}

/** What a constraint is matched against. */
export interface ConstraintTarget {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
}

export type ConstraintResult = { readonly ok: true; readonly constraint: Constraint } | { readonly ok: false; readonly error: string }

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,255}$/
const MAX_VALUE_CHARS = 256

/** Parses one constraint expression (never throws). */
export function parseConstraint(expr: unknown): ConstraintResult {
  if (typeof expr !== 'string') return { ok: false, error: 'a constraint must be a string such as "host.label.zone==a"' }
  const text = expr.trim()
  const m = /^([^=!]+?)\s*(==|!=)\s*(.*)$/.exec(text)
  if (m === null) return { ok: false, error: `constraint ${JSON.stringify(expr)} has no == or != (write host.name==X or host.label.K==V)` }
  const lhs = m[1] ?? ''
  const op = m[2] === '!=' ? '!=' : '=='
  const value = (m[3] ?? '').trim()
  if (value === '') return { ok: false, error: `constraint ${JSON.stringify(expr)} has no value after ${op}` }
  if (value.length > MAX_VALUE_CHARS) return { ok: false, error: `constraint ${JSON.stringify(expr)}: value longer than ${MAX_VALUE_CHARS} characters` }
  if (/[=!]/.test(value)) return { ok: false, error: `constraint ${JSON.stringify(expr)} has more than one operator` }
  if (lhs === 'host.name' || lhs === 'node.hostname') return { ok: true, constraint: { field: 'host.name', op, value } }
  for (const prefix of ['host.label.', 'node.labels.']) {
    if (lhs.startsWith(prefix)) {
      const key = lhs.slice(prefix.length)
      if (!LABEL_KEY.test(key)) return { ok: false, error: `constraint ${JSON.stringify(expr)}: label key ${JSON.stringify(key)} is invalid` }
      return { ok: true, constraint: { field: 'host.label', key, op, value } }
    }
  }
  return { ok: false, error: `constraint ${JSON.stringify(expr)}: unknown attribute ${JSON.stringify(lhs)} (use host.name or host.label.<key>)` }
}

/** The canonical text of a constraint (what the stored spec keeps). */
export function formatConstraint(c: Constraint): string {
  return c.field === 'host.name' ? `host.name${c.op}${c.value}` : `host.label.${c.key ?? ''}${c.op}${c.value}`
}

/** Whether `host` satisfies `c`. */
export function matchConstraint(c: Constraint, host: ConstraintTarget): boolean {
  let equal: boolean
  if (c.field === 'host.name') equal = host.name.toLowerCase() === c.value.toLowerCase()
  else {
    const key = c.key ?? ''
    equal = Object.hasOwn(host.labels, key) && host.labels[key] === c.value
  }
  return c.op === '==' ? equal : !equal
}

/** Whether `host` satisfies every constraint text (unparsable ones never match: validated specs have none). */
export function matchAll(constraints: readonly string[], host: ConstraintTarget): boolean {
  return constraints.every((text) => {
    const parsed = parseConstraint(text)
    return parsed.ok && matchConstraint(parsed.constraint, host)
  })
}
