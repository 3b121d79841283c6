import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets, real time: every test and hook is bounded, and nothing may hang.
    testTimeout: 10_000,
    hookTimeout: 10_000,
    teardownTimeout: 5_000,
    pool: 'forks',
    server: {
      deps: {
        // loopsafe comes from the workspace (a symlink out of node_modules): load its built files as
        // Node does for a user, not through Vite's module runner, which would run a second copy of the
        // engine for the subpath exports that require it.
        external: [/\/dist\/[^/]+\.c?js$/],
      },
    },
  },
});
