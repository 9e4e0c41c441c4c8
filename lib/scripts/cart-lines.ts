// Typed boundary of lua/holdLines-n.lua and lua/returnLines-n.lua: the per-slot steps of a cart
// that spans hash slots on a Redis Cluster (docs/design.md, "Redis Cluster"). `slotGroups` splits
// a cart's lines by the slot of their SKU's keys; each group is one atomic call.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { slotOf } from '../redis/slots';
import type { ShortLineReply } from './create-reservation';
import { takeReclaimed, type ReclaimedHold } from './reclaimed-holds';

export interface CartLine {
  readonly sku: string;
  readonly quantity: number;
}

/**
 * The cart's lines grouped by the hash slot of their SKU's keys, the groups in slot order (the
 * order every cart takes them in), each group's lines in cart order. A fixed order, as with locks:
 * two carts over the same SKUs taking their slots in opposite orders can each hold the part the
 * other needs and both be refused (a test showed 200 carts for 20 units ending with none held);
 * in one order the first to win the first slot goes on.
 */
export function slotGroups(keys: RedisKeys, lines: readonly CartLine[]): CartLine[][] {
  const groups = new Map<number, CartLine[]>();
  for (const line of lines) {
    const slot = slotOf(keys.skuState(line.sku));
    groups.set(slot, [...(groups.get(slot) ?? []), line]);
  }
  return [...groups.entries()].sort(([left], [right]) => left - right).map(([, group]) => group);
}

/**
 * The flash-sale guards' part of a slot's hold: a cart without a customer is refused on a SKU
 * limited per customer; a cart with one was counted by its customer step against `limits` (by the
 * line's SKU, null for none), which must still be each SKU's.
 */
export type HoldGuard = { readonly customer: false } | { readonly customer: true; readonly limits: ReadonlyMap<string, number | null> };

export interface HoldLinesCall {
  readonly reservationId: string;
  readonly expiresAtMs: number;
  readonly reclaimPerSkuMax: number;
  /** One slot's lines (slotGroups), no duplicate SKU, quantities >= 1. */
  readonly lines: readonly CartLine[];
  /** Absent: a cart without a customer. */
  readonly guard?: HoldGuard;
}

export type HoldLinesResult = (
  | { readonly kind: 'held' }
  | { readonly kind: 'already-held' }
  | { readonly kind: 'insufficient'; readonly lines: readonly ShortLineReply[] }
  | { readonly kind: 'missing'; readonly skus: readonly string[] }
  | { readonly kind: 'customer-required'; readonly sku: string }
  | { readonly kind: 'limit-changed'; readonly sku: string; readonly limit: number | null }
) & { readonly reclaimed: readonly ReclaimedHold[] };

function lineKeysAndArgs(keys: RedisKeys, lines: readonly CartLine[]): { redisKeys: string[]; args: Array<string | number> } {
  assert(lines.length >= 1, 'a slot group has at least one line');
  const redisKeys: string[] = [];
  const args: Array<string | number> = [];
  for (const line of lines) {
    assert(Number.isSafeInteger(line.quantity) && line.quantity >= 1, `quantity of ${line.sku} must be a whole number >= 1`);
    redisKeys.push(keys.skuState(line.sku), keys.skuHolds(line.sku));
    args.push(line.sku, line.quantity);
  }
  return { redisKeys, args };
}

export async function holdLines(scripts: ScriptRunner, keys: RedisKeys, call: HoldLinesCall): Promise<HoldLinesResult> {
  const { redisKeys } = lineKeysAndArgs(keys, call.lines);
  const guard = call.guard ?? { customer: false };
  const args: Array<string | number> = [call.reservationId, call.expiresAtMs, call.reclaimPerSkuMax, guard.customer ? 'c' : 'n'];
  for (const line of call.lines) args.push(line.sku, line.quantity, guard.customer ? (guard.limits.get(line.sku) ?? '') : '');
  const reply = await scripts.run('holdLines', redisKeys, args);
  const reclaimed = takeReclaimed(reply);
  switch (reply[0]) {
    case 1: return { kind: 'held', reclaimed };
    case 2: return { kind: 'already-held', reclaimed };
    case -6: return { kind: 'customer-required', sku: String(reply[1]), reclaimed };
    case -8: return { kind: 'limit-changed', sku: String(reply[1]), limit: reply[2] === '' || reply[2] === null ? null : Number(reply[2]), reclaimed };
    case -1: {
      const lines: ShortLineReply[] = [];
      for (let index = 1; index < reply.length; index += 4) {
        lines.push({ sku: String(reply[index]), requested: Number(reply[index + 1]), available: Number(reply[index + 2]), retryAfterMs: Number(reply[index + 3]) });
      }
      return { kind: 'insufficient', lines, reclaimed };
    }
    default:
      assert(reply[0] === -3, `holdLines replied ${String(reply[0])}`);
      return { kind: 'missing', skus: reply.slice(1).map(String), reclaimed };
  }
}

/**
 * Gives back this reservation's holds on one slot's lines; returns the units given back.
 * `keep-pinned` (a create's compensation) leaves pinned holds: another attempt of the same cart
 * confirmed them. `all` (release, reject, a confirm that found the cart expired) takes them too.
 */
export async function returnLines(scripts: ScriptRunner, keys: RedisKeys, reservationId: string, lines: readonly CartLine[], pinned: 'keep-pinned' | 'all'): Promise<number> {
  const { redisKeys, args } = lineKeysAndArgs(keys, lines);
  const reply = await scripts.run('returnLines', redisKeys, [reservationId, pinned, ...args]);
  return Number(reply[0]);
}

/** Pins this reservation's holds on one slot's lines (score +inf), all or none; `gone` when a hold is missing or expired. */
export async function pinLines(scripts: ScriptRunner, keys: RedisKeys, reservationId: string, lines: readonly CartLine[]): Promise<{ readonly kind: 'pinned' } | { readonly kind: 'gone'; readonly skus: readonly string[] }> {
  const { redisKeys, args } = lineKeysAndArgs(keys, lines);
  const reply = await scripts.run('pinLines', redisKeys, [reservationId, ...args]);
  if (reply[0] === 1) return { kind: 'pinned' };
  assert(reply[0] === -1, `pinLines replied ${String(reply[0])}`);
  return { kind: 'gone', skus: reply.slice(1).map(String) };
}
