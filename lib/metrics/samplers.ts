// Gauges sampled when Prometheus scrapes: queue depths, Redis clock skew, readiness. Each is
// bounded by its connection's command timeout; a sample that fails counts a failure and leaves
// the gauge as it was (readiness drops to 0).
import type { Knex } from 'knex';
import type { RedisClient } from '../redis/connection';
import { checkReadiness } from '../readiness';
import type { QueueSet } from '../queues';
import { queueStates, type Metrics } from './metrics';

export function addStandardSamplers(metrics: Metrics, backends: { readonly redis: RedisClient; readonly knex: Knex; readonly queues: QueueSet }): void {
  metrics.addSampler('queue_jobs', async () => {
    if (!backends.queues.isConnected()) throw new Error('the queue connection is down');
    await Promise.all(
      backends.queues.all().map(async (queue) => {
        const counts = await queue.getJobCounts(...queueStates);
        for (const state of queueStates) metrics.queueJobs.set({ queue: queue.name, state }, counts[state] ?? 0);
      }),
    );
  });
  metrics.addSampler('clock_skew', async () => {
    const before = Date.now();
    const [seconds, micros] = await backends.redis.time();
    const after = Date.now();
    const redisMs = Number(seconds) * 1000 + Number(micros) / 1000;
    // Our clock at the midpoint of the round trip, so the round trip itself is not counted as skew.
    metrics.clockSkew.set((redisMs - (before + after) / 2) / 1000);
  });
  metrics.addSampler('readiness', async () => {
    const readiness = await checkReadiness(backends.redis, backends.knex);
    metrics.ready.set(readiness.ready ? 1 : 0);
  });
}
