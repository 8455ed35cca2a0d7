/** Bad input to the CLI and the API gets a clear message and a non-zero exit, never a stack trace. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, runCli, type PeerProcess, rawApiRequest } from '../helpers/processes.ts'

/** No stack frames and no "unexpected error" in what the user sees; the error is the last word. */
function expectCleanError(stderr: string): void {
  expect(stderr).not.toMatch(/\n\s+at /)
  expect(stderr).not.toContain('unexpected error')
  const lines = stderr.trimEnd().split('\n').filter((l) => !l.startsWith("Run 'shoal --help'"))
  expect(lines.at(-1)).toMatch(/^shoal: /)
}


describe('CLI and API errors', () => {
  const cluster = new TestCluster()
  let peer: PeerProcess

  beforeAll(async () => {
    peer = await cluster.add({ name: 'solo' })
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('unknown command: exit 2 with usage', async () => {
    const r = await runCli(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown command "frobnicate"')
    expect(r.stderr).toContain("shoal --help")
    expectCleanError(r.stderr)
  })

  it('unknown flag: exit 2', async () => {
    const r = await runCli(['status', '--frob'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("--frob")
    expectCleanError(r.stderr)
  })

  it('malformed multiaddr: exit 2 naming the flag and an example', async () => {
    const r = await runCli(['start', '--data-dir', join(cluster.root, 'x'), '--listen', 'not-an-addr'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--listen "not-an-addr" is not a valid multiaddr')
    expectCleanError(r.stderr)
  })

  it('bootstrap address without /p2p/: exit 2', async () => {
    const r = await runCli(['start', '--data-dir', join(cluster.root, 'y'), '--bootstrap', '/ip4/127.0.0.1/tcp/7946'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('must end with /p2p/<peer id>')
    expectCleanError(r.stderr)
  })

  it('joining without a secret is refused and says how to get one', async () => {
    const seed = await cluster.addrOf(peer)
    const r = await runCli(['start', '--data-dir', join(cluster.root, 'nosecret'), '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', seed, '--docker', 'none', '--dns', 'off'])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('--secret-file')
    expectCleanError(r.stderr)
  })

  it('unreadable or malformed secret file: exit 1 with the path', async () => {
    const seed = await cluster.addrOf(peer)
    const missing = await runCli(['start', '--data-dir', join(cluster.root, 's1'), '--bootstrap', seed, '--secret-file', join(cluster.root, 'missing.key')])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('cannot read secret file')
    expectCleanError(missing.stderr)
    const bad = join(cluster.root, 'bad.key')
    writeFileSync(bad, 'hunter2\n')
    chmodSync(bad, 0o600)
    const malformed = await runCli(['start', '--data-dir', join(cluster.root, 's2'), '--bootstrap', seed, '--secret-file', bad])
    expect(malformed.code).toBe(1)
    expect(malformed.stderr).toContain('not a Shoal cluster key')
    expectCleanError(malformed.stderr)
  })

  it('a second peer on the same data dir is refused, and the first keeps running', async () => {
    const r = await runCli(['start', '--data-dir', peer.dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--docker', 'none', '--dns', 'off'])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('is in use by another shoal process')
    expectCleanError(r.stderr)
    expect((await peer.status()).peerId).toMatch(/^12D3Koo/)
  })

  it('an API socket already served by a live peer is refused', async () => {
    const r = await runCli(['start', '--data-dir', join(cluster.root, 'other'), '--listen', '/ip4/127.0.0.1/tcp/0', '--api', peer.api, '--docker', 'none', '--dns', 'off'])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('already served by a running peer')
    expectCleanError(r.stderr)
    expect((await peer.status()).peerId).toMatch(/^12D3Koo/)
  })

  it('no daemon on the socket: says how to start one', async () => {
    const r = await runCli(['status', '--api', join(cluster.root, 'nobody.sock')])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("start one with 'shoal start'")
    expectCleanError(r.stderr)
  })

  it('SHOAL_API selects the socket, and status/peers work with and without --json', async () => {
    const json = await runCli(['status', '--json'], { SHOAL_API: peer.api })
    expect(json.code).toBe(0)
    const s = JSON.parse(json.stdout) as Record<string, unknown>
    for (const field of ['peerId', 'name', 'addrs', 'version', 'role', 'term', 'leader', 'commitIndex', 'appliedIndex', 'voters', 'learners', 'runtime']) {
      expect(s).toHaveProperty(field)
    }
    expect(s['name']).toBe('solo')
    const table = await runCli(['peers', '--api', peer.api])
    expect(table.code).toBe(0)
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+PEER ID\s+STATE\s+VOTER/)
    expect(table.stdout).toContain('solo *')
    const peersJson = JSON.parse((await runCli(['peers', '--json', '--api', peer.api])).stdout) as Array<Record<string, unknown>>
    expect(peersJson).toHaveLength(1)
    expect(Object.keys(peersJson[0]!)).toEqual(expect.arrayContaining(['peerId', 'name', 'addrs', 'state', 'voter']))
  })

  it('malformed API requests get HTTP 400/404/405/415 with a JSON error', async () => {
    const badJson = await rawApiRequest(peer.api, 'POST', '/v1/events', '{"name": ')
    expect(badJson.status).toBe(400)
    expect(JSON.parse(badJson.body).error).toContain('not valid JSON')
    const badShape = await rawApiRequest(peer.api, 'POST', '/v1/events', '{"name": 42}')
    expect(badShape.status).toBe(400)
    expect(JSON.parse(badShape.body).error).toContain('"name" must be a string')
    const badName = await rawApiRequest(peer.api, 'POST', '/v1/events', '{"name": "no spaces allowed"}')
    expect(badName.status).toBe(400)
    const wrongType = await rawApiRequest(peer.api, 'POST', '/v1/events', 'name=x', 'application/x-www-form-urlencoded')
    expect(wrongType.status).toBe(415)
    const unknown = await rawApiRequest(peer.api, 'GET', '/v1/nope', '')
    expect(unknown.status).toBe(404)
    expect(JSON.parse(unknown.body).error).toContain('no such endpoint')
    const wrongMethod = await rawApiRequest(peer.api, 'DELETE', '/v1/status', '')
    expect(wrongMethod.status).toBe(405)
    // The peer is still healthy afterwards.
    expect((await peer.status()).peerId).toMatch(/^12D3Koo/)
  })

  it('bad kv input gets a clear error and changes nothing', async () => {
    const empty = await runCli(['kv', 'put', '', 'x', '--api', peer.api])
    expect(empty.code).toBe(1)
    expect(empty.stderr).toContain('key must be a non-empty string')
    const long = await runCli(['kv', 'put', 'k'.repeat(600), 'x', '--api', peer.api])
    expect(long.code).toBe(1)
    expect(long.stderr).toContain('longer than 509 bytes')
    const slash = await runCli(['kv', 'put', '/etc/x', 'x', '--api', peer.api])
    expect(slash.stderr).toContain("must not start with '/'")
    const big = await rawApiRequest(peer.api, 'PUT', '/v1/kv', JSON.stringify({ key: 'big', value: 'v'.repeat(600 * 1024) }))
    expect(big.status).toBe(413)
    expect(JSON.parse(big.body).error).toContain('value is over')
    const noSub = await runCli(['kv', '--api', peer.api])
    expect(noSub.code).toBe(2)
    const badRev = await runCli(['kv', 'watch', '--revision', '-3', '--api', peer.api])
    expect(badRev.code).toBe(2)
    for (const r of [empty, long, slash]) expectCleanError(r.stderr)
    const list = JSON.parse((await runCli(['kv', 'list', '--json', '--api', peer.api])).stdout) as unknown[]
    expect(list).toEqual([])
  })

  it('a user event fired with `shoal event` reaches the events stream', async () => {
    const { spawn } = await import('node:child_process')
    const { NODE, MAIN } = await import('../helpers/processes.ts')
    const watcher = spawn(NODE, [MAIN, 'events', '--json', '--api', peer.api], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    watcher.stdout.on('data', (d: Buffer) => (out += d.toString()))
    try {
      // The stream is open once the peer's API has registered the subscriber; retry the fire until seen.
      const { waitFor } = await import('../helpers/processes.ts')
      await waitFor('the event to reach the stream', async () => {
        const fired = await runCli(['event', 'deploy', 'v42', '--api', peer.api])
        expect(fired.code).toBe(0)
        return out.split('\n').some((l) => l.includes('"name":"deploy"') && l.includes('"payload":"v42"')) ? true : undefined
      }, 15_000, 500)
    } finally {
      watcher.kill('SIGTERM')
    }
  })
})
