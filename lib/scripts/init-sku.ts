// Typed boundary of lua/initSku-2.lua: a SKU state rebuilt from the ledger (creates, never overwrites).
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export type InitSkuResult =
  | { readonly kind: 'created'; readonly holdCount: number }
  | { readonly kind: 'exists' }
  | { readonly kind: 'too-many-holds'; readonly holdCount: number };

export async function initSku(scripts: ScriptRunner, keys: RedisKeys, sku: string, ledger: { onHand: number; seq: number; perCustomerLimit?: number | null }, holdsRebuildMax: number): Promise<InitSkuResult> {
  assert(ledger.onHand >= 0 && ledger.seq >= 0, 'a ledger position and on-hand');
  const reply = await scripts.run('initSku', [keys.skuState(sku), keys.skuHolds(sku)], [ledger.onHand, ledger.seq, holdsRebuildMax, ledger.perCustomerLimit ?? '']);
  if (reply[0] === 1) return { kind: 'created', holdCount: Number(reply[1]) };
  if (reply[0] === 0) return { kind: 'exists' };
  assert(reply[0] === -1, `initSku replied ${String(reply[0])}`);
  return { kind: 'too-many-holds', holdCount: Number(reply[1]) };
}
