// Typed boundary of lua/inspectSku-2.lua: the reconciler's look at one SKU.
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { takeReclaimed, type ReclaimedHold } from './reclaimed-holds';

export interface Inspection {
  readonly kind: 'found';
  readonly onHand: number;
  readonly reserved: number;
  readonly pos: number;
  readonly debit: number;
  readonly expiredHolds: number;
  readonly expiredUnits: number;
  readonly holdCount: number;
  /** Confirmed holds: reservation id and quantity, at most `confirmedMax`. */
  readonly confirmed: ReadonlyArray<{ readonly id: string; readonly quantity: number }>;
  /** More confirmed holds than asked for: the rest wait for the next run. */
  readonly confirmedTruncated: boolean;
  readonly reclaimed: readonly ReclaimedHold[];
}

export type InspectSkuResult = Inspection | { readonly kind: 'missing'; readonly holdCount: number };

export interface InspectSku {
  readonly sku: string;
  readonly reclaimMax: number;
  readonly confirmedMax: number;
  /** Count expired holds without reclaiming them. */
  readonly dryRun: boolean;
}

function holdOf(member: string | number | null): { id: string; quantity: number } {
  const text = String(member);
  const separator = text.lastIndexOf(':');
  return { id: text.slice(0, separator), quantity: Number(text.slice(separator + 1)) };
}

export async function inspectSku(scripts: ScriptRunner, keys: RedisKeys, request: InspectSku): Promise<InspectSkuResult> {
  const reply = await scripts.run('inspectSku', [keys.skuState(request.sku), keys.skuHolds(request.sku)], [request.reclaimMax, request.confirmedMax, request.dryRun ? '1' : '0']);
  if (reply[0] === -1) return { kind: 'missing', holdCount: Number(reply[1]) };
  const reclaimed = takeReclaimed(reply);
  return {
    reclaimed,
    kind: 'found',
    onHand: Number(reply[1]),
    reserved: Number(reply[2]),
    pos: Number(reply[3]),
    debit: Number(reply[4]),
    expiredHolds: Number(reply[5]),
    expiredUnits: Number(reply[6]),
    holdCount: Number(reply[7]),
    confirmedTruncated: reply[8] === 1,
    confirmed: reply.slice(9).map(holdOf),
  };
}
