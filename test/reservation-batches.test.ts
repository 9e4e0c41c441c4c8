// The hot path sends the reservations that reach one API process in one turn of its event loop as
// one Redis call (lib/scripts/create-reservation.ts, lua/createReservation-n.lua). Proves, against
// the real Redis, that a batch sells exactly what exists under real concurrency, that each
// reservation is answered as its own call would have been (a refusal, an error, an outage), that
// batches keep to their bound, and that requests over HTTP are batched too. One Redis only (a
// cluster's carts go slot by slot: vitest.cluster.config.mts leaves this file out).
import { randomBytes } from 'node:crypto';
import { Redis, ReplyError } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StockholdError } from '../lib/errors';
import { createRedis } from '../lib/redis/connection';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { redisKeys } from '../lib/redis/keys';
import { ScriptRunner, type ScriptName } from '../lib/redis/scripts';
import { loadConfig } from '../lib/config';
import { createBatchReservationsDefault, createBatchReservationsMax, ReservationScript, type CreateReservationCall } from '../lib/scripts/create-reservation';
import { createSku, idempotencyKey, startHarness, testRedisUrl, uniqueName, type Harness } from './support/harness';

const prefix = `t:batch:${randomBytes(4).toString('hex')}:`;
const keys = redisKeys(prefix);
const redis = new Redis(testRedisUrl);
const scripts = new ScriptRunner(redis);

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  redis.disconnect();
});

/** Counts the reservations each createReservation call carried (the real runner, watched). */
function watchCalls(runner: ScriptRunner): number[] {
  const sizes: number[] = [];
  const run = runner.run.bind(runner);
  runner.run = (name: ScriptName, callKeys, args, options) => {
    if (name === 'createReservation') sizes.push(Number(args[0]));
    return run(name, callKeys, args, options);
  };
  return sizes;
}

async function seedSku(onHand: number): Promise<string> {
  const sku = uniqueName('B');
  await redis.hset(keys.skuState(sku), 'onHand', onHand, 'pos', 1, 'reserved', 0, 'debit', 0);
  return sku;
}

function call(sku: string, overrides: Partial<CreateReservationCall> = {}): CreateReservationCall {
  const id = randomBytes(16).toString('base64url');
  return {
    id, clientId: 'shop', idempotencyKey: id, fingerprint: 'fp', customerId: null, lines: [{ sku, quantity: 1 }],
    holdTtlMs: 60_000, idempotencyTtlMs: 60_000, retentionMs: 60_000, reclaimPerSkuMax: 10, ...overrides,
  };
}

const heldUnits = async (sku: string) => (await redis.zrange(keys.skuHolds(sku), 0, -1)).reduce((sum, member) => sum + Number(member.split(':')[1]), 0);

describe('reservations sent in batches', () => {
  it('400 at once for 150 units: exactly 150 held, in calls of at most the bound, and Redis agrees', async () => {
    const runner = new ScriptRunner(redis);
    const sizes = watchCalls(runner);
    const reserve = new ReservationScript(runner, keys, 16);
    const sku = await seedSku(150);
    const results = await Promise.all(Array.from({ length: 400 }, () => reserve.create(call(sku))));
    expect(results.filter((result) => result.kind === 'created')).toHaveLength(150);
    expect(results.filter((result) => result.kind === 'insufficient')).toHaveLength(250);
    expect(sizes.reduce((sum, size) => sum + size, 0)).toBe(400);
    expect(Math.max(...sizes)).toBe(16);
    expect(sizes.length).toBe(25);
    expect(await redis.hget(keys.skuState(sku), 'reserved')).toBe('150');
    expect(await heldUnits(sku)).toBe(150);
  });

  it('a bound of 1 sends each reservation alone', async () => {
    const runner = new ScriptRunner(redis);
    const sizes = watchCalls(runner);
    const reserve = new ReservationScript(runner, keys, 1);
    const sku = await seedSku(5);
    const results = await Promise.all(Array.from({ length: 8 }, () => reserve.create(call(sku))));
    expect(results.map((result) => result.kind).sort()).toEqual([...Array(5).fill('created'), ...Array(3).fill('insufficient')].sort());
    expect(sizes).toEqual(Array(8).fill(1));
  });

  it('refuses a bound the script cannot take, in the class and in RESERVATION_BATCH_MAX; the default is the measured 16', () => {
    expect(() => new ReservationScript(scripts, keys, 0)).toThrow(/batchMax/);
    expect(() => new ReservationScript(scripts, keys, createBatchReservationsMax + 1)).toThrow(/batchMax/);
    expect(loadConfig({}).reservationBatchMax).toBe(createBatchReservationsDefault);
    expect(loadConfig({ RESERVATION_BATCH_MAX: '64' }).reservationBatchMax).toBe(64);
    expect(() => loadConfig({ RESERVATION_BATCH_MAX: '65' })).toThrow(/RESERVATION_BATCH_MAX/);
    expect(() => loadConfig({ RESERVATION_BATCH_MAX: '0' })).toThrow(/RESERVATION_BATCH_MAX/);
  });

  it('a batch closes before its keys pass the bound: large carts go in more calls', async () => {
    const runner = new ScriptRunner(redis);
    const sizes = watchCalls(runner);
    const reserve = new ReservationScript(runner, keys, 64);
    const skus = await Promise.all(Array.from({ length: 100 }, () => seedSku(10)));
    // Each cart has 100 lines: 202 keys, so at most 5 fit under 1,024 keys.
    const cart = (index: number) => call(skus[0]!, { lines: skus.map((sku) => ({ sku, quantity: 1 })), idempotencyKey: `big-${index}-${randomBytes(4).toString('hex')}` });
    const results = await Promise.all(Array.from({ length: 12 }, (_, index) => reserve.create(cart(index))));
    expect(results.filter((result) => result.kind === 'created')).toHaveLength(10);
    expect(sizes).toEqual([5, 5, 2]);
  });

  it('a reservation Redis refuses with an error fails alone, as its own call would: the others of its call are held', async () => {
    const runner = new ScriptRunner(redis);
    const sizes = watchCalls(runner);
    const reserve = new ReservationScript(runner, keys);
    const sku = await seedSku(10);
    const [first, broken, last] = await Promise.allSettled([
      reserve.create(call(sku)),
      reserve.create(call(sku, { clientId: 'bad|client' })),
      reserve.create(call(sku)),
    ]);
    expect(sizes).toEqual([3]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { kind: 'created' } });
    expect(last).toMatchObject({ status: 'fulfilled', value: { kind: 'created' } });
    expect(broken.status).toBe('rejected');
    const error = (broken as PromiseRejectedResult).reason;
    expect(error).toBeInstanceOf(ReplyError);
    expect((error as Error).message).toMatch(/^ASSERT a client id with "\|"/);
    expect(await redis.hget(keys.skuState(sku), 'reserved')).toBe('2');
  });

  it('what a reservation reclaimed before it raised is still reported (to the service\'s metrics), though its caller gets the error', async () => {
    const reported: string[] = [];
    const reserve = new ReservationScript(scripts, keys, 16, (holds) => reported.push(...holds.map((hold) => `${hold.reservationId}:${hold.quantity}`)));
    const a = await seedSku(3);
    const expiring = await reserve.create(call(a, { holdTtlMs: 1, lines: [{ sku: a, quantity: 2 }] }));
    expect(expiring.kind).toBe('created');
    await new Promise((resolve) => setTimeout(resolve, 5));
    // b's state is broken (fewer reserved than its expired holds): found after a's line reclaimed.
    const b = await seedSku(5);
    await redis.zadd(keys.skuHolds(b), 1000, 'ghost:2');
    const first = call(a);
    await expect(reserve.create({ ...first, lines: [{ sku: a, quantity: 1 }, { sku: b, quantity: 1 }] })).rejects.toThrow(/^ASSERT reserved 0 below expired holds 2/);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatch(/:2$/);
  });

  it('Redis down: every reservation of the call fails with backend_unavailable (503), none hangs', async () => {
    const down = createRedis({ url: 'redis://127.0.0.1:1/0', commandTimeoutMs: 500, autoPipelining: false });
    try {
      const runner = new ScriptRunner(down);
      const sizes = watchCalls(runner);
      const reserve = new ReservationScript(runner, keys);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => reserve.create(call('ANY'))));
      expect(sizes).toEqual([5]);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason;
        expect(reason).toBeInstanceOf(StockholdError);
        expect((reason as StockholdError).code).toBe('backend_unavailable');
      }
    } finally {
      down.disconnect();
    }
  });

  it('the tests\' latch sees each reservation alone, never the batch', async () => {
    const runner = new ScriptRunner(redis);
    const seen: Array<{ name: string; keys: number }> = [];
    runner.latch = async (name, latchKeys) => {
      seen.push({ name, keys: latchKeys.length });
    };
    const reserve = new ReservationScript(runner, keys);
    const sku = await seedSku(10);
    await Promise.all(Array.from({ length: 4 }, () => reserve.create(call(sku))));
    expect(seen).toEqual(Array(4).fill({ name: 'createReservation', keys: 4 }));
  });
});

describe('over HTTP', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(async () => {
    await harness.close();
  });

  it('300 simultaneous requests for 120 units: some calls carry several, exactly 120 are held', async () => {
    const sizes = watchCalls(harness.stockhold.scripts);
    const sku = await createSku(harness, 120, 'BATCH');
    const results = await Promise.all(
      Array.from({ length: 300 }, () => harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 1 }] } })),
    );
    expect(results.filter((result) => result.status === 201)).toHaveLength(120);
    expect(results.filter((result) => result.status === 409)).toHaveLength(180);
    expect(sizes.reduce((sum, size) => sum + size, 0)).toBe(300);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(harness.config.reservationBatchMax);
    // The metric the dashboard shows counts the same calls.
    const histogram = (await harness.stockhold.metrics.reservationBatchSize.get()).values;
    expect(histogram.find((sample) => sample.metricName === 'stockhold_reservation_batch_size_sum')?.value).toBeGreaterThanOrEqual(300);
    expect(histogram.find((sample) => sample.metricName === 'stockhold_reservation_batch_size_count')?.value).toBeGreaterThanOrEqual(sizes.length);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body).toMatchObject({ onHand: 120, reserved: 120, available: 0 });
  });
});
