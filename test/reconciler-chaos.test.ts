// Proves the reconciler under traffic, with real concurrency: corrections racing 1,000
// reservations, commits and releases never oversell and converge to the ledger; a FLUSHDB of a
// private redis-server in the middle of traffic heals by itself (the schedule comes back, SKUs
// are rebuilt) and afterwards exactly the ledger's stock can be sold.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReconciler } from '../apps/reconciler/reconciler';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';
import { PrivateRedis } from '../chaos/servers';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function sellOut(harness: Harness, sku: string, attempts: number): Promise<number> {
  const results = await Promise.all(
    Array.from({ length: attempts }, () => harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } })),
  );
  expect(results.every((result) => result.status === 201 || result.status === 409)).toBe(true);
  return results.filter((result) => result.status === 201).length;
}

describe('reconciliation racing traffic', () => {
  let harness: Harness;
  beforeAll(async () => {
    // Commands wait up to 10 s: 1,000 requests at once on a loaded 2-core CI machine once timed out a
    // read at the default 2 s, which is not what this test is about.
    harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '2', RECONCILE_COMMIT_GRACE_MS: '60000', RECONCILE_SKU_PAGE: '50', REDIS_COMMAND_TIMEOUT_MS: '10000', REDIS_CONFIRM_WAIT_MS: '1000' }, { ownDatabase: true });
    await harness.startWorker();
  });
  afterAll(async () => {
    await harness.close();
  });

  it('1,000 reservations, commits and releases with drift injected and corrections running: no oversell, converges', async () => {
    const skus = [await createSku(harness, 150, 'RACE'), await createSku(harness, 150, 'RACE')];
    const { redis, keys } = harness.stockhold;
    // Start from drift in both directions.
    await redis.hset(keys.skuState(skus[0]!), 'onHand', 400);
    await redis.hset(keys.skuState(skus[1]!), 'reserved', 7);
    let reconciling = true;
    const reconcileLoop = (async () => {
      let runs = 0;
      while (reconciling) {
        await harness.stockhold.reconciler.run('manual', false);
        runs += 1;
      }
      return runs;
    })();
    // Awaited below; a run that fails while the traffic is still going fails the test there, not
    // as an unhandled rejection.
    reconcileLoop.catch(() => undefined);
    const operations = Array.from({ length: 1000 }, async (_, index) => {
      const sku = skus[index % 2]!;
      const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      if (created.status !== 201) return { sku, committed: 0 };
      if (index % 3 === 0) {
        await harness.call('DELETE', `/v1/reservations/${created.body.id}`, { as: 'checkout' });
        return { sku, committed: 0 };
      }
      const confirmed = await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=20' } });
      // An acknowledged confirm must end committed; under load it may still be on its way.
      if (confirmed.status !== 200 && confirmed.status !== 202) return { sku, committed: 0 };
      const settled = await harness.stockhold.commits.waitFor(created.body.id, (reservation) => reservation.status === 'committed', 30_000);
      expect(settled?.status).toBe('committed');
      return { sku, committed: 1 };
    });
    const outcomes = await Promise.all(operations);
    reconciling = false;
    const runs = await reconcileLoop;
    expect(runs).toBeGreaterThan(0);
    const final = await harness.stockhold.reconciler.run('manual', false);
    for (const sku of skus) {
      const committed = outcomes.filter((outcome) => outcome.sku === sku).reduce((sum, outcome) => sum + outcome.committed, 0);
      const ledger = await harness.stockhold.knex('skus').first('on_hand').where({ sku });
      const allocated = await harness.stockhold.knex('ledger_entries').sum({ units: 'delta' }).where({ sku, kind: 'allocation' });
      // Never oversold: the ledger never went below zero and allocated what was committed.
      expect(Number(ledger.on_hand)).toBe(150 - committed);
      expect(-Number(allocated[0]!.units ?? 0)).toBe(committed);
      expect(committed).toBeLessThanOrEqual(150);
      // Converged: Redis equals the ledger, no holds left, nothing more to correct.
      expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 150 - committed, reserved: 0, available: 150 - committed });
      expect(final.corrections.filter((correction: { sku: string }) => correction.sku === sku)).toEqual([]);
    }
  });
});

describe('FLUSHDB in the middle of traffic', () => {
  let redis: PrivateRedis;
  let harness: Harness;
  let stopReconciler: () => Promise<void>;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
    harness = await startHarness({ REDIS_URL: redis.url, RECONCILE_INTERVAL_MS: '200', COMMIT_BATCH_WAIT_MS: '2', COMMIT_BACKOFF_BASE_MS: '50', COMMIT_BACKOFF_MAX_MS: '200' }, { ownDatabase: true });
    await harness.startWorker();
    stopReconciler = (await startReconciler(harness.stockhold, pino({ level: 'silent' }))).stop;
  });
  afterAll(async () => {
    await stopReconciler();
    await harness.close();
    await redis.remove();
  });

  it('heals by itself, and afterwards exactly the ledger stock can be sold', async () => {
    const sku = await createSku(harness, 60, 'FLUSH');
    const traffic = Array.from({ length: 40 }, async (_, index) => {
      await sleep(index * 5);
      const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      if (created.status === 201) await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' });
      return created.status;
    });
    await sleep(60);
    await harness.stockhold.redis.flushdb();
    const statuses = await Promise.all(traffic);
    expect(statuses.every((status) => [201, 409, 503].includes(status))).toBe(true);

    // The schedule comes back by itself: scheduled runs appear in the log after the flush.
    const flushedAt = new Date();
    const deadline = Date.now() + 20_000;
    let scheduledAfter = 0;
    while (scheduledAfter === 0 && Date.now() < deadline) {
      await sleep(200);
      const rows = await harness.stockhold.knex('reconcile_runs').count({ n: '*' }).where({ trigger: 'scheduled' }).andWhere('started_at', '>', flushedAt);
      scheduledAfter = Number(rows[0]!.n);
    }
    expect(scheduledAfter).toBeGreaterThan(0);
    // Let in-flight commits settle and a run after them repair what they left.
    await sleep(1500);
    const ledgerOnHand = Number((await harness.stockhold.knex('skus').first('on_hand').where({ sku })).on_hand);
    expect(ledgerOnHand).toBeGreaterThanOrEqual(0);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ onHand: ledgerOnHand, reserved: 0 });
    expect(await sellOut(harness, sku, ledgerOnHand + 20)).toBe(ledgerOnHand);
  });
});
