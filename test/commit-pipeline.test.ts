// Proves the commit pipeline end to end over real HTTP, BullMQ, Redis and Postgres: a confirmed
// reservation reaches the ledger exactly once, the SKU view and the ledger agree, confirmations
// after expiry or release are refused, and cancellations return units once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';
import { dropRecord } from './support/records';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '2' });
  await harness.startWorker();
});
afterAll(async () => {
  await harness.close();
});

const reserve = (lines: Array<{ sku: string; quantity: number }>, extra: Record<string, unknown> = {}) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines, ...extra } });
const confirm = (id: string, wait?: number, as: 'checkout' | 'fulfillment' = 'checkout') =>
  harness.call('POST', `/v1/reservations/${id}/confirm`, { as, headers: wait === undefined ? {} : { prefer: `wait=${wait}` } });
const ledgerOnHand = async (sku: string) => Number((await harness.stockhold.knex('skus').first('on_hand').where({ sku })).on_hand);
const allocations = (reservationId: string) => harness.stockhold.knex('ledger_entries').select('sku', 'kind', 'delta').where({ reservation_id: reservationId }).orderBy('id');

describe('confirm', () => {
  it('confirm with Prefer: wait commits to the ledger; ledger and SKU view agree', async () => {
    const sku = await createSku(harness, 10);
    const created = await reserve([{ sku, quantity: 3 }]);
    const confirmed = await confirm(created.body.id, 10);
    expect(confirmed.status).toBe(200);
    expect(confirmed.headers.get('preference-applied')).toBe('wait=10');
    expect(confirmed.body).toMatchObject({ id: created.body.id, status: 'committed' });
    expect(await allocations(created.body.id)).toEqual([{ sku, kind: 'allocation', delta: '-3' }]);
    expect(await ledgerOnHand(sku)).toBe(7);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 7, reserved: 0, available: 7 });
    expect((await harness.call('GET', `/v1/reservations/${created.body.id}`, { as: 'checkout' })).body.status).toBe('committed');
  });

  it('answers 202 confirmed without waiting, and the commit follows', async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve([{ sku, quantity: 1 }]);
    const confirmed = await confirm(created.body.id, undefined, 'fulfillment');
    expect(confirmed.status).toBe(202);
    expect(confirmed.body.status).toBe('confirmed');
    const settled = await harness.stockhold.commits.waitFor(created.body.id, (r) => r.status === 'committed', 10_000);
    expect(settled?.status).toBe('committed');
    expect(await ledgerOnHand(sku)).toBe(4);
  });

  it('confirming again answers the current state: 200 once committed, one allocation', async () => {
    const sku = await createSku(harness, 10);
    const created = await reserve([{ sku, quantity: 2 }]);
    await confirm(created.body.id, 10);
    const again = await confirm(created.body.id);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('committed');
    expect(await allocations(created.body.id)).toHaveLength(1);
    expect(await ledgerOnHand(sku)).toBe(8);
  });

  it('refuses an expired reservation with 410 and a released one with 409', async () => {
    const sku = await createSku(harness, 5);
    const expiring = await reserve([{ sku, quantity: 2 }], { ttlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const expired = await confirm(expiring.body.id);
    expect(expired.status).toBe(410);
    expect(expired.body.code).toBe('reservation_expired');
    const released = await reserve([{ sku, quantity: 1 }]);
    await harness.call('DELETE', `/v1/reservations/${released.body.id}`, { as: 'checkout' });
    const refused = await confirm(released.body.id);
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('reservation_released');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 5, reserved: 0, available: 5 });
    expect(await ledgerOnHand(sku)).toBe(5);
  });

  it("hides another client's reservation (404) and refuses releasing a confirmed one (409)", async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve([{ sku, quantity: 1 }]);
    expect((await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'otherCheckout' })).status).toBe(404);
    await confirm(created.body.id, 10);
    const release = await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'checkout' });
    expect(release.status).toBe(409);
  });

  it('200 confirmations in a burst all commit, and the ledger sums match', async () => {
    const a = await createSku(harness, 500, 'BURST-A');
    const b = await createSku(harness, 500, 'BURST-B');
    const created = await Promise.all(
      Array.from({ length: 200 }, (_, index) => reserve(index % 2 === 0 ? [{ sku: a, quantity: 2 }] : [{ sku: a, quantity: 1 }, { sku: b, quantity: 3 }])),
    );
    expect(created.every((response) => response.status === 201)).toBe(true);
    const confirmed = await Promise.all(created.map((response) => confirm(response.body.id, 20)));
    expect(confirmed.every((response) => response.status === 200 && response.body.status === 'committed')).toBe(true);
    expect(await ledgerOnHand(a)).toBe(500 - 100 * 2 - 100 * 1);
    expect(await ledgerOnHand(b)).toBe(500 - 100 * 3);
    const sums = await harness.stockhold.knex('ledger_entries').select('sku').sum({ total: 'delta' }).count({ n: '*' }).whereIn('sku', [a, b]).andWhere({ kind: 'allocation' }).groupBy('sku').orderBy('sku');
    expect(sums).toEqual([{ sku: a, total: '-300', n: '200' }, { sku: b, total: '-300', n: '100' }]);
    expect((await harness.call('GET', `/v1/skus/${a}`)).body).toEqual({ sku: a, onHand: 200, reserved: 0, available: 200 });
    expect((await harness.call('GET', `/v1/skus/${b}`)).body).toEqual({ sku: b, onHand: 200, reserved: 0, available: 200 });
    expect(await harness.stockhold.redis.zcard(harness.stockhold.keys.skuHolds(a))).toBe(0);
  });
});

describe('cancel', () => {
  it('returns a committed reservation’s units as a deallocation, once', async () => {
    const sku = await createSku(harness, 10);
    const created = await reserve([{ sku, quantity: 4 }]);
    await confirm(created.body.id, 10);
    const cancelled = await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'fulfillment', headers: { prefer: 'wait=10' } });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect(await allocations(created.body.id)).toEqual([
      { sku, kind: 'allocation', delta: '-4' },
      { sku, kind: 'deallocation', delta: '4' },
    ]);
    expect(await ledgerOnHand(sku)).toBe(10);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 0, available: 10 });
    const again = await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'admin' });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('cancelled');
    expect(await allocations(created.body.id)).toHaveLength(2);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.onHand).toBe(10);
  });

  it('refuses pending (409) and needs fulfillment or admin (403)', async () => {
    const sku = await createSku(harness, 3);
    const created = await reserve([{ sku, quantity: 1 }]);
    const pending = await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'fulfillment' });
    expect(pending.status).toBe(409);
    expect(pending.body).toMatchObject({ code: 'reservation_not_committed', status: 409, reservationStatus: 'pending' });
    expect((await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'checkout' })).status).toBe(403);
  });

  it('answers for committed and cancelled reservations after Redis has forgotten them', async () => {
    const sku = await createSku(harness, 6);
    const created = await reserve([{ sku, quantity: 2 }], { customerId: 'cust-7' });
    await confirm(created.body.id, 10);
    await dropRecord(harness.stockhold.redis, harness.stockhold.keys, created.body.id);
    const read = await harness.call('GET', `/v1/reservations/${created.body.id}`, { as: 'checkout' });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: created.body.id, status: 'committed', lines: [{ sku, quantity: 2 }], customerId: 'cust-7', createdAt: created.body.createdAt, expiresAt: created.body.expiresAt });
    expect((await confirm(created.body.id)).body.status).toBe('committed');
    const release = await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'checkout' });
    expect(release.status).toBe(409);
    expect(release.body).toMatchObject({ code: 'reservation_not_releasable', status: 409, reservationStatus: 'committed' });
    const cancelled = await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'fulfillment', headers: { prefer: 'wait=10' } });
    expect(cancelled.body.status).toBe('cancelled');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.onHand).toBe(6);
    await dropRecord(harness.stockhold.redis, harness.stockhold.keys, created.body.id);
    expect((await harness.call('GET', `/v1/reservations/${created.body.id}`, { as: 'checkout' })).body.status).toBe('cancelled');
    expect((await confirm(created.body.id)).status).toBe(409);
  });
});

describe('without a worker running', () => {
  let idle: Harness;
  beforeAll(async () => {
    idle = await startHarness();
  });
  afterAll(async () => {
    await idle.close();
  });

  it('a confirmed hold stops expiring: its units stay held until the commit', async () => {
    const sku = await createSku(idle, 2);
    const created = await idle.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }], ttlSeconds: 1 } });
    const confirmed = await idle.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=1' } });
    expect(confirmed.status).toBe(202);
    expect(confirmed.body.status).toBe('confirmed');
    expect(confirmed.headers.get('preference-applied')).toBe('wait=1');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await idle.call('GET', `/v1/reservations/${created.body.id}`, { as: 'checkout' })).body.status).toBe('confirmed');
    const refused = await idle.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
    expect(refused.status).toBe(409);
    // Only a confirmed hold stands in the way: no pending hold can free it, so no Retry-After.
    expect(refused.headers.get('retry-after')).toBeNull();
    expect((await idle.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 2, reserved: 2, available: 0 });
    expect(await idle.stockhold.redis.ttl(idle.stockhold.keys.reservation(created.body.id)), 'the bucket of a confirmed record does not expire').toBe(-1);
    // The job waits in the queue for a worker; one arriving later commits it.
    const stop = await idle.startWorker();
    const settled = await idle.stockhold.commits.waitFor(created.body.id, (r) => r.status === 'committed', 10_000);
    expect(settled?.status).toBe('committed');
    await stop();
    expect((await idle.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 0, reserved: 0, available: 0 });
  });
});
