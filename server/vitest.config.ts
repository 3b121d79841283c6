import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets, real time: every test and hook is bounded, and nothing may hang.
    testTimeout: 10_000,
    hookTimeout: 10_000,
    teardownTimeout: 5_000,
    pool: 'forks',
  },
});
