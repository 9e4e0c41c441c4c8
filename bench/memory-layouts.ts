// Candidate Redis layouts for a hot SKU's holds and their records, measured side by side with
// plain Redis commands (no scripts): the layouts weighed by the redesign towards 200 B a hold
// (issue 12), of which the shared record hashes are built (lua/includes/record.lua). Run by
// `npm run bench:memory -- --layouts`. Each layout writes
// `holds` holds of one line on one SKU under a key prefix of its own, then reports per hold the
// sum of `MEMORY USAGE` over the keys it wrote and the growth of `used_memory`, and deletes them.
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../lib/redis/connection';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';

/** Holds of one index bucket at most: below zset-max-listpack-entries (128), so it stays a listpack. */
export const bucketHoldsMax = 100;
/** Records per shared hash, about: below hash-max-listpack-entries (512), so each stays a listpack. */
export const recordsPerBucket = 100;

interface Layout {
  readonly name: string;
  /** Writes hold i (id, expiry) and returns the keys it wrote. */
  write(redis: RedisClient, prefix: string, index: number, id: string, expiresAt: number, holds: number): Promise<string[]>;
}

const recordHash = (expiresAt: number) => ['s', 'pending', 'c', 'checkout-web', 'ca', String(expiresAt - 900_000), 'ex', String(expiresAt), 'l', 'MEM-HOT:1'];
/** The record as one string: status, client, expiry offset (the id carries the creation time), lines. */
const recordString = 'p|checkout-web|900000|MEM-HOT:1';

const layouts: readonly Layout[] = [
  {
    name: 'before: a record hash per key + one sorted set (skiplist)',
    async write(redis, prefix, _index, id, expiresAt) {
      const record = `${prefix}res:{${id}}`;
      await redis.multi().hset(record, ...recordHash(expiresAt)).pexpire(record, 3_600_000).zadd(`${prefix}holds:{MEM-HOT}`, expiresAt, `${id}:1`).exec();
      return [record, `${prefix}holds:{MEM-HOT}`];
    },
  },
  {
    name: 'record as one string per key (embstr) + one sorted set',
    async write(redis, prefix, _index, id, expiresAt) {
      const record = `${prefix}res:{${id}}`;
      await redis.multi().set(record, recordString, 'PX', 3_600_000).zadd(`${prefix}holds:{MEM-HOT}`, expiresAt, `${id}:1`).exec();
      return [record, `${prefix}holds:{MEM-HOT}`];
    },
  },
  {
    name: 'records as fields of shared hashes (listpacks) + one sorted set (built: lua/includes/record.lua)',
    async write(redis, prefix, _index, id, expiresAt, holds) {
      const bucket = recordBucket(prefix, id, holds);
      await redis.multi().hset(bucket, id, recordString).zadd(`${prefix}holds:{MEM-HOT}`, expiresAt, `${id}:1`).exec();
      return [bucket, `${prefix}holds:{MEM-HOT}`];
    },
  },
  {
    name: 'records in shared hashes + the index in buckets of <= 100 holds (listpacks)',
    async write(redis, prefix, index, id, expiresAt, holds) {
      const bucket = recordBucket(prefix, id, holds);
      const indexBucket = `${prefix}holds:{MEM-HOT}:${Math.floor(index / bucketHoldsMax)}`;
      await redis.multi().hset(bucket, id, recordString).zadd(indexBucket, expiresAt, `${id}:1`).exec();
      return [bucket, indexBucket];
    },
  },
];

/** The shared hash a record goes to: enough buckets that each holds about recordsPerBucket. */
function recordBucket(prefix: string, id: string, holds: number): string {
  let hash = 0;
  for (let index = 0; index < id.length; index += 1) hash = (hash * 31 + id.charCodeAt(index)) >>> 0;
  return `${prefix}recs:{${hash % Math.max(1, Math.ceil(holds / recordsPerBucket))}}`;
}

async function usedMemory(redis: RedisClient): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
}

export async function measureLayouts(redis: RedisClient, holds: number): Promise<string> {
  const lines = [`\ncandidate layouts, ${holds} holds on one hot SKU (plain commands, no scripts; 22-character ids):`, '| layout | MEMORY USAGE per hold | used_memory growth per hold |', '|---|---:|---:|'];
  for (const layout of layouts) {
    const prefix = `bench:${randomBytes(4).toString('hex')}:`;
    try {
      const before = await usedMemory(redis);
      const keys = new Set<string>();
      const now = Date.now();
      for (let start = 0; start < holds; start += 200) {
        const written = await Promise.all(Array.from({ length: Math.min(200, holds - start) }, (_, offset) => layout.write(redis, prefix, start + offset, randomBytes(16).toString('base64url'), now + 900_000 + start + offset, holds)));
        for (const list of written) for (const key of list) keys.add(key);
      }
      const after = await usedMemory(redis);
      let usage = 0;
      for (const key of keys) usage += Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
      lines.push(`| ${layout.name} | ${(usage / holds).toFixed(0)} B | ${((after - before) / holds).toFixed(0)} B |`);
    } finally {
      await deleteKeysWithPrefix(redis, prefix);
    }
  }
  return lines.join('\n') + '\n';
}
