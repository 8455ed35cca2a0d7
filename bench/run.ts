/**
 * `npm run bench`: runs every benchmark and prints their tables.
 * Options: --quick for a short run; --only membership|raft|containers|dns|simulate|services|links|cli; --peers 5,20 for the membership
 * cluster sizes; --rounds N for the services rounds (default 5, 2 with --quick); --no-swarm: services without Swarm's half.
 */
import { membershipBench } from './membership.ts'
import { raftBench } from './raft.ts'
import { containersBench } from './containers.ts'
import { dnsBench } from './dns.ts'
import { simulateBench } from './simulate.ts'
import { servicesBench } from './services.ts'
import { linksBench } from './links.ts'
import { cliBench } from './cli.ts'

const quick = process.argv.includes('--quick')
const peersArg = process.argv[process.argv.indexOf('--peers') + 1]
const sizes = process.argv.includes('--peers') && peersArg !== undefined ? peersArg.split(',').map(Number) : [5, 20]
if (sizes.some((n) => !Number.isInteger(n) || n < 2)) throw new Error('--peers takes cluster sizes of 2 or more, e.g. --peers 5,20')
const roundsArg = process.argv.includes('--rounds') ? Number(process.argv[process.argv.indexOf('--rounds') + 1]) : undefined
if (roundsArg !== undefined && !(Number.isInteger(roundsArg) && roundsArg >= 1)) throw new Error('--rounds takes a whole number of 1 or more, e.g. --rounds 3')
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined
if (only === undefined || only === 'raft') await raftBench({ phaseMs: quick ? 2000 : 5000, failoverRounds: quick ? 3 : 20 })
if (only === undefined || only === 'membership') await membershipBench(sizes, quick ? 3 : 20, quick ? 10 : 100)
if (only === undefined || only === 'containers') await containersBench({ containers: quick ? 10 : 50 })
if (only === undefined || only === 'dns') await dnsBench(quick ? { seconds: 4, rounds: 2, latencyQps: 5000, latencySeconds: 2, loops: [1, 2] } : { seconds: 10, rounds: 5, latencyQps: 10000, latencySeconds: 5, loops: [1, 2] })
if (only === undefined || only === 'simulate') await simulateBench(quick)
if (only === undefined || only === 'services') await servicesBench({ quick, rounds: roundsArg ?? (quick ? 2 : 5), swarm: !process.argv.includes('--no-swarm') })
if (only === undefined || only === 'links') await linksBench(quick ? { bulkMB: 50, requests: 2000, connects: 200, requestBytes: 64 } : { bulkMB: 200, requests: 2000, connects: 500, requestBytes: 64 })
if (only === undefined || only === 'cli') await cliBench({ runs: quick ? 10 : 30 })
