// The flash-sale guards on a Redis Cluster (docs/design.md, "Flash-sale guards on a cluster").
// One Redis checks them inside the hold's script by reading the customer's records
// (lua/includes/guards.lua); on a cluster those records live in other slots, so the customer's
// slot keeps entries with what the guards count (lua/includes/customer-entries.lua) and a cart
// takes one more atomic step there, before any of its lines is held:
//   1. the limits of the cart's SKUs are read (each SKU state's `pcl`),
//   2. admitCustomer counts the customer's live entries against them and the active-holds cap and
//      admits the cart (a pending entry) in the same step,
//   3. each slot's holdLines checks that its SKUs' limits are still the ones counted; a limit
//      changed in between refuses the slot, and the cart starts again from 1 (bounded).
// Entries can outlive their reservations (a crash between steps, a commit whose worker died before
// forgetting), never the other way round: a refused admission reads the records of the entries it
// counted (at most 16) and forgets those whose reservation has ended, then asks again once.
import { readReservation } from '../scripts/reservation-record';
import { settleRecord } from '../scripts/cart-coordinator';
import { forgetCustomer, type CustomerEntry, type CustomerRef } from '../scripts/customer-admission';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { withRedis } from '../redis/connection';
import { publicSku } from '../stock/stripes';

/** What a cart's guards need: its customer (null: none), the limits as read, and the active-holds cap. */
export interface CartGuard {
  readonly customer: CustomerRef | null;
  /** Each line's SKU (stripes as they are) -> its per-customer limit, null for none; as read before the cart. */
  readonly limits: ReadonlyMap<string, number | null>;
  /** MAX_ACTIVE_HOLDS_PER_CUSTOMER (0: no cap). */
  readonly activeMax: number;
}

/** Record statuses after which a reservation holds nothing for its customer. */
const endedStatuses = new Set(['released', 'expired', 'committed', 'rejected', 'cancelled']);

/** The per-customer limit of each SKU (its state's `pcl`; a stripe's is its SKU's). */
export async function readLimits(scripts: ScriptRunner, keys: RedisKeys, skus: readonly string[]): Promise<Map<string, number | null>> {
  const redis = scripts.redis;
  const limits = await Promise.all(skus.map((sku) => withRedis(() => redis.hget(keys.skuState(sku), 'pcl'))));
  return new Map(skus.map((sku, index) => [sku, limits[index] === null || limits[index] === undefined ? null : Number(limits[index])]));
}

/**
 * The admission's view of a cart: its lines and limits by the SKU a customer buys (stripes
 * summed; a SKU whose stripes disagree for a moment, during a change, takes the lowest limit).
 */
export function admissionOf(lines: ReadonlyArray<{ readonly sku: string; readonly quantity: number }>, limits: ReadonlyMap<string, number | null>): { lines: Array<{ sku: string; quantity: number }>; limits: Map<string, number> } {
  const quantities = new Map<string, number>();
  const capped = new Map<string, number>();
  for (const line of lines) {
    const sku = publicSku(line.sku);
    quantities.set(sku, (quantities.get(sku) ?? 0) + line.quantity);
    const limit = limits.get(line.sku) ?? null;
    if (limit !== null) capped.set(sku, Math.min(limit, capped.get(sku) ?? limit));
  }
  return { lines: [...quantities].map(([sku, quantity]) => ({ sku, quantity })), limits: capped };
}

/** Whether the cart takes the customer step at all (as on one Redis: only what a cap can count). */
export function needsAdmission(guard: CartGuard): boolean {
  return guard.customer !== null && (guard.activeMax > 0 || [...guard.limits.values()].some((limit) => limit !== null));
}

/**
 * How long past its expiry a pending record whose entry a confirm pinned is left to that confirm
 * (which pins the holds and confirms the record, a few round trips) before it is presumed dead.
 */
export const stalledConfirmGraceMs = 60_000;

/**
 * Reads the records of the entries a refused admission counted and forgets those whose
 * reservation has ended (fenced on the entry's value). A record Redis no longer has ended too when
 * its entry was confirmed (a confirmed record is kept until its commit); a pending entry without
 * a record may be a cart whose record is not written yet, and is left to its expiry. A confirmed
 * entry whose record is still pending `stalledConfirmGraceMs` past its expiry belongs to a confirm
 * that died between its steps: the record is expired first (so that confirm can never finish), its
 * pinned holds are the reconciler's to give back, and the entry goes. Returns how many were
 * forgotten.
 */
export async function forgetEnded(scripts: ScriptRunner, keys: RedisKeys, customer: CustomerRef, counted: readonly CustomerEntry[]): Promise<number> {
  const records = await Promise.all(counted.map((entry) => readReservation(scripts, keys, entry.id)));
  const ended: CustomerEntry[] = [];
  for (const [index, entry] of counted.entries()) {
    const record = records[index];
    if (record === undefined ? entry.state === 'confirmed' : endedStatuses.has(record.status)) {
      ended.push(entry);
    } else if (record !== undefined && entry.state === 'confirmed' && record.status === 'pending' && record.nowMs > record.expiresAtMs + stalledConfirmGraceMs) {
      const settled = await settleRecord(scripts, keys, entry.id, { to: 'expire' });
      if (settled.kind === 'settled' || (settled.kind === 'unchanged' && endedStatuses.has(settled.status))) ended.push(entry);
    }
  }
  return forgetCustomer(scripts, keys, customer, ended.map((entry) => ({ id: entry.id, value: entry.value })));
}
