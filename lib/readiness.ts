// Readiness: Redis answers and will never evict (BullMQ and the holds both need noeviction),
// and Postgres answers. Each check is bounded by the connections' own timeouts.
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, string>>;
}

async function redisCheck(redis: Redis): Promise<string> {
  try {
    const info = await redis.info('memory');
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1] ?? 'unknown';
    return policy === 'noeviction' ? 'ok' : `maxmemory-policy is ${policy}, must be noeviction`;
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

export async function checkReadiness(redis: Redis, knex: Knex): Promise<Readiness> {
  const [redisStatus, postgresStatus] = await Promise.all([redisCheck(redis), postgresCheck(knex)]);
  return { ready: redisStatus === 'ok' && postgresStatus === 'ok', checks: { redis: redisStatus, postgres: postgresStatus } };
}
