// The webhook signature: `Stockhold-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the
// HMAC is keyed with WEBHOOK_SECRET over "<t>.<raw body>". The timestamp is inside the signed
// bytes, so a captured delivery cannot be replayed later with a fresh `t`; a receiver rejects a
// `t` further than its tolerance from its own clock. signPayload is what the sender uses on every
// attempt (a fresh `t` each time); verifySignature is what a receiver uses (docs/webhooks.md).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const signatureHeader = 'Stockhold-Signature';
export const signatureScheme = 'v1';
/** A header longer than this is refused unparsed (it is attacker-controlled input). */
export const signatureHeaderLengthMax = 1024;
/** v1 values one header may carry (more than one while a secret is being rotated). */
export const signaturesPerHeaderMax = 8;
/** The tolerance docs/webhooks.md recommends to receivers: five minutes either way. */
export const signatureToleranceSecondsDefault = 300;

const hmacHexLength = 64;

export type SignatureCheck =
  | { readonly valid: true; readonly timestampSeconds: number }
  | { readonly valid: false; readonly reason: 'malformed' | 'stale' | 'mismatch' };

function hmacHex(secret: string, timestampSeconds: number, body: string | Uint8Array): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
}

/** The header value for `body` signed at `nowSeconds` (whole Unix seconds). */
export function signPayload(secret: string, body: string | Uint8Array, nowSeconds: number): string {
  if (secret.length === 0) throw new TypeError('signPayload: the secret is empty');
  if (!Number.isSafeInteger(nowSeconds) || nowSeconds < 0) throw new TypeError(`signPayload: nowSeconds must be whole Unix seconds, got ${nowSeconds}`);
  return `t=${nowSeconds},${signatureScheme}=${hmacHex(secret, nowSeconds, body)}`;
}

function parseHeader(header: string): { timestampSeconds: number; signatures: string[] } | undefined {
  if (header.length === 0 || header.length > signatureHeaderLengthMax) return undefined;
  let timestampSeconds: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const separator = part.indexOf('=');
    if (separator <= 0) return undefined;
    const key = part.slice(0, separator).trim();
    const value = part.slice(separator + 1).trim();
    if (key === 't') {
      if (timestampSeconds !== undefined || !/^\d{1,12}$/.test(value)) return undefined;
      timestampSeconds = Number(value);
    } else if (key === signatureScheme) {
      if (!/^[0-9a-f]+$/i.test(value) || value.length !== hmacHexLength) return undefined;
      signatures.push(value.toLowerCase());
      if (signatures.length > signaturesPerHeaderMax) return undefined;
    }
    // Other keys (a future scheme) are ignored, so a receiver keeps working through an upgrade.
  }
  if (timestampSeconds === undefined || signatures.length === 0) return undefined;
  return { timestampSeconds, signatures };
}

/**
 * Checks a delivery as a receiver must: a well-formed header, a timestamp within
 * `toleranceSeconds` of `nowSeconds` (either way), and a v1 signature equal to the HMAC of the raw
 * body as received, compared in constant time.
 */
export function verifySignature(secret: string, header: string | undefined, body: string | Uint8Array, nowSeconds: number, toleranceSeconds: number): SignatureCheck {
  if (secret.length === 0) throw new TypeError('verifySignature: the secret is empty');
  const parsed = header === undefined ? undefined : parseHeader(header);
  if (parsed === undefined) return { valid: false, reason: 'malformed' };
  if (Math.abs(nowSeconds - parsed.timestampSeconds) > toleranceSeconds) return { valid: false, reason: 'stale' };
  const expected = Buffer.from(hmacHex(secret, parsed.timestampSeconds, body), 'hex');
  const matches = parsed.signatures.some((signature) => timingSafeEqual(Buffer.from(signature, 'hex'), expected));
  return matches ? { valid: true, timestampSeconds: parsed.timestampSeconds } : { valid: false, reason: 'mismatch' };
}
