// Proves the reconciler gives back pinned holds whose reservation never became confirmed (a cart
// across slots whose confirm crashed after pinning, or lost a race with a release): on one Redis
// the same scripts run, so the orphan is made here by pinning a reservation's holds with
// `pinLines` and confirming nothing. A released one is given back at once; an expired one once
// RECONCILE_COMMIT_GRACE_MS has passed beyond its expiry; a confirmed one is left to its commit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinLines } from '../lib/scripts/cart-lines';
import { settleRecord } from '../lib/scripts/cart-coordinator';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';
import { dropRecord } from './support/records';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ RECONCILE_COMMIT_GRACE_MS: '500' }, { ownDatabase: true });
});
afterAll(async () => {
  await harness.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function pinnedReservation(sku: string, ttlSeconds: number): Promise<string> {
  const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }], ttlSeconds } });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  expect(await pinLines(harness.stockhold.scripts, harness.stockhold.keys, id, [{ sku, quantity: 2 }])).toEqual({ kind: 'pinned' });
  return id;
}

const reserved = async (sku: string) => (await harness.call('GET', `/v1/skus/${sku}`)).body.reserved as number;

describe('pinned holds of a reservation that never became confirmed', () => {
  it('released: given back by the next run', async () => {
    const sku = await createSku(harness, 5, 'PINREL');
    const id = await pinnedReservation(sku, 600);
    // The race a release won: the record released, the confirm's pins left behind.
    expect(await settleRecord(harness.stockhold.scripts, harness.stockhold.keys, id, { to: 'release' })).toEqual({ kind: 'settled', status: 'released' });
    expect(await reserved(sku)).toBe(2);
    const dry = await harness.call('POST', '/v1/reconcile?dryRun=true');
    expect(dry.body.pinsReleased).toBe(1);
    expect(await reserved(sku)).toBe(2);
    const run = await harness.call('POST', '/v1/reconcile');
    expect(run.body.pinsReleased).toBe(1);
    expect(await reserved(sku)).toBe(0);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(0);
  });

  it('expired (a confirm that crashed after pinning): given back once the grace period has passed beyond its expiry', async () => {
    const sku = await createSku(harness, 5, 'PINEXP');
    const id = await pinnedReservation(sku, 1);
    await sleep(1100);
    // Past its expiry but inside the grace: an attempt could still be confirming it.
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(0);
    expect(await reserved(sku)).toBe(2);
    await sleep(500);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(1);
    expect(await reserved(sku)).toBe(0);
    expect((await harness.call('GET', `/v1/reservations/${id}`, { as: 'checkout' })).body.status).toBe('expired');
  });

  it('confirmed: left pinned for its commit', async () => {
    const sku = await createSku(harness, 5, 'PINCONF');
    const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }] } });
    expect((await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' })).status).toBe(202);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(0);
    expect(await reserved(sku)).toBe(2);
  });

  it('record lost (its primary failed over before its replica had it): given back once the grace has passed since the reservation was made, the ledger undecided, no job on its way', async () => {
    const sku = await createSku(harness, 5, 'PINLOST');
    const id = await pinnedReservation(sku, 600);
    await dropRecord(harness.stockhold.redis, harness.stockhold.keys, id);
    // Made a moment ago: inside the grace, left alone.
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(0);
    expect(await reserved(sku)).toBe(2);
    await sleep(600);
    expect((await harness.call('POST', '/v1/reconcile?dryRun=true')).body.pinsReleased).toBe(1);
    expect(await reserved(sku)).toBe(2);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(1);
    expect(await reserved(sku)).toBe(0);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(0);
  });

  it('record lost but the ledger committed it: left for the commit\'s Redis step, never given back', async () => {
    const sku = await createSku(harness, 5, 'PINLEDG');
    const id = await pinnedReservation(sku, 600);
    await harness.stockhold.knex('reservations').insert({ id, client_id: 'checkout-dev', customer_id: null, lines: JSON.stringify([{ sku, quantity: 2 }]), status: 'committed', fence: 2, created_at: new Date(), expires_at: new Date(Date.now() + 600_000), confirmed_at: new Date(), committed_at: new Date() });
    await dropRecord(harness.stockhold.redis, harness.stockhold.keys, id);
    await sleep(600);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(0);
    expect(await reserved(sku)).toBe(2);
  });

  it('rejected, a reject that died before giving its holds back (its job gone): given back by the next run', async () => {
    const sku = await createSku(harness, 5, 'PINREJ');
    const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }] } });
    const id = created.body.id as string;
    expect(await pinLines(harness.stockhold.scripts, harness.stockhold.keys, id, [{ sku, quantity: 2 }])).toEqual({ kind: 'pinned' });
    expect(await settleRecord(harness.stockhold.scripts, harness.stockhold.keys, id, { to: 'confirm' })).toMatchObject({ kind: 'confirmed', fence: 2 });
    expect(await settleRecord(harness.stockhold.scripts, harness.stockhold.keys, id, { to: 'reject', fence: 2, retentionMs: 60_000 })).toMatchObject({ kind: 'settled', status: 'rejected' });
    expect(await reserved(sku)).toBe(2);
    expect((await harness.call('POST', '/v1/reconcile')).body.pinsReleased).toBe(1);
    expect(await reserved(sku)).toBe(0);
  });
});

