/**
 * Errors a user can act on. The CLI prints `message` alone (no stack) and exits with `exitCode`;
 * each message says what to do next.
 */
export class UserError extends Error {
  override readonly name: string = 'UserError'
  readonly exitCode: number
  constructor(message: string, exitCode = 1) {
    super(message)
    this.exitCode = exitCode
  }
}

/** Bad command-line usage: exit code 2, as getopt-style tools do. */
export class UsageError extends UserError {
  override readonly name = 'UsageError'
  constructor(message: string) {
    super(message, 2)
  }
}

/** Extracts a human message from anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
