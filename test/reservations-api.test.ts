// Proves the reservation contract over real HTTP, Redis and Postgres: creation, reads, release,
// expiry without any sweep, ownership, and idempotency (replay, reuse, concurrent duplicates).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';
import { patchRecord } from './support/records';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness.close();
});

const reserve = (lines: Array<{ sku: string; quantity: number }>, extra: Record<string, unknown> = {}, key = idempotencyKey(), as: 'checkout' | 'otherCheckout' = 'checkout') =>
  harness.call('POST', '/v1/reservations', { as, idempotencyKey: key, body: { lines, ...extra } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('POST /v1/reservations', () => {
  // app.ts serves the exact path on a fast lane without the router; other spellings go through
  // the router to the same handlers. Both must answer the same contract.
  it('answers the same on the fast lane (exact path, a query string) and through the router (trailing slash)', async () => {
    const sku = await createSku(harness, 10);
    const shapes = [];
    for (const path of ['/v1/reservations', '/v1/reservations?source=app', '/v1/reservations/']) {
      const created = await harness.call('POST', path, { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }], customerId: 'c-lanes' } });
      expect(created.status, path).toBe(201);
      expect(created.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(created.headers.get('location')).toBe(`/v1/reservations/${created.body.id}`);
      expect(created.headers.get('x-request-id')).toMatch(/\S/);
      shapes.push(Object.keys(created.body).sort());
      const unauthorized = await harness.call('POST', path, { as: null, idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      expect(unauthorized.status, path).toBe(401);
      expect(unauthorized.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      expect(unauthorized.headers.get('www-authenticate')).toBe('Bearer realm="stockhold"');
      expect(unauthorized.body).toMatchObject({ code: 'unauthorized', status: 401, instance: path });
      const short = await harness.call('POST', path, { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 100 }] } });
      expect(short.status, path).toBe(409);
      expect(short.body).toMatchObject({ code: 'insufficient_stock', status: 409 });
    }
    expect(shapes[1]).toEqual(shapes[0]);
    expect(shapes[2]).toEqual(shapes[0]);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ reserved: 3 });
  });

  it('creates a pending reservation with Location, summing duplicate lines', async () => {
    const sku = await createSku(harness, 10);
    const before = Date.now();
    const response = await reserve([{ sku, quantity: 2 }, { sku, quantity: 3 }], { ttlSeconds: 120, customerId: 'cust-1' });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ status: 'pending', lines: [{ sku, quantity: 5 }], customerId: 'cust-1' });
    expect(response.body.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(response.headers.get('location')).toBe(`/v1/reservations/${response.body.id}`);
    const ttlMs = Date.parse(response.body.expiresAt) - Date.parse(response.body.createdAt);
    expect(ttlMs).toBe(120_000);
    expect(Date.parse(response.body.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 5, available: 5 });
  });

  it('uses the default hold ttl of 900 s', async () => {
    const sku = await createSku(harness, 1);
    const response = await reserve([{ sku, quantity: 1 }]);
    expect(Date.parse(response.body.expiresAt) - Date.parse(response.body.createdAt)).toBe(900_000);
  });

  it('is all or nothing across SKUs, naming each short line', async () => {
    const a = await createSku(harness, 5);
    const b = await createSku(harness, 1);
    const response = await reserve([{ sku: a, quantity: 2 }, { sku: b, quantity: 3 }]);
    expect(response.status).toBe(409);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ code: 'insufficient_stock', status: 409, lines: [{ sku: b, requested: 3, available: 1 }] });
    // Sold out, no pending hold could help: no Retry-After.
    expect(response.headers.get('retry-after')).toBeNull();
    expect((await harness.call('GET', `/v1/skus/${a}`)).body.reserved).toBe(0);
  });

  it('sends Retry-After with the seconds until the earliest pending hold on a short SKU expires', async () => {
    const sku = await createSku(harness, 2);
    await reserve([{ sku, quantity: 1 }], { ttlSeconds: 40 });
    await reserve([{ sku, quantity: 1 }], { ttlSeconds: 300 });
    const response = await reserve([{ sku, quantity: 1 }]);
    expect(response.status).toBe(409);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(39);
    expect(Number(response.headers.get('retry-after'))).toBeLessThanOrEqual(40);
  });

  it('answers 404 sku_not_found for an unknown SKU and holds nothing', async () => {
    const known = await createSku(harness, 3);
    const response = await reserve([{ sku: known, quantity: 1 }, { sku: 'NEVER-SEEN-SKU', quantity: 1 }]);
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ code: 'sku_not_found', skus: ['NEVER-SEEN-SKU'] });
    expect((await harness.call('GET', `/v1/skus/${known}`)).body.reserved).toBe(0);
  });
});

describe('idempotency', () => {
  it('replays the stored response with Idempotent-Replayed and holds nothing more', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    const first = await reserve([{ sku, quantity: 4 }], {}, key);
    const again = await reserve([{ sku, quantity: 4 }], {}, key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body).toEqual(first.body);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(4);
  });

  it('treats key order and whitespace as the same body', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    await reserve([{ sku, quantity: 1 }], { ttlSeconds: 60 }, key);
    const reordered = await harness.call('POST', '/v1/reservations', {
      as: 'checkout', idempotencyKey: key, headers: { 'content-type': 'application/json' },
      rawBody: `{ "ttlSeconds": 60,\n "lines": [ { "quantity": 1, "sku": "${sku}" } ] }`,
    });
    expect(reordered.status).toBe(201);
    expect(reordered.headers.get('idempotent-replayed')).toBe('true');
  });

  it('refuses the same key with another body: 422 idempotency_key_reused', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    await reserve([{ sku, quantity: 1 }], {}, key);
    const reused = await reserve([{ sku, quantity: 2 }], {}, key);
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe('idempotency_key_reused');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(1);
  });

  it('scopes keys per client: the same key from another client is a new request', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    const mine = await reserve([{ sku, quantity: 1 }], {}, key, 'checkout');
    const theirs = await reserve([{ sku, quantity: 1 }], {}, key, 'otherCheckout');
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(2);
  });

  it('20 concurrent requests with one key create exactly one hold', async () => {
    const sku = await createSku(harness, 100);
    const key = idempotencyKey();
    const results = await Promise.all(Array.from({ length: 20 }, () => reserve([{ sku, quantity: 3 }], {}, key)));
    expect(results.every((result) => result.status === 201)).toBe(true);
    expect(new Set(results.map((result) => result.body.id)).size).toBe(1);
    expect(results.filter((result) => result.headers.get('idempotent-replayed') === null)).toHaveLength(1);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(3);
    expect(await harness.stockhold.redis.zcard(harness.stockhold.keys.skuHolds(sku))).toBe(1);
  });

  it('does not store a refusal: a retry with the same key succeeds once stock frees up', async () => {
    const sku = await createSku(harness, 1);
    const blocker = await reserve([{ sku, quantity: 1 }]);
    const key = idempotencyKey();
    expect((await reserve([{ sku, quantity: 1 }], {}, key)).status).toBe(409);
    await harness.call('DELETE', `/v1/reservations/${blocker.body.id}`, { as: 'checkout' });
    const retried = await reserve([{ sku, quantity: 1 }], {}, key);
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
  });

  it('requires the key: 400 idempotency_key_missing, nothing reserved', async () => {
    const sku = await createSku(harness, 1);
    const response = await harness.call('POST', '/v1/reservations', { as: 'checkout', body: { lines: [{ sku, quantity: 1 }] } });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('idempotency_key_missing');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(0);
  });
});

describe('GET and DELETE /v1/reservations/{id}', () => {
  it('reads its own reservation; fulfillment and admin read any', async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve([{ sku, quantity: 1 }]);
    for (const as of ['checkout', 'fulfillment', 'admin'] as const) {
      const read = await harness.call('GET', `/v1/reservations/${created.body.id}`, { as });
      expect(read.status).toBe(200);
      expect(read.body).toEqual(created.body);
    }
  });

  it("hides another checkout client's reservation: 404, not 403, for read and release", async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve([{ sku, quantity: 2 }]);
    const read = await harness.call('GET', `/v1/reservations/${created.body.id}`, { as: 'otherCheckout' });
    expect(read.status).toBe(404);
    expect(read.body.code).toBe('reservation_not_found');
    const release = await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'otherCheckout' });
    expect(release.status).toBe(404);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(2);
  });

  it('answers 404 for unknown and malformed ids', async () => {
    expect((await harness.call('GET', `/v1/reservations/${'A'.repeat(22)}`, { as: 'checkout' })).status).toBe(404);
    expect((await harness.call('GET', '/v1/reservations/not-an-id', { as: 'checkout' })).status).toBe(404);
    expect((await harness.call('DELETE', '/v1/reservations/not-an-id', { as: 'checkout' })).status).toBe(404);
  });

  it('releases: units come back, status released, releasing again answers the same', async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve([{ sku, quantity: 3 }]);
    const released = await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'checkout' });
    expect(released.status).toBe(200);
    expect(released.body).toMatchObject({ id: created.body.id, status: 'released' });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ reserved: 0, available: 5 });
    const again = await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'fulfillment' });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('released');
    expect((await harness.call('GET', `/v1/reservations/${created.body.id}`, { as: 'checkout' })).body.status).toBe('released');
  });

  it('refuses to release a reservation past pending: 409', async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve([{ sku, quantity: 1 }]);
    // Confirmation arrives with the commit pipeline; set the state as it will.
    await patchRecord(harness.stockhold.redis, harness.stockhold.keys, created.body.id, { s: 'confirmed' });
    const response = await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'checkout' });
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ code: 'reservation_not_releasable', status: 409, reservationStatus: 'confirmed' });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(1);
  });
});

describe('expiry without a sweep', () => {
  it('reports an expired hold as expired and gives its units to the next reservation', async () => {
    const sku = await createSku(harness, 2);
    const held = await reserve([{ sku, quantity: 2 }], { ttlSeconds: 1 });
    expect((await reserve([{ sku, quantity: 1 }])).status).toBe(409);
    await sleep(1100);
    expect((await harness.call('GET', `/v1/reservations/${held.body.id}`, { as: 'checkout' })).body.status).toBe('expired');
    const next = await reserve([{ sku, quantity: 2 }]);
    expect(next.status).toBe(201);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ onHand: 2, reserved: 2, available: 0 });
    const release = await harness.call('DELETE', `/v1/reservations/${held.body.id}`, { as: 'checkout' });
    expect(release.status).toBe(200);
    expect(release.body.status).toBe('expired');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(2);
  });

  it('reading a SKU does not count expired holds', async () => {
    const sku = await createSku(harness, 3);
    await reserve([{ sku, quantity: 3 }], { ttlSeconds: 1 });
    await sleep(1100);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 3, reserved: 0, available: 3 });
  });
});
