// Proves the commit pipeline survives a real Postgres outage and a process restart: with a
// private Postgres cluster stopped, confirmations are still accepted (202) and their jobs wait
// and retry; when it is back, every confirmed reservation commits, exactly once. A new process
// over the same Redis and Postgres still answers for every committed reservation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';
import { dropRecord } from './support/records';
import { PrivatePostgres } from '../chaos/servers';

let postgres: PrivatePostgres;
let databaseUrl: string;
beforeAll(async () => {
  postgres = await PrivatePostgres.start();
  databaseUrl = postgres.url('stockhold_commit_outage');
  await prepareDatabaseAt(databaseUrl);
}, 60_000);
afterAll(async () => {
  await postgres.remove();
});

const settings = { COMMIT_BACKOFF_BASE_MS: '100', COMMIT_BACKOFF_MAX_MS: '500', POSTGRES_CONNECT_TIMEOUT_MS: '500', COMMIT_BATCH_WAIT_MS: '2' };

describe('Postgres stopped and restarted under confirmations', () => {
  it('accepts confirmations while down and commits every one when it is back', async () => {
    const harness = await startHarness({ ...settings, DATABASE_URL: databaseUrl });
    try {
      await harness.startWorker();
      const sku = await createSku(harness, 100);
      const ids: string[] = [];
      for (let index = 0; index < 30; index += 1) {
        const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }] } });
        ids.push(created.body.id);
      }
      await postgres.stop();
      const confirmations = await Promise.all(ids.map((id) => harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' })));
      expect(confirmations.map((response) => response.status)).toEqual(ids.map(() => 202));
      // Selling goes on from Redis meanwhile.
      expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 100, reserved: 60, available: 40 });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const failing = await harness.stockhold.commitQueue.queue.getJobCounts('delayed', 'wait', 'active', 'completed');
      expect(failing.completed).toBe(0);

      await postgres.start();
      for (const id of ids) {
        const settled = await harness.stockhold.commits.waitFor(id, (r) => r.status === 'committed', 20_000);
        expect(settled?.status).toBe('committed');
      }
      const knex = harness.stockhold.knex;
      expect(await knex('skus').first('on_hand').where({ sku })).toEqual({ on_hand: '40' });
      const entries = await knex('ledger_entries').count({ n: '*' }).sum({ total: 'delta' }).where({ sku, kind: 'allocation' });
      expect(entries[0]).toEqual({ n: '30', total: '-60' });
      expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 40, reserved: 0, available: 40 });
    } finally {
      await harness.close();
    }
  });
});

describe('a process restart', () => {
  it('keeps every committed reservation', async () => {
    const first = await startHarness({ ...settings, DATABASE_URL: databaseUrl });
    const prefix = first.config.redisKeyPrefix;
    await first.startWorker();
    const sku = await createSku(first, 20);
    const ids: string[] = [];
    for (let index = 0; index < 10; index += 1) {
      const created = await first.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      const confirmed = await first.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
      expect(confirmed.body.status).toBe('committed');
      ids.push(created.body.id);
    }
    // Stop everything but keep the data: a new process over the same Redis and Postgres.
    await first.close({ keepData: true });
    const second = await startHarness({ ...settings, DATABASE_URL: databaseUrl, REDIS_KEY_PREFIX: prefix });
    try {
      for (const id of ids) expect((await second.call('GET', `/v1/reservations/${id}`, { as: 'checkout' })).body.status).toBe('committed');
      expect((await second.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 0, available: 10 });
      // Even once Redis has forgotten them, Postgres answers.
      for (const id of ids) await dropRecord(second.stockhold.redis, second.stockhold.keys, id);
      for (const id of ids) expect((await second.call('GET', `/v1/reservations/${id}`, { as: 'checkout' })).body.status).toBe('committed');
    } finally {
      await second.close();
    }
  });
});
