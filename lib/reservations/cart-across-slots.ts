// A cart whose lines, record and idempotency record live in different hash slots (Redis Cluster),
// held with the same contract as the one-script cart on a single Redis (docs/design.md, "Redis
// Cluster"): all lines held or none after the reply; a retry with the same Idempotency-Key and
// request resumes or replays the same cart and never makes a second; a crash halfway leaves holds
// that expire with the hold TTL (the cart has no record, so nobody can confirm it).
//
// Steps, each one atomic script on one slot, each idempotent by the reservation id:
//   1. beginCart (idempotency slot): new (marker "holding" with id, expiry and an attempt lease),
//      in flight (a duplicate while the lease runs: retry later), resume (after the lease: the
//      attempt is presumed dead), or replay
//   2. with a customer the guards count (./customer-guard): admitCustomer (customer's slot), the
//      cart admitted before any line is held; refused: abortCart, refuse
//   3. holdLines per slot group, in slot order (a fixed order, as with locks), each checking the
//      guards' part in its slot
//   4. a group refused: returnLines on the groups held so far, forgetCustomer, abortCart, refuse
//   5. openRecord (the record's slot), then settleCart (idempotency slot)
// What another buyer can see meanwhile: a refused cart's units held in the slots it took first,
// from its holdLines to its returnLines (a few round trips; after a crash, until the hold TTL).
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { holdLines, pinLines, returnLines, slotGroups, type CartLine, type HoldGuard } from '../scripts/cart-lines';
import { admitCustomer, forgetCustomer, pinCustomer, readmitCustomer, type CustomerEntry, type CustomerRef } from '../scripts/customer-admission';
import { admissionOf, needsAdmission, readLimits, type CartGuard } from './customer-guard';
import { publicSku } from '../stock/stripes';
import { abortCart, beginCart, openRecord, settleCart, settleRecord } from '../scripts/cart-coordinator';
import { readReservation, type ConfirmResult } from '../scripts/reservation-record';
import type { ShortLineReply } from '../scripts/create-reservation';
import type { ReclaimedHold } from '../scripts/reclaimed-holds';

/** A retry can resume a cart this long after its holds' expiry at the latest (the marker's ttl beyond the hold's). */
export const cartMarkerSlackMs = 60_000;

export interface CartAcrossSlotsCall {
  readonly id: string;
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
  readonly customerId: string | null;
  /** Summed by SKU (no duplicates), quantities >= 1. */
  readonly lines: readonly CartLine[];
  readonly holdTtlMs: number;
  readonly idempotencyTtlMs: number;
  readonly retentionMs: number;
  readonly reclaimPerSkuMax: number;
  /**
   * How long an attempt is presumed alive: a duplicate meanwhile is told to retry later; after it,
   * the duplicate resumes the cart (IDEMPOTENCY_IN_FLIGHT_TTL_SECONDS).
   */
  readonly attemptLeaseMs: number;
  /** The flash-sale guards (./customer-guard); absent: a cart without a customer. */
  readonly guard?: CartGuard;
}

export type CartAcrossSlotsResult = (
  | { readonly kind: 'created' | 'replayed'; readonly id: string; readonly createdAtMs: number; readonly expiresAtMs: number }
  | { readonly kind: 'insufficient'; readonly lines: readonly ShortLineReply[] }
  | { readonly kind: 'missing'; readonly skus: readonly string[] }
  | { readonly kind: 'key-reused' }
  | { readonly kind: 'in-flight'; readonly retryAfterMs: number }
  | { readonly kind: 'customer-required'; readonly sku: string }
  | { readonly kind: 'limit-changed'; readonly sku: string }
  | { readonly kind: 'customer-limit'; readonly sku: string; readonly limit: number; readonly held: number; readonly counted: readonly CustomerEntry[] }
  | { readonly kind: 'too-many-active'; readonly activeMax: number; readonly active: number; readonly counted: readonly CustomerEntry[] }
) & { readonly reclaimed: readonly ReclaimedHold[] };

export async function createCartAcrossSlots(scripts: ScriptRunner, keys: RedisKeys, call: CartAcrossSlotsCall): Promise<CartAcrossSlotsResult> {
  const identity = { clientId: call.clientId, idempotencyKey: call.idempotencyKey, fingerprint: call.fingerprint };
  const begun = await beginCart(scripts, keys, { ...identity, newId: call.id, holdTtlMs: call.holdTtlMs, markerTtlMs: call.holdTtlMs + cartMarkerSlackMs, leaseMs: call.attemptLeaseMs });
  if (begun.kind === 'key-reused') return { kind: 'key-reused', reclaimed: [] };
  if (begun.kind === 'in-flight') return { kind: 'in-flight', retryAfterMs: begun.retryAfterMs, reclaimed: [] };
  if (begun.kind === 'replayed') return { kind: 'replayed', id: begun.id, createdAtMs: begun.createdAtMs, expiresAtMs: begun.expiresAtMs, reclaimed: [] };
  const guard = call.guard;
  // The customer's step, before any line is held: a hoarder over a cap touches no stock.
  const admitted: CustomerRef | null = guard !== undefined && guard.customer !== null && needsAdmission(guard) ? guard.customer : null;
  if (admitted !== null) {
    const admission = admissionOf(call.lines, guard!.limits);
    const result = await admitCustomer(scripts, keys, admitted, { reservationId: begun.id, expiresAtMs: begun.expiresAtMs, activeMax: guard!.activeMax, ...admission });
    if (result.kind === 'customer-limit' || result.kind === 'too-many-active') {
      await abortCart(scripts, keys, { ...identity, id: begun.id });
      return { ...result, reclaimed: [] };
    }
  }
  const holdGuard: HoldGuard = guard?.customer ? { customer: true, limits: guard.limits } : { customer: false };
  const reclaimed: ReclaimedHold[] = [];
  const held: CartLine[][] = [];
  for (const group of slotGroups(keys, call.lines)) {
    const result = await holdLines(scripts, keys, { reservationId: begun.id, expiresAtMs: begun.expiresAtMs, reclaimPerSkuMax: call.reclaimPerSkuMax, lines: group, guard: holdGuard });
    reclaimed.push(...result.reclaimed);
    if (result.kind === 'held' || result.kind === 'already-held') {
      held.push(group);
      continue;
    }
    // Refused: give back what this cart holds (a resumed attempt's earlier holds included), its
    // admission, and forget the marker, so that a retry tries again, as a refusal on a single
    // Redis is not stored.
    for (const taken of held) await returnLines(scripts, keys, begun.id, taken, 'keep-pinned');
    if (admitted !== null) await forgetCustomer(scripts, keys, admitted, [{ id: begun.id, value: '*' }]);
    await abortCart(scripts, keys, { ...identity, id: begun.id });
    switch (result.kind) {
      case 'insufficient': return { kind: 'insufficient', lines: result.lines, reclaimed };
      case 'missing': return { kind: 'missing', skus: result.skus, reclaimed };
      case 'customer-required': return { kind: 'customer-required', sku: publicSku(result.sku), reclaimed };
      case 'limit-changed': return { kind: 'limit-changed', sku: result.sku, reclaimed };
    }
  }
  await openRecord(scripts, keys, { id: begun.id, clientId: call.clientId, customerId: call.customerId, createdAtMs: begun.createdAtMs, expiresAtMs: begun.expiresAtMs, lines: call.lines, retentionMs: call.retentionMs, admitted: admitted !== null });
  const settled = await settleCart(scripts, keys, { ...identity, id: begun.id, createdAtMs: begun.createdAtMs, expiresAtMs: begun.expiresAtMs, idempotencyTtlMs: call.idempotencyTtlMs });
  if (settled === 'another-cart') {
    // This attempt stalled past its lease, another took the key over, was refused and forgot it,
    // and a third made another cart under the key: this cart must not live beside it (one key, one
    // reservation). Its record is released before anyone learns its id, its holds given back
    // (pinned ones stay: nobody can have confirmed it), and the caller is told to retry, which
    // answers the key's cart.
    await settleRecord(scripts, keys, begun.id, { to: 'release' });
    for (const group of held) await returnLines(scripts, keys, begun.id, group, 'keep-pinned');
    if (admitted !== null) await forgetCustomer(scripts, keys, admitted, [{ id: begun.id, value: '*' }]);
    return { kind: 'in-flight', retryAfterMs: 1, reclaimed };
  }
  return { kind: 'created', id: begun.id, createdAtMs: begun.createdAtMs, expiresAtMs: begun.expiresAtMs, reclaimed };
}

/**
 * The same answers as the one-script confirm's (confirmReservation), and the guards' refusal of
 * an admitted cart whose entry was gone and no longer fits (the cart is expired, its units back).
 */
export type ConfirmAcrossSlotsResult =
  | ConfirmResult
  | { readonly kind: 'customer-limit'; readonly sku: string; readonly limit: number; readonly held: number }
  | { readonly kind: 'too-many-active'; readonly activeMax: number; readonly active: number };

function notPending(status: string, fence: number): ConfirmAcrossSlotsResult {
  if (status === 'released') return { kind: 'released' };
  if (status === 'expired') return { kind: 'expired' };
  return { kind: 'already', status, fence };
}

/**
 * Confirms a cart across slots: pins every slot's holds (in slot order), then confirms the record.
 * Pins first, so its units are held without a gap: a pinned hold never expires, and a record is
 * confirmed only once every hold is pinned, even past its expiry. A slot that cannot pin (a hold
 * gone or expired) means no attempt can pin it any more: the record expires (if still pending),
 * then every slot's holds are given back. Two confirms racing pin the same holds (idempotent) and one of them
 * confirms the record (the other finds it confirmed). A release racing a confirm: whichever
 * reaches the record first wins; the loser's effect on the holds is undone by the winner's next
 * step or, after a crash, is a pinned hold whose record is not confirmed, which the reconciler must
 * give back (not built yet: docs/design.md, "Redis Cluster").
 */
export async function confirmCartAcrossSlots(scripts: ScriptRunner, keys: RedisKeys, id: string, guard: { readonly activeMax: number }): Promise<ConfirmAcrossSlotsResult> {
  const record = await readReservation(scripts, keys, id);
  if (record === undefined) return { kind: 'missing' };
  if (record.status !== 'pending') return notPending(record.status, record.fence);
  const groups = slotGroups(keys, record.lines);
  // The customer's entry first (./customer-guard): pinned, it counts until the commit, so the
  // cart is counted without a gap however late past its expiry the commit comes.
  const customer: CustomerRef | null = record.customerId === null ? null : { clientId: record.clientId, customerId: record.customerId };
  const customerPinned = customer === null ? 'no-entry' : await pinCustomer(scripts, keys, customer, id);
  const expire = async (): Promise<ConfirmAcrossSlotsResult> => {
    // The record first: only a record this attempt moved from pending to expired (or found
    // expired) lets its holds go. Found confirmed instead, another attempt pinned every hold and
    // the one missing here was applied by the commit: the holds are the ledger's, leave them.
    const expired = await settleRecord(scripts, keys, id, { to: 'expire' });
    if (expired.kind === 'missing') return { kind: 'missing' };
    if (expired.kind === 'unchanged' && expired.status !== 'expired') return notPending(expired.status, expired.fence);
    for (const each of groups) await returnLines(scripts, keys, id, each, 'all');
    if (customer !== null) await forgetCustomer(scripts, keys, customer, [{ id, value: '*' }]);
    return { kind: 'expired' };
  };
  if (customerPinned === 'expired') return expire();
  if (customerPinned === 'no-entry' && customer !== null && record.admitted) {
    // Admitted, yet its entry is gone (a failover lost it, a stalled attempt of the cart forgot
    // it, another primary's clock dropped it): counted again before anything is pinned, so a cart
    // the guards no longer count is never confirmed beside others that fill the cap.
    const admission = admissionOf(record.lines, await readLimits(scripts, keys, record.lines.map((line) => line.sku)));
    const readmitted = await readmitCustomer(scripts, keys, customer, { reservationId: id, expiresAtMs: record.expiresAtMs, activeMax: guard.activeMax, ...admission });
    if (readmitted.kind !== 'admitted') {
      const expired = await expire();
      if (expired.kind !== 'expired') return expired;
      return readmitted.kind === 'customer-limit'
        ? { kind: 'customer-limit', sku: readmitted.sku, limit: readmitted.limit, held: readmitted.held }
        : { kind: 'too-many-active', activeMax: readmitted.activeMax, active: readmitted.active };
    }
  }
  for (const group of groups) {
    const pinned = await pinLines(scripts, keys, id, group);
    if (pinned.kind !== 'pinned') return expire();
  }
  const confirmed = await settleRecord(scripts, keys, id, { to: 'confirm' });
  if (confirmed.kind === 'confirmed') return confirmed;
  if (confirmed.kind === 'missing') return { kind: 'missing' };
  return confirmed.kind === 'unchanged' ? notPending(confirmed.status, confirmed.fence) : { kind: 'expired' };
}

/**
 * Pins a confirmed cart's holds again, slot by slot (idempotent: a pinned hold stays pinned). A pin
 * a Redis failover lost (the promoted replica had the hold pending) is put back while the hold
 * lives; `gone` when a hold is missing or expired, which for a cart the ledger has not decided
 * means its units may have been sold again.
 */
export async function repinCart(scripts: ScriptRunner, keys: RedisKeys, id: string, lines: readonly CartLine[]): Promise<'pinned' | 'gone'> {
  for (const group of slotGroups(keys, lines)) {
    if ((await pinLines(scripts, keys, id, group)).kind !== 'pinned') return 'gone';
  }
  return 'pinned';
}

export type ReleaseAcrossSlotsResult =
  | { readonly kind: 'released' | 'already'; readonly status: 'released' | 'expired' }
  | { readonly kind: 'not-releasable'; readonly status: string }
  | { readonly kind: 'missing' };

/**
 * Releases a pending cart across slots: the record first (pending -> released, or expired past its
 * expiry), then every slot's holds given back. Releasing again gives them back again (a crash
 * between the steps heals on the retry; otherwise the holds expire with their TTL). A release
 * racing a confirm: the record decides; if the confirm pinned holds before losing, they are pinned
 * holds of a record that is not confirmed, for the reconciler (not built yet).
 */
export async function releaseCartAcrossSlots(scripts: ScriptRunner, keys: RedisKeys, id: string): Promise<ReleaseAcrossSlotsResult> {
  const record = await readReservation(scripts, keys, id);
  if (record === undefined) return { kind: 'missing' };
  const settled = await settleRecord(scripts, keys, id, { to: 'release' });
  if (settled.kind === 'missing') return { kind: 'missing' };
  const status = settled.kind === 'confirmed' ? 'confirmed' : settled.status;
  if (status !== 'released' && status !== 'expired') return { kind: 'not-releasable', status };
  for (const group of slotGroups(keys, record.lines)) await returnLines(scripts, keys, id, group, 'all');
  // The allowance back at once (else a refused admission of the customer finds the record ended).
  if (record.customerId !== null) await forgetCustomer(scripts, keys, { clientId: record.clientId, customerId: record.customerId }, [{ id, value: '*' }]);
  return { kind: settled.kind === 'settled' ? 'released' : 'already', status };
}

/**
 * The ledger refused a confirmed cart across slots: the record (fenced: confirmed at the job's
 * fence) -> rejected, then every slot's holds (pinned) given back. When Redis lost the record, the
 * holds the job names are still given back. A crash between the steps leaves pinned holds: the
 * reconciler re-queues their commit, the ledger answers rejected again, and this runs again.
 */
export async function rejectCartAcrossSlots(scripts: ScriptRunner, keys: RedisKeys, job: { readonly reservationId: string; readonly fence: number; readonly lines: readonly CartLine[]; readonly retentionMs: number }): Promise<{ readonly kind: 'rejected' | 'unchanged'; readonly status: string; readonly unitsReturned: number }> {
  const settled = await settleRecord(scripts, keys, job.reservationId, { to: 'reject', fence: job.fence, retentionMs: job.retentionMs });
  // Found rejected already: an earlier run moved the record and died before giving every hold
  // back; giving back again is idempotent, so this run finishes it.
  if (settled.kind === 'unchanged' && settled.status !== 'rejected') return { kind: 'unchanged', status: settled.status, unitsReturned: 0 };
  let unitsReturned = 0;
  for (const group of slotGroups(keys, job.lines)) unitsReturned += await returnLines(scripts, keys, job.reservationId, group, 'all');
  if (settled.kind === 'unchanged') return { kind: 'unchanged', status: 'rejected', unitsReturned };
  return settled.kind === 'missing' ? { kind: 'unchanged', status: 'missing', unitsReturned } : { kind: 'rejected', status: 'rejected', unitsReturned };
}
