// Reservations: create (one atomic script: check, hold, idempotency record), read, release.
// Creating needs only Redis, except the first use of a SKU that Redis lost, which is rebuilt
// from the ledger before the one retry.
import type { Knex } from 'knex';
import { assert, errors, StockholdError } from '../errors';
import type { Metrics, ReservationOutcome } from '../metrics/metrics';
import { withPostgres } from '../postgres/connection';
import { withRedis } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { ReservationScript, type CreateReservationCall, type ShortLineReply } from '../scripts/create-reservation';
import { createCartAcrossSlots, releaseCartAcrossSlots, type CartAcrossSlotsResult } from './cart-across-slots';
import { forgetEnded, readLimits } from './customer-guard';
import { ReservationIds } from './reservation-ids';
import { readReservation, releaseReservation, type ReleaseResult } from '../scripts/reservation-record';
import type { SkuState } from '../stock/sku-state';
import { publicSku, type StripeLayouts } from '../stock/stripes';

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
  /** Reservations one createReservation call carries at most (lib/scripts/create-reservation.ts). */
  readonly reservationBatchMax: number;
  /** Live reservations per customer at most (the guards: lua/includes/guards.lua; on a cluster ./customer-guard). */
  readonly maxActiveHoldsPerCustomer: number;
  /** Set: Redis is a cluster, and a cart is held slot by slot (./cart-across-slots). */
  readonly redisClusterNodes: readonly unknown[] | null;
}

export const reservationIdPattern = /^[A-Za-z0-9_-]{22}$/;
const createAttemptsMax = 2;
/** A SKU thought unstriped that is short is asked about again when what is known is older than this. */
export const stripeRecheckMs = 100;
/** Attempts at splitting a line over its stripes, at most (each after reading them again). */
export const stripeSplitAttemptsMax = 2;

/** The SKUs (as the attempt named them) that an insufficient_stock refusal lists. */
function shortSkus(error: StockholdError): string[] {
  const lines = (error.extensions as { lines?: Array<{ sku: string }> }).lines ?? [];
  return lines.map((line) => line.sku);
}

/**
 * An insufficient_stock refusal of an attempt on stripes, told as the request's SKUs: a stripe's
 * line becomes its SKU's, with what that stripe had (the split attempts report the sum).
 */
function publicShortage(error: StockholdError, requested: readonly ReservationLine[]): StockholdError {
  const bySku = new Map<string, { sku: string; requested: number; available: number }>();
  for (const line of (error.extensions as { lines?: Array<{ sku: string; requested: number; available: number }> }).lines ?? []) {
    const sku = publicSku(line.sku);
    const known = bySku.get(sku);
    bySku.set(sku, { sku, requested: requested.find((each) => each.sku === sku)?.quantity ?? line.requested, available: (known?.available ?? 0) + line.available });
  }
  return errors.insufficientStock([...bySku.values()], error.retryAfterSeconds);
}

function shuffled<T>(items: T[]): T[] {
  for (let index = items.length - 1; index > 0; index -= 1) {
    const other = Math.floor(Math.random() * (index + 1));
    [items[index], items[other]] = [items[other]!, items[index]!];
  }
  return items;
}
/** On a cluster, how long a duplicate waits for the running attempt of its request, and how often it looks. */
export const duplicateWaitMs = 2000;
export const duplicatePollMs = 20;
/** On a cluster, how often one reservation reads the per-customer limits again after one changed under it, at most (then 503). */
export const limitRereadsMax = 3;

/** Sums lines of the same SKU and orders them by SKU, so equal carts are equal. */
export function normaliseLines(lines: readonly ReservationLine[]): ReservationLine[] {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.quantity);
  return [...totals.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

/** The reservation outcomes counted from a refusal's code (others are not reservation outcomes). */
const reservationOutcomes: ReadonlyMap<string, ReservationOutcome> = new Map([
  ['insufficient_stock', 'insufficient_stock'],
  ['customer_limit_exceeded', 'guarded'],
  ['too_many_active_holds', 'guarded'],
  ['sku_not_found', 'sku_not_found'],
  ['backend_unavailable', 'unavailable'],
] as const);

/** One per process: the sub-key each window's next id goes to (lib/reservations/reservation-ids.ts). */
const reservationIds = new ReservationIds();

export function newReservationId(): string {
  return reservationIds.next(Date.now());
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
  // The hot path's two outcomes, their label lookups done once.
  private readonly createdCounter;
  private readonly replayedCounter;
  private readonly reserve: ReservationScript;

  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly skuState: SkuState,
    private readonly knex: Knex,
    private readonly limits: ReservationLimits,
    private readonly metrics: Metrics,
    private readonly stripeLayouts: StripeLayouts,
  ) {
    this.createdCounter = metrics.reservations.labels('created');
    this.replayedCounter = metrics.reservations.labels('replayed');
    this.reserve = new ReservationScript(
      scripts,
      keys,
      limits.reservationBatchMax,
      (holds) => metrics.holdsReclaimed(holds),
      (reservations) => metrics.reservationBatchSize.observe(reservations),
    );
  }

  /** Creates (or replays) a reservation, counting its outcome. */
  async create(request: CreateReservation): Promise<{ reservation: Reservation; replayed: boolean }> {
    try {
      const created = await this.createOnce(request);
      (created.replayed ? this.replayedCounter : this.createdCounter).inc();
      return created;
    } catch (error) {
      const outcome = error instanceof StockholdError ? reservationOutcomes.get(error.code) : undefined;
      if (outcome !== undefined) this.metrics.reservations.inc({ outcome });
      throw error;
    }
  }

  /**
   * Creates the reservation, routing the lines of striped SKUs (lib/stock/stripes.ts) to their
   * stripes. A SKU this process thought unstriped that turns out short is asked about again (at
   * most every stripeRecheckMs), so a SKU striped a moment ago is not refused for what its other
   * stripes hold.
   */
  private async createOnce(request: CreateReservation): Promise<{ reservation: Reservation; replayed: boolean }> {
    assert(request.lines.length >= 1, 'a reservation has at least one line');
    const striped = await this.stripesOf(request.lines);
    if (striped.size > 0) return this.createStriped(request, striped);
    try {
      return await this.createWithLines(request, request.lines);
    } catch (error) {
      if (!(error instanceof StockholdError) || error.code !== 'insufficient_stock') throw error;
      const again = await this.stripesOf(request.lines, stripeRecheckMs);
      if (again.size === 0) throw error;
      return this.createStriped(request, again);
    }
  }

  /** The lines' SKUs that have more than one stripe, with their stripe SKUs (stripe 0 first). */
  private async stripesOf(lines: readonly ReservationLine[], maxAgeMs?: number): Promise<Map<string, readonly string[]>> {
    const layouts = await Promise.all(lines.map(async (line) => [line.sku, await this.stripeLayouts.of(line.sku, maxAgeMs)] as const));
    return new Map(layouts.filter(([, stripes]) => stripes.length > 1));
  }

  /**
   * A cart with lines on striped SKUs. Each such line first goes whole to one stripe, in a random
   * order per line (so traffic spreads over the stripes' slots), trying the next stripe when it is
   * short there (at most one attempt per stripe, each a whole reservation attempt: a refusal
   * leaves nothing); short on every stripe alone, the stripes are read and the line split over
   * them, largest first (at most stripeSplitAttemptsMax times, against a race). Refused when a
   * line is short on an unstriped SKU, or when the stripes together do not hold it.
   */
  private async createStriped(request: CreateReservation, striped: ReadonlyMap<string, readonly string[]>): Promise<{ reservation: Reservation; replayed: boolean }> {
    const orders = new Map([...striped].map(([sku, stripes]) => [sku, shuffled([...stripes])]));
    const rounds = Math.max(...[...striped.values()].map((stripes) => stripes.length));
    let lastShort: StockholdError | undefined;
    for (let round = 0; round < rounds; round += 1) {
      const lines = request.lines.map((line) => {
        const order = orders.get(line.sku);
        return order === undefined ? line : { sku: order[round % order.length]!, quantity: line.quantity };
      });
      try {
        return await this.createWithLines(request, normaliseLines(lines));
      } catch (error) {
        if (!(error instanceof StockholdError) || error.code !== 'insufficient_stock') throw error;
        // Short on a SKU that has no other stripe to try: final.
        if (shortSkus(error).some((sku) => !striped.has(publicSku(sku)))) throw publicShortage(error, request.lines);
        lastShort = error;
      }
    }
    for (let attempt = 0; attempt < stripeSplitAttemptsMax; attempt += 1) {
      const split: ReservationLine[] = [];
      const shortLines: Array<{ sku: string; requested: number; available: number }> = [];
      for (const line of request.lines) {
        const stripes = striped.get(line.sku);
        if (stripes === undefined) {
          split.push(line);
          continue;
        }
        const views = await Promise.all(stripes.map(async (sku) => ({ sku, available: (await this.skuState.read(sku)).available })));
        const total = views.reduce((sum, view) => sum + view.available, 0);
        if (total < line.quantity) shortLines.push({ sku: line.sku, requested: line.quantity, available: total });
        let left = line.quantity;
        for (const view of views.sort((a, b) => b.available - a.available)) {
          if (left === 0 || view.available === 0) break;
          const take = Math.min(left, view.available);
          split.push({ sku: view.sku, quantity: take });
          left -= take;
        }
      }
      if (shortLines.length > 0) throw errors.insufficientStock(shortLines, undefined);
      try {
        return await this.createWithLines(request, normaliseLines(split));
      } catch (error) {
        if (!(error instanceof StockholdError) || error.code !== 'insufficient_stock') throw error;
        lastShort = error;
      }
    }
    throw publicShortage(lastShort!, request.lines);
  }

  /** One reservation attempt with these (internal) lines; the answer carries the request's lines. */
  private async createWithLines(request: CreateReservation, lines: readonly ReservationLine[]): Promise<{ reservation: Reservation; replayed: boolean }> {
    const call = {
      id: newReservationId(),
      clientId: request.clientId,
      idempotencyKey: request.idempotencyKey,
      fingerprint: request.fingerprint,
      customerId: request.customerId,
      lines,
      holdTtlMs: request.holdTtlSeconds * 1000,
      idempotencyTtlMs: this.limits.idempotencyTtlSeconds * 1000,
      retentionMs: this.limits.reservationRetentionSeconds * 1000,
      reclaimPerSkuMax: this.limits.reclaimPerSkuMax,
    };
    for (let attempt = 1; attempt <= createAttemptsMax; attempt += 1) {
      const result = this.limits.redisClusterNodes === null
        ? await this.reserve.create({ ...call, activeHoldsPerCustomerMax: this.limits.maxActiveHoldsPerCustomer })
        : await this.createAcrossSlots(call);
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
        case 'customer-limit': throw errors.customerLimitExceeded(result.sku, result.limit, result.held);
        case 'customer-required': throw errors.customerIdRequired(result.sku);
        case 'too-many-active': throw errors.tooManyActiveHolds(result.activeMax, result.active);
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
  private async createAcrossSlots(call: CreateReservationCall): Promise<Exclude<CartAcrossSlotsResult, { kind: 'limit-changed' }>> {
    const deadline = Date.now() + duplicateWaitMs;
    // The flash-sale guards (./customer-guard): the limits read now, checked again by each hold.
    const customer = call.customerId === null ? null : { clientId: call.clientId, customerId: call.customerId };
    const skus = call.lines.map((line) => line.sku);
    let limits = customer === null ? new Map<string, number | null>() : await readLimits(this.scripts, this.keys, skus);
    let rereads = 0;
    let endedChecked = false;
    for (let round = 0; ; round += 1) {
      const guard = { customer, limits, activeMax: this.limits.maxActiveHoldsPerCustomer };
      // A new cart each round gets an id of its own: an earlier round's id may name a record
      // released since (a cart that found another under its key gives its own up).
      const id = round === 0 ? call.id : newReservationId();
      const result = await createCartAcrossSlots(this.scripts, this.keys, { ...call, id, attemptLeaseMs: this.limits.idempotencyInFlightTtlSeconds * 1000, guard });
      if (result.kind === 'limit-changed') {
        // A stock change set another limit between the read and the hold: read again (bounded).
        rereads += 1;
        if (rereads > limitRereadsMax) throw errors.backendUnavailable('redis', new Error(`the per-customer limit of ${result.sku} changed ${rereads} times during one reservation`));
        limits = await readLimits(this.scripts, this.keys, skus);
        continue;
      }
      if ((result.kind === 'customer-limit' || result.kind === 'too-many-active') && customer !== null && !endedChecked) {
        // Entries may outlive their reservations (a crash between steps): those found ended are
        // forgotten, and the cart is asked once more.
        endedChecked = true;
        if ((await forgetEnded(this.scripts, this.keys, customer, result.counted)) > 0) continue;
      }
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
    const found = (await this.readFromRedis(id)) ?? (await this.readFromLedger(id));
    if (found !== undefined) return found;
    // Not a 404 while an upgrade's record migration has not moved it (./legacy-records.ts).
    if ((await withRedis(() => this.scripts.redis.exists(this.keys.legacyReservation(id)))) === 1) throw errors.recordMigrationPending(id);
    return undefined;
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
