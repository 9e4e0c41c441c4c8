// Typed boundary of lua/createReservation-n.lua, the hot path: one atomic check-and-hold.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { takeReclaimed, type ReclaimedHold } from './reclaimed-holds';

export interface CreateReservationCall {
  readonly id: string;
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
  readonly customerId: string | null;
  /** Summed by SKU (no duplicates), quantities >= 1. */
  readonly lines: ReadonlyArray<{ readonly sku: string; readonly quantity: number }>;
  readonly holdTtlMs: number;
  readonly idempotencyTtlMs: number;
  readonly retentionMs: number;
  readonly reclaimPerSkuMax: number;
  /**
   * The flash-sale guards (lua/includes/guards.lua; one Redis: a cluster takes lib/reservations/customer-guard.ts): per-customer limits of
   * the lines' SKUs, and at most this many live reservations per customer.
   */
  readonly activeHoldsPerCustomerMax?: number;
}

export interface ShortLineReply {
  readonly sku: string;
  readonly requested: number;
  readonly available: number;
  /** When a pending hold could free enough; -1 when nothing pending can. */
  readonly retryAfterMs: number;
}

export type CreateReservationResult = (
  | { readonly kind: 'created'; readonly createdAtMs: number; readonly expiresAtMs: number }
  | { readonly kind: 'replayed'; readonly id: string; readonly createdAtMs: number; readonly expiresAtMs: number }
  | { readonly kind: 'insufficient'; readonly lines: readonly ShortLineReply[] }
  | { readonly kind: 'key-reused' }
  | { readonly kind: 'missing'; readonly skus: readonly string[] }
  | { readonly kind: 'in-flight'; readonly retryAfterMs: number }
  | { readonly kind: 'customer-limit'; readonly sku: string; readonly limit: number; readonly held: number }
  | { readonly kind: 'customer-required'; readonly sku: string }
  | { readonly kind: 'too-many-active'; readonly activeMax: number; readonly active: number }
) & { /** Expired holds this call gave back on the way (any outcome). */ readonly reclaimed: readonly ReclaimedHold[] };

export async function createReservation(scripts: ScriptRunner, keys: RedisKeys, call: CreateReservationCall): Promise<CreateReservationResult> {
  assert(call.lines.length >= 1, 'a reservation has at least one line');
  const redisKeys = [keys.idempotency(call.clientId, call.idempotencyKey), keys.reservation(call.id)];
  const args: Array<string | number> = [call.fingerprint, call.id, call.clientId, call.customerId ?? '', call.holdTtlMs, call.idempotencyTtlMs, call.retentionMs, call.reclaimPerSkuMax];
  for (const line of call.lines) {
    redisKeys.push(keys.skuState(line.sku), keys.skuHolds(line.sku));
    args.push(line.sku, line.quantity);
  }
  if (call.activeHoldsPerCustomerMax !== undefined) {
    redisKeys.push(keys.customer(call.clientId, call.customerId ?? ''));
    args.push(call.activeHoldsPerCustomerMax);
  }
  const reply = await scripts.run('createReservation', redisKeys, args);
  const reclaimed = takeReclaimed(reply);
  switch (reply[0]) {
    case 1: return { kind: 'created', createdAtMs: Number(reply[1]), expiresAtMs: Number(reply[2]), reclaimed };
    case 2: return { kind: 'replayed', id: String(reply[1]), createdAtMs: Number(reply[2]), expiresAtMs: Number(reply[3]), reclaimed };
    case -1: {
      const lines: ShortLineReply[] = [];
      for (let index = 1; index < reply.length; index += 4) {
        lines.push({ sku: String(reply[index]), requested: Number(reply[index + 1]), available: Number(reply[index + 2]), retryAfterMs: Number(reply[index + 3]) });
      }
      return { kind: 'insufficient', lines, reclaimed };
    }
    case -2: return { kind: 'key-reused', reclaimed };
    case -4: return { kind: 'in-flight', retryAfterMs: Number(reply[1]), reclaimed };
    case -5: return { kind: 'customer-limit', sku: String(reply[1]), limit: Number(reply[2]), held: Number(reply[3]), reclaimed };
    case -6: return { kind: 'customer-required', sku: String(reply[1]), reclaimed };
    case -7: return { kind: 'too-many-active', activeMax: Number(reply[1]), active: Number(reply[2]), reclaimed };
    default:
      assert(reply[0] === -3, `createReservation replied ${String(reply[0])}`);
      return { kind: 'missing', skus: reply.slice(1).map(String), reclaimed };
  }
}
