/** Levelled, component-scoped logger writing one line per record to stderr. */

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** A logger bound to one component name (e.g. `membership`). */
export interface Logger {
  error(message: string): void
  warn(message: string): void
  info(message: string): void
  debug(message: string): void
  /** A logger for a sub-component, sharing this one's level and sink. */
  child(component: string): Logger
}

/** True when `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value)
}

/** Creates the root logger; `write` defaults to stderr so stdout stays clean for pipes. */
export function createLogger(level: LogLevel, component = 'shoal', write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const threshold = LOG_LEVELS.indexOf(level)
  const emit = (at: LogLevel, message: string): void => {
    if (LOG_LEVELS.indexOf(at) > threshold) return
    write(`${new Date().toISOString()} ${at.padEnd(5)} ${component}: ${message}\n`)
  }
  return {
    error: (m) => emit('error', m),
    warn: (m) => emit('warn', m),
    info: (m) => emit('info', m),
    debug: (m) => emit('debug', m),
    child: (name) => createLogger(level, `${component}/${name}`, write),
  }
}
