// Typed boundary of lua/releaseDebit-1.lua: a rolled-back stock change releases its own debit.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export type ReleaseDebitResult = { readonly kind: 'released'; readonly units: number } | { readonly kind: 'not-pending' };

export async function releaseDebit(scripts: ScriptRunner, keys: RedisKeys, sku: string, debitId: string): Promise<ReleaseDebitResult> {
  assert(debitId.length > 0, 'a debit id');
  const reply = await scripts.run('releaseDebit', [keys.skuState(sku)], [debitId]);
  return reply[0] === 1 ? { kind: 'released', units: Number(reply[1]) } : { kind: 'not-pending' };
}
