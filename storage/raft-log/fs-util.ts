/** Small durable-filesystem helpers. */
import { open } from 'node:fs/promises'

/** fsyncs a directory so a created, renamed or deleted entry survives power loss (POSIX). */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
