// Proves the outbox over real HTTP and Postgres (a stock change, a commit and a cancel each
// leave exactly one event, in order, with what a consumer needs; paging resumes from `next`;
// bad queries are 400 and scopes are enforced), and that a known path asked with another method
// answers 405 with Allow while an unknown path stays 404.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '1' });
});
afterAll(async () => {
  await harness.close();
});

interface EventBody {
  id: number;
  type: string;
  occurredAt: string;
  data: Record<string, unknown>;
}

async function eventsAfter(after: number): Promise<EventBody[]> {
  const collected: EventBody[] = [];
  let cursor = after;
  for (let page = 0; page < 5000; page += 1) {
    const response = await harness.call('GET', `/v1/events?after=${cursor}&limit=2`, { as: 'fulfillment' });
    expect(response.status).toBe(200);
    collected.push(...response.body.events);
    if (response.body.events.length === 0) return collected;
    expect(response.body.next).toBe(response.body.events.at(-1).id);
    cursor = response.body.next;
  }
  return collected;
}

describe('GET /v1/events', () => {
  it('a stock change, a commit and a cancel each leave one event, oldest first, resumable from next', async () => {
    // Other test files write events too: start after the newest one now.
    const cursor = Number((await harness.stockhold.knex('events').max({ id: 'id' }).first())?.id ?? 0);
    const sku = await createSku(harness, 5, 'EVENTS');
    const adjusted = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: 2, reason: 'receipt 77' } });
    expect(adjusted.status).toBe(201);
    const stop = await harness.startWorker();
    const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 3 }] } });
    const confirmed = await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
    expect(confirmed.body.status).toBe('committed');
    const cancelled = await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'fulfillment', headers: { prefer: 'wait=10' } });
    expect(cancelled.body.status).toBe('cancelled');
    await stop();
    const mine = (await eventsAfter(cursor)).filter((event) => event.data.sku === sku || event.data.reservationId === created.body.id);
    expect(mine.map((event) => event.type)).toEqual(['stock.adjusted', 'stock.adjusted', 'reservation.committed', 'reservation.cancelled']);
    expect(mine[1]!.data).toMatchObject({ sku, delta: 2, onHandAfter: 7, reason: 'receipt 77', clientId: 'ops', position: 2 });
    expect(mine[2]!.data).toMatchObject({ reservationId: created.body.id, clientId: 'shop-a', lines: [{ sku, quantity: 3 }] });
    expect(mine[3]!.data).toMatchObject({ reservationId: created.body.id, requestedBy: 'warehouse', lines: [{ sku, quantity: 3 }] });
    const ids = mine.map((event) => event.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    for (const event of mine) expect(Number.isNaN(Date.parse(event.occurredAt))).toBe(false);
  });

  it('validates after and limit, and needs fulfillment or admin', async () => {
    for (const query of ['limit=0', 'limit=1001', 'limit=x', 'after=-1', 'after=1.5', 'after=abc']) {
      const response = await harness.call('GET', `/v1/events?${query}`, { as: 'admin' });
      expect(response.status).toBe(400);
      expect(response.body.code).toBe('validation_failed');
    }
    expect((await harness.call('GET', '/v1/events', { as: 'checkout' })).status).toBe(403);
    expect((await harness.call('GET', '/v1/events', { as: null })).status).toBe(401);
  });
});

describe('405 with Allow', () => {
  it('answers a known path asked with another method, and 404 for an unknown path', async () => {
    const cases: Array<[string, string, string]> = [
      ['PUT', '/v1/reservations', 'POST'],
      ['DELETE', '/v1/skus/ANY-SKU', 'GET'],
      ['GET', '/v1/skus/ANY-SKU/stock', 'PUT'],
      ['PATCH', '/v1/reservations/abc', 'GET, DELETE'],
      ['GET', '/v1/reservations/abc/confirm', 'POST'],
      ['POST', '/v1/events', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const response = await harness.call(method, path);
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(response.headers.get('allow')).toBe(allow);
      expect(response.body).toMatchObject({ code: 'method_not_allowed', status: 405 });
    }
    const unknown = await harness.call('GET', '/v1/nothing-here');
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('route_not_found');
  });
});
