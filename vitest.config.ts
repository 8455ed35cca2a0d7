import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Integration suites spawn real peers; a slow 2-core CI machine needs room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Real-process suites compete for two cores; run files one at a time so
    // timing-sensitive membership checks are not starved by a parallel suite.
    fileParallelism: false,
    reporters: ['default', 'json'],
    outputFile: { json: '.ci/results/vitest.json' },
  },
})
