// Rate limits per API client (RATE_LIMIT_PER_CLIENT_RPS, RATE_LIMIT_BURST): one token bucket per
// client in Redis (lua/takeToken-1.lua), shared by every API process, taken after authentication
// and before anything else, so a limited request touches no stock. Answers carry the IETF
// RateLimit fields (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` names the policy,
// its quota q and window w in seconds; `RateLimit` the tokens left r and seconds t until the
// bucket is full); a refusal is 429 `rate_limited` with Retry-After.
import type { RequestHandler } from 'express';
import { StockholdError } from '../../lib/errors';
import { takeToken, type RateLimit } from '../../lib/scripts/take-token';
import type { Stockhold } from '../../lib/stockhold';
import { clientOf } from './auth';

export const ratePolicyName = 'client';

export function rateLimit(stockhold: Stockhold, limit: RateLimit): RequestHandler {
  const windowSeconds = Math.max(1, Math.ceil(limit.burst / limit.rate));
  const policy = `"${ratePolicyName}";q=${limit.burst};w=${windowSeconds}`;
  return async (_request, response, next) => {
    const { clientId } = clientOf(response);
    const result = await takeToken(stockhold.scripts, stockhold.keys, clientId, limit);
    response.setHeader('RateLimit-Policy', policy);
    if (result.kind === 'taken') {
      response.setHeader('RateLimit', `"${ratePolicyName}";r=${result.remaining};t=${Math.ceil(result.fullInMs / 1000)}`);
      next();
      return;
    }
    const retryAfterSeconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    response.setHeader('RateLimit', `"${ratePolicyName}";r=0;t=${Math.ceil(result.fullInMs / 1000)}`);
    throw new StockholdError('rate_limited', `Client ${clientId} is limited to ${limit.rate} requests a second (burst ${limit.burst}); retry after ${retryAfterSeconds} s`, { limit: limit.rate, burst: limit.burst }, retryAfterSeconds);
  };
}
