// Typed boundary of lua/admitCustomer-1.lua, lua/pinCustomer-1.lua and lua/forgetCustomer-1.lua:
// the flash-sale guards' steps in a customer's own slot on a Redis Cluster
// (lua/includes/customer-entries.lua; the cart's protocol in lib/reservations/customer-guard.ts).
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

/** Whose entries: customers are an API client's own. */
export interface CustomerRef {
  readonly clientId: string;
  readonly customerId: string;
}

/** A live entry as a refused admission reports it: the value is the fence for forgetting it. */
export interface CustomerEntry {
  readonly id: string;
  readonly value: string;
  readonly state: 'pending' | 'confirmed';
}

export interface AdmitCustomerCall {
  readonly reservationId: string;
  readonly expiresAtMs: number;
  /** Live reservations a customer may have at most; 0: no cap. */
  readonly activeMax: number;
  /** The cart's lines by the SKU a customer buys (stripes summed into their SKU). */
  readonly lines: ReadonlyArray<{ readonly sku: string; readonly quantity: number }>;
  /** The per-customer limits of the cart's limited SKUs (by the SKU a customer buys). */
  readonly limits: ReadonlyMap<string, number>;
}

export type AdmitCustomerResult =
  | { readonly kind: 'admitted' | 'admitted-already' }
  | { readonly kind: 'too-many-active'; readonly activeMax: number; readonly active: number; readonly counted: readonly CustomerEntry[] }
  | { readonly kind: 'customer-limit'; readonly sku: string; readonly limit: number; readonly held: number; readonly counted: readonly CustomerEntry[] };

function entriesOf(reply: ReadonlyArray<string | number | null>, from: number): CustomerEntry[] {
  const entries: CustomerEntry[] = [];
  for (let index = from; index + 1 < reply.length; index += 2) {
    const value = String(reply[index + 1]);
    entries.push({ id: String(reply[index]), value, state: value.startsWith('f|') ? 'confirmed' : 'pending' });
  }
  return entries;
}

export async function admitCustomer(scripts: ScriptRunner, keys: RedisKeys, customer: CustomerRef, call: AdmitCustomerCall): Promise<AdmitCustomerResult> {
  assert(call.lines.length >= 1, 'an admission has at least one line');
  const args: Array<string | number> = [call.reservationId, call.expiresAtMs, call.activeMax, encodeLines(call.lines)];
  for (const [sku, limit] of call.limits) args.push(sku, limit);
  const reply = await scripts.run('admitCustomer', [keys.customerEntries(customer.clientId, customer.customerId)], args);
  switch (reply[0]) {
    case 1: return { kind: 'admitted' };
    case 2: return { kind: 'admitted-already' };
    case -7: return { kind: 'too-many-active', activeMax: Number(reply[1]), active: Number(reply[2]), counted: entriesOf(reply, 3) };
    default:
      assert(reply[0] === -5, `admitCustomer replied ${String(reply[0])}`);
      return { kind: 'customer-limit', sku: String(reply[1]), limit: Number(reply[2]), held: Number(reply[3]), counted: entriesOf(reply, 4) };
  }
}

/** A confirm's step: the entry counts until forgotten. `expired`: its hold's expiry has passed. */
export async function pinCustomer(scripts: ScriptRunner, keys: RedisKeys, customer: CustomerRef, reservationId: string): Promise<'pinned' | 'no-entry' | 'expired'> {
  const reply = await scripts.run('pinCustomer', [keys.customerEntries(customer.clientId, customer.customerId)], [reservationId, 'pin']);
  if (reply[0] === 1) return 'pinned';
  if (reply[0] === 0) return 'no-entry';
  assert(reply[0] === -1, `pinCustomer replied ${String(reply[0])}`);
  return 'expired';
}

const encodeLines = (lines: AdmitCustomerCall['lines']) => lines.map((line) => `${line.sku}:${line.quantity}`).join(',');

/**
 * A confirm of a cart the guards admitted whose entry is gone (a failover, a stalled attempt that
 * forgot it): counted again beside the customer's other live entries, and pinned when it fits.
 */
export async function readmitCustomer(scripts: ScriptRunner, keys: RedisKeys, customer: CustomerRef, call: AdmitCustomerCall): Promise<{ readonly kind: 'admitted' } | Exclude<AdmitCustomerResult, { kind: 'admitted' | 'admitted-already' }>> {
  const args: Array<string | number> = [call.reservationId, 'readmit', call.expiresAtMs, encodeLines(call.lines), call.activeMax];
  for (const [sku, limit] of call.limits) args.push(sku, limit);
  const reply = await scripts.run('pinCustomer', [keys.customerEntries(customer.clientId, customer.customerId)], args);
  if (reply[0] === 1) return { kind: 'admitted' };
  if (reply[0] === -7) return { kind: 'too-many-active', activeMax: Number(reply[1]), active: Number(reply[2]), counted: entriesOf(reply, 3) };
  assert(reply[0] === -5, `pinCustomer readmit replied ${String(reply[0])}`);
  return { kind: 'customer-limit', sku: String(reply[1]), limit: Number(reply[2]), held: Number(reply[3]), counted: entriesOf(reply, 4) };
}

/** A confirmed cart's entry made confirmed whatever is there (a retried confirm: a failover may have lost the pin). */
export async function ensureCustomer(scripts: ScriptRunner, keys: RedisKeys, customer: CustomerRef, reservationId: string, expiresAtMs: number, lines: AdmitCustomerCall['lines']): Promise<void> {
  const reply = await scripts.run('pinCustomer', [keys.customerEntries(customer.clientId, customer.customerId)], [reservationId, 'ensure', expiresAtMs, encodeLines(lines)]);
  assert(reply[0] === 1, `pinCustomer ensure replied ${String(reply[0])}`);
}

/** Forgets entries; each only while it still has the value given (`*`: whatever it has). Returns how many. */
export async function forgetCustomer(scripts: ScriptRunner, keys: RedisKeys, customer: CustomerRef, entries: ReadonlyArray<{ readonly id: string; readonly value: string | '*' }>): Promise<number> {
  if (entries.length === 0) return 0;
  const reply = await scripts.run('forgetCustomer', [keys.customerEntries(customer.clientId, customer.customerId)], entries.flatMap((entry) => [entry.id, entry.value]));
  return Number(reply[0]);
}
