// Flash-sale guards (OWASP API6), enforced in the hold's own script (lua/includes/guards.lua) or,
// for the rate limit, in a token bucket taken before anything else (lua/takeToken-1.lua). Each is
// tried the way a hoarding bot would: hundreds of concurrent requests from one customer or one
// API client. Afterwards exactly the limit is held, never more, and Redis agrees with the answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, uniqueName, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ MAX_ACTIVE_HOLDS_PER_CUSTOMER: '5' });
});
afterAll(async () => {
  await harness?.close();
});

const reserve = (h: Harness, lines: Array<{ sku: string; quantity: number }>, customerId?: string, extra: Record<string, unknown> = {}) =>
  h.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines, ...(customerId === undefined ? {} : { customerId }), ...extra } });

async function limitedSku(onHand: number, perCustomerLimit: number, stripes?: number): Promise<string> {
  const sku = uniqueName('LIM');
  const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand, perCustomerLimit, ...(stripes === undefined ? {} : { stripes }) } });
  expect(response.status).toBe(200);
  expect(response.body.perCustomerLimit).toBe(perCustomerLimit);
  return sku;
}

const count = (statuses: number[], status: number) => statuses.filter((candidate) => candidate === status).length;

describe('per-customer purchase limit', () => {
  it('holds exactly the limit when 300 requests of one customer race, and shows the limit on GET', async () => {
    const sku = await limitedSku(1000, 3);
    const customer = uniqueName('bot');
    const answers = await Promise.all(Array.from({ length: 300 }, () => reserve(harness, [{ sku, quantity: 1 }], customer)));
    const statuses = answers.map((answer) => answer.status);
    expect(count(statuses, 201)).toBe(3);
    expect(count(statuses, 409)).toBe(297);
    const refused = answers.find((answer) => answer.status === 409)!;
    expect(refused.body).toMatchObject({ code: 'customer_limit_exceeded', status: 409, sku, limit: 3, held: 3 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 1000, reserved: 3, available: 997, perCustomerLimit: 3 });
    // Another customer has an allowance of their own.
    expect((await reserve(harness, [{ sku, quantity: 3 }], uniqueName('human'))).status).toBe(201);
  });

  it('counts units, not requests: 2 held and 2 more refused (held 2), 1 more taken', async () => {
    const sku = await limitedSku(100, 3);
    const customer = uniqueName('c');
    expect((await reserve(harness, [{ sku, quantity: 2 }], customer)).status).toBe(201);
    const refused = await reserve(harness, [{ sku, quantity: 2 }], customer);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'customer_limit_exceeded', limit: 3, held: 2 });
    expect((await reserve(harness, [{ sku, quantity: 1 }], customer)).status).toBe(201);
  });

  it('gives the allowance back when a hold is released or expires, not while it is confirmed', async () => {
    const sku = await limitedSku(100, 2);
    const customer = uniqueName('c');
    const first = await reserve(harness, [{ sku, quantity: 1 }], customer);
    const second = await reserve(harness, [{ sku, quantity: 1 }], customer, { ttlSeconds: 1 });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect((await reserve(harness, [{ sku, quantity: 1 }], customer)).status).toBe(409);
    // Confirmed (no worker runs here: it stays confirmed, its hold pinned): still counted.
    expect((await harness.call('POST', `/v1/reservations/${first.body.id}/confirm`, { as: 'checkout' })).status).toBe(202);
    // The second expires.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const third = await reserve(harness, [{ sku, quantity: 1 }], customer);
    expect(third.status).toBe(201);
    expect((await reserve(harness, [{ sku, quantity: 1 }], customer)).body).toMatchObject({ code: 'customer_limit_exceeded', held: 2 });
    // Released: given back.
    expect((await harness.call('DELETE', `/v1/reservations/${third.body.id}`, { as: 'checkout' })).status).toBe(200);
    expect((await reserve(harness, [{ sku, quantity: 1 }], customer)).status).toBe(201);
  });

  it('refuses a reservation without customerId on a limited SKU with 400, and takes one on an unlimited SKU', async () => {
    const sku = await limitedSku(100, 5);
    const refused = await reserve(harness, [{ sku, quantity: 1 }]);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'customer_id_required', sku, errors: [{ field: 'body.customerId' }] });
    const free = await createSku(harness, 10);
    expect((await reserve(harness, [{ sku: free, quantity: 1 }])).status).toBe(201);
    // A cart with a limited line refuses the whole cart, holding nothing.
    expect((await reserve(harness, [{ sku: free, quantity: 1 }, { sku, quantity: 1 }])).status).toBe(400);
    expect((await harness.call('GET', `/v1/skus/${free}`)).body).toMatchObject({ reserved: 1 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ reserved: 0 });
  });

  it('counts a striped SKU\'s stripes together: 100 racing requests over 3 stripes hold exactly the limit', async () => {
    const sku = await limitedSku(300, 4, 3);
    const customer = uniqueName('bot');
    const answers = await Promise.all(Array.from({ length: 100 }, () => reserve(harness, [{ sku, quantity: 1 }], customer)));
    expect(count(answers.map((answer) => answer.status), 201)).toBe(4);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ reserved: 4, stripes: 3, perCustomerLimit: 4 });
    // Without a customer: refused naming the SKU, not one of its stripes.
    expect((await reserve(harness, [{ sku, quantity: 1 }])).body).toMatchObject({ code: 'customer_id_required', sku });
  });

  it('keeps the limit when Redis loses the SKU: the rebuild from the ledger carries it', async () => {
    const sku = await limitedSku(50, 1);
    await harness.stockhold.redis.del(harness.stockhold.keys.skuState(sku));
    const customer = uniqueName('c');
    expect((await reserve(harness, [{ sku, quantity: 1 }], customer)).status).toBe(201);
    expect((await reserve(harness, [{ sku, quantity: 1 }], customer)).body).toMatchObject({ code: 'customer_limit_exceeded', limit: 1, held: 1 });
  });

  it('the reconciler puts back a cap Redis lost or never got, and removes one the ledger does not have', async () => {
    const sku = await limitedSku(50, 2);
    const stateKey = harness.stockhold.keys.skuState(sku);
    await harness.stockhold.redis.hdel(stateKey, 'pcl');
    const free = await createSku(harness, 10);
    await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(free), 'pcl', 1);
    const run = await harness.call('POST', '/v1/reconcile');
    expect(run.status).toBe(200);
    expect(run.body.corrections).toEqual(expect.arrayContaining([
      { sku, field: 'perCustomerLimit', before: null, after: 2 },
      { sku: free, field: 'perCustomerLimit', before: 1, after: null },
    ]));
    expect(await harness.stockhold.redis.hget(stateKey, 'pcl')).toBe('2');
    expect(await harness.stockhold.redis.hget(harness.stockhold.keys.skuState(free), 'pcl')).toBeNull();
  });

  // The page's SELECT ... FOR SHARE waits for a change holding the row, then reads the SKU's cap
  // through a subquery with its old snapshot: the reconciler must read the cap again, not take
  // the cap just set for drift. Forced with a transaction that holds the row while the run starts.
  it('the reconciler does not undo a cap a change committed while the run waited for its row', async () => {
    const sku = await limitedSku(50, 2);
    const change = await harness.stockhold.knex.transaction();
    try {
      await change('skus').first('sku').where({ sku }).forUpdate();
      await change('skus').update({ per_customer_limit: 5 }).where({ sku });
      await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(sku), 'pcl', 5);
      const run = harness.call('POST', '/v1/reconcile');
      await new Promise((resolve) => setTimeout(resolve, 300));
      await change.commit();
      const report = (await run).body;
      expect(report.corrections.filter((correction: { sku: string }) => correction.sku === sku)).toEqual([]);
    } finally {
      if (!change.isCompleted()) await change.rollback();
    }
    expect(await harness.stockhold.redis.hget(harness.stockhold.keys.skuState(sku), 'pcl')).toBe('5');
  });

  // Found by a review: a run that waited for a cap change and then found the SKU's state lost
  // rebuilt it with the cap its own locking SELECT read, from before the change.
  it('the reconciler rebuilds a lost state with the cap a change committed while the run waited for its row', async () => {
    const sku = await limitedSku(50, 2);
    const stateKey = harness.stockhold.keys.skuState(sku);
    const change = await harness.stockhold.knex.transaction();
    try {
      await change('skus').first('sku').where({ sku }).forUpdate();
      await change('skus').update({ per_customer_limit: 5 }).where({ sku });
      await harness.stockhold.redis.del(stateKey);
      const run = harness.call('POST', '/v1/reconcile');
      await new Promise((resolve) => setTimeout(resolve, 300));
      await change.commit();
      const report = (await run).body;
      expect(report.corrections.filter((correction: { sku: string }) => correction.sku === sku).map((correction: { field: string }) => correction.field)).toEqual(['state']);
    } finally {
      if (!change.isCompleted()) await change.rollback();
    }
    expect(await harness.stockhold.redis.hmget(stateKey, 'pcl', 'onHand')).toEqual(['5', '50']);
  });

  // A stock change that finds the SKU's state lost rebuilds it (prepareStockChange) before its
  // COMMIT; reservations reach that state at once. The ledger's cap is in place before the rebuild.
  it('a stock change rebuilding a lost state puts the ledger\'s cap there before the rebuild', async () => {
    const sku = await limitedSku(50, 3);
    const stateKey = harness.stockhold.keys.skuState(sku);
    await harness.stockhold.redis.del(stateKey);
    let capBeforeRebuild: string | null | undefined;
    harness.stockhold.scripts.latch = async (name) => {
      if (name !== 'prepareStockChange') return;
      harness.stockhold.scripts.latch = undefined;
      capBeforeRebuild = await harness.stockhold.redis.hget(stateKey, 'pcl');
    };
    try {
      expect((await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: 5, reason: 'receipt' } })).status).toBe(201);
    } finally {
      harness.stockhold.scripts.latch = undefined;
    }
    expect(capBeforeRebuild).toBe('3');
    expect(await harness.stockhold.redis.hmget(stateKey, 'pcl', 'onHand')).toEqual(['3', '55']);
  });

  it('counts a customer per API client: the same customerId of another shop has its own allowance', async () => {
    const sku = await limitedSku(50, 1);
    expect((await reserve(harness, [{ sku, quantity: 1 }], 'shared-id')).status).toBe(201);
    const otherShop = await harness.call('POST', '/v1/reservations', { as: 'otherCheckout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }], customerId: 'shared-id' } });
    expect(otherShop.status).toBe(201);
    expect((await reserve(harness, [{ sku, quantity: 1 }], 'shared-id')).status).toBe(409);
  });

  it('removes the limit with null, and refuses a limit out of 1-1000', async () => {
    const sku = await limitedSku(50, 1);
    const cleared = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 50, perCustomerLimit: null } });
    expect(cleared.status).toBe(200);
    expect(cleared.body.perCustomerLimit).toBeUndefined();
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.perCustomerLimit).toBeUndefined();
    expect((await reserve(harness, [{ sku, quantity: 2 }])).status).toBe(201);
    for (const bad of [0, 1001, '3', 1.5]) {
      const refused = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 50, perCustomerLimit: bad } });
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe('validation_failed');
    }
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.perCustomerLimit).toBeUndefined();
  });
});

describe('active holds per customer', () => {
  it('holds exactly MAX_ACTIVE_HOLDS_PER_CUSTOMER reservations when 200 of one customer race over 10 SKUs', async () => {
    const skus = await Promise.all(Array.from({ length: 10 }, () => createSku(harness, 100)));
    const customer = uniqueName('hoarder');
    const answers = await Promise.all(Array.from({ length: 200 }, (_, index) => reserve(harness, [{ sku: skus[index % 10]!, quantity: 1 }], customer)));
    const statuses = answers.map((answer) => answer.status);
    expect(count(statuses, 201)).toBe(5);
    expect(count(statuses, 409)).toBe(195);
    expect(answers.find((answer) => answer.status === 409)!.body).toMatchObject({ code: 'too_many_active_holds', limit: 5, active: 5 });
    const reserved = await Promise.all(skus.map(async (sku) => (await harness.call('GET', `/v1/skus/${sku}`)).body.reserved as number));
    expect(reserved.reduce((sum, units) => sum + units, 0)).toBe(5);
    // Someone else is not held up; and a released hold frees a place.
    expect((await reserve(harness, [{ sku: skus[0]!, quantity: 1 }], uniqueName('other'))).status).toBe(201);
    const held = answers.find((answer) => answer.status === 201)!;
    expect((await harness.call('DELETE', `/v1/reservations/${held.body.id}`, { as: 'checkout' })).status).toBe(200);
    expect((await reserve(harness, [{ sku: skus[1]!, quantity: 1 }], customer)).status).toBe(201);
    expect((await reserve(harness, [{ sku: skus[1]!, quantity: 1 }], customer)).status).toBe(409);
  });
});

describe('rate limit per API client', () => {
  it('takes the burst and refuses the rest with 429, RateLimit fields and Retry-After, touching no stock; another client has its own bucket', async () => {
    const limited = await startHarness({ RATE_LIMIT_PER_CLIENT_RPS: '1', RATE_LIMIT_BURST: '10' });
    try {
      const sku = await createSku(limited, 1000);
      const startedAt = Date.now();
      const answers = await Promise.all(Array.from({ length: 200 }, () => reserve(limited, [{ sku, quantity: 1 }])));
      const elapsedSeconds = (Date.now() - startedAt) / 1000;
      const statuses = answers.map((answer) => answer.status);
      const taken = count(statuses, 201);
      // The burst, and what refilled (1 a second) while the 200 were answered.
      expect(taken).toBeGreaterThanOrEqual(10);
      expect(taken).toBeLessThanOrEqual(10 + Math.floor(elapsedSeconds) + 1);
      expect(count(statuses, 429)).toBe(200 - taken);
      const refused = answers.find((answer) => answer.status === 429)!;
      expect(refused.body).toMatchObject({ code: 'rate_limited', status: 429, limit: 1, burst: 10 });
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refused.headers.get('ratelimit-policy')).toBe('"client";q=10;w=10');
      expect(refused.headers.get('ratelimit')).toMatch(/^"client";r=0;t=\d+$/);
      expect(answers.find((answer) => answer.status === 201)!.headers.get('ratelimit')).toMatch(/^"client";r=\d+;t=\d+$/);
      // Only the taken requests hold stock.
      expect((await limited.call('GET', `/v1/skus/${sku}`, { as: 'fulfillment' })).body).toMatchObject({ reserved: taken });
      const other = await limited.call('POST', '/v1/reservations', { as: 'otherCheckout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      expect(other.status).toBe(201);
    } finally {
      await limited.close();
    }
  });
});
