// One error type for everything the domain expects to go wrong. Each carries a stable `code`
// slug; the HTTP layer maps codes to statuses in exactly one table (apps/api/problem.ts).
// Programmer errors are not StockholdErrors: they are assertion failures and become a 500.

export type ErrorCode =
  | 'validation_failed'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'route_not_found'
  | 'sku_not_found'
  | 'reservation_not_found'
  | 'insufficient_stock'
  | 'stock_below_reserved'
  | 'stripes_in_use'
  | 'reservation_not_releasable'
  | 'reservation_expired'
  | 'reservation_released'
  | 'reservation_cancelled'
  | 'reservation_not_committed'
  | 'reservation_rejected'
  | 'method_not_allowed'
  | 'reconcile_in_progress'
  | 'job_not_found'
  | 'job_not_failed'
  | 'idempotency_key_missing'
  | 'idempotency_key_reused'
  | 'idempotency_key_in_flight'
  | 'backend_unavailable'
  | 'overloaded'
  | 'rate_limited'
  | 'customer_limit_exceeded'
  | 'too_many_active_holds'
  | 'customer_id_required'
  | 'record_migration_pending';

export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export interface ShortLine {
  readonly sku: string;
  readonly requested: number;
  readonly available: number;
}

export class StockholdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra members for the problem document (RFC 9457 extensions). */
    readonly extensions: Readonly<Record<string, unknown>> = {},
    /** Seconds after which the same request may succeed; absent when it cannot. */
    readonly retryAfterSeconds?: number,
  ) {
    // Operating errors are expected (a sold-out SKU answers thousands of them a second): no stack
    // trace, whose capture would cost more than the refusal itself. A 5xx keeps its cause's.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'StockholdError';
  }
}

export const errors = {
  validation: (problems: readonly FieldProblem[]) =>
    new StockholdError('validation_failed', problems.map((p) => `${p.field}: ${p.message}`).join('; '), { errors: problems }),
  skuNotFound: (skus: readonly string[]) =>
    new StockholdError('sku_not_found', `Unknown SKU: ${skus.join(', ')}`, { skus }),
  reservationNotFound: (id: string) => new StockholdError('reservation_not_found', `No reservation ${id}`),
  customerLimitExceeded: (sku: string, limit: number, held: number) =>
    new StockholdError('customer_limit_exceeded', `The customer holds ${held} of ${sku}, limited to ${limit} per customer`, { sku, limit, held }),
  customerIdRequired: (sku: string) =>
    new StockholdError('customer_id_required', `${sku} is limited per customer: send customerId`, { sku, errors: [{ field: 'body.customerId', message: `required: ${sku} is limited per customer` }] }),
  tooManyActiveHolds: (limit: number, active: number) =>
    new StockholdError('too_many_active_holds', `The customer has ${active} live reservations, the most allowed (${limit})`, { limit, active }),
  insufficientStock: (lines: readonly ShortLine[], retryAfterSeconds?: number) =>
    new StockholdError(
      'insufficient_stock',
      `Not enough stock for ${lines.map((l) => `${l.sku} (requested ${l.requested}, available ${l.available})`).join(', ')}`,
      { lines },
      retryAfterSeconds,
    ),
  stockBelowReserved: (sku: string, onHandAfter: number, reserved: number) =>
    new StockholdError(
      'stock_below_reserved',
      `On-hand for ${sku} would become ${onHandAfter}, below the ${reserved} units reserved (or below zero)`,
      { sku, onHandAfter, reserved },
    ),
  notReleasable: (id: string, status: string) =>
    new StockholdError('reservation_not_releasable', `Reservation ${id} is ${status} and can no longer be released`, { reservationStatus: status }),
  reservationExpired: (id: string) => new StockholdError('reservation_expired', `Reservation ${id} expired before it was confirmed; its units were returned`),
  reservationReleased: (id: string) => new StockholdError('reservation_released', `Reservation ${id} was released and cannot be confirmed`),
  stripesInUse: (sku: string, stripes: number, reserved: number) =>
    new StockholdError('stripes_in_use', `SKU ${sku} cannot go down to ${stripes} stripes: the stripes it would drop hold ${reserved} reserved units; retry once they are released, expired or committed`, { sku, stripes, reserved }, 1),
  reservationCancelled: (id: string) => new StockholdError('reservation_cancelled', `Reservation ${id} was cancelled`),
  notCommitted: (id: string, status: string, retryAfterSeconds?: number) =>
    new StockholdError('reservation_not_committed', `Reservation ${id} is ${status}: only a committed reservation can be cancelled (release a pending one, or wait for the commit)`, { reservationStatus: status }, retryAfterSeconds),
  reservationRejected: (id: string, reason = 'insufficient_stock_in_ledger') =>
    new StockholdError(
      'reservation_rejected',
      reason === 'holds_lost_in_failover'
        ? `Reservation ${id} was rejected: a Redis failover took its holds before its confirm was acknowledged; nothing was allocated`
        : `Reservation ${id} was rejected: the ledger did not have its stock when it was committed; nothing was allocated and its hold was released`,
      { reason },
    ),
  jobNotFound: (queue: string, jobId: string) => new StockholdError('job_not_found', `No job ${jobId} in queue ${queue}`, { queue, jobId }),
  jobNotFailed: (queue: string, jobId: string, jobState: string) =>
    new StockholdError('job_not_failed', `Job ${jobId} in queue ${queue} is ${jobState}, not failed: only a failed job can be retried`, { queue, jobId, jobState }),
  reconcileInProgress: () => new StockholdError('reconcile_in_progress', 'A reconciliation run is already in progress; retry when it is done', {}, 1),
  methodNotAllowed: (method: string, allowed: readonly string[]) =>
    new StockholdError('method_not_allowed', `${method} is not allowed here; allowed: ${allowed.join(', ')}`, { allow: allowed }),
  idempotencyKeyReused: () =>
    new StockholdError('idempotency_key_reused', 'This Idempotency-Key was already used with a different request'),
  idempotencyKeyInFlight: (retryAfterSeconds: number) =>
    new StockholdError('idempotency_key_in_flight', 'A request with this Idempotency-Key is still being processed', {}, retryAfterSeconds),
  /**
   * A write is on its primary but not known to be on enough replicas: safe to retry with the same
   * request (a confirm stands and is answered once replicated; a stock change was rolled back).
   */
  notReplicated: (what: 'confirmation' | 'stock change', wanted: number, acknowledged: number) =>
    new StockholdError(
      'backend_unavailable',
      what === 'confirmation'
        ? `The confirmation reached ${acknowledged} of the ${wanted} Redis replicas it must be on before it is answered; retry the confirm`
        : `The stock change's debit reached ${acknowledged} of the ${wanted} Redis replicas it must be on before the change commits; nothing changed, retry it`,
      { backend: 'redis', replicasWanted: wanted, replicasAcknowledged: acknowledged },
      1,
    ),
  /** A record of the layout before the shared buckets, not moved yet (`npm run migrate:records`). */
  recordMigrationPending: (id: string) =>
    new StockholdError('record_migration_pending', `Reservation ${id} is kept in the record layout of an earlier version: it is answered once \`npm run migrate:records\` has moved it`, {}, 5),
  backendUnavailable: (backend: 'redis' | 'postgres', cause: unknown) => {
    const error = new StockholdError('backend_unavailable', `The ${backend} backend is unavailable; retry later, with the same Idempotency-Key for a mutation`, { backend }, 1);
    error.cause = cause;
    return error;
  },
};

/** Crashes on a broken invariant: a programmer error, never an operating one. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}
