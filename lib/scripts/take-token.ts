// Typed boundary of lua/takeToken-1.lua: one request's token from its API client's bucket.
import { assert } from '../errors';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export interface RateLimit {
  /** Tokens a second. */
  readonly rate: number;
  /** The bucket's size. */
  readonly burst: number;
}

export type TakeTokenResult =
  | { readonly kind: 'taken'; readonly remaining: number; readonly fullInMs: number }
  | { readonly kind: 'refused'; readonly retryAfterMs: number; readonly fullInMs: number };

export async function takeToken(scripts: ScriptRunner, keys: RedisKeys, clientId: string, limit: RateLimit): Promise<TakeTokenResult> {
  assert(limit.rate >= 1 && limit.burst >= 1, 'a rate and a burst of at least 1');
  const reply = await scripts.run('takeToken', [keys.rateLimit(clientId)], [limit.rate, limit.burst]);
  if (reply[0] === 1) return { kind: 'taken', remaining: Number(reply[1]), fullInMs: Number(reply[2]) };
  assert(reply[0] === 0, `takeToken replied ${String(reply[0])}`);
  return { kind: 'refused', retryAfterMs: Number(reply[1]), fullInMs: Number(reply[2]) };
}
