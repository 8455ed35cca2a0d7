/**
 * A value read from standard input, for `shoal kv put KEY` without VALUE (as `etcdctl put`):
 * one argv argument holds at most 128 KiB on Linux, a value up to 512 KiB.
 */
import { UsageError, UserError } from '../node/errors.ts'

/**
 * Reads stdin to its end as the value, bytes as they are (a trailing newline is kept, as
 * etcdctl keeps it; `printf %s` or `echo -n` leave it out).
 *
 * - A terminal on stdin is refused rather than waited on: someone who typed `kv put KEY` and
 *   forgot VALUE would otherwise see a command that hangs.
 * - An empty stdin is refused (as etcdctl's "no available argument and stdin"): a script whose
 *   input went missing must not blank the key. An empty value is `kv put KEY ''`.
 * - At most `maxBytes` are read, so `kv put KEY < /dev/zero` fails at once instead of eating
 *   memory, and text that is not UTF-8 is refused: values are text.
 */
export async function readValueFromStdin(stdin: NodeJS.ReadStream, maxBytes: number): Promise<string> {
  if (stdin.isTTY === true) {
    throw new UsageError('kv put needs a VALUE: give it as an argument, or pipe it in (shoal kv put KEY < FILE)')
  }
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    total += bytes.byteLength
    if (total > maxBytes) {
      stdin.destroy()
      throw new UserError(`the value on stdin is over ${maxBytes} bytes, the most a value may hold; keep large data elsewhere and store a reference to it`)
    }
    chunks.push(bytes)
  }
  if (total === 0) {
    throw new UsageError("kv put got no VALUE and stdin is empty; pass the value as an argument or on stdin (an empty value: shoal kv put KEY '')")
  }
  try {
    // ignoreBOM keeps a leading byte-order mark as part of the value: bytes as they are.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks, total))
  } catch {
    throw new UserError('the value on stdin is not valid UTF-8; values are text: convert it (e.g. with iconv) or encode binary data as base64')
  }
}
