// Deletes every key under a prefix, SCAN batch by SCAN batch (never KEYS, never FLUSHDB), for
// tests and benchmarks that must leave a shared Redis as they found it.
import type { Redis } from 'ioredis';

export const scanBatch = 1000;

export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', scanBatch);
    if (keys.length > 0) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
