// Proves hot-SKU striping (lib/stock/stripes.ts) through the HTTP contract, on one Redis and (in
// the cluster run) on a real Redis Cluster, where each stripe lives in its own slot: a SKU split
// over k stripes, each a SKU of the ledger; reservations spread over the stripes, fall back to
// the others and split a line over several when no stripe alone holds it, so a striped SKU is
// never refused while the stripes together hold the quantity; never more held than on hand under
// a race; answers, events and the ledger's copy show the SKU, not its stripes; the reconciler
// evens the stripes out; fewer stripes are refused while the dropped ones hold units.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSku } from '../lib/scripts/read-sku';
import { stripeSku, stripeSkus } from '../lib/stock/stripes';
import { idempotencyKey, startHarness, uniqueName, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '1' }, { ownDatabase: true });
  await harness.startWorker();
});
afterAll(async () => {
  await harness?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function stripedSku(onHand: number, stripes: number): Promise<string> {
  const sku = uniqueName('STRIPE');
  const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand, stripes } });
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ sku, onHand, available: onHand, stripes });
  return sku;
}

const reserve = (sku: string, quantity: number) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity }] } });

/** The SKU's stripe SKUs as the ledger has them, stripe 0 first (their tags spread them over primaries). */
async function stripesOf(sku: string): Promise<string[]> {
  const row = await harness.stockhold.knex('skus').first('stripe_tags').where({ sku });
  return stripeSkus(sku, (row.stripe_tags as number[]).map(Number));
}

/** What each stripe's Redis state has reserved, stripe 0 first. */
async function reservedByStripe(sku: string, stripes: number): Promise<number[]> {
  const names = await stripesOf(sku);
  expect(names).toHaveLength(stripes);
  return Promise.all(
    names.map(async (stripe) => {
      const state = await readSku(harness.stockhold.scripts, harness.stockhold.keys, stripe, 10);
      return state.kind === 'found' ? state.reserved : -1;
    }),
  );
}

/** The ledger's on-hand of each stripe, stripe 0 first; `names` when the SKU has fewer stripes now. */
async function ledgerOnHand(sku: string, stripes: number, names?: readonly string[]): Promise<number[]> {
  const stripeNames = names ?? (await stripesOf(sku));
  expect(stripeNames).toHaveLength(stripes);
  const rows: Array<{ sku: string; on_hand: string }> = await harness.stockhold.knex('skus').select('sku', 'on_hand').whereIn('sku', [...stripeNames]);
  return stripeNames.map((stripe) => Number(rows.find((row) => row.sku === stripe)?.on_hand));
}

describe('hot-SKU striping', () => {
  it('splits a SKU over its stripes in the ledger, each its own SKU; GET shows the sum and the count', async () => {
    const sku = await stripedSku(31, 3);
    expect(await ledgerOnHand(sku, 3)).toEqual([11, 10, 10]);
    expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toEqual({ sku, onHand: 31, reserved: 0, available: 31, stripes: 3 });
    // One stock.adjusted event for the SKU, none for its stripes.
    const events: Array<{ data: { sku: string } }> = (await harness.call('GET', '/v1/events?limit=1000', { as: 'fulfillment' })).body.events;
    expect(events.filter((event) => event.data.sku?.startsWith(sku))).toEqual([expect.objectContaining({ type: 'stock.adjusted', data: expect.objectContaining({ sku, onHandAfter: 31, stripes: 3 }) })]);
    // A stripe's name is no public SKU.
    expect((await harness.call('GET', `/v1/skus/${encodeURIComponent((await stripesOf(sku))[1]!)}`, { as: 'checkout' })).status).toBe(400);
    expect((await harness.call('GET', `/v1/skus/${encodeURIComponent(stripeSku(sku, 1))}`, { as: 'checkout' })).status).toBe(400);
  });

  it('spreads reservations over the stripes and holds exactly the total, then refuses with what is left (0)', async () => {
    const sku = await stripedSku(30, 3);
    for (let index = 0; index < 30; index += 1) expect((await reserve(sku, 1)).status).toBe(201);
    const byStripe = await reservedByStripe(sku, 3);
    expect(byStripe.reduce((sum, units) => sum + units, 0)).toBe(30);
    expect(byStripe).toEqual([10, 10, 10]);
    const refused = await reserve(sku, 1);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'insufficient_stock', lines: [{ sku, requested: 1, available: 0 }] });
  });

  it('takes a line from several stripes when none alone holds it; answers, the ledger\'s events and GET show the SKU', async () => {
    const sku = await stripedSku(6, 3);
    // Two units held on two stripes: 2, 1, 1 or so are left, never 4 on one.
    expect((await reserve(sku, 1)).status).toBe(201);
    expect((await reserve(sku, 1)).status).toBe(201);
    const created = await reserve(sku, 4);
    expect(created.status).toBe(201);
    expect(created.body.lines).toEqual([{ sku, quantity: 4 }]);
    expect((await reservedByStripe(sku, 3)).reduce((sum, units) => sum + units, 0)).toBe(6);
    const id = created.body.id as string;
    expect((await harness.call('GET', `/v1/reservations/${id}`, { as: 'checkout' })).body.lines).toEqual([{ sku, quantity: 4 }]);
    const confirmed = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ status: 'committed', lines: [{ sku, quantity: 4 }] });
    // The ledger allocated on the stripes it was held on (at least two), 4 units in all.
    const allocations: Array<{ sku: string; delta: string }> = await harness.stockhold.knex('ledger_entries').select('sku', 'delta').where({ reservation_id: id, kind: 'allocation' });
    expect(allocations.length).toBeGreaterThanOrEqual(2);
    const names = await stripesOf(sku);
    expect(allocations.every((entry) => names.includes(entry.sku))).toBe(true);
    expect(allocations.reduce((sum, entry) => sum - Number(entry.delta), 0)).toBe(4);
    const events: Array<{ type: string; data: { reservationId?: string; lines?: unknown } }> = (await harness.call('GET', '/v1/events?limit=1000', { as: 'fulfillment' })).body.events;
    expect(events.find((event) => event.type === 'reservation.committed' && event.data.reservationId === id)?.data.lines).toEqual([{ sku, quantity: 4 }]);
    expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toMatchObject({ onHand: 2, reserved: 2, available: 0, stripes: 3 });
    // Cancelled: each stripe gets back what was allocated on it.
    const cancelled = await harness.call('POST', `/v1/reservations/${id}/cancel`, { as: 'fulfillment', headers: { prefer: 'wait=10' } });
    expect(cancelled.body).toMatchObject({ status: 'cancelled', lines: [{ sku, quantity: 4 }] });
    expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toMatchObject({ onHand: 6, reserved: 2, available: 4, stripes: 3 });
  });

  it('never holds more than on hand when 200 reservations race for 50 units over 4 stripes', async () => {
    const sku = await stripedSku(50, 4);
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, index) => reserve(sku, 1 + (index % 2))));
    const held = outcomes.filter((outcome) => outcome.status === 201).reduce((sum, outcome) => sum + (outcome.body.lines[0].quantity as number), 0);
    expect(outcomes.every((outcome) => outcome.status === 201 || outcome.status === 409)).toBe(true);
    const byStripe = await reservedByStripe(sku, 4);
    expect(byStripe.reduce((sum, units) => sum + units, 0)).toBe(held);
    expect(held).toBeLessThanOrEqual(50);
    // A race may refuse a buyer while another's attempt briefly holds a stripe; afterwards, what
    // is left is all sold one unit at a time (the stripes together never refuse what they hold).
    for (let index = held; index < 50; index += 1) expect((await reserve(sku, 1)).status).toBe(201);
    expect((await reserve(sku, 1)).status).toBe(409);
    expect((await harness.call('GET', `/v1/skus/${sku}`, { as: 'checkout' })).body).toMatchObject({ onHand: 50, reserved: 50, available: 0 });
  }, 60_000);

  it('the reconciler evens uneven stripes out, moving units in the ledger; an adjustment and its replay', async () => {
    const sku = await stripedSku(20, 2);
    // Made uneven on purpose: 9 units held on stripe 1 alone (straight to the stripe, as no client can).
    const held = await harness.stockhold.reservations.create({ clientId: 'shop-a', idempotencyKey: idempotencyKey(), fingerprint: 'f', lines: [{ sku: (await stripesOf(sku))[1]!, quantity: 9 }], holdTtlSeconds: 600, customerId: null });
    expect(held.reservation.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const run = await harness.call('POST', '/v1/reconcile');
    expect(run.status).toBe(200);
    expect(run.body.stripesRebalanced).toBe(1);
    // 11 free units: 6 on stripe 0, 5 on stripe 1 (beside its 9 held).
    expect(await ledgerOnHand(sku, 2)).toEqual([6, 14]);
    expect((await harness.call('POST', '/v1/reconcile')).body.stripesRebalanced).toBe(0);
    const key = idempotencyKey();
    const adjusted = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta: 5, reason: 'receipt' } });
    expect(adjusted.status).toBe(201);
    expect(adjusted.body).toMatchObject({ onHand: 25, reserved: 9, available: 16, stripes: 2 });
    const replay = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta: 5, reason: 'receipt' } });
    expect(replay.status).toBe(201);
    expect(replay.body).toMatchObject({ onHand: 25 });
    expect((await ledgerOnHand(sku, 2)).reduce((sum, units) => sum + units, 0)).toBe(25);
  });

  it('refuses fewer stripes while the ones it would drop hold units; allows it once they are released', async () => {
    const sku = await stripedSku(9, 3);
    const names = await stripesOf(sku);
    const holds = await Promise.all(Array.from({ length: 9 }, () => reserve(sku, 1)));
    expect(holds.every((hold) => hold.status === 201)).toBe(true);
    const refused = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 9, stripes: 1 } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'stripes_in_use', stripes: 1 });
    for (const hold of holds) expect((await harness.call('DELETE', `/v1/reservations/${hold.body.id}`, { as: 'checkout' })).status).toBe(200);
    const merged = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 9, stripes: 1 } });
    expect(merged.status).toBe(200);
    expect(merged.body).toEqual({ sku, onHand: 9, reserved: 0, available: 9 });
    expect(await ledgerOnHand(sku, 3, names)).toEqual([9, 0, 0]);
    // Unstriped again: reservations go to the SKU itself.
    await sleep(10);
    expect((await reserve(sku, 9)).status).toBe(201);
  });
});
