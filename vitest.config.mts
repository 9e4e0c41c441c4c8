import { defineConfig } from 'vitest/config';

// Tests talk to the real Redis and Postgres. They use their own Postgres database
// (stockhold_test, recreated once per run by the global setup), their own Redis logical
// database (9) and a key prefix of their own per test file, never what `npm start` uses.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
    env: {
      TEST_DATABASE_URL: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/stockhold_test',
      TEST_REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/9',
    },
  },
});
