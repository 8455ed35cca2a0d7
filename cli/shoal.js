#!/usr/bin/env node
// Launcher for `npx shoal`. Shoal's sources are TypeScript that Node runs directly (type
// stripping, Node >= 22.18). npm puts node_modules/.bin first on PATH, so the pinned Node
// normally runs this file already; an older node that lands here re-runs us under the pinned one.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import module from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const [major, minor] = process.versions.node.split('.').map(Number)
const stripsTypes = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)
const here = dirname(fileURLToPath(import.meta.url))

if (stripsTypes) {
  // Before main.ts is loaded, so it too comes from the compile cache (see main.ts).
  module.enableCompileCache?.()
  await import(join(here, 'main.ts'))
} else {
  const pinned = join(here, '..', 'node_modules', '.bin', 'node')
  if (!existsSync(pinned)) {
    process.stderr.write(`shoal needs Node >= 22.18 (this is ${process.version}); run 'npm ci' in ${join(here, '..')} to install the pinned Node\n`)
    process.exit(1)
  }
  const child = spawn(pinned, [join(here, 'main.ts'), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + 15)))
}
