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

/** What to do about failures of the machine rather than of Shoal, by errno code. */
const ENVIRONMENT_ADVICE: Record<string, string> = {
  ENOSPC: 'the disk is full: free space on it (or move --data-dir to a larger disk), then start the peer again',
  EDQUOT: 'the disk quota is used up: free space or raise the quota, then start the peer again',
  EACCES: 'permission denied: run shoal as the owner of the data dir, or fix its permissions',
  EPERM: 'operation not permitted: run shoal as the owner of the data dir, or fix its permissions',
  EROFS: 'the file system is read-only: remount it read-write, or pass a --data-dir on a writable one',
  EIO: 'the disk reported an I/O error: check the disk (dmesg, smartctl); restore the data dir from a backup or re-join with an empty --data-dir if it is damaged',
  EMFILE: 'too many open files: raise the limit (ulimit -n, or LimitNOFILE= in the service unit)',
  ENFILE: 'the system ran out of file handles: raise fs.file-max or stop other processes',
}

const MESSAGE_CODES: Array<[RegExp, string]> = [
  [/no space left on device/i, 'ENOSPC'],
  [/disk quota exceeded/i, 'EDQUOT'],
  [/permission denied/i, 'EACCES'],
  [/read-only file system/i, 'EROFS'],
  [/input\/output error/i, 'EIO'],
  [/too many open files/i, 'EMFILE'],
]

/**
 * A failure the environment caused (disk full, permissions, read-only or failing disk) as a
 * UserError that says what happened and what to do; null for anything else.
 */
export function environmentError(err: unknown, context?: string): UserError | null {
  if (!(err instanceof Error)) return null
  // LevelDB (the snapshot store) reports errno failures as text in its own error codes.
  const errno = (err as NodeJS.ErrnoException).code
  const code = errno !== undefined && errno in ENVIRONMENT_ADVICE ? errno : MESSAGE_CODES.find(([pattern]) => pattern.test(err.message))?.[1]
  const advice = code === undefined ? undefined : ENVIRONMENT_ADVICE[code]
  if (advice === undefined) return null
  const path = (err as NodeJS.ErrnoException).path
  return new UserError(`${context === undefined ? '' : `${context}: `}${advice}${path === undefined ? '' : ` (${path})`}`)
}
