/**
 * `npm run bench`: runs every benchmark and prints their tables.
 * Options: --quick for a short run; --peers 5,20 for the membership cluster sizes.
 */
import { membershipBench } from './membership.ts'

const quick = process.argv.includes('--quick')
const peersArg = process.argv[process.argv.indexOf('--peers') + 1]
const sizes = process.argv.includes('--peers') && peersArg !== undefined ? peersArg.split(',').map(Number) : [5, 20]
if (sizes.some((n) => !Number.isInteger(n) || n < 2)) throw new Error('--peers takes cluster sizes of 2 or more, e.g. --peers 5,20')
await membershipBench(sizes, quick ? 3 : 20, quick ? 10 : 100)
