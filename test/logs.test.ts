// Proves the logs of the real processes (dist/, one OS process each): one reservation can be
// followed by its request id from the API's access line through the commit worker's job line
// (and the webhook delivery, once the event goes out), and no secret reaches any log: not the API
// keys (right or wrong, Bearer or Basic), not the webhook secret, not the database password.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secrets } from './support/harness';
import { privateEnvironment, startApp, stopApp, type Environment, type Service } from './support/services';

const webhookSecret = `whsec-${randomBytes(12).toString('hex')}`;
const databasePassword = `dbpass-${randomBytes(8).toString('hex')}`;
const wrongSecret = `wrong-${randomBytes(8).toString('hex')}`;

let environment: Environment;
let receiver: Server;
const received: Array<{ eventId: string | undefined; body: string }> = [];
let api: Service & { port: number };
let worker: Service;

beforeAll(async () => {
  receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ eventId: request.headers['stockhold-event-id'] as string | undefined, body });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  environment = await privateEnvironment({ WEBHOOK_URLS: receiverUrl, WEBHOOK_SECRET: webhookSecret, WEBHOOK_POLL_MS: '50' });
  // Trust authentication accepts any password: the URL carries one, as production's would.
  const withPassword = new URL(environment.env.DATABASE_URL as string);
  withPassword.password = databasePassword;
  const env = { ...environment.env, DATABASE_URL: withPassword.toString(), LOG_LEVEL: 'debug' };
  api = await startApp('api', env);
  worker = await startApp('worker', env);
});

afterAll(async () => {
  if (api !== undefined) await stopApp(api);
  if (worker !== undefined) await stopApp(worker);
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  await environment.close();
});

async function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`http://127.0.0.1:${api.port}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('logs', () => {
  it('follow one reservation by its request id from the API through the commit job to the webhook delivery', async () => {
    const admin = { authorization: `Bearer ${secrets.admin}` };
    const sku = `LOG-${randomBytes(5).toString('hex')}`;
    expect((await call('PUT', `/v1/skus/${sku}/stock`, { ...admin, 'idempotency-key': 'stock-1' }, { onHand: 3 })).status).toBe(200);
    const created = await call('POST', '/v1/reservations', { authorization: `Bearer ${secrets.checkout}`, 'idempotency-key': 'reserve-1' }, { lines: [{ sku, quantity: 1 }] });
    expect(created.status).toBe(201);
    const requestId = `trace-${randomBytes(6).toString('hex')}`;
    const confirmed = await call('POST', `/v1/reservations/${created.body.id}/confirm`, { authorization: `Bearer ${secrets.checkout}`, 'x-request-id': requestId, prefer: 'wait=10' });
    expect(confirmed.body.status).toBe('committed');

    // Log lines are buffered (up to 4 KiB or 250 ms): wait for them.
    const accessLine = await api.waitForLog((line) => line.msg === 'request' && line.requestId === requestId, 5000);
    expect(accessLine).toMatchObject({ method: 'POST', status: 200 });
    await worker.waitForLog((line) => line.msg === 'commit job done' && line.requestId === requestId);
    const jobLine = worker.lines.find((line) => line.msg === 'commit job done' && line.requestId === requestId);
    expect(jobLine).toMatchObject({ reservationId: created.body.id, kind: 'commit', ledger: 'committed' });
    // The committed event goes out as a webhook; its delivery line carries the same request id.
    await waitUntil(() => received.some((hook) => hook.body.includes(created.body.id)), 15_000, 'webhook delivery');
    await worker.waitForLog((line) => line.requestId === requestId && typeof line.eventId !== 'undefined' && line.status === 204, 10_000);
  }, 40_000);

  it('never contain a secret: API keys right or wrong, Bearer or Basic, the webhook secret, the database password', async () => {
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    expect((await call('GET', '/v1/reconcile/runs', { authorization: `Bearer ${wrongSecret}` })).status).toBe(401);
    expect((await call('GET', '/admin/queues/', { authorization: basic('ops', wrongSecret) })).status).toBe(401);
    expect((await call('GET', '/admin/queues/', { authorization: basic('ops', secrets.admin) })).status).toBe(200);
    expect((await call('GET', '/v1/reconcile/runs', { authorization: `Bearer ${secrets.fulfillment}` })).status).toBe(403);
    expect((await call('GET', `/v1/events?after=0&token=${wrongSecret}`, { authorization: `Bearer ${secrets.admin}` })).status).toBeLessThan(500);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const everything = api.output() + worker.output();
    expect(everything.length).toBeGreaterThan(1000);
    for (const secret of [...Object.values(secrets), webhookSecret, databasePassword, Buffer.from(`ops:${secrets.admin}`).toString('base64')]) {
      expect(everything, 'a secret in the logs').not.toContain(secret);
    }
    // The wrong secret came in a query string: access lines carry the path, not the query.
    expect(everything).not.toContain(wrongSecret);
  }, 30_000);
});
