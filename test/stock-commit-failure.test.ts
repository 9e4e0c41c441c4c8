// Proves that a stock change whose COMMIT itself fails leaves Redis where the ledger is (or
// lower), answers 503, and applies exactly once on retry. The failure is real: a deferred
// constraint trigger on ledger_entries raises at COMMIT for entries with a marked reason, so the
// statements inside the transaction succeed and only the COMMIT is refused. (knex's commit()
// resolves even when the COMMIT fails; before this test the service answered 201 and applied an
// increase in Redis that the ledger never had: an oversell the chaos run found.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';

const refusedReason = 'refused-at-commit-test';
/** A per-customer cap whose COMMIT the test trigger refuses. */
const refusedCap = 999;
let harness: Harness;

beforeAll(async () => {
  // A database of its own: the triggers below are DDL on the shared tables, which deadlocked
  // once with other files' stock changes in a loaded run of the whole suite.
  harness = await startHarness({}, { ownDatabase: true });
  await harness.stockhold.knex.raw(`
    CREATE OR REPLACE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.reason = '${refusedReason}' THEN RAISE EXCEPTION 'refused at commit (test)'; END IF;
      RETURN NULL;
    END $$;
    DROP TRIGGER IF EXISTS test_refuse_at_commit ON ledger_entries;
    CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON ledger_entries
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_at_commit();
    CREATE OR REPLACE FUNCTION test_refuse_cap_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.per_customer_limit = ${refusedCap} THEN RAISE EXCEPTION 'refused at commit (test)'; END IF;
      RETURN NULL;
    END $$;
    DROP TRIGGER IF EXISTS test_refuse_cap_at_commit ON skus;
    CREATE CONSTRAINT TRIGGER test_refuse_cap_at_commit AFTER UPDATE ON skus
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_cap_at_commit();
  `);
});

afterAll(async () => {
  await harness.stockhold.knex.raw('DROP TRIGGER IF EXISTS test_refuse_at_commit ON ledger_entries; DROP FUNCTION IF EXISTS test_refuse_at_commit();');
  await harness.stockhold.knex.raw('DROP TRIGGER IF EXISTS test_refuse_cap_at_commit ON skus; DROP FUNCTION IF EXISTS test_refuse_cap_at_commit();');
  await harness.close();
});

const ledgerOnHand = async (sku: string) => Number((await harness.stockhold.knex('skus').first('on_hand').where({ sku })).on_hand);
const entriesOf = async (sku: string) => (await harness.stockhold.knex('ledger_entries').count({ n: '*' }).where({ sku }))[0]!.n;
const view = async (sku: string) => (await harness.call('GET', `/v1/skus/${sku}`)).body;

describe('a stock change whose COMMIT fails', () => {
  it('an increase answers 503 and Redis does not offer the units', async () => {
    const sku = await createSku(harness, 10, 'COMMITFAIL');
    const entriesBefore = await entriesOf(sku);
    const response = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: 5, reason: refusedReason } });
    expect(response.status).toBe(503);
    expect(response.body.code).toBe('backend_unavailable');
    expect(response.headers.get('retry-after')).not.toBeNull();
    expect(await ledgerOnHand(sku)).toBe(10);
    expect(await entriesOf(sku)).toBe(entriesBefore);
    expect((await view(sku)).onHand).toBe(10);
    // Exactly the ledger's 10 units can be reserved, not 15.
    const eleven = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 11 }] } });
    expect(eleven.status).toBe(409);
  });

  it('a decrease answers 503 and leaves Redis at or below the ledger; the next change resynchronises it', async () => {
    const sku = await createSku(harness, 10, 'COMMITFAIL');
    const response = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: -4, reason: refusedReason } });
    expect(response.status).toBe(503);
    expect(await ledgerOnHand(sku)).toBe(10);
    expect((await view(sku)).onHand).toBeLessThanOrEqual(10);
    const next = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: 1, reason: 'receipt' } });
    expect(next.status).toBe(201);
    expect(await ledgerOnHand(sku)).toBe(11);
    expect((await view(sku)).onHand).toBe(11);
  });

  it('a retry with the same key keeps failing at COMMIT and never half-applies', async () => {
    const sku = await createSku(harness, 10, 'COMMITFAIL');
    const key = idempotencyKey();
    const failed = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta: 2, reason: refusedReason } });
    expect(failed.status).toBe(503);
    // The same key with the same body keeps failing at COMMIT; it never half-applies.
    const again = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta: 2, reason: refusedReason } });
    expect(again.status).toBe(503);
    expect(await ledgerOnHand(sku)).toBe(10);
    expect((await view(sku)).onHand).toBe(10);
  });

  // The cap is written into Redis under the row lock before the COMMIT (stock-service.ts): a
  // COMMIT refused after it leaves Redis enforcing a cap the ledger never took. The next stock
  // change writes the ledger's cap first, and the reconciler compares them: both put it back.
  it('a cap whose COMMIT fails answers 503; the next stock change and the reconciler bring Redis back to the ledger\'s cap', async () => {
    const sku = await createSku(harness, 10, 'COMMITFAIL');
    const stateKey = harness.stockhold.keys.skuState(sku);
    const failed = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10, perCustomerLimit: refusedCap } });
    expect(failed.status).toBe(503);
    expect((await harness.stockhold.knex('skus').first('per_customer_limit').where({ sku })).per_customer_limit).toBeNull();
    // The window: Redis took the cap, the ledger did not.
    expect(await harness.stockhold.redis.hget(stateKey, 'pcl')).toBe(String(refusedCap));
    expect((await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: 1, reason: 'receipt' } })).status).toBe(201);
    expect(await harness.stockhold.redis.hget(stateKey, 'pcl')).toBeNull();
    expect((await view(sku)).perCustomerLimit).toBeUndefined();
    // The same window closed by the reconciler.
    await harness.stockhold.redis.hset(stateKey, 'pcl', refusedCap);
    const run = await harness.call('POST', '/v1/reconcile');
    expect(run.body.corrections).toEqual(expect.arrayContaining([{ sku, field: 'perCustomerLimit', before: refusedCap, after: null }]));
    expect(await harness.stockhold.redis.hget(stateKey, 'pcl')).toBeNull();
  });
});
