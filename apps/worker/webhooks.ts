// Webhook delivery in a worker process: the dispatcher loop (outbox -> one delivery job per event
// and receiver, every WEBHOOK_POLL_MS) and the BullMQ worker that makes the signed POSTs, retrying
// with capped exponential backoff until WEBHOOK_ATTEMPTS; then the job stays in the failed set.
// The logic is in lib/webhooks; this file wires it, logs every attempt and stops cleanly.
import { UnrecoverableError, Worker } from 'bullmq';
import { createWorkerConnection } from '../../lib/redis/connection';
import type { Logger } from 'pino';
import { backoffStrategyName, cappedExponentialBackoff } from '../../lib/commits/commit-queue';
import type { Config } from '../../lib/config';
import { bullPrefix, queueNames } from '../../lib/queues';
import type { Stockhold } from '../../lib/stockhold';
import { WebhookDispatcher } from '../../lib/webhooks/dispatcher';
import type { WebhookJob } from '../../lib/webhooks/webhook-jobs';
import { WebhookQueue } from '../../lib/webhooks/webhook-queue';
import { WebhookSender, type AttemptOutcome, type AttemptReport } from '../../lib/webhooks/webhook-sender';

/** BullMQ's job lock; renewed while a delivery runs, so it only matters when a worker dies. */
export const webhookLockDurationMs = 30_000;
export const webhookStalledIntervalMs = 15_000;
/** A delivery whose worker died this many times is failed (it stays in the failed set). */
export const webhookStalledRunsMax = 3;
/** Part of SHUTDOWN_TIMEOUT_MS that in-flight deliveries get to finish before they are aborted. */
export const webhookDrainShare = 0.5;

/** An attempt that did not deliver; BullMQ retries it (or keeps it as failed after the last). */
class DeliveryAttemptError extends Error {
  override readonly name = 'DeliveryAttemptError';
}

function describe(outcome: AttemptOutcome): string {
  switch (outcome.kind) {
    case 'answered':
      return `receiver answered ${outcome.status}`;
    case 'unreachable':
      return `receiver unreachable: ${outcome.reason}`;
    case 'unknown-receiver':
      return 'the URL is no longer in WEBHOOK_URLS';
  }
}

function logAttempt(logger: Logger, jobId: string | undefined, job: WebhookJob, attemptsMax: number, report: AttemptReport): void {
  const fields = {
    jobId,
    eventId: job.eventId,
    eventType: job.eventType,
    url: job.target,
    status: report.outcome.kind === 'answered' ? report.outcome.status : undefined,
    attempt: report.attempt,
    attemptsMax,
    result: report.result,
    durationMs: report.durationMs,
    requestId: job.requestId,
  };
  if (report.result === 'delivered') logger.info(fields, 'webhook delivered');
  else if (report.result === 'failed') logger.warn({ ...fields, reason: describe(report.outcome) }, 'webhook attempt failed; will retry');
  else logger.error({ ...fields, reason: describe(report.outcome) }, 'webhook delivery gave up; the job stays in the failed set');
}

/** Hands events on every `pollMs` until stopped; a failed tick is logged and tried again next time. */
function startDispatchLoop(dispatcher: WebhookDispatcher, pollMs: number, logger: Logger): { stop: () => Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const tick = async () => {
    try {
      for (const result of await dispatcher.dispatchOnce()) {
        if (result.kind === 'dispatched') logger.debug({ url: result.target, count: result.count, lastEventId: result.lastEventId }, 'webhook events dispatched');
        else if (result.kind === 'failed') logger.warn({ url: result.target, err: result.error }, 'webhook dispatch for this receiver failed; trying again next tick');
        else if (result.kind === 'backlogged') logger.warn({ url: result.target, backlog: result.backlog }, 'webhook deliveries backlogged (WEBHOOK_BACKLOG_MAX): events wait in the outbox');
      }
    } catch (error) {
      logger.warn({ err: error }, 'webhook dispatch failed; trying again next tick');
    }
  };
  const done = (async () => {
    while (!stopped) {
      await tick();
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, pollMs);
      });
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await done;
    },
  };
}

/** Waits for in-flight deliveries up to the drain budget, then aborts them, then closes. */
async function closeWorker(worker: Worker, stopDeliveries: AbortController, config: Config, logger: Logger): Promise<void> {
  const drainMs = Math.floor(config.shutdownTimeoutMs * webhookDrainShare);
  const closing = worker.close();
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([closing.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), drainMs)))]);
  clearTimeout(timer);
  if (!drained) {
    // Each aborted delivery counts as a failed attempt and is retried later (maybe elsewhere).
    logger.warn({ drainMs }, 'webhook deliveries still running at shutdown; aborting them');
    stopDeliveries.abort();
    await closing;
  }
}

export async function startWebhooks(stockhold: Stockhold, logger: Logger): Promise<{ stop: () => Promise<void> }> {
  const { config } = stockhold;
  if (config.webhookUrls.length === 0) {
    logger.info('WEBHOOK_URLS is empty: webhook delivery is off');
    return { stop: async () => undefined };
  }
  const queue = new WebhookQueue(config);
  await queue.connect();
  const dispatcher = new WebhookDispatcher(stockhold.knex, queue, config);
  const sender = new WebhookSender(config, stockhold.metrics);
  const stopDeliveries = new AbortController();
  // BullMQ's worker connection must retry forever (maxRetriesPerRequest: null); it is its own.
  const connection = createWorkerConnection({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
  const backoff = cappedExponentialBackoff(config.webhookBackoffBaseMs, config.webhookBackoffMaxMs);
  const worker = new Worker<WebhookJob>(
    queueNames.webhooks,
    async (job) => {
      const attemptsMax = job.opts.attempts ?? 1;
      const report = await sender.attempt(job.data, job.attemptsMade + 1, attemptsMax, stopDeliveries.signal);
      logAttempt(logger, job.id, job.data, attemptsMax, report);
      if (report.result === 'delivered') return;
      const reason = describe(report.outcome);
      throw report.outcome.kind === 'unknown-receiver' ? new UnrecoverableError(reason) : new DeliveryAttemptError(reason);
    },
    {
      connection,
      prefix: bullPrefix(config),
      concurrency: config.webhookConcurrency,
      lockDuration: webhookLockDurationMs,
      stalledInterval: webhookStalledIntervalMs,
      maxStalledCount: webhookStalledRunsMax,
      removeOnComplete: { count: config.webhookKeepCompleted },
      removeOnFail: { count: config.webhookKeepFailed },
      settings: { backoffStrategy: (attemptsMade, type) => (type === backoffStrategyName ? backoff(attemptsMade) : 0) },
    },
  );
  worker.on('failed', (job, error) => {
    // The processor logged its own attempts; this catches the rest (a job that stalled too often).
    if (error instanceof DeliveryAttemptError || error instanceof UnrecoverableError) return;
    logger.error({ jobId: job?.id, eventId: job?.data.eventId, url: job?.data.target, attemptsMade: job?.attemptsMade, err: error }, 'webhook job failed');
  });
  worker.on('error', (error) => logger.warn({ err: error }, 'webhook worker error'));
  const loop = startDispatchLoop(dispatcher, config.webhookPollMs, logger);
  logger.info({ receivers: config.webhookUrls.length, concurrency: config.webhookConcurrency, attempts: config.webhookAttempts }, 'webhook delivery started');
  return {
    stop: async () => {
      await loop.stop();
      await closeWorker(worker, stopDeliveries, config, logger);
      await queue.close();
      connection.disconnect();
    },
  };
}
