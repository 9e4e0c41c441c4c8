// Proves the reconciler against the real Redis, Postgres and BullMQ: injected drift is corrected
// from the ledger and logged; a dry run changes nothing; orphaned holds on untouched SKUs expire;
// a commit in flight is not counted twice; lost and failed commit jobs are re-driven.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommitJob } from '../lib/commits/commit-jobs';
import { CommitProcessor } from '../lib/commits/commit-processor';
import { errors } from '../lib/errors';
import type { ScriptLatch } from '../lib/redis/scripts';
import { leaseAttemptsMax } from '../lib/scripts/lease-run';
import { LedgerWriter } from '../lib/commits/ledger-writer';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ RECONCILE_COMMIT_GRACE_MS: '0', COMMIT_ATTEMPTS: '1', COMMIT_BATCH_WAIT_MS: '1', POSTGRES_STATEMENT_TIMEOUT_MS: '1000' }, { ownDatabase: true });
});
afterAll(async () => {
  await harness.close();
});

const reserve = (sku: string, quantity: number, extra: Record<string, unknown> = {}) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity }], ...extra } });
const reconcile = async (dryRun = false) => {
  const response = await harness.call('POST', `/v1/reconcile${dryRun ? '?dryRun=true' : ''}`);
  expect(response.status).toBe(200);
  return response.body;
};
const view = async (sku: string) => (await harness.call('GET', `/v1/skus/${sku}`)).body;
const state = (sku: string) => harness.stockhold.redis.hmget(harness.stockhold.keys.skuState(sku), 'onHand', 'reserved');

describe('drift', () => {
  it('corrects on-hand and reserved injected into Redis, records it in Postgres and the report', async () => {
    const sku = await createSku(harness, 10);
    await reserve(sku, 3);
    await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(sku), 'onHand', 999, 'reserved', 50);
    const report = await reconcile();
    expect(report).toMatchObject({ trigger: 'manual', dryRun: false });
    expect(report.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(report.driftCorrected).toBeGreaterThanOrEqual(2);
    expect(report.corrections).toEqual(expect.arrayContaining([
      { sku, field: 'onHand', before: 999, after: 10 },
      { sku, field: 'reserved', before: 50, after: 3 },
    ]));
    expect(await view(sku)).toEqual({ sku, onHand: 10, reserved: 3, available: 7 });
    const logged = await harness.stockhold.knex('reconcile_corrections').select('field', 'before', 'after').where({ sku, run_id: report.runId }).orderBy('field');
    expect(logged).toEqual([{ field: 'onHand', before: '999', after: '10' }, { field: 'reserved', before: '50', after: '3' }]);
    // Other test files share the log: look for this run among the latest.
    const runs = await harness.call('GET', '/v1/reconcile/runs?limit=1000');
    expect(runs.body.runs.find((run: { runId: string }) => run.runId === report.runId)).toMatchObject({ driftCorrected: report.driftCorrected, trigger: 'manual' });
    const again = await reconcile();
    expect(again.corrections.filter((correction: { sku: string }) => correction.sku === sku)).toEqual([]);
  });

  it('a dry run reports what it would change and changes nothing', async () => {
    const sku = await createSku(harness, 8);
    await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(sku), 'onHand', 5);
    const expiring = await reserve(sku, 2, { ttlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const report = await reconcile(true);
    expect(report.dryRun).toBe(true);
    expect(report.corrections).toContainEqual({ sku, field: 'onHand', before: 5, after: 8 });
    expect(report.holdsExpired).toBeGreaterThanOrEqual(1);
    expect(await state(sku)).toEqual(['5', '2']);
    expect(await harness.stockhold.redis.zcard(harness.stockhold.keys.skuHolds(sku))).toBe(1);
    expect(await harness.stockhold.knex('reconcile_corrections').count({ n: '*' }).where({ sku })).toEqual([{ n: '0' }]);
    const logged = (await harness.call('GET', '/v1/reconcile/runs?limit=1000')).body.runs.find((run: { runId: string }) => run.runId === report.runId);
    expect(logged).toMatchObject({ runId: report.runId, dryRun: true });
    expect(expiring.status).toBe(201);
  });

  it('a commit in flight (ledger written, Redis not told) is applied once, not counted as drift', async () => {
    const sku = await createSku(harness, 10);
    const created = await reserve(sku, 4);
    await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' });
    const job = (await harness.stockhold.commitQueue.queue.getJob(created.body.id))!.data as CommitJob;
    await new LedgerWriter(harness.stockhold.knex).commitBatch([job]);
    // Ledger 6 at a position Redis has not reached: the reconciler applies the allocation (hold
    // removed with it), and at the same position there is no drift to correct.
    const report = await reconcile();
    expect(report.corrections.filter((correction: { sku: string }) => correction.sku === sku)).toEqual([]);
    expect(await state(sku)).toEqual(['6', '0']);
    const processor = new CommitProcessor(harness.stockhold.knex, harness.stockhold.scripts, harness.stockhold.keys, harness.stockhold.projection, harness.config);
    // The worker's own step then finds its entry applied: it applies nothing twice and finishes.
    expect((await processor.process(job)).redis).toBe('applied');
    await processor.close();
    expect(await view(sku)).toEqual({ sku, onHand: 6, reserved: 0, available: 6 });
    expect((await reconcile()).corrections.filter((correction: { sku: string }) => correction.sku === sku)).toEqual([]);
  });
});

describe('orphans and missing SKUs', () => {
  it('expires holds on SKUs nobody touches', async () => {
    const sku = await createSku(harness, 5);
    const held = await reserve(sku, 5, { ttlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await state(sku)).toEqual(['5', '5']);
    const report = await reconcile();
    expect(report.holdsExpired).toBeGreaterThanOrEqual(1);
    expect(await state(sku)).toEqual(['5', '0']);
    expect((await harness.call('GET', `/v1/reservations/${held.body.id}`, { as: 'checkout' })).body.status).toBe('expired');
  });

  it('rebuilds a SKU Redis lost from the ledger', async () => {
    const sku = await createSku(harness, 7);
    await harness.stockhold.redis.del(harness.stockhold.keys.skuState(sku));
    const report = await reconcile();
    expect(report.corrections).toContainEqual({ sku, field: 'state', before: null, after: 7 });
    expect(report.skusRebuilt).toBeGreaterThanOrEqual(1);
    expect(await state(sku)).toEqual(['7', '0']);
  });
});

describe('stuck and failed commits', () => {
  it('re-queues a confirmation whose job was lost', async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve(sku, 2);
    await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' });
    await (await harness.stockhold.commitQueue.queue.getJob(created.body.id))!.remove();
    const report = await reconcile();
    expect(report.commitsRequeued).toBeGreaterThanOrEqual(1);
    expect(await harness.stockhold.commitQueue.queue.getJob(created.body.id)).toBeDefined();
    const stop = await harness.startWorker();
    const settled = await harness.stockhold.commits.waitFor(created.body.id, (r) => r.status === 'committed', 10_000);
    await stop();
    expect(settled?.status).toBe('committed');
    expect(await view(sku)).toEqual({ sku, onHand: 3, reserved: 0, available: 3 });
  });

  it('re-drives a commit job that exhausted its attempts', async () => {
    const sku = await createSku(harness, 5);
    const created = await reserve(sku, 5);
    // The ledger's reservations table is locked past the statement timeout: the only attempt fails.
    const lock = await harness.stockhold.knex.transaction();
    await lock.raw('LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE');
    const stop = await harness.startWorker();
    try {
      await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' });
      const deadline = Date.now() + 15_000;
      while ((await (await harness.stockhold.commitQueue.queue.getJob(created.body.id))?.getState()) !== 'failed' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await (await harness.stockhold.commitQueue.queue.getJob(created.body.id))!.getState()).toBe('failed');
    } finally {
      await lock.rollback();
    }
    const report = await reconcile();
    expect(report.commitsRequeued).toBeGreaterThanOrEqual(1);
    const settled = await harness.stockhold.commits.waitFor(created.body.id, (r) => r.status === 'committed', 10_000);
    await stop();
    expect(settled?.status).toBe('committed');
    expect(await harness.stockhold.knex('skus').first('on_hand').where({ sku })).toEqual({ on_hand: '0' });
    expect(await view(sku)).toEqual({ sku, onHand: 0, reserved: 0, available: 0 });
  });
});

describe('one run at a time', () => {
  it('a manual run while another run holds the lease answers 409 reconcile_in_progress with Retry-After', async () => {
    const sku = await createSku(harness, 3);
    let during: { status: number; headers: Headers; body: any } | undefined;
    harness.stockhold.scripts.latch = async (name, keys) => {
      if (name !== 'inspectSku' || !keys[0]!.includes(`{${sku}}`) || during !== undefined) return;
      during = await harness.call('POST', '/v1/reconcile');
    };
    try {
      const report = await harness.stockhold.reconciler.run('cli', false);
      expect(report.skusFailed).toBe(0);
    } finally {
      harness.stockhold.scripts.latch = undefined;
    }
    expect(during?.status).toBe(409);
    expect(during?.body).toMatchObject({ code: 'reconcile_in_progress', status: 409 });
    expect(during?.headers.get('retry-after')).toBe('1');
    // The lease is released after the run: the next one goes ahead.
    expect((await harness.call('POST', '/v1/reconcile')).status).toBe(200);
  });
});

describe('the run lease when Redis does not answer', () => {
  // The worst interleaving (seen under a cluster failover): a lease step runs in Redis, and its
  // reply never reaches the client (a command timeout, the primary killed after running it).
  // Forced here by a latch that runs the step itself, then throws what the client would see.
  const leaseKey = () => `${harness.config.redisKeyPrefix}reconcile:lease`;
  const lostReply = () => errors.backendUnavailable('redis', new Error('Command timed out'));
  /** Runs the lease step for real, bypassing the latch (its own latch call is let through). */
  const runForReal = async (keys: readonly string[], args: ReadonlyArray<string | number>) => {
    const latch = harness.stockhold.scripts.latch;
    harness.stockhold.scripts.latch = undefined;
    try {
      await harness.stockhold.scripts.run('leaseRun', keys, args);
    } finally {
      harness.stockhold.scripts.latch = latch;
    }
  };

  /** A manual run with `latch` on the script runner, taken off after it. */
  const reconcileWith = async (latch: ScriptLatch) => {
    harness.stockhold.scripts.latch = latch;
    try {
      return await harness.call('POST', '/v1/reconcile');
    } finally {
      harness.stockhold.scripts.latch = undefined;
    }
  };

  it('an acquire that ran but whose reply was lost is found by the next attempt: the run goes ahead and gives the lease back', async () => {
    let lost = 0;
    const run = await reconcileWith(async (name, keys, args) => {
      if (name !== 'leaseRun' || args[0] !== 'acquire' || lost > 0) return;
      lost += 1;
      await runForReal(keys, args);
      throw lostReply();
    });
    expect(run.status).toBe(200);
    expect(lost).toBe(1);
    expect(await harness.stockhold.redis.exists(leaseKey())).toBe(0);
    expect((await harness.call('POST', '/v1/reconcile')).status).toBe(200);
  });

  it('an acquire never answered: 503, and the lease a lost attempt took is given back, so the next run goes ahead', async () => {
    let attempts = 0;
    const refused = await reconcileWith(async (name, keys, args) => {
      if (name !== 'leaseRun' || args[0] !== 'acquire') return;
      attempts += 1;
      if (attempts === 1) await runForReal(keys, args);
      throw lostReply();
    });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'backend_unavailable' });
    expect(attempts).toBe(leaseAttemptsMax);
    expect(await harness.stockhold.redis.exists(leaseKey())).toBe(0);
    expect((await harness.call('POST', '/v1/reconcile')).status).toBe(200);
  });

  it('an acquire that ran, and nothing after it answered (a failover outlasting every attempt and the release): the next run of this process takes that lease back', async () => {
    let ran = 0;
    const refused = await reconcileWith(async (name, keys, args) => {
      if (name !== 'leaseRun') return;
      if (args[0] === 'acquire' && ran === 0) {
        ran += 1;
        await runForReal(keys, args);
      }
      throw lostReply();
    });
    expect(refused.status).toBe(503);
    expect(await harness.stockhold.redis.pttl(leaseKey())).toBeGreaterThan(0);
    expect((await harness.call('POST', '/v1/reconcile')).status).toBe(200);
    expect(await harness.stockhold.redis.exists(leaseKey())).toBe(0);
  });

  it('a release that ran but whose reply was lost, or that was never answered once, leaves no lease behind', async () => {
    for (const ranInRedis of [true, false]) {
      let lost = 0;
      const run = await reconcileWith(async (name, keys, args) => {
        if (name !== 'leaseRun' || args[0] !== 'release' || lost > 0) return;
        lost += 1;
        if (ranInRedis) await runForReal(keys, args);
        throw lostReply();
      });
      expect(run.status).toBe(200);
      expect(lost).toBe(1);
      expect(await harness.stockhold.redis.exists(leaseKey())).toBe(0);
    }
  });
});

describe('GET /v1/reconcile/runs', () => {
  it('lists the latest runs newest first and validates limit', async () => {
    const first = await reconcile(true);
    const second = await reconcile(true);
    // Other test files share the log, so look at the order of these two among the latest.
    expect((await harness.call('GET', '/v1/reconcile/runs?limit=1')).body.runs).toHaveLength(1);
    const runs = (await harness.call('GET', '/v1/reconcile/runs?limit=1000')).body.runs;
    const ids = runs.map((run: { runId: string }) => run.runId);
    expect(ids.indexOf(second.runId)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(second.runId)).toBeLessThan(ids.indexOf(first.runId));
    const startedAt = runs.map((run: { startedAt: string }) => Date.parse(run.startedAt));
    expect(startedAt).toEqual([...startedAt].sort((a, b) => b - a));
    expect(Object.keys(runs[0]).sort()).toEqual(
      ['commitsRequeued', 'confirmedTruncated', 'corrections', 'debitsReleased', 'driftCorrected', 'dryRun', 'failures', 'finishedAt', 'holdsExpired', 'onHandCorrected', 'pinsReleased', 'reservedCorrected', 'runId', 'skusChecked', 'skusFailed', 'skusOutOfAgreement', 'skusRebuilt', 'startedAt', 'stoppedEarly', 'stripesRebalanced', 'trigger'].sort(),
    );
    for (const bad of ['0', '1001', 'x', '-1']) {
      expect((await harness.call('GET', `/v1/reconcile/runs?limit=${bad}`)).status).toBe(400);
    }
    expect((await harness.call('GET', '/v1/reconcile/runs', { as: 'fulfillment' })).status).toBe(403);
    expect((await harness.call('POST', '/v1/reconcile?dryRun=maybe')).status).toBe(400);
  });
});

describe('the reconciliation log', () => {
  it('prunes old runs that corrected nothing and keeps runs with corrections', async () => {
    const sku = await createSku(harness, 3);
    await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(sku), 'onHand', 4);
    const corrected = await reconcile();
    const quiet = await reconcile(true);
    const old = new Date(Date.now() - 30 * 86_400_000);
    await harness.stockhold.knex('reconcile_runs').update({ started_at: old, finished_at: old }).whereIn('run_id', [corrected.runId, quiet.runId]);
    await reconcile(true);
    const left = (await harness.stockhold.knex('reconcile_runs').select('run_id').whereIn('run_id', [corrected.runId, quiet.runId])).map((row: { run_id: string }) => row.run_id);
    expect(left).toEqual([corrected.runId]);
  });
});
