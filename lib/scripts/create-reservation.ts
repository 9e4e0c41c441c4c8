// Typed boundary of lua/createReservation-n.lua, the hot path: one atomic check-and-hold per
// reservation, the reservations of one event-loop turn sent as one call.
import { ReplyError } from 'ioredis';
import { assert } from '../errors';
import { withRedis } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptReply, ScriptRunner } from '../redis/scripts';
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

/** Reservations one createReservation call carries at most (lua/createReservation-n.lua refuses more). */
export const createBatchReservationsMax = 64;
/** The bound measured best (docs/benchmarks.md; RESERVATION_BATCH_MAX's default in lib/config.ts). */
export const createBatchReservationsDefault = 16;
/** Keys one createReservation call carries at most: a batch is sent before a cart would take it past this. */
export const createBatchKeysMax = 1024;

interface Queued {
  readonly keys: readonly string[];
  readonly args: ReadonlyArray<string | number>;
  readonly resolve: (reply: ScriptReply) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Runs lua/createReservation-n.lua for reservations, sending those that reach it in one turn of
 * the event loop as one call (at most `batchMax` reservations and createBatchKeysMax keys): the
 * first one schedules the call for the end of the turn (setImmediate, after every request that
 * was read in it), later ones join it. Under little load a call carries one reservation and
 * waits for nothing but the end of its turn; under a burst Redis does the per-call work (the
 * command, the clock, each SKU's state and reclaim, each record bucket's expiry) once per batch.
 * Each reservation is still checked and held alone, in order, and answered alone: a reservation
 * that raises fails only itself. A call that fails (Redis down, a timeout) fails every
 * reservation in it, as their own calls would have: each is retried with its Idempotency-Key.
 * One Redis only: a cluster's carts go slot by slot (lib/reservations/cart-across-slots.ts).
 */
export class ReservationScript {
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    /** Reservations per call at most, 1-createBatchReservationsMax (1: one call each). */
    private readonly batchMax: number = createBatchReservationsDefault,
    /**
     * Told what a reservation that raised had reclaimed before it raised (its caller gets only
     * the error); every other reservation's reclaim is in its result.
     */
    private readonly onReclaimedByFailed: (holds: readonly ReclaimedHold[]) => void = () => undefined,
    /** Told how many reservations each call carries, as it is sent (the service's metrics). */
    private readonly onCall: (reservations: number) => void = () => undefined,
  ) {
    assert(Number.isInteger(batchMax) && batchMax >= 1 && batchMax <= createBatchReservationsMax, `batchMax must be 1-${createBatchReservationsMax}`);
  }

  async create(call: CreateReservationCall): Promise<CreateReservationResult> {
    assert(call.lines.length >= 1, 'a reservation has at least one line');
    const keys = [this.keys.idempotency(call.clientId, call.idempotencyKey), this.keys.reservation(call.id)];
    const args: Array<string | number> = [call.fingerprint, call.id, call.clientId, call.customerId ?? '', call.holdTtlMs, call.idempotencyTtlMs, call.retentionMs, call.reclaimPerSkuMax];
    for (const line of call.lines) {
      keys.push(this.keys.skuState(line.sku), this.keys.skuHolds(line.sku));
      args.push(line.sku, line.quantity);
    }
    if (call.activeHoldsPerCustomerMax !== undefined) {
      keys.push(this.keys.customer(call.clientId, call.customerId ?? ''));
      args.push(call.activeHoldsPerCustomerMax);
    }
    // The tests' latch sees each reservation, as if it ran alone.
    await this.scripts.latched('createReservation', keys, args);
    return decode(await this.enqueue(keys, args));
  }

  private enqueue(keys: readonly string[], args: ReadonlyArray<string | number>): Promise<ScriptReply> {
    const reply = new Promise<ScriptReply>((resolve, reject) => this.queue.push({ keys, args, resolve, reject }));
    if (this.queue.length >= this.batchMax) this.flush();
    else this.schedule();
    return reply;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /**
   * Sends what is queued, in calls of at most batchMax reservations and createBatchKeysMax keys.
   * However many calls are already out: with 64 reservations in flight, calls of 16 keep Node and
   * Redis busy at once, while one call of 64 (or calls held back until one returns) made them
   * take turns (docs/benchmarks.md).
   */
  private flush(): void {
    while (this.queue.length > 0) {
      let count = 0;
      let keyCount = 0;
      while (count < this.queue.length && count < this.batchMax && (count === 0 || keyCount + this.queue[count]!.keys.length <= createBatchKeysMax)) {
        keyCount += this.queue[count]!.keys.length;
        count += 1;
      }
      const batch = this.queue.splice(0, count);
      const callKeys: string[] = [];
      const callArgs: Array<string | number> = [batch.length];
      for (const queued of batch) callArgs.push(queued.keys.length);
      for (const queued of batch) {
        for (const key of queued.keys) callKeys.push(key);
        for (const arg of queued.args) callArgs.push(arg);
      }
      this.onCall(batch.length);
      void this.answer(batch, callKeys, callArgs);
    }
  }

  private async answer(batch: readonly Queued[], keys: readonly string[], args: ReadonlyArray<string | number>): Promise<void> {
    let reply: ScriptReply;
    try {
      reply = await this.scripts.run('createReservation', keys, args, { latched: true });
      assert(reply.length === batch.length, `createReservation answered ${reply.length} of ${batch.length} reservations`);
    } catch (error) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    batch.forEach((queued, index) => {
      const own = reply[index] as unknown as ScriptReply;
      if (own[0] !== -100) {
        queued.resolve(own);
        return;
      }
      const reclaimed = takeReclaimed(own);
      if (reclaimed.length > 0) this.onReclaimedByFailed(reclaimed);
      // As the error of its own call would have been (withRedis maps the Redis ones).
      withRedis(() => Promise.reject(new ReplyError(String(own[1])))).catch(queued.reject);
    });
  }
}

function decode(reply: ScriptReply): CreateReservationResult {
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
