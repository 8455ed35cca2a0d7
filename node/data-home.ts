/** Where a peer keeps its data by default; its own module so client commands load nothing else of the daemon's. */
import { homedir } from 'node:os'
import { join } from 'node:path'

/** `$XDG_DATA_HOME/shoal`, else `~/.local/share/shoal`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_DATA_HOME'] !== undefined && env['XDG_DATA_HOME'] !== '' ? env['XDG_DATA_HOME'] : join(homedir(), '.local', 'share')
  return join(base, 'shoal')
}
