// Readiness: Redis answers and will never evict (BullMQ and the holds both need noeviction),
// and Postgres answers. Each check is bounded by the connections' own timeouts.
import type { Knex } from 'knex';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redis/connection';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, string>>;
}

async function redisCheck(redis: RedisClient): Promise<string> {
  try {
    // On a cluster every primary must answer and never evict.
    const infos = redis instanceof Cluster ? await Promise.all(redis.nodes('master').map((node) => node.info('memory'))) : [await redis.info('memory')];
    if (infos.length === 0) return 'unavailable: no cluster primary known';
    for (const info of infos) {
      const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1] ?? 'unknown';
      if (policy !== 'noeviction') return `maxmemory-policy is ${policy}, must be noeviction`;
    }
    return 'ok';
  } catch (error) {
    return `unavailable: ${(error as Error).message}`;
  }
}

async function postgresCheck(knex: Knex): Promise<string> {
  try {
    await knex.raw('SELECT 1');
    return 'ok';
  } catch (error) {
    return `unavailable: ${(error as Error).message}`;
  }
}

export async function checkReadiness(redis: RedisClient, knex: Knex): Promise<Readiness> {
  const [redisStatus, postgresStatus] = await Promise.all([redisCheck(redis), postgresCheck(knex)]);
  return { ready: redisStatus === 'ok' && postgresStatus === 'ok', checks: { redis: redisStatus, postgres: postgresStatus } };
}
