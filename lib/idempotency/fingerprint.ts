// A request's fingerprint: what "the same request" means for an Idempotency-Key. It covers the
// route (so one key cannot be replayed against another endpoint) and the body as parsed JSON with
// object keys sorted (so whitespace and key order do not matter; array order does).
import { hash } from 'node:crypto';

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as Record<string, unknown>)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

/** 128 bits of SHA-256, base64url: collisions need a second preimage, not a birthday. */
export function requestFingerprint(route: string, body: unknown): string {
  return hash('sha256', `${route}\n${canonicalJson(body)}`, 'base64url').slice(0, 22);
}
