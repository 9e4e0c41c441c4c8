// Typed boundary of the coordinator's scripts of a cart across slots (Redis Cluster):
// lua/beginCart-1.lua and lua/finishCart-1.lua on the idempotency record's slot, and
// lua/openRecord-1.lua on the reservation record's. The per-slot holds are in ./cart-lines.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export interface CartIdentity {
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
}

export type BeginCartResult =
  | { readonly kind: 'new' | 'resumed' | 'replayed'; readonly id: string; readonly createdAtMs: number; readonly expiresAtMs: number }
  | { readonly kind: 'key-reused' }
  | { readonly kind: 'in-flight'; readonly retryAfterMs: number };

export async function beginCart(scripts: ScriptRunner, keys: RedisKeys, cart: CartIdentity & { readonly newId: string; readonly holdTtlMs: number; readonly markerTtlMs: number; readonly leaseMs: number }): Promise<BeginCartResult> {
  const reply = await scripts.run('beginCart', [keys.idempotency(cart.clientId, cart.idempotencyKey)], [cart.fingerprint, cart.newId, cart.holdTtlMs, cart.markerTtlMs, cart.leaseMs]);
  if (reply[0] === -2) return { kind: 'key-reused' };
  if (reply[0] === -4) return { kind: 'in-flight', retryAfterMs: Number(reply[1]) };
  const kind = reply[0] === 1 ? 'new' : reply[0] === 3 ? 'resumed' : 'replayed';
  assert(reply[0] === 1 || reply[0] === 2 || reply[0] === 3, `beginCart replied ${String(reply[0])}`);
  return { kind, id: String(reply[1]), createdAtMs: Number(reply[2]), expiresAtMs: Number(reply[3]) };
}

export type FinishCartResult = 'done' | 'nothing-to-do' | 'another-cart';

function finishResult(reply: ReadonlyArray<unknown>): FinishCartResult {
  assert(reply[0] === 1 || reply[0] === 0 || reply[0] === -1, `finishCart replied ${String(reply[0])}`);
  return reply[0] === 1 ? 'done' : reply[0] === 0 ? 'nothing-to-do' : 'another-cart';
}

/** The cart is complete: its marker becomes the record a replay answers from. */
export async function settleCart(scripts: ScriptRunner, keys: RedisKeys, cart: CartIdentity & { readonly id: string; readonly createdAtMs: number; readonly expiresAtMs: number; readonly idempotencyTtlMs: number }): Promise<FinishCartResult> {
  return finishResult(await scripts.run('finishCart', [keys.idempotency(cart.clientId, cart.idempotencyKey)], ['settle', cart.fingerprint, cart.id, cart.createdAtMs, cart.expiresAtMs, cart.idempotencyTtlMs]));
}

/** The cart was refused: its marker is forgotten, so a retry tries again. */
export async function abortCart(scripts: ScriptRunner, keys: RedisKeys, cart: CartIdentity & { readonly id: string }): Promise<FinishCartResult> {
  return finishResult(await scripts.run('finishCart', [keys.idempotency(cart.clientId, cart.idempotencyKey)], ['abort', cart.fingerprint, cart.id]));
}

export interface OpenRecord {
  readonly id: string;
  readonly clientId: string;
  readonly customerId: string | null;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly lines: ReadonlyArray<{ readonly sku: string; readonly quantity: number }>;
  readonly retentionMs: number;
  /** The guards admitted it (its customer has an entry: lib/reservations/customer-guard.ts). */
  readonly admitted: boolean;
}

/** Writes the pending record once (true), or finds it written (false). */
export async function openRecord(scripts: ScriptRunner, keys: RedisKeys, record: OpenRecord): Promise<boolean> {
  assert(record.lines.length >= 1, 'a record has at least one line');
  const encoded = record.lines.map((line) => `${line.sku}:${line.quantity}`).join(',');
  const reply = await scripts.run('openRecord', [keys.reservation(record.id)], [record.id, record.clientId, record.customerId ?? '', record.createdAtMs, record.expiresAtMs, encoded, record.retentionMs, record.admitted ? '1' : '0']);
  assert(reply[0] === 1 || reply[0] === 2, `openRecord replied ${String(reply[0])}`);
  return reply[0] === 1;
}

export type SettleRecordStep =
  | { readonly to: 'confirm' | 'expire' | 'release' }
  | { readonly to: 'reject'; readonly fence: number; readonly retentionMs: number };

export type SettleRecordResult =
  | { readonly kind: 'confirmed'; readonly fence: number; readonly confirmedAtMs: number }
  /** expire, release (released, or expired when past its expiry), reject: the status set now. */
  | { readonly kind: 'settled'; readonly status: 'expired' | 'released' | 'rejected' }
  /** The step does not apply to the record as it is (not pending; for reject, not confirmed at the fence). */
  | { readonly kind: 'unchanged'; readonly status: string; readonly fence: number }
  | { readonly kind: 'missing' };

/** The record's step of a cart across slots (lua/settleRecord-1.lua). */
export async function settleRecord(scripts: ScriptRunner, keys: RedisKeys, id: string, step: SettleRecordStep): Promise<SettleRecordResult> {
  const args: Array<string | number> = step.to === 'reject' ? [id, 'reject', step.fence, step.retentionMs] : [id, step.to];
  const reply = await scripts.run('settleRecord', [keys.reservation(id)], args);
  if (reply[0] === -1) return { kind: 'missing' };
  if (reply[0] === 2) return { kind: 'unchanged', status: String(reply[1]), fence: Number(reply[2]) };
  assert(reply[0] === 1, `settleRecord replied ${String(reply[0])}`);
  if (step.to === 'confirm') return { kind: 'confirmed', fence: Number(reply[1]), confirmedAtMs: Number(reply[2]) };
  const status = String(reply[1]);
  assert(status === 'expired' || status === 'released' || status === 'rejected', `settleRecord set ${status}`);
  return { kind: 'settled', status };
}
