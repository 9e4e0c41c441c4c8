// Proves fail-closed behaviour with real outages: a private redis-server is SIGKILLed and
// restarted empty, a private Postgres cluster is stopped and started. Every affected request gets
// 503 backend_unavailable with Retry-After (never a 500), only what needs the missing backend
// fails, nothing half-applied is left behind, and service resumes by itself afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import { createSku, idempotencyKey, startHarness, uniqueName, type Harness } from './support/harness';
import { PrivatePostgres, PrivateRedis } from '../chaos/servers';

const recoverWaitMs = 15_000;

async function waitUntilReady(harness: Harness): Promise<void> {
  const deadline = Date.now() + recoverWaitMs;
  while (Date.now() < deadline) {
    if ((await harness.call('GET', '/readyz', { as: null })).status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('service did not become ready again');
}

async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + recoverWaitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function expect503(response: { status: number; headers: Headers; body: any }, backend: string): void {
  expect(response.status).toBe(503);
  expect(response.body).toMatchObject({ code: 'backend_unavailable', backend });
  expect(response.headers.get('retry-after')).toBe('1');
}

describe('Redis killed and restarted empty', () => {
  let redis: PrivateRedis;
  let harness: Harness;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
    harness = await startHarness({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '500' });
  });
  afterAll(async () => {
    await harness.close();
    await redis.remove();
  });

  it('fails closed with 503 while down, changes no ledger row, and sells exactly the ledger stock after', async () => {
    const sku = await createSku(harness, 10);
    const held = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }] } });
    expect(held.status).toBe(201);
    const entriesBefore = await harness.stockhold.knex('ledger_entries').count({ n: '*' }).where({ sku });

    await redis.kill();
    expect503(await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } }), 'redis');
    expect503(await harness.call('GET', `/v1/skus/${sku}`), 'redis');
    expect503(await harness.call('GET', `/v1/reservations/${held.body.id}`, { as: 'checkout' }), 'redis');
    expect503(await harness.call('DELETE', `/v1/reservations/${held.body.id}`, { as: 'checkout' }), 'redis');
    expect503(await harness.call('POST', `/v1/reservations/${held.body.id}/confirm`, { as: 'checkout' }), 'redis');
    expect503(await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 3 } }), 'redis');
    expect503(await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: -1, reason: 'x' } }), 'redis');
    expect((await harness.call('GET', '/readyz', { as: null })).status).toBe(503);
    expect(await harness.stockhold.knex('ledger_entries').count({ n: '*' }).where({ sku })).toEqual(entriesBefore);
    expect(await harness.stockhold.knex('skus').first('on_hand').where({ sku })).toEqual({ on_hand: '10' });

    await redis.start();
    await waitUntilReady(harness);
    // Redis kept nothing: the SKU is rebuilt from the ledger on first use, and exactly its
    // stock can be sold (the lost hold's units are sellable again).
    const results = await Promise.all(
      Array.from({ length: 30 }, () => harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } })),
    );
    expect(results.filter((result) => result.status === 201)).toHaveLength(10);
    expect(results.every((result) => result.status === 201 || result.status === 409)).toBe(true);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 10, available: 0 });
  });
});

// A Redis that cannot write its snapshot refuses every write with MISCONF until a save succeeds
// (stop-writes-on-bgsave-error). That is a backend that cannot serve now, not a bug: 503, and the
// reservation that a batch carried in that state is refused whole.
describe('Redis refusing writes because it cannot persist (MISCONF)', () => {
  let redis: PrivateRedis;
  let harness: Harness;
  beforeAll(async () => {
    // `dir` is a protected setting: this private Redis lets the test move it.
    redis = await PrivateRedis.start({ extraArgs: ['--enable-protected-configs', 'yes'] });
    harness = await startHarness({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' });
  });
  afterAll(async () => {
    await harness.close();
    await redis.remove();
  });

  it('answers 503, not 500, holds nothing, and serves again once a save succeeds', async () => {
    const sku = await createSku(harness, 5);
    const admin = harness.stockhold.redis;
    const unwritable = mkdtempSync(path.join(tmpdir(), 'stockhold-misconf-'));
    const saveDir = String(((await admin.call('CONFIG', 'GET', 'dir')) as string[])[1]);
    await admin.call('CONFIG', 'SET', 'save', '3600 1');
    await admin.call('CONFIG', 'SET', 'dir', unwritable);
    rmSync(unwritable, { recursive: true, force: true });
    await admin.call('BGSAVE').catch(() => undefined);
    await until(async () => /rdb_last_bgsave_status:err/.test(await admin.info('persistence')));
    try {
      const refused = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
      expect503(refused, 'redis');
      expect(await admin.hget(harness.stockhold.keys.skuState(sku), 'reserved')).toBe('0');
    } finally {
      await admin.call('CONFIG', 'SET', 'dir', saveDir);
      await admin.call('SAVE').catch(() => undefined);
      await admin.call('CONFIG', 'SET', 'save', '');
    }
    expect((await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } })).status).toBe(201);
  });
});

describe('Postgres stopped and started', () => {
  let postgres: PrivatePostgres;
  let harness: Harness;
  beforeAll(async () => {
    postgres = await PrivatePostgres.start();
    const url = postgres.url('stockhold_outage');
    await prepareDatabaseAt(url);
    harness = await startHarness({ DATABASE_URL: url, POSTGRES_CONNECT_TIMEOUT_MS: '500', UNKNOWN_SKU_CACHE_MS: '30000' });
  }, 60_000);
  afterAll(async () => {
    await harness.close();
    await postgres.remove();
  });

  it('keeps selling from Redis while stock changes fail closed, then resumes', async () => {
    const sku = await createSku(harness, 10);
    const unknown = uniqueName('NOSUCH');
    expect((await harness.call('GET', `/v1/skus/${unknown}`)).status).toBe(404);
    await postgres.stop();
    // Remembered as unknown: repeats answer 404 from Redis, without Postgres.
    expect((await harness.call('GET', `/v1/skus/${unknown}`)).body.code).toBe('sku_not_found');
    expect((await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku: unknown, quantity: 1 }] } })).status).toBe(404);

    const held = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 3 }] } });
    expect(held.status).toBe(201);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 3, available: 7 });
    expect((await harness.call('GET', `/v1/reservations/${held.body.id}`, { as: 'checkout' })).body.status).toBe('pending');
    const other = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } });
    expect((await harness.call('DELETE', `/v1/reservations/${other.body.id}`, { as: 'checkout' })).body.status).toBe('released');

    expect503(await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 4 } }), 'postgres');
    const key = idempotencyKey();
    expect503(await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta: -2, reason: 'damaged' } }), 'postgres');
    // A SKU Redis does not have cannot be told apart from an unknown one without the ledger.
    expect503(await harness.call('GET', `/v1/skus/${uniqueName('UNSEEN')}`), 'postgres');
    const ready = await harness.call('GET', '/readyz', { as: null });
    expect(ready.status).toBe(503);
    expect(ready.body.checks.redis).toBe('ok');
    expect(ready.body.checks.postgres).toMatch(/^unavailable/);
    // Redis was not changed by the refused stock changes.
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toEqual({ sku, onHand: 10, reserved: 3, available: 7 });

    await postgres.start();
    await waitUntilReady(harness);
    // The refused adjustment's key was freed: the same retry now applies, once.
    const retried = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: key, body: { delta: -2, reason: 'damaged' } });
    expect(retried.status).toBe(201);
    expect(retried.body).toEqual({ sku, onHand: 8, reserved: 3, available: 5 });
    expect(await harness.stockhold.knex('skus').first('on_hand').where({ sku })).toEqual({ on_hand: '8' });
  });
});
