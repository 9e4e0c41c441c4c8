// The producer side of webhook delivery: adds delivery jobs with explicit options (attempts,
// the capped exponential backoff the webhook worker implements, how many finished jobs to keep).
// Its connection fails fast (no offline queue), like the commit queue's: a dispatcher with Redis
// down fails its tick, keeps its cursor, and tries again on the next one.
import { Queue, type JobsOptions } from 'bullmq';
import { backoffStrategyName } from '../commits/commit-queue';
import type { Config } from '../config';
import { bullPrefix, closeQueues, queueNames } from '../queues';
import { connectQuietly, createQueueConnection, type RedisClient, withRedis } from '../redis/connection';
import { webhookJobId, type WebhookJob } from './webhook-jobs';

export const webhookJobName = 'deliver';

export function webhookJobOptions(config: Config): JobsOptions {
  return {
    attempts: config.webhookAttempts,
    backoff: { type: backoffStrategyName },
    removeOnComplete: { count: config.webhookKeepCompleted },
    // A delivery out of attempts stays in the failed set with its reason (the dead letters),
    // until an operator retries it or the set outgrows WEBHOOK_KEEP_FAILED.
    removeOnFail: { count: config.webhookKeepFailed },
  };
}

/** What the dispatcher needs from a queue: add a page of jobs, ignoring ids BullMQ still knows. */
export interface WebhookJobSink {
  addJobs(jobs: readonly WebhookJob[]): Promise<void>;
  /** Deliveries not yet done (waiting, delayed, prioritized): what Redis holds for them. */
  backlog(): Promise<number>;
}

export class WebhookQueue implements WebhookJobSink {
  readonly queue: Queue<WebhookJob>;
  private readonly connection: RedisClient;

  constructor(config: Config) {
    this.connection = createQueueConnection({ url: config.redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs, clusterNodes: config.redisClusterNodes });
    this.queue = new Queue<WebhookJob>(queueNames.webhooks, { connection: this.connection, prefix: bullPrefix(config), defaultJobOptions: webhookJobOptions(config) });
    this.queue.on('error', () => undefined);
  }

  async connect(): Promise<void> {
    await connectQuietly(this.connection);
  }

  async addJobs(jobs: readonly WebhookJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await withRedis(() => this.queue.addBulk(jobs.map((job) => ({ name: webhookJobName, data: job, opts: { jobId: webhookJobId(job.eventId, job.urlKey) } }))));
  }

  async backlog(): Promise<number> {
    const counts = await withRedis(() => this.queue.getJobCounts('waiting', 'delayed', 'prioritized'));
    return (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0);
  }

  async close(): Promise<void> {
    await closeQueues([this.queue], this.connection);
  }
}
