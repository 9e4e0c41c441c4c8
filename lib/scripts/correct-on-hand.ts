// Typed boundary of lua/correctOnHand-1.lua: the reconciler's correction at the ledger's position.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export type CorrectOnHandResult =
  | { readonly kind: 'done'; readonly onHandBefore: number; readonly debitReleased: number }
  | { readonly kind: 'moved'; readonly pos: number }
  | { readonly kind: 'missing' };

export async function correctOnHand(scripts: ScriptRunner, keys: RedisKeys, sku: string, ledger: { onHand: number; seq: number }, dryRun: boolean): Promise<CorrectOnHandResult> {
  const reply = await scripts.run('correctOnHand', [keys.skuState(sku)], [ledger.seq, ledger.onHand, dryRun ? '1' : '0']);
  if (reply[0] === 1) return { kind: 'done', onHandBefore: Number(reply[1]), debitReleased: Number(reply[2]) };
  if (reply[0] === 0) return { kind: 'moved', pos: Number(reply[1]) };
  assert(reply[0] === -1, `correctOnHand replied ${String(reply[0])}`);
  return { kind: 'missing' };
}
