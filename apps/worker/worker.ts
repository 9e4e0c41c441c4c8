// The commit worker: a BullMQ worker whose processor hands each job to lib/'s CommitProcessor
// (group commit to the ledger, then the fenced Redis step). Every BullMQ option is explicit.
import { Worker } from 'bullmq';
import { createWorkerConnection } from '../../lib/redis/connection';
import type { Logger } from 'pino';
import { commitQueueName, type LedgerJob } from '../../lib/commits/commit-jobs';
import { CommitProcessor, type ProcessResult } from '../../lib/commits/commit-processor';
import { backoffStrategyName, cappedExponentialBackoff } from '../../lib/commits/commit-queue';
import { redisMode } from '../../lib/config';
import { bullPrefix } from '../../lib/queues';
import type { Stockhold } from '../../lib/stockhold';

/** A crashed worker's job is re-run this many times before BullMQ gives up on it. */
export const stalledRunsMax = 10;

export async function startWorker(stockhold: Stockhold, logger: Logger): Promise<{ worker: Worker; stop: () => Promise<void> }> {
  const { config } = stockhold;
  const processor = new CommitProcessor(stockhold.knex, stockhold.scripts, stockhold.keys, stockhold.projection, config, stockhold.metrics);
  // BullMQ's worker connection must retry forever (maxRetriesPerRequest: null) and queue while
  // reconnecting; it is its own connection, without auto-pipelining.
  const connection = createWorkerConnection({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
  const backoff = cappedExponentialBackoff(config.commitBackoffBaseMs, config.commitBackoffMaxMs);
  const worker = new Worker<LedgerJob, ProcessResult>(commitQueueName, (job) => processor.process(job.data), {
    connection,
    prefix: bullPrefix(config),
    concurrency: config.commitConcurrency,
    lockDuration: config.commitLockDurationMs,
    stalledInterval: config.commitStalledIntervalMs,
    maxStalledCount: stalledRunsMax,
    removeOnComplete: { count: config.commitKeepCompleted },
    removeOnFail: { count: config.commitKeepFailed },
    settings: { backoffStrategy: (attemptsMade, type) => (type === backoffStrategyName ? backoff(attemptsMade) : 0) },
  });
  // Every line carries the reservation and the API request that confirmed (or cancelled) it, so
  // one reservation can be followed from the HTTP request to the ledger.
  worker.on('completed', (job, result) => {
    logger.info({ jobId: job.id, kind: job.data.kind, reservationId: job.data.reservationId, requestId: job.data.requestId, attemptsMade: job.attemptsMade, ledger: result.ledger, redis: result.redis }, 'commit job done');
  });
  worker.on('failed', (job, error) => {
    const final = job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1);
    // Once per job: a job the reconciler retries keeps its attempt count, and failing again past
    // the limit is not a second job failed for good.
    if (job !== undefined && job.attemptsMade === (job.opts.attempts ?? 1)) stockhold.metrics.jobsFailed.inc({ queue: commitQueueName });
    logger[final ? 'error' : 'warn']({ jobId: job?.id, reservationId: job?.data.reservationId, requestId: job?.data.requestId, attemptsMade: job?.attemptsMade, err: error }, final ? 'commit job failed for good' : 'commit job failed; will retry');
  });
  worker.on('error', (error) => logger.warn({ err: error }, 'commit worker error'));
  logger.info({ concurrency: config.commitConcurrency, batchMax: config.commitBatchMax, redis: redisMode(config) }, 'commit worker started');
  return {
    worker,
    stop: async () => {
      await worker.close();
      await processor.close();
      connection.disconnect();
    },
  };
}
