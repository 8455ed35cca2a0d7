/**
 * Issue 17 §5: bytes that are not UTF-8, lone surrogates and look-alike content types are
 * refused with a clear 400/415 instead of being stored as U+FFFD; and a reader that closes
 * the CLI's output (`| head -c 10`) ends it quietly, without an EPIPE stack trace.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { TestCluster, apiRequest, runCli, NODE, MAIN, type PeerProcess, rawApiRequest } from '../helpers/processes.ts'


/** Runs a bash pipeline; PIPESTATUS of the first command is printed last on stderr. */
function bash(script: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', script], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && err.killed) reject(err)
      else resolve({ stdout, stderr })
    })
  })
}

describe('input encoding and closed output', () => {
  const cluster = new TestCluster()
  let peer: PeerProcess
  const shoal = (): string => `'${NODE}' '${MAIN}'`

  beforeAll(async () => {
    peer = await cluster.add({ name: 'solo' })
  })
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('a body with bytes that are not UTF-8 is refused with 400, and nothing is stored', async () => {
    const key = Buffer.concat([Buffer.from('{"key":"bad/'), Buffer.from([0xff, 0xfe]), Buffer.from('","value":"x"}')])
    const r1 = await rawApiRequest(peer.api, 'PUT', '/v1/kv', key)
    expect(r1.status).toBe(400)
    expect(JSON.parse(r1.body).error).toMatch(/not valid UTF-8/)
    const value = Buffer.concat([Buffer.from('{"key":"bad/v","value":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])
    const r2 = await rawApiRequest(peer.api, 'PUT', '/v1/kv', value)
    expect(r2.status).toBe(400)
    const list = await apiRequest<{ kvs: unknown[] }>(peer.api, 'GET', '/v1/kv/list?prefix=bad/')
    expect(list.body.kvs).toEqual([])
  })

  it('lone surrogates in a key or a value are refused with 400', async () => {
    const r1 = await rawApiRequest(peer.api, 'PUT', '/v1/kv', '{"key":"s/k","value":"a\\ud800b"}')
    expect(r1.status).toBe(400)
    expect(JSON.parse(r1.body).error).toMatch(/lone surrogate/)
    const r2 = await rawApiRequest(peer.api, 'PUT', '/v1/kv', '{"key":"s/\\udc00","value":"x"}')
    expect(r2.status).toBe(400)
    expect(JSON.parse(r2.body).error).toMatch(/lone surrogate|not well-formed/)
    expect((await apiRequest<{ kvs: unknown[] }>(peer.api, 'GET', '/v1/kv/list?prefix=s/')).body.kvs).toEqual([])
    // A well-formed astral character is fine.
    expect((await rawApiRequest(peer.api, 'PUT', '/v1/kv', '{"key":"s/ok","value":"\\ud83d\\ude00"}')).status).toBe(200)
    expect((await apiRequest<{ kv: { value: string } }>(peer.api, 'GET', '/v1/kv?key=s/ok')).body.kv.value).toBe('\u{1F600}')
  })

  it('a query parameter whose escapes are not UTF-8 is refused, not read as U+FFFD', async () => {
    expect((await rawApiRequest(peer.api, 'PUT', '/v1/kv', '{"key":"q/\\ufffd","value":"replacement"}')).status).toBe(200)
    const r = await apiRequest<{ error: string }>(peer.api, 'GET', '/v1/kv?key=q/%FF')
    expect(r.status).toBe(400)
    expect(r.body.error).toMatch(/not percent-encoded UTF-8/)
    // The real U+FFFD, percent-encoded as UTF-8, is still a key like any other.
    expect((await apiRequest<{ kv: { value: string } }>(peer.api, 'GET', '/v1/kv?key=q/%EF%BF%BD')).body.kv.value).toBe('replacement')
  })

  it('only application/json (with parameters) is JSON', async () => {
    const body = '{"key":"ct/a","value":"1"}'
    for (const type of ['application/jsonfoo', 'application/json-patch+json', 'text/plain', 'application/json; charset=latin1']) {
      const r = await rawApiRequest(peer.api, 'PUT', '/v1/kv', body, type)
      expect(r.status, type).toBe(415)
    }
    for (const type of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"']) {
      expect((await rawApiRequest(peer.api, 'PUT', '/v1/kv', body, type)).status, type).toBe(200)
    }
  })

  it('the CLI refuses an argument that is not UTF-8 instead of storing U+FFFD', async () => {
    const r = await bash(`${shoal()} kv put argv/k "$(printf 'a\\xffb')" --api '${peer.api}'; echo "exit=$?" >&2`)
    expect(r.stderr).toMatch(/not valid UTF-8/)
    expect(r.stderr).toMatch(/exit=2/)
    expect((await runCli(['kv', 'get', 'argv/k', '--api', peer.api])).code).toBe(1)
    // A real U+FFFD typed by the user is kept.
    expect((await runCli(['kv', 'put', 'argv/ok', 'a\uFFFDb', '--api', peer.api])).code).toBe(0)
    expect((await runCli(['kv', 'get', 'argv/ok', '--api', peer.api])).stdout).toBe('a\uFFFDb\n')
  })

  it('a closed stdout ends the CLI quietly, as SIGPIPE ends other tools', async () => {
    // Far more than a pipe holds, so the write meets the closed pipe.
    expect((await rawApiRequest(peer.api, 'PUT', '/v1/kv', JSON.stringify({ key: 'pipe/big', value: 'x'.repeat(500_000) }))).status).toBe(200)
    for (const command of ['kv get pipe/big', 'kv get pipe/big --json', 'kv list pipe/', 'kv list --json']) {
      const r = await bash(`${shoal()} ${command} --api '${peer.api}' | head -c 10; echo "status=\${PIPESTATUS[0]}" >&2`)
      expect(r.stdout, command).toHaveLength(10)
      expect(r.stderr, command).not.toMatch(/EPIPE|Error|\n\s+at /)
      expect(r.stderr.trim(), command).toBe('status=141')
    }
  })
})
