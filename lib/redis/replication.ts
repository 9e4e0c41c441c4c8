// Durability of an acknowledged write across a Redis failover: WAIT blocks until the replicas have
// every write this connection sent before it (or the timeout passes) and says how many do. A
// confirmation is answered only once REDIS_CONFIRM_REPLICAS replicas have it, so a primary that
// dies right after cannot take an acknowledged confirm with it.
import { Cluster } from 'ioredis';
import { assert } from '../errors';
import type { RedisClient } from './connection';
import { slotOf } from './slots';

/**
 * Waits until `replicas` replicas have the writes sent before it on the connection that wrote
 * `key` (on a cluster, the connection to the primary that owns the key's slot); resolves with how
 * many acknowledged within `timeoutMs`.
 */
export async function waitForReplicas(redis: RedisClient, key: string, replicas: number, timeoutMs: number): Promise<number> {
  assert(replicas >= 1 && timeoutMs >= 1, 'waiting needs at least one replica and a timeout');
  if (!(redis instanceof Cluster)) return redis.wait(replicas, timeoutMs);
  const owner = redis.slots[slotOf(key)]?.[0];
  const node = redis.nodes('master').find((candidate) => `${candidate.options.host}:${candidate.options.port}` === owner);
  assert(node !== undefined, `no primary known for the slot of ${key}`);
  return node.wait(replicas, timeoutMs);
}
