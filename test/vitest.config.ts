import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['test/**/*.test.ts'],
    // Real child processes and real WAL files: give slow CI (2 cores) room, but
    // keep each test bounded so a hang fails instead of stalling the run.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more parallel files only adds contention to the race tests.
    maxWorkers: 2,
  },
});
