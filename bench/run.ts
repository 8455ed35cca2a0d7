/** `npm run bench`: runs every benchmark and prints their tables. Options: --quick for a short run. */
import { membershipBench } from './membership.ts'

const quick = process.argv.includes('--quick')
await membershipBench([5, 20], quick ? 3 : 20, quick ? 10 : 100)
