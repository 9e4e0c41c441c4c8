// Proves, one deterministic interleaving at a time, that Redis's on-hand is an ordered projection
// of the ledger and never runs ahead of it. Each test forces the interleaving that broke the
// previous design (issue 9, breaks 1-7): a latch on the script runner holds one step back while
// another runs to completion, or a Postgres session of the test's own is cut mid-transaction.
// After each, Redis and the ledger agree exactly, and only the ledger's units can be sold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommitJob } from '../lib/commits/commit-jobs';
import { CommitProcessor } from '../lib/commits/commit-processor';
import { LedgerWriter } from '../lib/commits/ledger-writer';
import type { ScriptName } from '../lib/redis/scripts';
import type { Stockhold } from '../lib/stockhold';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';

const refusedReason = 'refused-at-insert-test';
const slowReason = 'slow-insert-test';
const applicationName = `stockhold-projection-test-${process.pid}`;
let harness: Harness;
let stockhold: Stockhold;
let processor: CommitProcessor;

beforeAll(async () => {
  harness = await startHarness({ POSTGRES_APPLICATION_NAME: applicationName, HOLDS_REBUILD_MAX: '2' });
  stockhold = harness.stockhold;
  processor = new CommitProcessor(harness.stockhold.knex, harness.stockhold.scripts, harness.stockhold.keys, harness.stockhold.projection, harness.config);
  // An INSERT that fails inside the transaction (after Redis was touched), for one reason only,
  // as a statement timeout does (SQLSTATE 57014).
  await harness.stockhold.knex.raw(`
    CREATE OR REPLACE FUNCTION test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.reason = '${refusedReason}' THEN RAISE EXCEPTION USING ERRCODE = '57014', MESSAGE = 'refused at insert (test)'; END IF;
      IF NEW.reason = '${slowReason}' THEN PERFORM pg_sleep(0.8); END IF;
      RETURN NEW;
    END $$;
    DROP TRIGGER IF EXISTS test_refuse_insert ON ledger_entries;
    CREATE TRIGGER test_refuse_insert BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION test_refuse_insert();
  `);
});

afterAll(async () => {
  harness.stockhold.scripts.latch = undefined;
  await harness.stockhold.knex.raw('DROP TRIGGER IF EXISTS test_refuse_insert ON ledger_entries; DROP FUNCTION IF EXISTS test_refuse_insert();');
  await processor.close();
  await harness.close();
});

const adjust = (sku: string, delta: number, key = idempotencyKey(), reason = 'count') =>
  harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta, reason } });
const reserve = (sku: string, quantity: number) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity }] } });
const view = async (sku: string) => (await harness.call('GET', `/v1/skus/${sku}`)).body;
const ledgerOnHand = async (sku: string) => Number((await stockhold.knex('skus').first('on_hand').where({ sku })).on_hand);
const redisState = async (sku: string) => {
  const [onHand, reserved, debit, pos] = await stockhold.redis.hmget(stockhold.keys.skuState(sku), 'onHand', 'reserved', 'debit', 'pos');
  return { onHand: Number(onHand), reserved: Number(reserved), debit: Number(debit ?? 0), pos: Number(pos) };
};
const ledgerSeq = async (sku: string) => Number((await stockhold.knex('skus').first('seq').where({ sku })).seq);

/** Runs `between` once, just before the first script named `name` on `sku`'s keys (matching `when`). */
function latchOnce(name: ScriptName, sku: string, between: () => Promise<void>, when: (args: ReadonlyArray<string | number>) => boolean = () => true): { fired: () => boolean } {
  let fired = false;
  stockhold.scripts.latch = async (scriptName, keys, args) => {
    if (fired || scriptName !== name || !keys.some((key) => key.includes(`{${sku}}`)) || !when(args)) return;
    fired = true;
    stockhold.scripts.latch = undefined;
    await between();
  };
  return { fired: () => fired };
}

async function confirmedJob(sku: string, quantity: number): Promise<CommitJob> {
  const created = await reserve(sku, quantity);
  expect(created.status).toBe(201);
  expect((await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' })).status).toBe(202);
  return (await stockhold.commitQueue.queue.getJob(created.body.id))!.data as CommitJob;
}

async function expectAgreement(sku: string, reserved = 0): Promise<void> {
  const onHand = await ledgerOnHand(sku);
  expect(await redisState(sku)).toEqual({ onHand, reserved, debit: 0, pos: await ledgerSeq(sku) });
  expect(await view(sku)).toEqual({ sku, onHand, reserved, available: Math.max(onHand - reserved, 0) });
}

describe('break 1: a rolled-back decrease gives back only its own debit', () => {
  it("change A stages -10 and rolls back; change B (-5) stages its debit before A's release lands: the release touches only A's", async () => {
    const sku = await createSku(harness, 100, 'GIVEBACK');
    let second: Promise<Awaited<ReturnType<typeof adjust>>> | undefined;
    let duringB: { debit: number; tooMany: number } | undefined;
    const latch = latchOnce('releaseDebit', sku, async () => {
      // A's INSERT failed and its transaction rolled back; its debit is still pending. B takes the
      // row, releases A's leftover debit, stages its own, and is held in its (slow) INSERT.
      second = adjust(sku, -5, idempotencyKey(), slowReason);
      const deadline = Date.now() + 5000;
      while ((await redisState(sku)).debit !== 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    });
    const first = await adjust(sku, -10, idempotencyKey(), refusedReason);
    expect(latch.fired()).toBe(true);
    expect(first.status).toBe(503);
    // A's release has landed while B is still in flight: B's debit must still be there, so the
    // 5 units B is taking are not on offer (100 - 5 = 95 at most).
    duringB = { debit: (await redisState(sku)).debit, tooMany: (await reserve(sku, 96)).status };
    expect(duringB).toEqual({ debit: 5, tooMany: 409 });
    expect((await second!).status).toBe(201);
    expect(await ledgerOnHand(sku)).toBe(95);
    await expectAgreement(sku);
    expect((await reserve(sku, 96)).status).toBe(409);
  });
});

describe('break 2: a read-through rebuild cannot miss a commit that lands during it', () => {
  it('the rebuild holds the ledger row FOR SHARE: the commit waits, then applies after the rebuilt state', async () => {
    const sku = await createSku(harness, 10, 'REBUILD');
    const job = await confirmedJob(sku, 3);
    await stockhold.redis.del(stockhold.keys.skuState(sku));
    let commit: Promise<unknown> | undefined;
    latchOnce('initSku', sku, async () => {
      commit = processor.process(job);
      await new Promise((resolve) => setTimeout(resolve, 300));
      // The commit's ledger transaction waits for the rebuild's FOR SHARE lock.
      expect(await ledgerOnHand(sku)).toBe(10);
    });
    expect(await view(sku)).toEqual({ sku, onHand: 10, reserved: 3, available: 7 });
    expect(await commit).toEqual({ ledger: 'committed', redis: 'applied' });
    expect(await ledgerOnHand(sku)).toBe(7);
    await expectAgreement(sku);
  });
});

describe('break 3: a stock change racing a cancel in flight does not count the cancel twice', () => {
  it('the deallocation is applied once whoever applies it first', async () => {
    const sku = await createSku(harness, 15, 'CANCELRACE');
    const job = await confirmedJob(sku, 3);
    expect((await processor.process(job)).redis).toBe('applied');
    const cancel = await harness.call('POST', `/v1/reservations/${job.reservationId}/cancel`, { as: 'fulfillment' });
    expect(cancel.status).toBe(202);
    const cancelJob = (await stockhold.commitQueue.queue.getJob(`cancel-${job.reservationId}`))!.data;
    // The worker wrote the deallocation (ledger 15) and is about to apply it; a stock change
    // runs first and catches Redis up (applying the deallocation itself).
    const latch = latchOnce('applyEntries', sku, async () => {
      expect((await adjust(sku, 1)).status).toBe(201);
    }, (args) => args.includes('deallocation'));
    expect(await processor.process(cancelJob)).toEqual({ ledger: 'cancelled', redis: 'applied' });
    expect(latch.fired()).toBe(true);
    expect(await ledgerOnHand(sku)).toBe(16);
    await expectAgreement(sku);
  });
});

describe('break 4: holds without their SKU state', () => {
  it('are summed into a rebuilt state (their units stay held)', async () => {
    const sku = await createSku(harness, 10, 'ORPHANHOLDS');
    expect((await reserve(sku, 2)).status).toBe(201);
    await stockhold.redis.del(stockhold.keys.skuState(sku));
    expect((await reserve(sku, 8)).status).toBe(201);
    expect((await reserve(sku, 1)).status).toBe(409);
    expect(await view(sku)).toEqual({ sku, onHand: 10, reserved: 10, available: 0 });
  });

  it('beyond HOLDS_REBUILD_MAX: reservations answer 503, and one such SKU never stops a reconcile run', async () => {
    const broken = await createSku(harness, 10, 'TOOMANY');
    for (let index = 0; index < 3; index += 1) expect((await reserve(broken, 1)).status).toBe(201);
    await stockhold.redis.del(stockhold.keys.skuState(broken));
    const refused = await reserve(broken, 1);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    const drifted = await createSku(harness, 10, 'DRIFTED');
    await stockhold.redis.hset(stockhold.keys.skuState(drifted), 'onHand', 99);
    const report = await stockhold.reconciler.run('manual', false);
    expect(report.skusFailed).toBeGreaterThanOrEqual(1);
    expect(report.failures.map((failure) => failure.sku)).toContain(broken);
    expect(report.corrections).toEqual(expect.arrayContaining([{ sku: drifted, field: 'onHand', before: 99, after: 10 }]));
    await expectAgreement(drifted);
  });
});

describe('break 5: a confirm the ledger refuses ends rejected, not pinned', () => {
  it('records the rejection, releases the hold, tells downstream, and answers a clear problem', async () => {
    const sku = await createSku(harness, 5, 'REJECT');
    const job = await confirmedJob(sku, 5);
    // The ledger loses 4 units behind Redis's back (as after Redis data loss or a restore).
    await stockhold.knex.transaction(async (transaction) => {
      const row = await transaction('skus').first('on_hand', 'seq', 'version').where({ sku }).forUpdate();
      await transaction('ledger_entries').insert({ sku, kind: 'adjustment', delta: -4, on_hand_after: 1, sku_version: Number(row.version), sku_seq: Number(row.seq) + 1, reason: 'behind redis', client_id: 'test' });
      await transaction('skus').update({ on_hand: 1, seq: Number(row.seq) + 1 }).where({ sku });
    });
    expect(await processor.process(job)).toEqual({ ledger: 'rejected', redis: 'rejected, 5 units released' });
    const read = await harness.call('GET', `/v1/reservations/${job.reservationId}`, { as: 'checkout' });
    expect(read.body.status).toBe('rejected');
    const confirmAgain = await harness.call('POST', `/v1/reservations/${job.reservationId}/confirm`, { as: 'checkout' });
    expect(confirmAgain.status).toBe(409);
    expect(confirmAgain.body).toMatchObject({ code: 'reservation_rejected', status: 409, reason: 'insufficient_stock_in_ledger' });
    const cancel = await harness.call('POST', `/v1/reservations/${job.reservationId}/cancel`, { as: 'fulfillment' });
    expect(cancel.body).toMatchObject({ code: 'reservation_rejected', status: 409 });
    const events = await harness.call('GET', '/v1/events?after=0&limit=1000', { as: 'fulfillment' });
    expect(events.body.events.filter((event: { type: string; data: { reservationId?: string } }) => event.data.reservationId === job.reservationId)).toEqual([
      expect.objectContaining({ type: 'reservation.rejected', data: expect.objectContaining({ reason: 'insufficient_stock_in_ledger', lines: [{ sku, quantity: 5 }] }) }),
    ]);
    // A re-run of the job changes nothing more.
    expect(await processor.process(job)).toEqual({ ledger: 'rejected', redis: 'unchanged (rejected)' });
    expect((await stockhold.redis.zcard(stockhold.keys.skuHolds(sku)))).toBe(0);
    await stockhold.reconciler.run('manual', false);
    await expectAgreement(sku);
  });
});

describe('break 6: a retried adjustment whose response record was lost', () => {
  it('is answered from the ledger before any stock check, even when the stock is now reserved', async () => {
    const sku = await createSku(harness, 10, 'RETRYKEY');
    const key = idempotencyKey();
    expect((await adjust(sku, -3, key)).status).toBe(201);
    await stockhold.redis.del(stockhold.keys.idempotency('ops', key));
    expect((await reserve(sku, 6)).status).toBe(201);
    const retry = await adjust(sku, -3, key);
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await stockhold.knex('ledger_entries').count({ n: '*' }).where({ idempotency_key: key })).toEqual([{ n: '1' }]);
    expect(await ledgerOnHand(sku)).toBe(7);
    await expectAgreement(sku, 6);
  });
});

describe('break 7: the transaction loses its connection after Redis was staged', () => {
  it('answers 503 with Retry-After, releases the debit, and a retry applies once', async () => {
    const sku = await createSku(harness, 20, 'CUT');
    const key = idempotencyKey();
    latchOnce('prepareStockChange', sku, async () => {
      // The stock change holds the row and is about to stage its debit: cut its session.
      const cut = await stockhold.knex.raw(
        "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE application_name = ? AND state = 'idle in transaction'",
        [applicationName],
      );
      expect(cut.rows.length).toBeGreaterThanOrEqual(1);
    });
    const cutOff = await adjust(sku, -4, key);
    expect(cutOff.status).toBe(503);
    expect(cutOff.body.code).toBe('backend_unavailable');
    expect(cutOff.headers.get('retry-after')).toBe('1');
    expect(await ledgerOnHand(sku)).toBe(20);
    await expectAgreement(sku);
    const retry = await adjust(sku, -4, key);
    expect(retry.status).toBe(201);
    expect(await ledgerOnHand(sku)).toBe(16);
    await expectAgreement(sku);
  });
});

describe("a reconcile correction racing a commit's Redis step", () => {
  it('the late step applies nothing twice; the correction is made at the same position', async () => {
    const sku = await createSku(harness, 10, 'CORRECTRACE');
    const job = await confirmedJob(sku, 4);
    // Ledger written, Redis not told (the worker is between its COMMIT and its Redis step).
    const [outcome] = await new LedgerWriter(stockhold.knex).commitBatch([job]);
    await stockhold.redis.hincrby(stockhold.keys.skuState(sku), 'onHand', 3);
    let late: unknown;
    const latch = latchOnce('correctOnHand', sku, async () => {
      // The worker's Redis step lands between the reconciler's catch-up and its correction.
      late = await stockhold.projection.apply(sku, outcome!.entries);
    });
    const report = await stockhold.reconciler.run('manual', false);
    expect(latch.fired()).toBe(true);
    expect(late).toMatchObject({ kind: 'applied', onHand: 6, reserved: 0 });
    expect(report.failures.map((failure) => failure.sku)).not.toContain(sku);
    expect(report.corrections.filter((correction) => correction.sku === sku)).toEqual([]);
    expect((await processor.process(job)).redis).toBe('applied');
    expect(await ledgerOnHand(sku)).toBe(6);
    await expectAgreement(sku);
  });
});

describe('Redis loses the SKU state while a stock change is catching it up', () => {
  it("the rebuild goes through the stock change's own transaction (no wait on its own row lock)", async () => {
    const sku = await createSku(harness, 10, 'LOSTMIDWAY');
    expect((await adjust(sku, 5)).status).toBe(201);
    // Redis missed the +5 (its position is one behind) ...
    await stockhold.redis.hset(stockhold.keys.skuState(sku), 'onHand', 10, 'pos', 1);
    // ... and loses the whole state just as the next change applies what it missed.
    const latch = latchOnce('applyEntries', sku, async () => {
      await stockhold.redis.del(stockhold.keys.skuState(sku));
    });
    // A second transaction asking FOR SHARE would wait on this change's own FOR UPDATE until the
    // statement timeout, and the change would answer 503.
    const response = await adjust(sku, -2);
    expect(latch.fired()).toBe(true);
    expect(response.status).toBe(201);
    expect(await ledgerOnHand(sku)).toBe(13);
    await expectAgreement(sku);
  });
});
