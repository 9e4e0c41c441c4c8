// The producer side of the commit pipeline: queues commit and cancel jobs with explicit options.
// Its connection fails fast (no offline queue), like the request connection: with Redis down a
// confirmation answers 503 rather than hanging.
import { Queue, type JobsOptions } from 'bullmq';
import type { Config } from '../config';
import { connectQuietly, createQueueConnection, type RedisClient, withRedis } from '../redis/connection';
import { bullPrefix, closeQueues } from '../queues';
import { commitQueueName, jobIdOf, type LedgerJob } from './commit-jobs';

export const backoffStrategyName = 'capped-exponential';


/** Exponential from `baseMs`, capped at `maxMs`, with up to 20 % jitter so retries spread out. */
export function cappedExponentialBackoff(baseMs: number, maxMs: number) {
  return (attemptsMade: number): number => {
    const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
    return Math.round(exponential * (0.8 + Math.random() * 0.2));
  };
}

export function jobOptions(config: Config): JobsOptions {
  return {
    attempts: config.commitAttempts,
    backoff: { type: backoffStrategyName },
    removeOnComplete: { count: config.commitKeepCompleted },
    // Failed jobs stay visible with their reason until the reconciler re-drives them.
    removeOnFail: { count: config.commitKeepFailed },
  };
}

export class CommitQueue {
  readonly queue: Queue<LedgerJob>;
  private readonly connection: RedisClient;

  constructor(private readonly config: Config) {
    this.connection = createQueueConnection({ url: config.redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs, clusterNodes: config.redisClusterNodes });
    this.queue = new Queue<LedgerJob>(commitQueueName, { connection: this.connection, prefix: bullPrefix(config), defaultJobOptions: jobOptions(config) });
    this.queue.on('error', () => undefined);
  }

  async connect(): Promise<void> {
    await connectQuietly(this.connection);
  }

  /** Queues the job; a job with the same id that BullMQ still knows makes this a no-op. */
  async add(job: LedgerJob): Promise<void> {
    await withRedis(() => this.queue.add(job.kind, job, { jobId: jobIdOf(job) }));
  }

  async close(): Promise<void> {
    await closeQueues([this.queue], this.connection);
  }
}
