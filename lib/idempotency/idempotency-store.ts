// Idempotency for operations that cannot be one Redis script (stock changes write Postgres).
// Reservations do not use this: their record is written by createReservation itself, in the
// same atomic step as the hold.
import { assert, errors } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { beginIdempotent, settleIdempotent, type Settlement } from '../scripts/idempotency';

export interface IdempotencyScope {
  readonly clientId: string;
  readonly key: string;
  readonly fingerprint: string;
}

export interface StoredResponse {
  readonly status: number;
  readonly body: unknown;
}

export type BeginOutcome = { readonly kind: 'begun' } | { readonly kind: 'replay'; readonly response: StoredResponse };

export class IdempotencyStore {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly recordTtlMs: number,
    private readonly inFlightTtlMs: number,
  ) {}

  /** Claims the key for this attempt, or says why not (replay, reuse, or another attempt running). */
  async begin(scope: IdempotencyScope): Promise<BeginOutcome> {
    const result = await beginIdempotent(this.scripts, this.keys.idempotency(scope.clientId, scope.key), scope.fingerprint, this.inFlightTtlMs);
    switch (result.kind) {
      case 'begun': return { kind: 'begun' };
      case 'replay': return { kind: 'replay', response: { status: result.status, body: JSON.parse(result.body) } };
      case 'key-reused': throw errors.idempotencyKeyReused();
      case 'in-flight': throw errors.idempotencyKeyInFlight(Math.max(1, Math.ceil(result.retryAfterMs / 1000)));
    }
  }

  /** Stores the response for replays. Best effort: on failure the in-flight ttl frees the key. */
  async store(scope: IdempotencyScope, response: StoredResponse): Promise<boolean> {
    assert(response.status >= 200 && response.status < 300, 'only successful responses are stored');
    return this.settle(scope, { kind: 'store', status: response.status, body: JSON.stringify(response.body), ttlMs: this.recordTtlMs });
  }

  /** Lets the key be used again: the attempt failed in a way a retry may not. */
  async forget(scope: IdempotencyScope): Promise<boolean> {
    return this.settle(scope, { kind: 'forget' });
  }

  private async settle(scope: IdempotencyScope, settlement: Settlement): Promise<boolean> {
    try {
      return await settleIdempotent(this.scripts, this.keys.idempotency(scope.clientId, scope.key), scope.fingerprint, settlement);
    } catch {
      return false;
    }
  }
}
