/** Argument parsing for every command, on node:util's parseArgs, with usage errors (exit 2). */
import { parseArgs } from 'node:util'
import { UsageError } from '../node/errors.ts'

/** A flag: string (optionally repeatable) or boolean. */
export type FlagSpec = { type: 'string'; multiple?: boolean; short?: string } | { type: 'boolean'; short?: string }

export interface Parsed {
  flags: Record<string, string | string[] | boolean | undefined>
  positionals: string[]
  /** Arguments after a bare `--`, passed through untouched (for `shoal lock NAME -- CMD`). */
  rest: string[]
}

/** Parses `argv` against `spec`; unknown flags and missing values become UsageError. */
export function parseCommandArgs(command: string, argv: string[], spec: Record<string, FlagSpec>, positionals: { min: number; max: number }): Parsed {
  const split = argv.indexOf('--')
  const head = split === -1 ? argv : argv.slice(0, split)
  const rest = split === -1 ? [] : argv.slice(split + 1)
  let parsed
  try {
    parsed = parseArgs({ args: head, options: spec, strict: true, allowPositionals: true })
  } catch (err) {
    const message = err instanceof Error ? err.message.replace(/\. To specify a positional argument.*$/s, '') : String(err)
    throw new UsageError(`shoal ${command}: ${message}`)
  }
  if (parsed.positionals.length < positionals.min) throw new UsageError(`shoal ${command}: missing argument`)
  if (parsed.positionals.length > positionals.max) {
    throw new UsageError(`shoal ${command}: unexpected argument ${JSON.stringify(parsed.positionals[positionals.max])}`)
  }
  return { flags: parsed.values as Parsed['flags'], positionals: parsed.positionals, rest }
}

/** A string flag's value, if given. */
export function stringFlag(p: Parsed, name: string): string | undefined {
  const v = p.flags[name]
  return typeof v === 'string' ? v : undefined
}

/** A repeatable string flag's values. */
export function listFlag(p: Parsed, name: string): string[] {
  const v = p.flags[name]
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : []
}

/** A boolean flag. */
export function boolFlag(p: Parsed, name: string): boolean {
  return p.flags[name] === true
}
