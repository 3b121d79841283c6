import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A hang is this library's worst failure: every test and hook is bounded.
    testTimeout: 10_000,
    hookTimeout: 10_000,
    teardownTimeout: 5_000,
    pool: 'forks',
    execArgv: ['--expose-gc'],
  },
});
