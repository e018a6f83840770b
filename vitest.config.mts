import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and bind real ports; files run in
    // parallel across the two cores, tests inside a file run one after another.
    pool: 'forks',
  },
});
