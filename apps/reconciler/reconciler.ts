// The scheduled reconciler: a BullMQ job scheduler produces one "reconcile" job every
// RECONCILE_INTERVAL_MS, and the queue's global concurrency of 1 lets only one run at a time
// across every instance (no lock of our own). Redis can lose its data, BullMQ's keys included,
// so each instance upserts the scheduler (and the concurrency) again every interval: the
// schedule comes back by itself.
import { Queue, Worker } from 'bullmq';
import { createWorkerConnection } from '../../lib/redis/connection';
import type { Logger } from 'pino';
import { redisMode } from '../../lib/config';
import { bullPrefix, closeQueues, queueNames } from '../../lib/queues';
import { StockholdError } from '../../lib/errors';
import type { ReconcileReport } from '../../lib/reconcile/report';
import type { Stockhold } from '../../lib/stockhold';

export const reconcileQueueName = queueNames.reconcile;
export const schedulerId = 'reconcile-every';
export const reconcileJobsKept = 100;

export async function startReconciler(stockhold: Stockhold, logger: Logger): Promise<{ stop: () => Promise<void> }> {
  const { config } = stockhold;
  const connection = createWorkerConnection({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
  const queue = new Queue(reconcileQueueName, { connection, prefix: bullPrefix(config) });
  queue.on('error', () => undefined);
  const ensureSchedule = async () => {
    await queue.setGlobalConcurrency(1);
    await queue.upsertJobScheduler(schedulerId, { every: config.reconcileIntervalMs }, {
      name: 'reconcile',
      opts: { attempts: 1, removeOnComplete: { count: reconcileJobsKept }, removeOnFail: { count: reconcileJobsKept } },
    });
  };
  await ensureSchedule().catch((error) => logger.warn({ err: error }, 'reconciler: could not schedule yet; will retry'));
  const keeper = setInterval(() => {
    ensureSchedule().catch((error) => logger.warn({ err: error }, 'reconciler: could not re-establish the schedule'));
  }, config.reconcileIntervalMs);
  const worker = new Worker<unknown, ReconcileReport | null>(
    reconcileQueueName,
    async () => {
      let report: ReconcileReport;
      try {
        report = await stockhold.reconciler.run('scheduled', false);
      } catch (error) {
        // A manual or CLI run holds the lease: this tick has nothing to add.
        if (error instanceof StockholdError && error.code === 'reconcile_in_progress') {
          logger.debug('reconcile tick skipped: a run is in progress');
          return null;
        }
        throw error;
      }
      const changed = report.holdsExpired + report.commitsRequeued + report.skusRebuilt + report.driftCorrected + report.debitsReleased > 0;
      if (report.skusFailed > 0) logger.error({ runId: report.runId, skusFailed: report.skusFailed, failures: report.failures.slice(0, 20) }, 'reconcile run skipped SKUs it could not reconcile');
      logger[changed ? 'info' : 'debug']({ ...report, corrections: report.corrections.slice(0, 20) }, 'reconcile run');
      return report;
    },
    {
      connection,
      prefix: bullPrefix(config),
      concurrency: 1,
      lockDuration: Math.max(30_000, config.reconcileIntervalMs * 2),
      removeOnComplete: { count: reconcileJobsKept },
      removeOnFail: { count: reconcileJobsKept },
    },
  );
  worker.on('failed', (_job, error) => logger.error({ err: error }, 'reconcile run failed'));
  worker.on('error', (error) => logger.warn({ err: error }, 'reconciler worker error'));
  logger.info({ intervalMs: config.reconcileIntervalMs, redis: redisMode(config) }, 'reconciler scheduled');
  return {
    stop: async () => {
      clearInterval(keeper);
      // A run in progress finishes the page it is on, records its report, and ends.
      stockhold.reconciler.stopAfterPage();
      await worker.close();
      await closeQueues([queue], connection);
    },
  };
}
