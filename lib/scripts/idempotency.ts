// Typed boundaries of lua/beginIdempotent-1.lua and lua/settleIdempotent-1.lua: an idempotent
// operation that cannot be one Redis script (a stock change, which writes Postgres).
import { assert } from '../errors';
import type { ScriptRunner } from '../redis/scripts';

export type BeginIdempotentResult =
  | { readonly kind: 'begun' }
  | { readonly kind: 'replay'; readonly status: number; readonly body: string }
  | { readonly kind: 'key-reused' }
  | { readonly kind: 'in-flight'; readonly retryAfterMs: number };

export async function beginIdempotent(scripts: ScriptRunner, key: string, fingerprint: string, inFlightTtlMs: number): Promise<BeginIdempotentResult> {
  const reply = await scripts.run('beginIdempotent', [key], [fingerprint, inFlightTtlMs]);
  switch (reply[0]) {
    case 1: return { kind: 'begun' };
    case 2: return { kind: 'replay', status: Number(reply[1]), body: String(reply[2]) };
    case -2: return { kind: 'key-reused' };
    default:
      assert(reply[0] === -4, `beginIdempotent replied ${String(reply[0])}`);
      return { kind: 'in-flight', retryAfterMs: Number(reply[1]) };
  }
}

export type Settlement = { readonly kind: 'store'; readonly status: number; readonly body: string; readonly ttlMs: number } | { readonly kind: 'forget' };

/** True when this attempt still owned the key and settled it. */
export async function settleIdempotent(scripts: ScriptRunner, key: string, fingerprint: string, settlement: Settlement): Promise<boolean> {
  const args = settlement.kind === 'store' ? [fingerprint, 'store', settlement.status, settlement.body, settlement.ttlMs] : [fingerprint, 'forget'];
  const reply = await scripts.run('settleIdempotent', [key], args);
  return reply[0] === 1;
}
