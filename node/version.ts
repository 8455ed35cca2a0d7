/** Shoal's version, from package.json: one source of truth for `status`, host records and `--version`. */
import pkg from '../package.json' with { type: 'json' }

export const SHOAL_VERSION: string = pkg.version
