// Typed boundary of lua/readSku-2.lua: a SKU's counters after reclaiming its expired holds.
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { takeReclaimed, type ReclaimedHold } from './reclaimed-holds';

/** onHand is net of a pending debit (a decrease already in effect). */
export type ReadSkuResult =
  | { readonly kind: 'found'; readonly onHand: number; readonly reserved: number; readonly pos: number; readonly reclaimed: readonly ReclaimedHold[] }
  | { readonly kind: 'missing' };

export async function readSku(scripts: ScriptRunner, keys: RedisKeys, sku: string, reclaimPerSkuMax: number): Promise<ReadSkuResult> {
  const reply = await scripts.run('readSku', [keys.skuState(sku), keys.skuHolds(sku)], [reclaimPerSkuMax]);
  if (reply[0] !== 1) return { kind: 'missing' };
  const reclaimed = takeReclaimed(reply);
  return { kind: 'found', onHand: Number(reply[1]), reserved: Number(reply[2]), pos: Number(reply[3]), reclaimed };
}
