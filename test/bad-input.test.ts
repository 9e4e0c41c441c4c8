// Proves that every kind of bad input gets a clear 4xx problem with a stable code and changes
// nothing: after each refused request the SKU's counters and holds are exactly as before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';

let harness: Harness;
let sku: string;
beforeAll(async () => {
  harness = await startHarness();
  sku = await createSku(harness, 10);
});
afterAll(async () => {
  await harness.close();
});

async function expectUnchanged(): Promise<void> {
  expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 0, available: 10 });
  expect(await harness.stockhold.redis.exists(harness.stockhold.keys.skuHolds(sku))).toBe(0);
}

const reserveRaw = (rawBody: string, contentType = 'application/json') =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), rawBody, headers: { 'content-type': contentType } });

describe('reservation bodies refused with 400 validation_failed', () => {
  const cases: Array<[string, unknown, string]> = [
    ['no lines', {}, 'body.lines'],
    ['empty lines', { lines: [] }, 'body.lines'],
    ['too many lines', { lines: Array.from({ length: 51 }, (_, index) => ({ sku: `S${index}`, quantity: 1 })) }, 'body.lines'],
    ['quantity as string', { lines: [{ sku: 'X', quantity: '1' }] }, 'body.lines[0].quantity'],
    ['fractional quantity', { lines: [{ sku: 'X', quantity: 1.5 }] }, 'body.lines[0].quantity'],
    ['zero quantity', { lines: [{ sku: 'X', quantity: 0 }] }, 'body.lines[0].quantity'],
    ['negative quantity', { lines: [{ sku: 'X', quantity: -3 }] }, 'body.lines[0].quantity'],
    ['quantity over the maximum', { lines: [{ sku: 'X', quantity: 1001 }] }, 'body.lines[0].quantity'],
    ['sku with a space', { lines: [{ sku: 'A B', quantity: 1 }] }, 'body.lines[0].sku'],
    ['sku too long', { lines: [{ sku: 'A'.repeat(65), quantity: 1 }] }, 'body.lines[0].sku'],
    ['empty sku', { lines: [{ sku: '', quantity: 1 }] }, 'body.lines[0].sku'],
    ['sku as number', { lines: [{ sku: 5, quantity: 1 }] }, 'body.lines[0].sku'],
    ['ttl zero', { lines: [{ sku: 'X', quantity: 1 }], ttlSeconds: 0 }, 'body.ttlSeconds'],
    ['ttl over a day', { lines: [{ sku: 'X', quantity: 1 }], ttlSeconds: 86_401 }, 'body.ttlSeconds'],
    ['fractional ttl', { lines: [{ sku: 'X', quantity: 1 }], ttlSeconds: 1.5 }, 'body.ttlSeconds'],
    ['unknown field', { lines: [{ sku: 'X', quantity: 1 }], colour: 'red' }, 'body.colour'],
    ['line without quantity', { lines: [{ sku: 'X' }] }, 'body.lines[0].quantity'],
    ['body is an array', [{ sku: 'X', quantity: 1 }], 'body'],
    // Found by npm run fuzz: Postgres refuses NUL in text, so the commit of such a reservation
    // could never be written; an unpaired surrogate was stored as U+FFFD.
    ['customer id with NUL', { lines: [{ sku: 'X', quantity: 1 }], customerId: 'a\u0000b' }, 'body.customerId'],
    ['customer id with an unpaired surrogate', { lines: [{ sku: 'X', quantity: 1 }], customerId: 'a\ud800' }, 'body.customerId'],
  ];
  it.each(cases)('%s', async (_name, body, field) => {
    const withRealSku = JSON.parse(JSON.stringify(body).replaceAll('"X"', JSON.stringify(sku)));
    const response = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: withRealSku });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ code: 'validation_failed', status: 400, type: expect.stringContaining('validation_failed') });
    expect(response.body.errors.map((error: { field: string }) => error.field)).toContain(field);
    await expectUnchanged();
  });

  it('refuses duplicate lines that sum above the maximum', async () => {
    const response = await harness.call('POST', '/v1/reservations', {
      as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 600 }, { sku, quantity: 600 }] },
    });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('validation_failed');
    await expectUnchanged();
  });

  it('refuses broken JSON with 400', async () => {
    const response = await reserveRaw('{"lines": [');
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('validation_failed');
    await expectUnchanged();
  });

  it('refuses a JSON scalar body with 400', async () => {
    expect((await reserveRaw('42')).status).toBe(400);
  });

  it('refuses an empty body with 400', async () => {
    const response = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey() });
    expect(response.status).toBe(400);
    expect(response.body.errors[0].field).toBe('body');
  });

  it('refuses a non-JSON content type with 415', async () => {
    const response = await reserveRaw(`lines=${sku}`, 'application/x-www-form-urlencoded');
    expect(response.status).toBe(415);
    expect(response.body.code).toBe('unsupported_media_type');
    await expectUnchanged();
  });

  it('refuses a body over 64 KiB with 413', async () => {
    const response = await reserveRaw(JSON.stringify({ lines: [{ sku, quantity: 1 }], customerId: 'x'.repeat(70 * 1024) }));
    expect(response.status).toBe(413);
    expect(response.body.code).toBe('payload_too_large');
    await expectUnchanged();
  });

  it('refuses a body read in chunks past 64 KiB with 413, without a Content-Length', async () => {
    const chunk = new TextEncoder().encode(' '.repeat(16 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += 1;
        if (sent > 6) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const response = await fetch(`${harness.baseUrl}/v1/reservations`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-checkout-secret', 'content-type': 'application/json', 'idempotency-key': idempotencyKey() },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { code: string }).code).toBe('payload_too_large');
    await expectUnchanged();
  });

  it.each([
    ['a charset other than UTF-8', 'application/json; charset=latin1', {}],
    ['a compressed body', 'application/json', { 'content-encoding': 'gzip' }],
  ])('refuses %s with 415', async (_name, contentType, headers) => {
    const response = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), rawBody: JSON.stringify({ lines: [{ sku, quantity: 1 }] }), headers: { 'content-type': contentType, ...headers } });
    expect(response.status).toBe(415);
    expect(response.body.code).toBe('unsupported_media_type');
    await expectUnchanged();
  });

  it.each([
    ['a JSON string at the top level', '"lines"'],
    ['a JSON number at the top level', '42'],
    ['broken JSON', '{"lines": [{"sku": '],
  ])('refuses %s with 400', async (_name, rawBody) => {
    const response = await reserveRaw(rawBody);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'body' }] });
    await expectUnchanged();
  });

  it('takes application/*+json with a UTF-8 charset', async () => {
    const response = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), rawBody: JSON.stringify({ lines: [{ sku, quantity: 1 }] }), headers: { 'content-type': 'application/vnd.stockhold+json; charset="UTF-8"' } });
    expect(response.status).toBe(201);
    const released = await harness.call('DELETE', `/v1/reservations/${response.body.id}`, { as: 'checkout' });
    expect(released.status).toBe(200);
    await expectUnchanged();
  });

  // The body is read once: an unknown /v1/admin path falls through to /v1, whose JSON reader
  // must not wait for a stream that already ended (it hung until the client gave up).
  it('answers a JSON body on an admin path without that method: 405, at once', async () => {
    const response = await harness.call('POST', '/v1/admin/jobs', { body: { anything: true } });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET');
  });

  it('refuses a malformed Idempotency-Key with 400', async () => {
    const response = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: 'a'.repeat(256), body: { lines: [{ sku, quantity: 1 }] } });
    expect(response.status).toBe(400);
    expect(response.body.errors[0].field).toBe('header.Idempotency-Key');
    await expectUnchanged();
  });
});

describe('authentication and scopes', () => {
  it('401 without a key or with an unknown one, with WWW-Authenticate', async () => {
    const missing = await harness.call('GET', `/v1/skus/${sku}`, { as: null });
    expect(missing.status).toBe(401);
    expect(missing.body.code).toBe('unauthorized');
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await harness.call('GET', `/v1/skus/${sku}`, { as: null, headers: { authorization: 'Bearer not-a-real-secret' } });
    expect(wrong.status).toBe(401);
  });

  it('403 for a route outside the key scopes, and nothing changes', async () => {
    const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { as: 'checkout', body: { onHand: 0 } });
    expect(response.status).toBe(403);
    expect(response.body.code).toBe('forbidden');
    const fulfillmentReserve = await harness.call('POST', '/v1/reservations', { as: 'fulfillment', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
    expect(fulfillmentReserve.status).toBe(403);
    await expectUnchanged();
  });
});

describe('stock bodies and paths', () => {
  const cases: Array<[string, string, string, unknown]> = [
    ['negative onHand', 'PUT', 'stock', { onHand: -1 }],
    ['fractional onHand', 'PUT', 'stock', { onHand: 2.5 }],
    ['onHand as string', 'PUT', 'stock', { onHand: '3' }],
    ['zero delta', 'POST', 'adjustments', { delta: 0, reason: 'nothing' }],
    ['missing reason', 'POST', 'adjustments', { delta: 5 }],
    ['empty reason', 'POST', 'adjustments', { delta: 5, reason: '' }],
    ['fractional delta', 'POST', 'adjustments', { delta: 0.5, reason: 'half' }],
    // Found by npm run fuzz: a 500 (Postgres refused the NUL) before.
    ['reason with NUL', 'POST', 'adjustments', { delta: 5, reason: 'a\u0000' }],
  ];
  it.each(cases)('%s: 400', async (_name, method, path, body) => {
    const response = await harness.call(method, `/v1/skus/${sku}/${path}`, { body, idempotencyKey: idempotencyKey() });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('validation_failed');
    await expectUnchanged();
  });

  it('refuses a bad SKU in the path with 400', async () => {
    const response = await harness.call('GET', `/v1/skus/${'Z'.repeat(65)}`);
    expect(response.status).toBe(400);
    expect(response.body.errors[0].field).toBe('path.sku');
    expect((await harness.call('PUT', '/v1/skus/bad%20sku/stock', { body: { onHand: 1 } })).status).toBe(400);
  });

  // Found by npm run fuzz: the router's failure to percent-decode a parameter was a 500.
  it('refuses a path parameter that is not valid percent-encoding with 400', async () => {
    for (const [method, path] of [['GET', '/v1/skus/%'], ['PUT', '/v1/skus/%zz/stock'], ['GET', '/v1/reservations/%'], ['POST', '/v1/admin/jobs/commits/%/retry']] as const) {
      const response = await harness.call(method, path, { body: method === 'PUT' ? { onHand: 1 } : undefined });
      expect(response.status, `${method} ${path}`).toBe(400);
      expect(response.body).toMatchObject({ code: 'validation_failed', status: 400, errors: [{ field: 'path' }] });
    }
    await expectUnchanged();
  });

  it('answers unknown routes with a 404 problem', async () => {
    const response = await harness.call('GET', '/v1/nothing-here');
    expect(response.status).toBe(404);
    expect(response.body.code).toBe('route_not_found');
  });
});
