// Proves /metrics of the real processes (dist/): the worker and the reconciler serve their own on
// METRICS_PORT (and nothing else there), and with WEB_CONCURRENCY=2 the API's primary serves the
// sum over its workers on METRICS_PORT, while the shared port answers for one worker only.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secrets } from './support/harness';
import { parseExposition, value } from './support/prometheus-text';
import { privateEnvironment, startApp, stopApp, type Environment, type Service } from './support/services';

let environment: Environment;
beforeAll(async () => {
  environment = await privateEnvironment();
});
afterAll(async () => {
  await environment.close();
});

async function metricsPortOf(service: Service): Promise<number> {
  const line = await service.waitForLog((entry) => entry.msg === 'metrics listening');
  return line.port as number;
}

async function scrape(port: number) {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  return parseExposition(await response.text());
}

describe('METRICS_PORT', () => {
  it('the worker and the reconciler serve their own metrics; the worker counts the commits it wrote', async () => {
    const api = await startApp('api', environment.env);
    const worker = await startApp('worker', { ...environment.env, METRICS_PORT: '0' });
    const reconciler = await startApp('reconciler', { ...environment.env, METRICS_PORT: '0', RECONCILE_INTERVAL_MS: '200' });
    try {
      const call = (method: string, path: string, secret: string, body?: unknown, headers: Record<string, string> = {}) =>
        fetch(`http://127.0.0.1:${api.port}${path}`, {
          method,
          headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'idempotency-key': randomBytes(8).toString('hex'), ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
        }).then(async (response) => ({ status: response.status, body: (await response.json()) as any }));
      const sku = `MP-${randomBytes(5).toString('hex')}`;
      expect((await call('PUT', `/v1/skus/${sku}/stock`, secrets.admin, { onHand: 5 })).status).toBe(200);
      const created = await call('POST', '/v1/reservations', secrets.checkout, { lines: [{ sku, quantity: 2 }] });
      expect((await call('POST', `/v1/reservations/${created.body.id}/confirm`, secrets.checkout, undefined, { prefer: 'wait=10' })).body.status).toBe('committed');

      const workerPort = await metricsPortOf(worker);
      const workerMetrics = await scrape(workerPort);
      expect(value(workerMetrics, 'stockhold_reservation_transitions_total', { to: 'committed' })).toBe(1);
      expect(value(workerMetrics, 'stockhold_commit_lag_seconds_count')).toBe(1);
      expect(value(workerMetrics, 'stockhold_http_requests_total')).toBeUndefined();
      expect((await fetch(`http://127.0.0.1:${workerPort}/`)).status).toBe(404);

      const reconcilerPort = await metricsPortOf(reconciler);
      const deadline = Date.now() + 10_000;
      let runs: number | undefined;
      while (Date.now() < deadline) {
        runs = value(await scrape(reconcilerPort), 'stockhold_reconcile_runs_total', { trigger: 'scheduled' });
        if (runs !== undefined && runs >= 1) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(runs).toBeGreaterThanOrEqual(1);
      expect(value(await scrape(reconcilerPort), 'stockhold_redis_ledger_drift_skus')).toBe(0);
    } finally {
      await stopApp(api);
      await stopApp(worker);
      await stopApp(reconciler);
    }
  }, 60_000);

  it('WEB_CONCURRENCY=2: the primary serves the sum over both API workers', async () => {
    const api = await startApp('api', { ...environment.env, WEB_CONCURRENCY: '2', METRICS_PORT: '0' });
    try {
      const primaryPort = await metricsPortOf(api);
      // Both workers must be listening before the requests, so both take some.
      await api.waitForLog((line) => line.msg === 'API listening' && line.pid !== api.lines.find((first) => first.msg === 'API listening')?.pid);
      const requests = 40;
      for (let index = 0; index < requests; index += 1) {
        // A new connection per request: the cluster's round robin spreads them over the workers.
        expect((await fetch(`http://127.0.0.1:${api.port}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);
      }
      const summed = await scrape(primaryPort);
      expect(value(summed, 'stockhold_http_requests_total', { route: '/healthz' })).toBe(requests);
      const one = parseExposition(await (await fetch(`http://127.0.0.1:${api.port}/metrics`, { headers: { connection: 'close' } })).text());
      expect(value(one, 'stockhold_http_requests_total', { route: '/healthz' })).toBeLessThan(requests);
      // Queue depths are the same for every process: the sum takes their maximum, not their total.
      expect(value(summed, 'stockhold_queue_jobs', { queue: 'commits', state: 'waiting' })).toBe(0);
      expect(value(summed, 'stockhold_ready')).toBe(1);
    } finally {
      await stopApp(api);
    }
  }, 60_000);
});
