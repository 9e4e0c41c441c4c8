// Durability of an acknowledged write across a Redis failover: WAIT blocks until the replicas have
// every write this connection sent before it (or the timeout passes) and says how many do. A
// confirmation is answered only once REDIS_CONFIRM_REPLICAS replicas of every primary it wrote
// have it, so no primary that dies right after can take an acknowledged confirm (or a part of it:
// a cart's pinned holds live on the primaries of its SKUs) with it.
import { Cluster, type Redis } from 'ioredis';
import { assert } from '../errors';
import type { RedisClient } from './connection';
import { slotOf } from './slots';

/** Keys one WAIT may cover, at most (a cart's lines plus its record). */
export const replicatedKeysMax = 64;

/**
 * Waits until `replicas` replicas of each primary owning one of `keys` have the writes sent before
 * it on this client's connection to that primary; resolves with the fewest any primary reached
 * within `timeoutMs` (the primaries are asked side by side).
 */
export async function waitForReplicas(redis: RedisClient, keys: readonly string[], replicas: number, timeoutMs: number): Promise<number> {
  assert(replicas >= 1 && timeoutMs >= 1, 'waiting needs at least one replica and a timeout');
  assert(keys.length >= 1 && keys.length <= replicatedKeysMax, `waiting covers 1 to ${replicatedKeysMax} keys`);
  if (!(redis instanceof Cluster)) return redis.wait(replicas, timeoutMs);
  const acknowledged = await Promise.all(primariesOf(redis, keys).map((node) => node.wait(replicas, timeoutMs)));
  return Math.min(...acknowledged);
}

/** The distinct primaries that own `keys`' slots, as this client's slot map has them now. */
function primariesOf(cluster: Cluster, keys: readonly string[]): Redis[] {
  const nodes = new Map<string, Redis>();
  const primaries = cluster.nodes('master');
  for (const key of keys) {
    const owner = cluster.slots[slotOf(key)]?.[0];
    assert(owner !== undefined, `no primary known for the slot of ${key}`);
    if (nodes.has(owner)) continue;
    const node = primaries.find((candidate) => `${candidate.options.host}:${candidate.options.port}` === owner);
    assert(node !== undefined, `no connection to the primary ${owner} of ${key}`);
    nodes.set(owner, node);
  }
  return [...nodes.values()];
}
