// Typed boundary of lua/prepareStockChange-3.lua: the Redis step inside a stock change's
// transaction (Redis brought to the ledger's position, a decrease staged as a pending debit).
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { takeReclaimed, type ReclaimedHold } from './reclaimed-holds';

export interface PrepareStockChange {
  readonly sku: string;
  /** The ledger's position and on-hand, read under the row lock. */
  readonly ledgerSeq: number;
  readonly ledgerOnHand: number;
  /** A decrease's debit; undefined for an increase or no change. */
  readonly debit?: { readonly id: string; readonly units: number };
  readonly reclaimPerSkuMax: number;
  readonly holdsRebuildMax: number;
}

export type PrepareStockChangeResult =
  | { readonly kind: 'ready'; readonly onHand: number; readonly reserved: number; readonly driftCorrected: boolean; readonly orphanDebitReleased: number; readonly reclaimed: readonly ReclaimedHold[] }
  | { readonly kind: 'behind'; readonly pos: number }
  | { readonly kind: 'below-reserved'; readonly onHand: number; readonly reserved: number; readonly reclaimed: readonly ReclaimedHold[] }
  | { readonly kind: 'too-many-holds'; readonly holdCount: number };

export async function prepareStockChange(scripts: ScriptRunner, keys: RedisKeys, request: PrepareStockChange): Promise<PrepareStockChangeResult> {
  assert(Number.isSafeInteger(request.ledgerSeq) && request.ledgerSeq >= 0, 'ledger position is a whole number');
  assert(Number.isSafeInteger(request.ledgerOnHand) && request.ledgerOnHand >= 0, 'ledger on-hand is a whole number');
  assert(request.debit === undefined || (request.debit.units >= 1 && request.debit.id.length > 0), 'a debit has units and an id');
  const { sku } = request;
  const reply = await scripts.run(
    'prepareStockChange',
    [keys.skuState(sku), keys.skuHolds(sku), keys.skuUnknown(sku)],
    [request.ledgerSeq, request.ledgerOnHand, request.debit?.id ?? '', request.debit?.units ?? 0, request.reclaimPerSkuMax, request.holdsRebuildMax],
  );
  const reclaimed = takeReclaimed(reply);
  switch (reply[0]) {
    case 1: return { kind: 'ready', onHand: Number(reply[1]), reserved: Number(reply[2]), driftCorrected: reply[3] === 1, orphanDebitReleased: Number(reply[4]), reclaimed };
    case 0: return { kind: 'behind', pos: Number(reply[1]) };
    case -1: return { kind: 'below-reserved', onHand: Number(reply[1]), reserved: Number(reply[2]), reclaimed };
    default:
      assert(reply[0] === -2, `prepareStockChange replied ${String(reply[0])}`);
      return { kind: 'too-many-holds', holdCount: Number(reply[1]) };
  }
}
