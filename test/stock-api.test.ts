// Proves stock changes over real HTTP, Redis and Postgres: the ledger gets exactly one entry per
// change, Redis follows it, nothing goes below what is reserved, adjustments are idempotent, and
// a SKU that Redis lost is rebuilt from the ledger on first use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestFingerprint } from '../lib/idempotency/fingerprint';
import { createSku, idempotencyKey, startHarness, uniqueName, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness.close();
});

const ledgerOf = (sku: string) =>
  harness.stockhold.knex('ledger_entries').select('kind', 'delta', 'on_hand_after', 'sku_version', 'reason', 'client_id', 'idempotency_key').where({ sku }).orderBy('id');
const projectionOf = (sku: string) => harness.stockhold.knex('skus').first('on_hand', 'version').where({ sku });
const adjust = (sku: string, delta: number, key = idempotencyKey(), reason = 'cycle count') =>
  harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta, reason } });
const reserve = (sku: string, quantity: number) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity }] } });

describe('PUT /v1/skus/{sku}/stock', () => {
  it('creates a SKU and records the difference as a ledger adjustment', async () => {
    const sku = uniqueName('PUT');
    const created = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 40 } });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({ sku, onHand: 40, reserved: 0, available: 40 });
    const lowered = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 25 } });
    expect(lowered.body).toEqual({ sku, onHand: 25, reserved: 0, available: 25 });
    expect(await ledgerOf(sku)).toEqual([
      { kind: 'adjustment', delta: '40', on_hand_after: '40', sku_version: '2', reason: 'set on-hand', client_id: 'ops', idempotency_key: null },
      { kind: 'adjustment', delta: '-15', on_hand_after: '25', sku_version: '3', reason: 'set on-hand', client_id: 'ops', idempotency_key: null },
    ]);
    expect(await projectionOf(sku)).toEqual({ on_hand: '25', version: '3' });
  });

  it('setting the same value again writes no entry', async () => {
    const sku = await createSku(harness, 7);
    await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 7 } });
    expect(await ledgerOf(sku)).toHaveLength(1);
  });

  it('a SKU asked for while unknown can be sold as soon as it is created', async () => {
    const sku = uniqueName('LATE');
    expect((await reserve(sku, 1)).status).toBe(404);
    expect(await harness.stockhold.redis.exists(harness.stockhold.keys.skuUnknown(sku))).toBe(1);
    await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 2 } });
    expect(await harness.stockhold.redis.exists(harness.stockhold.keys.skuUnknown(sku))).toBe(0);
    expect((await reserve(sku, 2)).status).toBe(201);
  });

  it('refuses to go below what is reserved: 409 stock_below_reserved, nothing changes', async () => {
    const sku = await createSku(harness, 10);
    await reserve(sku, 6);
    const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 5 } });
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ code: 'stock_below_reserved', reserved: 6 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 6, available: 4 });
    expect(await ledgerOf(sku)).toHaveLength(1);
    expect((await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 6 } })).body).toEqual({ sku, onHand: 6, reserved: 6, available: 0 });
  });
});

describe('POST /v1/skus/{sku}/adjustments', () => {
  it('records receipts and shrinkage as ledger entries and answers 201 with the SKU view', async () => {
    const sku = await createSku(harness, 10);
    const receipt = await adjust(sku, 5, idempotencyKey(), 'receipt PO-1');
    expect(receipt.status).toBe(201);
    expect(receipt.body).toEqual({ sku, onHand: 15, reserved: 0, available: 15 });
    const shrink = await adjust(sku, -3, idempotencyKey(), 'damaged');
    expect(shrink.body).toEqual({ sku, onHand: 12, reserved: 0, available: 12 });
    const entries = await ledgerOf(sku);
    expect(entries.slice(1).map((entry) => [entry.delta, entry.on_hand_after, entry.reason])).toEqual([['5', '15', 'receipt PO-1'], ['-3', '12', 'damaged']]);
    expect(await projectionOf(sku)).toEqual({ on_hand: '12', version: '4' });
  });

  it('refuses a delta below zero or below what is reserved, and changes nothing', async () => {
    const sku = await createSku(harness, 4);
    expect((await adjust(sku, -5)).body.code).toBe('stock_below_reserved');
    await reserve(sku, 3);
    const response = await adjust(sku, -2);
    expect(response.status).toBe(409);
    expect(response.body.code).toBe('stock_below_reserved');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 4, reserved: 3, available: 1 });
    expect(await ledgerOf(sku)).toHaveLength(1);
    expect(await projectionOf(sku)).toEqual({ on_hand: '4', version: '2' });
  });

  it('answers 404 for a SKU the ledger does not know', async () => {
    const response = await adjust(uniqueName('GHOST'), 5);
    expect(response.status).toBe(404);
    expect(response.body.code).toBe('sku_not_found');
  });

  it('replays the same key and body, refuses another body, and writes one entry', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    const first = await adjust(sku, 2, key);
    const again = await adjust(sku, 2, key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    const reused = await adjust(sku, 3, key);
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe('idempotency_key_reused');
    expect(await ledgerOf(sku)).toHaveLength(2);
  });

  it('answers 409 idempotency_key_in_flight with Retry-After while the first attempt runs', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    const body = { delta: 1, reason: 'cycle count' };
    const fingerprint = requestFingerprint(`POST /v1/skus/${sku}/adjustments`, body);
    // The first attempt has claimed the key and is still working.
    await harness.stockhold.scripts.run('beginIdempotent', [harness.stockhold.keys.idempotency('ops', key)], [fingerprint, 20_000]);
    const response = await adjust(sku, 1, key);
    expect(response.status).toBe(409);
    expect(response.body.code).toBe('idempotency_key_in_flight');
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(19);
    expect(await ledgerOf(sku)).toHaveLength(1);
  });

  it('a retry after a lost response record is answered from the ledger, never applied twice', async () => {
    const sku = await createSku(harness, 10);
    const key = idempotencyKey();
    await adjust(sku, 4, key);
    // The attempt committed but its response record was lost (Redis restarted, say).
    await harness.stockhold.redis.del(harness.stockhold.keys.idempotency('ops', key));
    const retried = await adjust(sku, 4, key);
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(retried.body).toEqual({ sku, onHand: 14, reserved: 0, available: 14 });
    await harness.stockhold.redis.del(harness.stockhold.keys.idempotency('ops', key));
    expect((await adjust(sku, 9, key)).status).toBe(422);
    expect(await ledgerOf(sku)).toHaveLength(2);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.onHand).toBe(14);
  });

  it('concurrent adjustments to one SKU serialise: the ledger and Redis agree afterwards', async () => {
    const sku = await createSku(harness, 1000);
    const deltas = Array.from({ length: 40 }, (_, index) => (index % 2 === 0 ? 7 : -5));
    const results = await Promise.all(deltas.map((delta) => adjust(sku, delta)));
    expect(results.every((result) => result.status === 201)).toBe(true);
    const expected = 1000 + deltas.reduce((sum, delta) => sum + delta, 0);
    expect(await projectionOf(sku)).toEqual({ on_hand: String(expected), version: String(2 + deltas.length) });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.onHand).toBe(expected);
    const entries = await ledgerOf(sku);
    expect(entries.map((entry) => Number(entry.sku_version))).toEqual(Array.from({ length: 41 }, (_, index) => index + 2));
  });
});

describe('the ledger is append-only', () => {
  it('refuses UPDATE and DELETE on entries', async () => {
    const sku = await createSku(harness, 1);
    await expect(harness.stockhold.knex('ledger_entries').update({ delta: 99 }).where({ sku })).rejects.toThrow(/append-only/);
    await expect(harness.stockhold.knex('ledger_entries').delete().where({ sku })).rejects.toThrow(/append-only/);
    await expect(harness.stockhold.knex('skus').update({ on_hand: -1 }).where({ sku })).rejects.toThrow(/check constraint/);
  });
});

describe('Redis lost a SKU', () => {
  it('GET and POST rebuild it from the ledger on first use', async () => {
    const sku = await createSku(harness, 12);
    const { redis, keys } = harness.stockhold;
    await redis.del(keys.skuState(sku), keys.skuHolds(sku));
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 12, reserved: 0, available: 12 });
    await redis.del(keys.skuState(sku), keys.skuHolds(sku));
    expect((await reserve(sku, 12)).status).toBe(201);
    expect((await reserve(sku, 1)).status).toBe(409);
  });

  it('concurrent first uses rebuild once: exactly the ledger stock can be sold', async () => {
    const sku = await createSku(harness, 30);
    const { redis, keys } = harness.stockhold;
    await redis.del(keys.skuState(sku), keys.skuHolds(sku));
    const results = await Promise.all(Array.from({ length: 100 }, () => reserve(sku, 1)));
    expect(results.filter((result) => result.status === 201)).toHaveLength(30);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 30, reserved: 30, available: 0 });
  });

  it('a stock change catches Redis up with the entries it missed, then corrects drift at the same position', async () => {
    const sku = await createSku(harness, 10);
    const { redis, keys } = harness.stockhold;
    await adjust(sku, 5);
    // Redis missed the +5 (its position is one behind) and drifted on top of that.
    await redis.hset(keys.skuState(sku), 'onHand', 500, 'pos', 1);
    const response = await adjust(sku, 1);
    expect(response.body).toEqual({ sku, onHand: 16, reserved: 0, available: 16 });
    expect(await redis.hmget(keys.skuState(sku), 'onHand', 'pos')).toEqual(['16', '3']);
  });
});
