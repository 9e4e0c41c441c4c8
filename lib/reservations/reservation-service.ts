// Reservations: create (one atomic script: check, hold, idempotency record), read, release.
// Creating needs only Redis, except the first use of a SKU that Redis lost, which is rebuilt
// from the ledger before the one retry.
import type { Knex } from 'knex';
import { assert, errors, type ShortLine } from '../errors';
import { withPostgres } from '../postgres/connection';
import { randomId } from '../random-ids';
import type { RedisKeys } from '../redis/keys';
import type { ScriptReply, ScriptRunner } from '../redis/scripts';
import type { SkuState } from '../stock/sku-state';

export interface ReservationLine {
  readonly sku: string;
  readonly quantity: number;
}

export type ReservationStatus = 'pending' | 'confirmed' | 'committed' | 'released' | 'expired' | 'cancelled' | 'rejected';

export interface Reservation {
  readonly id: string;
  readonly status: ReservationStatus;
  readonly clientId: string;
  readonly customerId: string | null;
  readonly lines: readonly ReservationLine[];
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  /** Per-reservation version: 1 pending, bumped on confirm and on a cancel request. */
  readonly fence: number;
  readonly confirmedAtMs: number | null;
  /** A committed reservation whose cancellation is queued. */
  readonly cancelRequested: boolean;
}

export interface CreateReservation {
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
  /** Already normalised: see normaliseLines. */
  readonly lines: readonly ReservationLine[];
  readonly holdTtlSeconds: number;
  readonly customerId: string | null;
}

export interface ReservationLimits {
  readonly idempotencyTtlSeconds: number;
  readonly reservationRetentionSeconds: number;
  readonly reclaimPerSkuMax: number;
}

export const reservationIdPattern = /^[A-Za-z0-9_-]{22}$/;
const createAttemptsMax = 2;

/** Sums lines of the same SKU and orders them by SKU, so equal carts are equal. */
export function normaliseLines(lines: readonly ReservationLine[]): ReservationLine[] {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.quantity);
  return [...totals.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

export function newReservationId(): string {
  return randomId();
}

function parseLines(encoded: string): ReservationLine[] {
  return encoded.split(',').map((pair) => {
    const separator = pair.lastIndexOf(':');
    return { sku: pair.slice(0, separator), quantity: Number(pair.slice(separator + 1)) };
  });
}

function shortLines(reply: ScriptReply): { lines: ShortLine[]; retryAfterSeconds: number | undefined } {
  const lines: ShortLine[] = [];
  let retryAfterMs = 0;
  let retryable = true;
  for (let index = 1; index < reply.length; index += 4) {
    lines.push({ sku: String(reply[index]), requested: Number(reply[index + 1]), available: Number(reply[index + 2]) });
    const lineRetryMs = Number(reply[index + 3]);
    // Every short line must free up for the retry to succeed: wait for the slowest, and promise
    // nothing when any line is simply sold out.
    if (lineRetryMs < 0) retryable = false;
    retryAfterMs = Math.max(retryAfterMs, lineRetryMs);
  }
  return { lines, retryAfterSeconds: retryable ? Math.max(1, Math.ceil(retryAfterMs / 1000)) : undefined };
}

export class ReservationService {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly skuState: SkuState,
    private readonly knex: Knex,
    private readonly limits: ReservationLimits,
  ) {}

  async create(request: CreateReservation): Promise<{ reservation: Reservation; replayed: boolean }> {
    assert(request.lines.length >= 1, 'a reservation has at least one line');
    const id = newReservationId();
    const keys = [this.keys.idempotency(request.clientId, request.idempotencyKey), this.keys.reservation(id)];
    const args: Array<string | number> = [
      request.fingerprint,
      id,
      request.clientId,
      request.customerId ?? '',
      request.holdTtlSeconds * 1000,
      this.limits.idempotencyTtlSeconds * 1000,
      this.limits.reservationRetentionSeconds * 1000,
      this.limits.reclaimPerSkuMax,
    ];
    for (const line of request.lines) {
      keys.push(this.keys.skuState(line.sku), this.keys.skuHolds(line.sku));
      args.push(line.sku, line.quantity);
    }
    for (let attempt = 1; attempt <= createAttemptsMax; attempt += 1) {
      const reply = await this.scripts.run('createReservation', keys, args);
      const code = reply[0];
      if (code === 1 || code === 2) {
        const replayed = code === 2;
        const reservation: Reservation = {
          id: replayed ? String(reply[1]) : id,
          status: 'pending',
          clientId: request.clientId,
          customerId: request.customerId,
          lines: request.lines,
          createdAtMs: Number(replayed ? reply[2] : reply[1]),
          expiresAtMs: Number(replayed ? reply[3] : reply[2]),
          fence: 1,
          confirmedAtMs: null,
          cancelRequested: false,
        };
        return { reservation, replayed };
      }
      if (code === -1) {
        const short = shortLines(reply);
        throw errors.insufficientStock(short.lines, short.retryAfterSeconds);
      }
      if (code === -2) throw errors.idempotencyKeyReused();
      if (code === -4) throw errors.idempotencyKeyInFlight(Math.max(1, Math.ceil(Number(reply[1]) / 1000)));
      assert(code === -3, `createReservation returned ${String(code)}`);
      const unknown = await this.skuState.rebuild(reply.slice(1).map(String));
      if (unknown.length > 0) throw errors.skuNotFound(unknown);
    }
    throw new Error(`createReservation still found SKUs missing after ${createAttemptsMax} attempts`);
  }

  /**
   * The reservation, with a pending one past its expiry reported as expired. Redis answers for
   * live reservations; a committed or cancelled one that Redis has forgotten comes from Postgres.
   */
  async read(id: string): Promise<Reservation | undefined> {
    if (!reservationIdPattern.test(id)) return undefined;
    return (await this.readFromRedis(id)) ?? this.readFromLedger(id);
  }

  async readFromRedis(id: string): Promise<Reservation | undefined> {
    const reply = await this.scripts.run('readReservation', [this.keys.reservation(id)], []);
    if (reply.length <= 1) return undefined;
    const nowMs = Number(reply[0]);
    const fields = new Map<string, string>();
    for (let index = 1; index + 1 < reply.length; index += 2) fields.set(String(reply[index]), String(reply[index + 1]));
    const stored = fields.get('s') as ReservationStatus;
    const expiresAtMs = Number(fields.get('ex'));
    return {
      id,
      status: stored === 'pending' && nowMs >= expiresAtMs ? 'expired' : stored,
      clientId: String(fields.get('c')),
      customerId: fields.get('u') ?? null,
      lines: parseLines(String(fields.get('l'))),
      createdAtMs: Number(fields.get('ca')),
      expiresAtMs,
      fence: Number(fields.get('v') ?? 1),
      confirmedAtMs: fields.has('cf') ? Number(fields.get('cf')) : null,
      cancelRequested: fields.has('cx'),
    };
  }

  async readFromLedger(id: string): Promise<Reservation | undefined> {
    const row = await withPostgres(() => this.knex('reservations').first().where({ id }));
    if (row === undefined) return undefined;
    return {
      id,
      status: row.status,
      clientId: row.client_id,
      customerId: row.customer_id,
      lines: row.lines,
      createdAtMs: new Date(row.created_at).getTime(),
      expiresAtMs: new Date(row.expires_at).getTime(),
      fence: Number(row.fence),
      confirmedAtMs: new Date(row.confirmed_at).getTime(),
      cancelRequested: false,
    };
  }

  /**
   * Releases a pending reservation. Returns its status afterwards: "released", or "expired" when
   * its hold had already run out. Throws reservation_not_releasable once it is past pending.
   */
  async release(reservation: Reservation): Promise<ReservationStatus> {
    // Read from the ledger: past pending for good, whether or not Redis still has its record.
    if (reservation.status === 'committed' || reservation.status === 'cancelled' || reservation.status === 'rejected') throw errors.notReleasable(reservation.id, reservation.status);
    const reply = await this.scripts.run('releaseReservation', this.recordAndLineKeys(reservation), [reservation.id]);
    if (reply[0] === 1 || reply[0] === 2) return String(reply[1]) as ReservationStatus;
    if (reply[0] === -1) throw errors.reservationNotFound(reservation.id);
    assert(reply[0] === -2, `releaseReservation returned ${String(reply[0])}`);
    throw errors.notReleasable(reservation.id, String(reply[1]));
  }

  /** The record's key, then each line's SKU state and holds index, in line order. */
  recordAndLineKeys(reservation: Pick<Reservation, 'id' | 'lines'>): string[] {
    const keys = [this.keys.reservation(reservation.id)];
    for (const line of reservation.lines) keys.push(this.keys.skuState(line.sku), this.keys.skuHolds(line.sku));
    return keys;
  }
}
