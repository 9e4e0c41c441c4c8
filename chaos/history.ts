// The recorded history of a chaos run, in the manner of Jepsen: every operation a client
// invoked, when it was invoked and completed, what was asked, every HTTP attempt it took (a
// well-behaved client retries transient failures with the same request and key), and its
// outcome: ok (acknowledged), fail (refused, so it must have had no effect) or unknown (no
// definite answer: it may or may not have taken effect, at most once).

export type OperationKind =
  | 'reserve'
  | 'replay-reserve'
  | 'confirm'
  | 'release'
  | 'cancel'
  | 'adjust'
  | 'replay-adjust'
  | 'set-stock'
  | 'read-sku'
  | 'read-reservation';

export type Outcome = 'ok' | 'fail' | 'unknown';

export interface Line {
  readonly sku: string;
  readonly quantity: number;
}

export interface Attempt {
  readonly startMs: number;
  readonly endMs: number;
  /** Which API process was asked (index). */
  readonly api: number;
  /** HTTP status, or null when no response came (timeout, reset, refused). */
  readonly status: number | null;
  readonly code?: string;
  readonly error?: string;
  readonly retryAfter?: string;
}

export interface Operation {
  readonly index: number;
  readonly client: string;
  readonly kind: OperationKind;
  readonly invokeMs: number;
  completeMs: number;
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
  readonly idempotencyKey?: string;
  outcome: Outcome;
  /** Final HTTP status (null: none) and problem code. */
  status: number | null;
  code?: string;
  readonly attempts: Attempt[];
  /** What the operation is about, for the checker. */
  readonly sku?: string;
  reservationId?: string;
  readonly lines?: readonly Line[];
  readonly delta?: number;
  readonly onHandTarget?: number;
  /** The customer a reservation was made for (the flash-sale guards count per customer). */
  readonly customerId?: string;
  /** From a reservation's response: when its hold expires (the server's clock, ms). */
  expiresAtMs?: number;
  /** From the response: the reservation's status, or a SKU view's on-hand. */
  resultStatus?: string;
  resultOnHand?: number;
  replayed?: boolean;
}

export type FaultKind =
  | 'kill-api'
  | 'kill-worker'
  | 'kill-reconciler'
  | 'pause-worker'
  | 'redis-restart'
  | 'redis-client-kill'
  | 'redis-pause-writes'
  | 'redis-latency'
  | 'redis-stall'
  | 'postgres-restart'
  | 'postgres-terminate'
  | 'postgres-table-lock'
  | 'postgres-latency'
  | 'postgres-stall'
  | 'stock-race'
  | 'redis-flushall'
  | 'redis-restart-empty'
  | 'redis-primary-kill';

export const dataLossFaults: readonly FaultKind[] = ['redis-flushall', 'redis-restart-empty'];

/**
 * Faults that may take acknowledged holds (and a reservation's idempotency record) with them, but
 * never an acknowledged confirm: a cluster primary killed before its replica had the hold
 * (replication is asynchronous; a confirm is answered only after WAIT).
 */
export const holdLossFaults: readonly FaultKind[] = [...dataLossFaults, 'redis-primary-kill'];

export interface Fault {
  readonly kind: FaultKind;
  readonly target: string;
  readonly startMs: number;
  endMs: number;
  readonly detail?: string;
}

export interface Violation {
  readonly check: 'confirms' | 'ledger' | 'agreement' | 'sell-out' | 'http' | 'idempotency' | 'caps';
  readonly message: string;
  /** Indexes of the operations involved, to print the history around them. */
  readonly operations: readonly number[];
  readonly sku?: string;
  readonly reservationId?: string;
}
