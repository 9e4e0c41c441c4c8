// Durability of an acknowledged write across a Redis failover: WAIT blocks until the replicas have
// every write this connection sent before it (or the timeout passes) and says how many do. A
// confirmation is answered only once REDIS_CONFIRM_REPLICAS replicas of every primary it wrote
// have it, so no primary that dies right after can take an acknowledged confirm (or a part of it:
// a cart's pinned holds live on the primaries of its SKUs) with it.
//
// Two rules make a WAIT cover a write made earlier, perhaps on another connection:
// - per primary, a witness SET and the WAIT are pipelined on one connection: the WAIT waits for
//   the witness, which the primary's replication stream carries after every earlier write to it
//   (a WAIT alone on a connection that sent nothing answers at once, e.g. after ioredis replaced
//   the connection following a CLIENT KILL);
// - a slot whose owner changed since the write (a failover in between) is not covered by any WAIT
//   on the new owner: the write may be lost, so the answer is "not replicated".
import { Cluster, type Redis } from 'ioredis';
import { assert } from '../errors';
import type { RedisClient } from './connection';
import { slotOf } from './slots';

/** Keys one WAIT may cover, at most (a cart's lines plus its record). */
export const replicatedKeysMax = 64;
/** A witness key outlives the WAIT it serves by far, then goes. */
export const witnessTtlMs = 60_000;

/** Which primary owns each key's slot now ("host:port"), as this client's slot map has it; null on one Redis. */
export type SlotOwners = ReadonlyMap<number, string> | null;

export function slotOwners(redis: RedisClient, keys: readonly string[]): SlotOwners {
  if (!(redis instanceof Cluster)) return null;
  const owners = new Map<number, string>();
  for (const key of keys) {
    const slot = slotOf(key);
    const owner = redis.slots[slot]?.[0];
    assert(owner !== undefined, `no primary known for the slot of ${key}`);
    owners.set(slot, owner);
  }
  return owners;
}

export interface WaitForReplicas {
  readonly keys: readonly string[];
  readonly replicas: number;
  readonly timeoutMs: number;
  /** The witness key for a key: a key of its slot that nothing else uses. */
  readonly witness: (key: string) => string;
  /** The owners when the writes began (slotOwners before the first write); a change answers 0. */
  readonly ownersBefore?: SlotOwners;
}

/**
 * Waits until `replicas` replicas of each primary owning one of `keys` have every write that
 * primary took before now; resolves with the fewest any primary reached within `timeoutMs` (the
 * primaries are asked side by side), or 0 when a slot changed owner since `ownersBefore`.
 */
export async function waitForReplicas(redis: RedisClient, wait: WaitForReplicas): Promise<number> {
  assert(wait.replicas >= 1 && wait.timeoutMs >= 1, 'waiting needs at least one replica and a timeout');
  assert(wait.keys.length >= 1 && wait.keys.length <= replicatedKeysMax, `waiting covers 1 to ${replicatedKeysMax} keys`);
  if (!(redis instanceof Cluster)) return witnessAndWait(redis as Redis, wait.witness(wait.keys[0]!), wait);
  const now = slotOwners(redis, wait.keys)!;
  if (wait.ownersBefore !== undefined && wait.ownersBefore !== null) {
    for (const [slot, owner] of now) if (wait.ownersBefore.get(slot) !== owner) return 0;
  }
  const primaries = redis.nodes('master');
  const byOwner = new Map<string, string>();
  for (const key of wait.keys) {
    const owner = now.get(slotOf(key))!;
    if (!byOwner.has(owner)) byOwner.set(owner, key);
  }
  const nodes = [...byOwner].map(([owner, key]) => ({ key, node: primaries.find((candidate) => `${candidate.options.host}:${candidate.options.port}` === owner) }));
  if (nodes.some(({ node }) => node === undefined)) {
    // The slot map names a primary this client has no connection to (it died, a failover moved
    // its slots, and nothing sent since has brought a MOVED): refresh the map and count nothing
    // replicated; the caller's retry waits on the new owner.
    redis.refreshSlotsCache();
    return 0;
  }
  const acknowledged = await Promise.all(nodes.map(({ key, node }) => witnessAndWait(node!, wait.witness(key), wait)));
  return Math.min(...acknowledged);
}

async function witnessAndWait(connection: Redis, witnessKey: string, wait: WaitForReplicas): Promise<number> {
  const replies = await connection.pipeline().set(witnessKey, '1', 'PX', witnessTtlMs).wait(wait.replicas, wait.timeoutMs).exec();
  assert(replies !== null && replies.length === 2, 'the witness and WAIT pipeline answered');
  for (const [error] of replies) if (error) throw error;
  return Number(replies[1]![1]);
}
