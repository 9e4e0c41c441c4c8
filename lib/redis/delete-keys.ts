// Deletes every key under a prefix, SCAN batch by SCAN batch (never KEYS, never FLUSHDB), for
// tests and benchmarks that must leave a shared Redis as they found it.
import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from './connection';

export const scanBatch = 1000;

export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<void> {
  // A cluster's keys are spread over its primaries: scan each; delete key by key (one slot each).
  if (redis instanceof Cluster) {
    for (const node of redis.nodes('master')) await deleteOnNode(node, prefix, (keys) => Promise.all(keys.map((key) => redis.unlink(key))));
    return;
  }
  await deleteOnNode(redis, prefix, (keys) => redis.unlink(...keys));
}

async function deleteOnNode(redis: Redis, prefix: string, unlink: (keys: string[]) => Promise<unknown>): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', scanBatch);
    if (keys.length > 0) await unlink(keys);
    cursor = next;
  } while (cursor !== '0');
}
