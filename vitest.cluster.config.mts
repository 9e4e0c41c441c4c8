import { defineConfig } from 'vitest/config';
import base from './vitest.config.mts';

// The same tests again, with every Stockhold the harness starts running on a real Redis Cluster
// (three primaries, three replicas; started once by test/support/cluster-setup.ts). Left out:
// the files that drive a single Redis directly by design (the Lua script tests, outages on a
// private Redis, FLUSHDB chaos, the queue tests that name BullMQ's single-Redis prefix, the hot
// path's batches, which a cluster does not make), those
// that need no Redis, and those that start a cluster of their own. The files that start the real
// processes from dist/ (shutdown, logs, metrics-processes) run here too, with REDIS_CLUSTER_NODES.
const singleRedisOnly = [
  'lua-scripts', 'lua-model', 'outages', 'commit-outages', 'reconciler-chaos', 'commit-exactly-once',
  'queue-dashboard', 'admin-jobs', 'bench', 'migrations', 'queue-close', 'overload', 'reservation-batches',
  'config', 'reservation-ids', 'deploy', 'chaos-checker', 'chaos-proxy', 'cluster', 'cluster-api', 'cluster-failover', 'confirm-replication',
];

export default defineConfig({
  test: {
    ...base.test,
    include: ['test/**/*.test.ts'],
    exclude: singleRedisOnly.map((name) => `test/${name}.test.ts`),
    globalSetup: ['test/support/global-setup.ts', 'test/support/cluster-setup.ts'],
  },
});
