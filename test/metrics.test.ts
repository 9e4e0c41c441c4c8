// Proves GET /metrics over real traffic (HTTP, Redis, Postgres, BullMQ): each outcome and
// transition is counted where it happens, holds' lifetimes and the reclaim lag (TTL skew) are
// measured, commit lag and batch size come from the real worker, queue depths and clock skew are
// sampled at scrape time, the reconciler's drift gauge shows a disagreement and its repair, and
// no label carries a SKU, customer or reservation id. Metrics live in the process: nothing of
// them is in Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newReservationId as createReservationId } from '../lib/reservations/reservation-service';
import { createSku, idempotencyKey, startHarness, uniqueName, type Harness } from './support/harness';
import { parseExposition, value, type Exposition } from './support/prometheus-text';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '0' }, { ownDatabase: true });
  await harness.startWorker();
});
afterAll(async () => {
  await harness.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const reserve = (sku: string, quantity: number, extra: Record<string, unknown> = {}, key = idempotencyKey()) =>
  harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: key, body: { lines: [{ sku, quantity }], ...extra } });

async function scrape(target: Harness = harness): Promise<{ exposition: Exposition; text: string; contentType: string | null }> {
  const response = await fetch(`${target.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  const text = await response.text();
  return { exposition: parseExposition(text), text, contentType: response.headers.get('content-type') };
}

describe('GET /metrics', () => {
  it('counts reservation outcomes, transitions, hold lifetimes, reclaim lag and commit lag from real traffic', async () => {
    const before = (await scrape()).exposition;
    const delta = (after: Exposition, name: string, labels: Record<string, string> = {}) => (value(after, name, labels) ?? 0) - (value(before, name, labels) ?? 0);
    const sku = await createSku(harness, 5, 'MET');

    const key = idempotencyKey();
    const created = await reserve(sku, 2, { customerId: 'customer-secret-77' }, key);
    expect(created.status).toBe(201);
    expect((await reserve(sku, 2, { customerId: 'customer-secret-77' }, key)).status).toBe(201);
    expect((await reserve(sku, 10)).status).toBe(409);
    expect((await reserve(uniqueName('NOSUCH'), 1)).status).toBe(404);

    // A hold of one second, left to expire; reading the SKU reclaims it.
    const expiring = await reserve(sku, 1, { ttlSeconds: 1 });
    expect(expiring.status).toBe(201);
    await sleep(1300);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.reserved).toBe(2);

    const released = await reserve(sku, 1);
    expect((await harness.call('DELETE', `/v1/reservations/${released.body.id}`, { as: 'checkout' })).status).toBe(200);

    const confirmed = await harness.call('POST', `/v1/reservations/${created.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
    expect(confirmed.body.status).toBe('committed');
    const cancelled = await harness.call('POST', `/v1/reservations/${created.body.id}/cancel`, { as: 'fulfillment', headers: { prefer: 'wait=10' } });
    expect(cancelled.body.status).toBe('cancelled');

    const { exposition: after, text, contentType } = await scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(delta(after, 'stockhold_reservations_total', { outcome: 'created' })).toBe(3);
    expect(delta(after, 'stockhold_reservations_total', { outcome: 'replayed' })).toBe(1);
    expect(delta(after, 'stockhold_reservations_total', { outcome: 'insufficient_stock' })).toBe(1);
    expect(delta(after, 'stockhold_reservations_total', { outcome: 'sku_not_found' })).toBe(1);
    for (const to of ['expired', 'released', 'confirmed', 'committed', 'cancelled']) {
      expect(delta(after, 'stockhold_reservation_transitions_total', { to }), to).toBe(1);
    }
    expect(delta(after, 'stockhold_reservation_transitions_total', { to: 'rejected' })).toBe(0);

    // The expired hold lived its TTL (1 s, from the time its id carries) and came back late by
    // the 1.3 s wait minus the second, give or take the clocks.
    expect(delta(after, 'stockhold_hold_duration_seconds_count', { outcome: 'expired' })).toBe(1);
    // Creation time from the API's clock, expiry from Redis's: a loaded machine adds some slack.
    expect(delta(after, 'stockhold_hold_duration_seconds_sum', { outcome: 'expired' })).toBeGreaterThan(0.9);
    expect(delta(after, 'stockhold_hold_duration_seconds_sum', { outcome: 'expired' })).toBeLessThan(1.5);
    expect(delta(after, 'stockhold_hold_reclaim_lag_seconds_count')).toBe(1);
    const lag = delta(after, 'stockhold_hold_reclaim_lag_seconds_sum');
    expect(lag).toBeGreaterThan(0.1);
    expect(lag).toBeLessThan(5);
    expect(delta(after, 'stockhold_hold_reclaim_lag_seconds_bucket', { le: '0.01' })).toBe(0);
    expect(delta(after, 'stockhold_hold_reclaim_lag_seconds_bucket', { le: '+Inf' })).toBe(1);
    expect(delta(after, 'stockhold_hold_duration_seconds_count', { outcome: 'released' })).toBe(1);
    expect(delta(after, 'stockhold_hold_duration_seconds_count', { outcome: 'confirmed' })).toBe(1);
    expect(delta(after, 'stockhold_commit_lag_seconds_count')).toBe(1);
    expect(delta(after, 'stockhold_commit_lag_seconds_sum')).toBeLessThan(10);
    expect(delta(after, 'stockhold_commit_batch_size_count')).toBeGreaterThanOrEqual(1);
    // The hot path's Redis calls (one Redis; a cluster's carts go slot by slot, unbatched): one
    // request at a time, each call carried one reservation.
    const calls = delta(after, 'stockhold_reservation_batch_size_count');
    if (harness.config.redisClusterNodes === null) {
      expect(calls).toBeGreaterThanOrEqual(6);
      expect(delta(after, 'stockhold_reservation_batch_size_sum')).toBe(calls);
      expect(delta(after, 'stockhold_reservation_batch_size_bucket', { le: '1' })).toBe(calls);
    } else {
      expect(calls).toBe(0);
    }

    // HTTP by route template, never by concrete path.
    expect(delta(after, 'stockhold_http_requests_total', { method: 'POST', route: '/v1/reservations', status: '201' })).toBe(4);
    expect(delta(after, 'stockhold_http_requests_total', { method: 'POST', route: '/v1/reservations', status: '409' })).toBe(1);
    expect(delta(after, 'stockhold_http_requests_total', { method: 'DELETE', route: '/v1/reservations/:id', status: '200' })).toBe(1);
    expect(delta(after, 'stockhold_http_requests_total', { method: 'POST', route: '/v1/reservations/:id/confirm' })).toBe(1);
    expect(delta(after, 'stockhold_http_request_duration_seconds_count', { method: 'GET', route: '/v1/skus/:sku' })).toBe(1);

    // Bounded labels: no SKU, customer or reservation id anywhere.
    for (const secret of [sku, 'customer-secret-77', created.body.id as string, released.body.id as string]) expect(text).not.toContain(secret);
  });

  it('labels unknown routes as unmatched and 405s by their template', async () => {
    const before = (await scrape()).exposition;
    expect((await harness.call('GET', `/v1/${uniqueName('nowhere')}`)).status).toBe(404);
    expect((await harness.call('PATCH', `/v1/reservations/${createReservationId()}`)).status).toBe(405);
    const { exposition: after, text } = await scrape();
    expect((value(after, 'stockhold_http_requests_total', { route: 'unmatched', status: '404' }) ?? 0) - (value(before, 'stockhold_http_requests_total', { route: 'unmatched', status: '404' }) ?? 0)).toBe(1);
    expect((value(after, 'stockhold_http_requests_total', { route: 'unmatched', status: '405' }) ?? 0) - (value(before, 'stockhold_http_requests_total', { route: 'unmatched', status: '405' }) ?? 0)).toBe(1);
    expect(text).not.toContain('nowhere');
  });

  it('samples every queue by state, the Redis clock skew, readiness and the default process metrics', async () => {
    const { exposition } = await scrape();
    for (const queue of ['commits', 'reconcile', 'webhooks']) {
      for (const state of ['waiting', 'active', 'delayed', 'failed']) {
        expect(value(exposition, 'stockhold_queue_jobs', { queue, state }), `${queue} ${state}`).toBeGreaterThanOrEqual(0);
      }
    }
    const skew = value(exposition, 'stockhold_redis_clock_skew_seconds');
    expect(skew).toBeDefined();
    expect(Math.abs(skew!)).toBeLessThan(1);
    expect(value(exposition, 'stockhold_ready')).toBe(1);
    expect(value(exposition, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(value(exposition, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(exposition.types.get('stockhold_hold_duration_seconds')).toBe('histogram');
    // Nothing of the metrics is kept in Redis.
    expect(await harness.stockhold.redis.exists(`${harness.config.redisKeyPrefix}metrics`)).toBe(0);
  });

  it('shows drift as the reconciler finds it, and back to 0 once repaired', async () => {
    const sku = await createSku(harness, 7, 'DRIFT');
    await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(sku), 'onHand', 9);
    const before = (await scrape()).exposition;
    const dryRun = await harness.call('POST', '/v1/reconcile?dryRun=true');
    expect(dryRun.status).toBe(200);
    expect(value((await scrape()).exposition, 'stockhold_redis_ledger_drift_skus')).toBe(1);
    const run = await harness.call('POST', '/v1/reconcile');
    expect(run.body.skusOutOfAgreement).toBe(1);
    const after = (await scrape()).exposition;
    expect(value(after, 'stockhold_redis_ledger_drift_skus')).toBe(1);
    expect((value(after, 'stockhold_reconcile_runs_total', { trigger: 'manual' }) ?? 0) - (value(before, 'stockhold_reconcile_runs_total', { trigger: 'manual' }) ?? 0)).toBe(2);
    expect((value(after, 'stockhold_reconcile_corrections_total', { field: 'onHand' }) ?? 0) - (value(before, 'stockhold_reconcile_corrections_total', { field: 'onHand' }) ?? 0)).toBe(1);
    expect((value(after, 'stockhold_reconcile_run_duration_seconds_count') ?? 0) - (value(before, 'stockhold_reconcile_run_duration_seconds_count') ?? 0)).toBe(2);
    expect(value(after, 'stockhold_reconcile_last_success_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    await harness.call('POST', '/v1/reconcile');
    expect(value((await scrape()).exposition, 'stockhold_redis_ledger_drift_skus')).toBe(0);
    expect((await harness.call('GET', `/v1/skus/${sku}`)).body.onHand).toBe(7);
  });

  it('is off, route and middleware, with METRICS_ENABLED=false', async () => {
    const quiet = await startHarness({ METRICS_ENABLED: 'false' });
    try {
      expect((await fetch(`${quiet.baseUrl}/metrics`)).status).toBe(404);
      const sku = await createSku(quiet, 1, 'QUIET');
      expect((await quiet.call('GET', `/v1/skus/${sku}`)).status).toBe(200);
      const text = await quiet.stockhold.metrics.registry.metrics();
      expect(value(parseExposition(text), 'stockhold_http_requests_total')).toBeUndefined();
    } finally {
      await quiet.close();
    }
  });
});

describe('unavailable', () => {
  it('counts a reservation refused with 503 because a backend is down (Postgres, for a SKU Redis must rebuild), and readiness 0', async () => {
    // Postgres unreachable (nothing listens on port 1); Redis up. A SKU Redis does not have is
    // rebuilt from the ledger, which cannot answer: 503, counted as unavailable. (Redis down is
    // the outage tests' subject; with Redis killed under a scrape, an unhandled connect rejection
    // appeared in some CI runs: docs/design.md, Known gaps.)
    const down = await startHarness({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/stockhold_test_down', POSTGRES_CONNECT_TIMEOUT_MS: '200' });
    try {
      const response = await down.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku: uniqueName('REBUILD'), quantity: 1 }] } });
      expect(response.status).toBe(503);
      expect(response.body).toMatchObject({ code: 'backend_unavailable', backend: 'postgres' });
      const { exposition } = await scrape(down);
      expect(value(exposition, 'stockhold_reservations_total', { outcome: 'unavailable' })).toBe(1);
      expect(value(exposition, 'stockhold_ready')).toBe(0);
    } finally {
      await down.close();
    }
  }, 30_000);
});
