// The name of every BullMQ queue the service uses, in one place (the queue dashboard, the
// queue-depth metric and the operator CLI list them from here).
import { Queue } from 'bullmq';
import type { Config } from './config';
import { assert } from './errors';
import { connectQuietly, createQueueConnection, type RedisClient } from './redis/connection';

/**
 * BullMQ's keys live under the service's own prefix. On a Redis Cluster the prefix is a hash tag,
 * so every key of a queue (which BullMQ's scripts touch together) is in one slot.
 */
export function bullPrefix(config: Pick<Config, 'redisKeyPrefix'> & Partial<Pick<Config, 'redisClusterNodes'>>): string {
  return config.redisClusterNodes === undefined || config.redisClusterNodes === null ? `${config.redisKeyPrefix}bull` : `${config.redisKeyPrefix}{bull}`;
}
export const queueNames = {
  /** Confirmed and cancelled reservations on their way to the ledger. */
  commits: 'commits',
  /** The reconciler's schedule: one job per RECONCILE_INTERVAL_MS, run by one worker at a time. */
  reconcile: 'reconcile',
  /** One job per (event, webhook URL): signed delivery with capped exponential backoff. */
  webhooks: 'webhooks',
} as const;

export type QueueName = (typeof queueNames)[keyof typeof queueNames];
export const allQueueNames: readonly QueueName[] = Object.values(queueNames);

/**
 * A Queue handle per queue name, for inspection and operator actions (the dashboard, the
 * queue-depth metric, the admin jobs endpoints). Producers keep their own queues; these share
 * one fail-fast connection, so an inspection with Redis down fails within the command timeout.
 */
export class QueueSet {
  private readonly connection: RedisClient;
  private readonly queues: ReadonlyMap<QueueName, Queue>;

  constructor(config: Pick<Config, 'redisUrl' | 'redisKeyPrefix' | 'redisCommandTimeoutMs' | 'redisClusterNodes'>) {
    this.connection = createQueueConnection({ url: config.redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs, clusterNodes: config.redisClusterNodes });
    this.queues = new Map(
      allQueueNames.map((name) => {
        const queue = new Queue(name, { connection: this.connection, prefix: bullPrefix(config) });
        queue.on('error', () => undefined);
        return [name, queue] as const;
      }),
    );
  }

  async connect(): Promise<void> {
    await connectQuietly(this.connection);
  }

  /** Whether the shared connection is up (a sample skips BullMQ entirely when it is not). */
  isConnected(): boolean {
    return this.connection.status === 'ready';
  }

  get(name: QueueName): Queue {
    const queue = this.queues.get(name);
    assert(queue !== undefined, `no queue ${name}`);
    return queue;
  }

  all(): readonly Queue[] {
    return [...this.queues.values()];
  }

  async close(): Promise<void> {
    await closeQueues(this.all(), this.connection);
  }
}

/** How long closing waits for a queue's start-up to settle once its connection is ended. */
export const queueStartSettleMs = 1000;

/**
 * Closes BullMQ queues that share `connection`, the connection first. BullMQ's close of a queue
 * on a shared connection whose start-up is still in flight (Redis down or silent) removes the
 * queue's listeners and leaves the start-up pending; when it fails later, BullMQ emits 'error'
 * with no listener left, which Node turns into an unhandled rejection: a process stopping during a
 * Redis outage would crash instead of exiting cleanly. So the connection is ended first, each
 * queue's start-up is given queueStartSettleMs to settle (on a cluster client it may not: the
 * shutdown test saw it wait past the 8 s budget), and only queues whose start-up settled are
 * closed; the others keep their listeners (a later failure reaches the queue's own 'error'
 * handler) and hold nothing, their connection being ended.
 */
export async function closeQueues(queues: readonly Queue[], connection: RedisClient): Promise<void> {
  connection.disconnect();
  const settled = new Set<Queue>();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(queues.map((queue) => queue.waitUntilReady().then(() => settled.add(queue), () => settled.add(queue)))),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, queueStartSettleMs);
    }),
  ]);
  clearTimeout(timer);
  await Promise.all(queues.filter((queue) => settled.has(queue)).map((queue) => queue.close().catch(() => undefined)));
}

export function isQueueName(name: string): name is QueueName {
  return (allQueueNames as readonly string[]).includes(name);
}
