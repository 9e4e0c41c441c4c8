// Reservations: create (one atomic script: check, hold, idempotency record), read, release.
// Creating needs only Redis, except the first use of a SKU that Redis lost, which is rebuilt
// from the ledger before the one retry.
import type { Knex } from 'knex';
import { assert, errors, StockholdError } from '../errors';
import type { Metrics, ReservationOutcome } from '../metrics/metrics';
import { withPostgres } from '../postgres/connection';
import { reservationIdAt } from '../random-ids';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { createReservation, type CreateReservationCall, type ShortLineReply } from '../scripts/create-reservation';
import { createCartAcrossSlots, releaseCartAcrossSlots, type CartAcrossSlotsResult } from './cart-across-slots';
import { readReservation, releaseReservation, type ReleaseResult } from '../scripts/reservation-record';
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
  /** Why the ledger rejected it (read from the ledger only). */
  readonly rejectReason?: string;
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
  readonly idempotencyInFlightTtlSeconds: number;
  readonly reservationRetentionSeconds: number;
  readonly reclaimPerSkuMax: number;
  /** Set: Redis is a cluster, and a cart is held slot by slot (./cart-across-slots). */
  readonly redisClusterNodes: readonly unknown[] | null;
}

export const reservationIdPattern = /^[A-Za-z0-9_-]{22}$/;
const createAttemptsMax = 2;
/** On a cluster, how long a duplicate waits for the running attempt of its request, and how often it looks. */
export const duplicateWaitMs = 2000;
export const duplicatePollMs = 20;

/** Sums lines of the same SKU and orders them by SKU, so equal carts are equal. */
export function normaliseLines(lines: readonly ReservationLine[]): ReservationLine[] {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.quantity);
  return [...totals.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

/** The reservation outcomes counted from a refusal's code (others are not reservation outcomes). */
const reservationOutcomes: ReadonlyMap<string, ReservationOutcome> = new Map([
  ['insufficient_stock', 'insufficient_stock'],
  ['sku_not_found', 'sku_not_found'],
  ['backend_unavailable', 'unavailable'],
] as const);

export function newReservationId(): string {
  return reservationIdAt(Date.now());
}

/**
 * Retry-After for a refusal: every short line must free up for a retry to succeed, so wait for
 * the slowest, and promise nothing when any line is simply sold out.
 */
function retryAfterOf(lines: readonly ShortLineReply[]): number | undefined {
  let retryAfterMs = 0;
  for (const line of lines) {
    if (line.retryAfterMs < 0) return undefined;
    retryAfterMs = Math.max(retryAfterMs, line.retryAfterMs);
  }
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

export class ReservationService {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly skuState: SkuState,
    private readonly knex: Knex,
    private readonly limits: ReservationLimits,
    private readonly metrics: Metrics,
  ) {}

  /** Creates (or replays) a reservation, counting its outcome. */
  async create(request: CreateReservation): Promise<{ reservation: Reservation; replayed: boolean }> {
    try {
      const created = await this.createOnce(request);
      this.metrics.reservations.inc({ outcome: created.replayed ? 'replayed' : 'created' });
      return created;
    } catch (error) {
      const outcome = error instanceof StockholdError ? reservationOutcomes.get(error.code) : undefined;
      if (outcome !== undefined) this.metrics.reservations.inc({ outcome });
      throw error;
    }
  }

  private async createOnce(request: CreateReservation): Promise<{ reservation: Reservation; replayed: boolean }> {
    assert(request.lines.length >= 1, 'a reservation has at least one line');
    const call = {
      id: newReservationId(),
      clientId: request.clientId,
      idempotencyKey: request.idempotencyKey,
      fingerprint: request.fingerprint,
      customerId: request.customerId,
      lines: request.lines,
      holdTtlMs: request.holdTtlSeconds * 1000,
      idempotencyTtlMs: this.limits.idempotencyTtlSeconds * 1000,
      retentionMs: this.limits.reservationRetentionSeconds * 1000,
      reclaimPerSkuMax: this.limits.reclaimPerSkuMax,
    };
    for (let attempt = 1; attempt <= createAttemptsMax; attempt += 1) {
      const result = this.limits.redisClusterNodes === null ? await createReservation(this.scripts, this.keys, call) : await this.createAcrossSlots(call);
      if (result.reclaimed.length > 0) this.metrics.holdsReclaimed(result.reclaimed);
      switch (result.kind) {
        case 'created':
        case 'replayed': {
          const reservation: Reservation = {
            // The one-script cart answers the id only on a replay; a cart across slots always does
            // (a resumed attempt's id is the first attempt's).
            id: 'id' in result ? result.id : call.id,
            status: 'pending',
            clientId: request.clientId,
            customerId: request.customerId,
            lines: request.lines,
            createdAtMs: result.createdAtMs,
            expiresAtMs: result.expiresAtMs,
            fence: 1,
            confirmedAtMs: null,
            cancelRequested: false,
          };
          return { reservation, replayed: result.kind === 'replayed' };
        }
        case 'insufficient': {
          const short = retryAfterOf(result.lines);
          throw errors.insufficientStock(result.lines.map(({ sku, requested, available }) => ({ sku, requested, available })), short);
        }
        case 'key-reused': throw errors.idempotencyKeyReused();
        case 'in-flight': throw errors.idempotencyKeyInFlight(Math.max(1, Math.ceil(result.retryAfterMs / 1000)));
        case 'missing': {
          const unknown = await this.skuState.rebuild(result.skus);
          if (unknown.length > 0) throw errors.skuNotFound(unknown);
        }
      }
    }
    throw new Error(`createReservation still found SKUs missing after ${createAttemptsMax} attempts`);
  }

  /**
   * A cart on a Redis Cluster: held slot by slot (./cart-across-slots). A duplicate of a request
   * whose attempt is still running waits for it (bounded, as the one-script cart's duplicate
   * simply finds it done) and answers its replay; past the bound, 409 in flight with Retry-After.
   */
  private async createAcrossSlots(call: CreateReservationCall): Promise<CartAcrossSlotsResult> {
    const deadline = Date.now() + duplicateWaitMs;
    for (;;) {
      const result = await createCartAcrossSlots(this.scripts, this.keys, { ...call, attemptLeaseMs: this.limits.idempotencyInFlightTtlSeconds * 1000 });
      if (result.kind !== 'in-flight' || Date.now() >= deadline) return result;
      await new Promise((resolve) => setTimeout(resolve, duplicatePollMs));
    }
  }

  private async releaseAcrossSlots(id: string): Promise<ReleaseResult> {
    const result = await releaseCartAcrossSlots(this.scripts, this.keys, id);
    if (result.kind === 'released' || result.kind === 'already') return result;
    if (result.kind === 'missing') return { kind: 'missing' };
    return { kind: 'not-releasable', status: result.status };
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
    const record = await readReservation(this.scripts, this.keys, id);
    if (record === undefined) return undefined;
    const stored = record.status as ReservationStatus;
    return {
      id,
      status: stored === 'pending' && record.nowMs >= record.expiresAtMs ? 'expired' : stored,
      clientId: record.clientId,
      customerId: record.customerId,
      lines: record.lines,
      createdAtMs: record.createdAtMs,
      expiresAtMs: record.expiresAtMs,
      fence: record.fence,
      confirmedAtMs: record.confirmedAtMs,
      cancelRequested: record.cancelRequested,
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
      ...(row.reject_reason === null || row.reject_reason === undefined ? {} : { rejectReason: String(row.reject_reason) }),
    };
  }

  /**
   * Releases a pending reservation. Returns its status afterwards: "released", or "expired" when
   * its hold had already run out. Throws reservation_not_releasable once it is past pending.
   */
  async release(reservation: Reservation): Promise<ReservationStatus> {
    // Read from the ledger: past pending for good, whether or not Redis still has its record.
    if (reservation.status === 'committed' || reservation.status === 'cancelled' || reservation.status === 'rejected') throw errors.notReleasable(reservation.id, reservation.status);
    const result = this.limits.redisClusterNodes === null ? await releaseReservation(this.scripts, this.keys, reservation.id, reservation.lines) : await this.releaseAcrossSlots(reservation.id);
    if (result.kind === 'released' && result.status === 'released') {
      this.metrics.transitions.inc({ to: 'released' });
      this.metrics.holdEnded('released', reservation.createdAtMs, Date.now());
    }
    if (result.kind === 'released' || result.kind === 'already') return result.status;
    if (result.kind === 'missing') throw errors.reservationNotFound(reservation.id);
    throw errors.notReleasable(reservation.id, result.status);
  }
}
