/**
 * Client commands (issue 16): how long `shoal version`, `status`, `kv get` and `ps` take and how
 * much memory they use, against a one-peer cluster on this host, beside Node's own start-up (the
 * limit: `node -e 0` under the same pinned Node) and etcd's client against a one-member etcd, in
 * the same run. Each command runs `runs` times after one warm-up run (which fills Node's compile
 * cache, as any first use does); min/median/max of the wall time, the largest resident set
 * (`/usr/bin/time`), the median against `node -e 0`'s, and the issue's goal (≤ 1.5×, < 60 MB).
 *
 *   npm run bench -- --only cli [--quick]      (Debian etcd-server, etcd-client, time)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { rmSync } from 'node:fs'
import { TestCluster, tempDir, waitFor, NODE, REPO } from '../tests/helpers/processes.ts'
import { percentile, printTable } from './stats.ts'

export interface CliBenchOptions {
  runs: number
}

interface Row {
  what: string
  ms: number[]
  maxRssKb: number
}

const SHOAL = join(REPO, 'cli', 'shoal.js')
const ETCD_CLIENT = 'http://127.0.0.1:23890'
const ETCD_PEER = 'http://127.0.0.1:23900'

/** Runs `cmd args` `runs` times after a warm-up; wall time per run, and the largest resident set seen. */
function measure(what: string, cmd: string, args: string[], runs: number, env: NodeJS.ProcessEnv = process.env): Row {
  const once = (): { ms: number; rssKb: number } => {
    const t0 = performance.now()
    const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', env })
    const ms = performance.now() - t0
    if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${(r.stderr ?? '').slice(-500)}`)
    const lines = (r.stderr ?? '').trim().split('\n')
    return { ms, rssKb: Number(lines[lines.length - 1]) }
  }
  once()
  const ms: number[] = []
  let maxRssKb = 0
  for (let i = 0; i < runs; i++) {
    const r = once()
    ms.push(r.ms)
    maxRssKb = Math.max(maxRssKb, r.rssKb)
  }
  return { what, ms, maxRssKb }
}

export async function cliBench(options: CliBenchOptions): Promise<void> {
  const log = (line: string): void => void process.stderr.write(`cli: ${line}\n`)
  if (spawnSync('/usr/bin/time', ['true']).status !== 0) throw new Error('bench/cli.ts needs /usr/bin/time (Debian package time)')
  const cluster = new TestCluster()
  const etcdDir = tempDir('shoal-etcdctl-')
  let etcd: ChildProcess | null = null
  try {
    log('starting a one-peer cluster and a one-member etcd')
    const peer = await cluster.add({ name: 'cli-bench' })
    const api = peer.api
    etcd = spawn('etcd', ['--name', 'e0', '--data-dir', join(etcdDir, 'e0'), '--listen-client-urls', ETCD_CLIENT, '--advertise-client-urls', ETCD_CLIENT,
      '--listen-peer-urls', ETCD_PEER, '--initial-advertise-peer-urls', ETCD_PEER, '--initial-cluster', `e0=${ETCD_PEER}`, '--log-level', 'error'], { stdio: 'ignore' })
    const etcdEnv = { ...process.env, ETCDCTL_API: '3' }
    await waitFor('etcd to answer', () => (spawnSync('etcdctl', ['--endpoints', ETCD_CLIENT, 'put', 'k', 'v'], { env: etcdEnv }).status === 0 ? true : undefined), 30_000, 200)
    const put = spawnSync(NODE, [SHOAL, 'kv', 'put', 'k', 'v', '--api', api], { encoding: 'utf8' })
    if (put.status !== 0) throw new Error(`shoal kv put failed: ${put.stderr}`)

    log(`${options.runs} runs of each command`)
    const base = measure('node -e 0 (the limit)', NODE, ['-e', '0'], options.runs)
    const rows: Row[] = [
      base,
      measure('shoal version', NODE, [SHOAL, 'version'], options.runs),
      measure('shoal status --json', NODE, [SHOAL, 'status', '--json', '--api', api], options.runs),
      measure('shoal kv get k', NODE, [SHOAL, 'kv', 'get', 'k', '--api', api], options.runs),
      measure('shoal ps --json', NODE, [SHOAL, 'ps', '--json', '--api', api], options.runs),
      measure('etcdctl version', 'etcdctl', ['version'], options.runs, etcdEnv),
      measure('etcdctl get k', 'etcdctl', ['--endpoints', ETCD_CLIENT, 'get', 'k'], options.runs, etcdEnv),
    ]
    const baseMedian = percentile(base.ms, 50)
    printTable(`Client commands (${options.runs} runs each after a warm-up; ms; resident set; ratio of medians to node -e 0)`,
      ['command', 'min', 'median', 'max', 'max RSS MB', 'ratio', 'goal'],
      rows.map((r) => {
        const median = percentile(r.ms, 50)
        const shoal = r.what.startsWith('shoal')
        const met = median <= 1.5 * baseMedian && r.maxRssKb < 60 * 1024
        return [r.what, Math.min(...r.ms).toFixed(0), median.toFixed(0), Math.max(...r.ms).toFixed(0), (r.maxRssKb / 1024).toFixed(0), `${(median / baseMedian).toFixed(2)}×`,
          shoal ? `≤ 1.5×, < 60 MB: ${met ? 'met' : 'NOT met'}` : '']
      }))
  } finally {
    etcd?.kill('SIGKILL')
    await cluster.cleanup()
    rmSync(etcdDir, { recursive: true, force: true })
  }
}
