// Idempotency for operations that cannot be one Redis script (stock changes write Postgres).
// Reservations do not use this: their record is written by createReservation itself, in the
// same atomic step as the hold.
import { assert, errors } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

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
    const reply = await this.scripts.run('beginIdempotent', [this.keys.idempotency(scope.clientId, scope.key)], [scope.fingerprint, this.inFlightTtlMs]);
    const code = reply[0];
    if (code === 1) return { kind: 'begun' };
    if (code === 2) return { kind: 'replay', response: { status: Number(reply[1]), body: JSON.parse(String(reply[2])) } };
    if (code === -2) throw errors.idempotencyKeyReused();
    if (code === -4) throw errors.idempotencyKeyInFlight(Math.max(1, Math.ceil(Number(reply[1]) / 1000)));
    throw new Error(`beginIdempotent returned ${String(code)}`);
  }

  /** Stores the response for replays. Best effort: on failure the in-flight ttl frees the key. */
  async store(scope: IdempotencyScope, response: StoredResponse): Promise<boolean> {
    assert(response.status >= 200 && response.status < 300, 'only successful responses are stored');
    return this.settle(scope, ['store', response.status, JSON.stringify(response.body), this.recordTtlMs]);
  }

  /** Lets the key be used again: the attempt failed in a way a retry may not. */
  async forget(scope: IdempotencyScope): Promise<boolean> {
    return this.settle(scope, ['forget']);
  }

  private async settle(scope: IdempotencyScope, args: ReadonlyArray<string | number>): Promise<boolean> {
    try {
      const reply = await this.scripts.run('settleIdempotent', [this.keys.idempotency(scope.clientId, scope.key)], [scope.fingerprint, ...args]);
      return reply[0] === 1;
    } catch {
      return false;
    }
  }
}
