// Proves "exactly once in effect" for commits without trusting BullMQ to deliver once: the same
// job processed twice, a crash between the ledger commit and the Redis step, a stale fence, and
// a worker process SIGKILLed in the middle of its ledger transaction. Afterwards the ledger holds
// exactly one allocation per reservation line and Redis agrees with it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommitJob } from '../lib/commits/commit-jobs';
import { CommitProcessor } from '../lib/commits/commit-processor';
import { LedgerWriter } from '../lib/commits/ledger-writer';
import { createSku, idempotencyKey, startHarness, testDatabaseUrl, testRedisUrl, type Harness } from './support/harness';

let harness: Harness;
let processor: CommitProcessor;
beforeAll(async () => {
  harness = await startHarness();
  processor = new CommitProcessor(harness.stockhold.knex, harness.stockhold.scripts, harness.stockhold.keys, harness.stockhold.projection, harness.config);
});
afterAll(async () => {
  await processor.close();
  await harness.close();
});

/** Reserves and confirms through the API (no worker runs here) and returns the queued job. */
async function confirmedJob(sku: string, quantity: number): Promise<CommitJob> {
  const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity }] } });
  const confirmed = await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout' });
  expect(confirmed.status).toBe(202);
  const job = await harness.stockhold.commitQueue.queue.getJob(created.body.id);
  expect(job?.data.kind).toBe('commit');
  return job!.data as CommitJob;
}

async function ledgerState(sku: string) {
  const projection = await harness.stockhold.knex('skus').first('on_hand').where({ sku });
  const entries = await harness.stockhold.knex('ledger_entries').count({ n: '*' }).where({ sku, kind: 'allocation' });
  return { onHand: Number(projection.on_hand), allocations: Number(entries[0]!.n) };
}

describe('a commit job delivered more than once', () => {
  it('processed twice, one after the other: one allocation, Redis applied once', async () => {
    const sku = await createSku(harness, 10);
    const job = await confirmedJob(sku, 3);
    expect(await processor.process(job)).toEqual({ ledger: 'committed', redis: 'applied' });
    expect(await processor.process(job)).toEqual({ ledger: 'already-committed', redis: 'unchanged (committed)' });
    expect(await ledgerState(sku)).toEqual({ onHand: 7, allocations: 1 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 7, reserved: 0, available: 7 });
  });

  it('processed twice at the same time: one allocation', async () => {
    const sku = await createSku(harness, 10);
    const job = await confirmedJob(sku, 2);
    const results = await Promise.all([processor.process(job), processor.process(job), processor.process(job)]);
    expect(results.filter((result) => result.redis === 'applied')).toHaveLength(1);
    expect(await ledgerState(sku)).toEqual({ onHand: 8, allocations: 1 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 8, reserved: 0, available: 8 });
  });

  it('a crash between the ledger commit and the Redis step: the re-run finishes Redis, once', async () => {
    const sku = await createSku(harness, 10);
    const job = await confirmedJob(sku, 4);
    // The first run wrote the ledger and died before telling Redis.
    await new LedgerWriter(harness.stockhold.knex).commitBatch([job]);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 4, available: 6 });
    expect(await processor.process(job)).toEqual({ ledger: 'already-committed', redis: 'applied' });
    expect(await processor.process(job)).toEqual({ ledger: 'already-committed', redis: 'unchanged (committed)' });
    expect(await ledgerState(sku)).toEqual({ onHand: 6, allocations: 1 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 6, reserved: 0, available: 6 });
  });

  it('a job with a stale fence does not move the record; the ledger entry it wrote is applied once', async () => {
    const sku = await createSku(harness, 10);
    const job = await confirmedJob(sku, 1);
    const stale = { ...job, fence: job.fence - 1 };
    expect((await processor.process(stale)).redis).toBe('unchanged (confirmed)');
    // The allocation is in the ledger, so Redis reflects it (hold removed with it); only the
    // record, which the fence guards, still says confirmed.
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 9, reserved: 0, available: 9 });
    expect((await harness.call('GET', `/v1/reservations/${job.reservationId}`)).body.status).toBe('confirmed');
    expect((await processor.process(job)).redis).toBe('applied');
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 9, reserved: 0, available: 9 });
    expect(await ledgerState(sku)).toEqual({ onHand: 9, allocations: 1 });
  });
});

describe('a worker process SIGKILLed mid-commit', () => {
  it('the job runs again on another worker and the ledger shows exactly one allocation', async () => {
    const workerScript = path.join(__dirname, '..', 'dist', 'apps', 'worker', 'main.js');
    expect(existsSync(workerScript), 'npm test builds dist/ first').toBe(true);
    const sku = await createSku(harness, 10);
    const job = await confirmedJob(sku, 5);
    // Hold the SKU's projection row so the worker blocks inside its ledger transaction.
    const blocker = await harness.stockhold.knex.transaction();
    await blocker('skus').select('sku').where({ sku }).forUpdate();
    const env = {
      ...process.env,
      REDIS_URL: testRedisUrl,
      DATABASE_URL: testDatabaseUrl,
      REDIS_KEY_PREFIX: harness.config.redisKeyPrefix,
      LOG_LEVEL: 'silent',
      COMMIT_LOCK_DURATION_MS: '1000',
      COMMIT_STALLED_INTERVAL_MS: '500',
    };
    const doomed = spawn(process.execPath, [workerScript], { env, stdio: 'ignore' });
    try {
      const deadline = Date.now() + 15_000;
      let waiting = false;
      while (!waiting && Date.now() < deadline) {
        const rows = await harness.stockhold.knex('pg_stat_activity').count({ n: '*' }).where({ wait_event_type: 'Lock', datname: new URL(testDatabaseUrl).pathname.slice(1) });
        waiting = Number(rows[0]!.n) > 0;
        if (!waiting) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(waiting, 'the worker reached the locked row').toBe(true);
      doomed.kill('SIGKILL');
      await new Promise((resolve) => doomed.once('exit', resolve));
    } finally {
      await blocker.rollback();
    }
    expect(await ledgerState(sku)).toEqual({ onHand: 10, allocations: 0 });
    // Another worker picks the stalled job up once its lock has run out.
    const stop = await startInProcessWorker(env);
    try {
      const settled = await harness.stockhold.commits.waitFor(job.reservationId, (r) => r.status === 'committed', 20_000);
      expect(settled?.status).toBe('committed');
    } finally {
      await stop();
    }
    expect(await ledgerState(sku)).toEqual({ onHand: 5, allocations: 1 });
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 5, reserved: 0, available: 5 });
  });
});

async function startInProcessWorker(env: Record<string, string | undefined>): Promise<() => Promise<void>> {
  const { loadConfig } = await import('../lib/config');
  const { createStockhold } = await import('../lib/stockhold');
  const { startWorker } = await import('../apps/worker/worker');
  const stockhold = await createStockhold(loadConfig(env));
  const worker = await startWorker(stockhold, pino({ level: 'silent' }));
  return async () => {
    await worker.stop();
    await stockhold.close();
  };
}
