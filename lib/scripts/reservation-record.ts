// Typed boundaries of the reservation record scripts: lua/readReservation-1.lua (the record's
// short field names are decoded here and nowhere else), lua/releaseReservation-n.lua,
// lua/confirmReservation-n.lua and lua/requestCancel-1.lua.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export interface RecordLine {
  readonly sku: string;
  readonly quantity: number;
}

export interface ReservationRecord {
  /** As stored: pending, confirmed, committed, released, expired, cancelled or rejected. */
  readonly status: string;
  readonly clientId: string;
  readonly customerId: string | null;
  readonly lines: readonly RecordLine[];
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly fence: number;
  readonly confirmedAtMs: number | null;
  readonly cancelRequested: boolean;
  /** When it was released, expired, committed, cancelled or rejected: the last such step (null before any). */
  readonly settledAtMs: number | null;
  /** The Redis clock when it was read, to judge expiry by the clock that wrote the hold. */
  readonly nowMs: number;
  /** On a Redis Cluster: the guards admitted it, so its customer's entry must count it (lib/reservations/customer-guard.ts). */
  readonly admitted: boolean;
}

/** "SKU:qty,SKU:qty" as the record keeps its lines (a SKU never contains ":" or ","). */
export function encodeLines(lines: readonly RecordLine[]): string {
  return lines.map((line) => `${line.sku}:${line.quantity}`).join(',');
}

export function decodeLines(encoded: string): RecordLine[] {
  return encoded.split(',').map((pair) => {
    const separator = pair.lastIndexOf(':');
    return { sku: pair.slice(0, separator), quantity: Number(pair.slice(separator + 1)) };
  });
}

export async function readReservation(scripts: ScriptRunner, keys: RedisKeys, id: string): Promise<ReservationRecord | undefined> {
  const reply = await scripts.run('readReservation', [keys.reservation(id)], [id]);
  if (reply.length <= 1) return undefined;
  const fields = new Map<string, string>();
  for (let index = 1; index + 1 < reply.length; index += 2) fields.set(String(reply[index]), String(reply[index + 1]));
  return {
    status: String(fields.get('s')),
    clientId: String(fields.get('c')),
    customerId: fields.get('u') ?? null,
    lines: decodeLines(String(fields.get('l'))),
    createdAtMs: Number(fields.get('ca')),
    expiresAtMs: Number(fields.get('ex')),
    fence: Number(fields.get('v') ?? 1),
    confirmedAtMs: fields.has('cf') ? Number(fields.get('cf')) : null,
    cancelRequested: fields.has('cx'),
    settledAtMs: fields.has('at') ? Number(fields.get('at')) : null,
    nowMs: Number(reply[0]),
    admitted: fields.has('g'),
  };
}

function recordAndLineKeys(keys: RedisKeys, id: string, lines: readonly RecordLine[]): string[] {
  const redisKeys = [keys.reservation(id)];
  for (const line of lines) redisKeys.push(keys.skuState(line.sku), keys.skuHolds(line.sku));
  return redisKeys;
}

export type ReleaseResult =
  | { readonly kind: 'released'; readonly status: 'released' | 'expired' }
  | { readonly kind: 'already'; readonly status: 'released' | 'expired' }
  | { readonly kind: 'missing' }
  | { readonly kind: 'not-releasable'; readonly status: string };

export async function releaseReservation(scripts: ScriptRunner, keys: RedisKeys, id: string, lines: readonly RecordLine[]): Promise<ReleaseResult> {
  const reply = await scripts.run('releaseReservation', recordAndLineKeys(keys, id, lines), [id]);
  switch (reply[0]) {
    case 1: return { kind: 'released', status: String(reply[1]) as 'released' | 'expired' };
    case 2: return { kind: 'already', status: String(reply[1]) as 'released' | 'expired' };
    case -1: return { kind: 'missing' };
    default:
      assert(reply[0] === -2, `releaseReservation replied ${String(reply[0])}`);
      return { kind: 'not-releasable', status: String(reply[1]) };
  }
}

export type ConfirmResult =
  | { readonly kind: 'confirmed'; readonly fence: number; readonly confirmedAtMs: number }
  | { readonly kind: 'already'; readonly status: string; readonly fence: number }
  | { readonly kind: 'missing' }
  | { readonly kind: 'released' }
  | { readonly kind: 'expired' };

export async function confirmReservation(scripts: ScriptRunner, keys: RedisKeys, id: string, lines: readonly RecordLine[]): Promise<ConfirmResult> {
  const reply = await scripts.run('confirmReservation', recordAndLineKeys(keys, id, lines), [id]);
  switch (reply[0]) {
    case 1: return { kind: 'confirmed', fence: Number(reply[1]), confirmedAtMs: Number(reply[2]) };
    case 2: return { kind: 'already', status: String(reply[1]), fence: Number(reply[2]) };
    case -1: return { kind: 'missing' };
    case -2: return { kind: 'released' };
    default:
      assert(reply[0] === -3, `confirmReservation replied ${String(reply[0])}`);
      return { kind: 'expired' };
  }
}

export interface RequestCancel {
  readonly id: string;
  /** The ledger's copy: the fence it holds, and what recreates a record Redis forgot. */
  readonly fence: number;
  readonly clientId: string;
  readonly customerId: string | null;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly lines: readonly RecordLine[];
  readonly retentionMs: number;
}

export type RequestCancelResult =
  | { readonly kind: 'requested'; readonly fence: number }
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'not-committed'; readonly status: string };

export async function requestCancel(scripts: ScriptRunner, keys: RedisKeys, request: RequestCancel): Promise<RequestCancelResult> {
  const reply = await scripts.run('requestCancel', [keys.reservation(request.id)], [
    request.id,
    request.fence,
    request.clientId,
    request.customerId ?? '',
    request.createdAtMs,
    request.expiresAtMs,
    encodeLines(request.lines),
    request.retentionMs,
  ]);
  if (reply[0] === 1) return { kind: 'requested', fence: Number(reply[1]) };
  if (reply[0] === 2) return { kind: 'cancelled' };
  assert(reply[0] === -1, `requestCancel replied ${String(reply[0])}`);
  return { kind: 'not-committed', status: String(reply[1]) };
}
