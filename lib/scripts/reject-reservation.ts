// Typed boundary of lua/rejectReservation-n.lua: the compensation for an allocation the ledger refused.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export interface RejectReservation {
  readonly reservationId: string;
  readonly fence: number;
  readonly lines: ReadonlyArray<{ readonly sku: string; readonly quantity: number }>;
  readonly retentionMs: number;
}

export type RejectReservationResult =
  | { readonly kind: 'rejected'; readonly unitsReturned: number }
  | { readonly kind: 'unchanged'; readonly status: string; readonly unitsReturned: number };

export async function rejectReservation(scripts: ScriptRunner, keys: RedisKeys, request: RejectReservation): Promise<RejectReservationResult> {
  assert(request.lines.length >= 1, 'a reservation has lines');
  const redisKeys = [keys.reservation(request.reservationId)];
  for (const line of request.lines) redisKeys.push(keys.skuState(line.sku), keys.skuHolds(line.sku));
  const reply = await scripts.run('rejectReservation', redisKeys, [request.reservationId, request.fence, request.retentionMs, ...request.lines.map((line) => line.quantity)]);
  if (reply[0] === 1) return { kind: 'rejected', unitsReturned: Number(reply[1]) };
  return { kind: 'unchanged', status: String(reply[1]), unitsReturned: Number(reply[2]) };
}
