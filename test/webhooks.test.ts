// Proves signed webhook delivery end to end: events written through the real API (and, for the
// commit-order cases, by open knex transactions) reach real node:http receivers through the real
// dispatcher, BullMQ on the real Redis and the real Postgres. It checks what a receiver sees
// (headers, the signature over the raw body, the body GET /v1/events lists), the retry schedule
// up to a 2xx and nothing after it, one job per (event, URL), dead letters in the failed set, the
// two commit-order interleavings the dispatcher's (txid, id) order exists for, and restarts with
// two dispatchers at once. Each test has its own database, Redis prefix and receivers.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startWebhooks } from '../apps/worker/webhooks';
import type { WebhookResult } from '../lib/metrics/metrics';
import { WebhookDispatcher } from '../lib/webhooks/dispatcher';
import { signPayload, verifySignature } from '../lib/webhooks/signature';
import { urlKeyOf, webhookJobId, type WebhookJob } from '../lib/webhooks/webhook-jobs';
import { webhookUserAgent } from '../lib/webhooks/webhook-sender';
import { startHarness, uniqueName, type Harness } from './support/harness';

const secret = 'whsec-test-0123456789abcdef';
const toleranceSeconds = 300;
const pollMs = 50;
/** Settings that make retries and polls fast enough for a test. */
const fast = { WEBHOOK_SECRET: secret, WEBHOOK_BACKOFF_BASE_MS: '20', WEBHOOK_BACKOFF_MAX_MS: '100', WEBHOOK_POLL_MS: String(pollMs) };
/** The longest a condition is waited for (the xmin horizon is cluster-wide: other work may hold it back). */
const waitMs = 20_000;
const waitStepMs = 20;
/** "Never again" is checked after this long: ten polls and two of the longest backoffs (100 ms). */
const quietMs = 10 * pollMs + 200;

const silent = pino({ level: 'silent' });

interface Delivery {
  readonly eventId: number;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawBody: string;
  readonly status: number;
  readonly receivedAtSeconds: number;
}

/** Status 0 from `answer`: hold the request open and never answer it. */
const neverAnswer = 0;

/** A webhook receiver on an ephemeral port; `answer` picks the status of the nth request for an event. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  private constructor(
    private readonly server: Server,
    private readonly port: number,
  ) {}

  static async start(answer: (eventId: number, nth: number) => number = () => 200): Promise<Receiver> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const receiver = new Receiver(server, (server.address() as AddressInfo).port);
    server.on('request', (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const eventId = Number(request.headers['stockhold-event-id']);
        const status = answer(eventId, receiver.countFor(eventId) + 1);
        receiver.deliveries.push({
          eventId,
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          rawBody: Buffer.concat(chunks).toString('utf8'),
          status,
          receivedAtSeconds: Math.floor(Date.now() / 1000),
        });
        if (status !== neverAnswer) response.writeHead(status, { 'Content-Type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
      });
    });
    return receiver;
  }

  url(pathAndQuery = '/hook', userInfo = ''): string {
    return `http://${userInfo}127.0.0.1:${this.port}${pathAndQuery}`;
  }

  countFor(eventId: number): number {
    return this.deliveries.filter((delivery) => delivery.eventId === eventId).length;
  }

  /** Event ids in the order their first request arrived. */
  firstArrivals(): number[] {
    return [...new Set(this.deliveries.map((delivery) => delivery.eventId))];
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function receiver(answer?: (eventId: number, nth: number) => number): Promise<Receiver> {
  const started = await Receiver.start(answer);
  cleanups.push(() => started.close());
  return started;
}

async function harnessFor(urls: readonly string[], overrides: Record<string, string> = {}): Promise<Harness> {
  const harness = await startHarness({ ...fast, WEBHOOK_URLS: urls.join(','), ...overrides }, { ownDatabase: true });
  cleanups.push(() => harness.close());
  return harness;
}

async function startDelivery(harness: Harness): Promise<() => Promise<void>> {
  const delivery = await startWebhooks(harness.stockhold, silent);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await delivery.stop();
  };
  cleanups.push(stop);
  return stop;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${waitMs} ms waiting for ${what}`);
    await sleep(waitStepMs);
  }
}

/** Sets a SKU's stock through the API: one `stock.adjusted` event; returns its id. */
async function stockEvent(harness: Harness, sku: string, onHand: number): Promise<number> {
  const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand } });
  expect(response.status).toBe(200);
  const row: { id: string } | undefined = await harness.stockhold.knex('events').first('id').whereRaw("data->>'sku' = ? AND (data->>'onHandAfter')::int = ?", [sku, onHand]).orderBy('id', 'desc');
  expect(row).toBeDefined();
  return Number(row!.id);
}

/** An outbox row written by a transaction the test holds open, as a ledger writer would. */
async function insertEvent(transaction: Knex.Transaction, note: string): Promise<number> {
  const [row] = await transaction('events').insert({ type: 'stock.adjusted', data: JSON.stringify({ sku: 'LATE', note }) }).returning('id');
  return Number((row as { id: string }).id);
}

async function counted(harness: Harness): Promise<Record<WebhookResult, number>> {
  const metric = await harness.stockhold.metrics.webhookDeliveries.get();
  const value = (result: WebhookResult) => metric.values.find((sample) => sample.labels.result === result)?.value ?? 0;
  return { delivered: value('delivered'), failed: value('failed'), dead: value('dead') };
}

async function cursorOf(harness: Harness, url: string): Promise<number | undefined> {
  const row: { last_event_id: string } | undefined = await harness.stockhold.knex('webhook_cursors').first('last_event_id').where({ url });
  return row === undefined ? undefined : Number(row.last_event_id);
}

describe('signature', () => {
  const body = '{"id":1,"type":"stock.adjusted","occurredAt":"2026-01-01T00:00:00.000Z","data":{"sku":"A"}}';
  const signedAt = 1_767_225_600;

  it('is t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">, and verifies', () => {
    const header = signPayload(secret, body, signedAt);
    const expected = createHmac('sha256', secret).update(`${signedAt}.${body}`).digest('hex');
    expect(header).toBe(`t=${signedAt},v1=${expected}`);
    expect(verifySignature(secret, header, body, signedAt + 10, toleranceSeconds)).toEqual({ valid: true, timestampSeconds: signedAt });
    expect(verifySignature(secret, header, Buffer.from(body), signedAt, toleranceSeconds).valid).toBe(true);
    // While a secret is rotated a header may carry several v1 values: one match is enough.
    const rotated = `t=${signedAt},v1=${'0'.repeat(64)},v1=${expected}`;
    expect(verifySignature(secret, rotated, body, signedAt, toleranceSeconds).valid).toBe(true);
  });

  it('rejects a wrong secret, a modified body, a stale or future timestamp and a malformed header', () => {
    const header = signPayload(secret, body, signedAt);
    expect(verifySignature('another-secret-of-16+', header, body, signedAt, toleranceSeconds)).toEqual({ valid: false, reason: 'mismatch' });
    expect(verifySignature(secret, header, body.replace('"A"', '"B"'), signedAt, toleranceSeconds)).toEqual({ valid: false, reason: 'mismatch' });
    expect(verifySignature(secret, header, `${body} `, signedAt, toleranceSeconds)).toEqual({ valid: false, reason: 'mismatch' });
    expect(verifySignature(secret, header, body, signedAt + toleranceSeconds + 1, toleranceSeconds)).toEqual({ valid: false, reason: 'stale' });
    expect(verifySignature(secret, header, body, signedAt - toleranceSeconds - 1, toleranceSeconds)).toEqual({ valid: false, reason: 'stale' });
    // A replay with a fresh t but the old signature does not match: t is inside the signed bytes.
    const replayed = header.replace(`t=${signedAt}`, `t=${signedAt + 600}`);
    expect(verifySignature(secret, replayed, body, signedAt + 600, toleranceSeconds)).toEqual({ valid: false, reason: 'mismatch' });
    const v1 = header.split(',v1=')[1]!;
    for (const malformed of [undefined, '', 'garbage', `v1=${v1}`, `t=${signedAt}`, `t=abc,v1=${v1}`, `t=${signedAt},v1=${v1.slice(2)}`, `t=${signedAt},v1=${'z'.repeat(64)}`, `t=1,t=2,v1=${v1}`, `t=${signedAt},v1=${v1},${'x'.repeat(1100)}`]) {
      expect(verifySignature(secret, malformed, body, signedAt, toleranceSeconds), String(malformed)).toEqual({ valid: false, reason: 'malformed' });
    }
  });
});

describe('webhook delivery', () => {
  it('retries a receiver that answers 500 three times, delivers on the 200, and never again', async () => {
    let retried: number | undefined;
    const hook = await receiver((eventId, nth) => {
      retried ??= eventId;
      return eventId === retried && nth <= 3 ? 500 : 200;
    });
    const harness = await harnessFor([hook.url()]);
    await startDelivery(harness);
    const eventId = await stockEvent(harness, uniqueName('RETRY'), 7);

    await waitFor('four requests', () => hook.countFor(eventId) >= 4);
    await waitFor('the 200 to be counted', async () => (await counted(harness)).delivered === 1);
    // A later event delivered proves the dispatcher moved past the first; then wait some more.
    const sentinelId = await stockEvent(harness, uniqueName('SENTINEL'), 1);
    await waitFor('the sentinel', () => hook.countFor(sentinelId) === 1);
    await sleep(quietMs);
    expect(hook.countFor(eventId)).toBe(4);
    expect(hook.deliveries.filter((delivery) => delivery.eventId === eventId).map((delivery) => delivery.status)).toEqual([500, 500, 500, 200]);
    expect(await counted(harness)).toEqual({ delivered: 2, failed: 3, dead: 0 });
    const job = await harness.stockhold.queues.get('webhooks').getJob(webhookJobId(eventId, urlKeyOf(hook.url())));
    expect(await job?.getState()).toBe('completed');

    const listed = await harness.call('GET', `/v1/events?after=${eventId - 1}&limit=1`, { as: 'fulfillment' });
    expect(listed.body.events[0].id).toBe(eventId);
    for (const delivery of hook.deliveries.filter((each) => each.eventId === eventId)) {
      expect(delivery.method).toBe('POST');
      expect(delivery.headers['content-type']).toBe('application/json');
      expect(delivery.headers['user-agent']).toBe(webhookUserAgent);
      expect(delivery.headers['stockhold-event-id']).toBe(String(eventId));
      const signature = delivery.headers['stockhold-signature'] as string;
      expect(verifySignature(secret, signature, delivery.rawBody, delivery.receivedAtSeconds, toleranceSeconds)).toMatchObject({ valid: true });
      expect(verifySignature('not-the-webhook-secret', signature, delivery.rawBody, delivery.receivedAtSeconds, toleranceSeconds).valid).toBe(false);
      // Exactly the event as GET /v1/events lists it, byte for byte.
      expect(delivery.rawBody).toBe(JSON.stringify(listed.body.events[0]));
      expect(Object.keys(JSON.parse(delivery.rawBody))).toEqual(['id', 'type', 'occurredAt', 'data']);
    }
  });

  it('delivers each event to each URL, with user-info as Basic auth and the query string kept', async () => {
    const first = await receiver();
    const second = await receiver();
    const secondUrl = second.url('/b?token=abc', 'hook:s3cr%40t@');
    const harness = await harnessFor([first.url('/a'), secondUrl]);
    await startDelivery(harness);
    const ids = [await stockEvent(harness, uniqueName('TWO'), 3), await stockEvent(harness, uniqueName('TWO'), 4)];

    await waitFor('both events at both receivers', () => ids.every((id) => first.countFor(id) === 1 && second.countFor(id) === 1));
    await sleep(quietMs);
    expect(first.deliveries.map((delivery) => delivery.eventId).sort()).toEqual([...ids].sort());
    expect(second.deliveries.map((delivery) => delivery.eventId).sort()).toEqual([...ids].sort());
    expect(first.deliveries.every((delivery) => delivery.path === '/a' && delivery.headers.authorization === undefined)).toBe(true);
    expect(second.deliveries.every((delivery) => delivery.path === '/b?token=abc')).toBe(true);
    expect(second.deliveries.every((delivery) => delivery.headers.authorization === `Basic ${Buffer.from('hook:s3cr@t').toString('base64')}`)).toBe(true);
    expect(await cursorOf(harness, first.url('/a'))).toBe(Math.max(...ids));
    expect(await cursorOf(harness, secondUrl)).toBe(Math.max(...ids));
    // Job data names the receiver by hash and a target without credentials or query string.
    const job = await harness.stockhold.queues.get('webhooks').getJob(webhookJobId(ids[0]!, urlKeyOf(secondUrl)));
    expect(job?.data.target).toBe(`${new URL(secondUrl).origin}/b`);
    expect(JSON.stringify(job?.data)).not.toMatch(/s3cr|token/);
  });

  it('keeps a delivery out of attempts in the failed set with its reason, counted dead once', async () => {
    const hook = await receiver(() => 500);
    const harness = await harnessFor([hook.url()], { WEBHOOK_ATTEMPTS: '2' });
    await startDelivery(harness);
    const eventId = await stockEvent(harness, uniqueName('DEAD'), 5);
    const queue = harness.stockhold.queues.get('webhooks');
    const jobId = webhookJobId(eventId, urlKeyOf(hook.url()));

    await waitFor('the job to fail for good', async () => (await (await queue.getJob(jobId))?.getState()) === 'failed');
    await sleep(quietMs);
    const job = await queue.getJob(jobId);
    expect(job?.failedReason).toBe('receiver answered 500');
    expect(job?.attemptsMade).toBe(2);
    expect((await queue.getFailed()).map((failed) => failed.id)).toContain(jobId);
    expect(hook.countFor(eventId)).toBe(2);
    expect(await counted(harness)).toEqual({ delivered: 0, failed: 1, dead: 1 });
  });

  it('waits for an event committed late with a lower id, then hands both on in order', async () => {
    // The interleaving: T1 takes event id e1 and stays open; T2 (a stock change through the API)
    // takes e2 > e1 and commits. Until T1 ends, e1 may still appear, so e2 must wait: handing e2
    // on and moving the cursor to e2 would skip e1 for good when T1 commits. T1 is older than
    // T2, so e2's transaction is not below the xmin horizon while T1 runs.
    const hook = await receiver();
    const harness = await harnessFor([hook.url()], { WEBHOOK_CONCURRENCY: '1' });
    await startDelivery(harness);
    const late = await harness.stockhold.knex.transaction();
    cleanups.push(async () => {
      if (!late.isCompleted()) await late.rollback().catch(() => undefined);
    });
    const lateId = await insertEvent(late, 'committed late');
    const laterId = await stockEvent(harness, uniqueName('LATER'), 2);
    expect(laterId).toBeGreaterThan(lateId);

    await sleep(quietMs);
    expect(hook.deliveries).toEqual([]);
    // The rule itself, without timing: a dispatcher asked now hands nothing on.
    const added: WebhookJob[] = [];
    const probe = new WebhookDispatcher(harness.stockhold.knex, { addJobs: async (jobs) => void added.push(...jobs), backlog: async () => 0 }, harness.config);
    await waitFor('a probe tick that found the cursor free', async () => {
      const [result] = await probe.dispatchOnce();
      expect(result?.kind).not.toBe('dispatched');
      return result?.kind === 'idle';
    });
    expect(added).toEqual([]);
    expect(await cursorOf(harness, hook.url())).toBe(0);

    await late.commit();
    await waitFor('both events', () => hook.countFor(lateId) === 1 && hook.countFor(laterId) === 1);
    expect(hook.firstArrivals()).toEqual([lateId, laterId]);
    expect(await cursorOf(harness, hook.url())).toBe(laterId);
  });

  it('hands on an older transaction\'s later id while a newer transaction\'s lower id is still open, and then that one too', async () => {
    // The interleaving an "id > cursor" dispatcher gets wrong: T_S takes its xid first (a ledger
    // writer locks its rows before it writes its event), T_E takes its xid and event id e, then
    // T_S takes s > e and commits while T_E is still open. T_S is below the horizon, so s goes
    // out; a cursor on ids would now sit at s and never see e. Ordered by (txid, id), e sorts
    // after s and is handed on once T_E commits.
    const hook = await receiver();
    const harness = await harnessFor([hook.url()]);
    await startDelivery(harness);
    const older = await harness.stockhold.knex.transaction();
    cleanups.push(async () => {
      if (!older.isCompleted()) await older.rollback().catch(() => undefined);
    });
    await older.raw('SELECT pg_current_xact_id()');
    const newer = await harness.stockhold.knex.transaction();
    cleanups.push(async () => {
      if (!newer.isCompleted()) await newer.rollback().catch(() => undefined);
    });
    const lowerId = await insertEvent(newer, 'newer transaction, lower id');
    const higherId = await insertEvent(older, 'older transaction, higher id');
    expect(higherId).toBeGreaterThan(lowerId);
    await older.commit();

    await waitFor('the older transaction\'s event', () => hook.countFor(higherId) === 1);
    expect(hook.countFor(lowerId)).toBe(0);
    await newer.commit();
    await waitFor('the newer transaction\'s event', () => hook.countFor(lowerId) === 1);
    await sleep(quietMs);
    expect(hook.deliveries.map((delivery) => delivery.eventId)).toEqual([higherId, lowerId]);
    expect(await cursorOf(harness, hook.url())).toBe(lowerId);
  });

  it('after a restart, with two dispatchers racing, delivers every event exactly once', async () => {
    // Completed jobs are not kept, so job-id dedupe cannot hide a second dispatch: only the
    // cursor lock keeps two dispatchers from handing the same event on twice.
    const hook = await receiver();
    const harness = await harnessFor([hook.url()], { WEBHOOK_KEEP_COMPLETED: '0' });
    const stopFirst = await startDelivery(harness);
    const sku = uniqueName('RESTART');
    const firstId = await stockEvent(harness, sku, 1);
    await waitFor('the first event', () => hook.countFor(firstId) === 1);
    await stopFirst();

    const whileStopped: number[] = [];
    for (let onHand = 2; onHand <= 11; onHand += 1) whileStopped.push(await stockEvent(harness, sku, onHand));
    // Deterministically: while another dispatcher holds this URL's cursor (mid-tick), a second
    // one skips the URL instead of reading the same cursor and handing the same events on.
    const holder = await harness.stockhold.knex.transaction();
    cleanups.push(async () => {
      if (!holder.isCompleted()) await holder.rollback().catch(() => undefined);
    });
    await holder('webhook_cursors').first('last_event_id').where({ url: hook.url() }).forUpdate();
    const added: WebhookJob[] = [];
    const probe = new WebhookDispatcher(harness.stockhold.knex, { addJobs: async (jobs) => void added.push(...jobs), backlog: async () => 0 }, harness.config);
    expect((await probe.dispatchOnce()).map((result) => result.kind)).toEqual(['busy']);
    expect(added).toEqual([]);
    await holder.rollback();

    await startDelivery(harness);
    await startDelivery(harness);
    const all = [firstId, ...whileStopped];
    await waitFor('every event', () => all.every((id) => hook.countFor(id) >= 1));
    await sleep(quietMs);
    expect(all.map((id) => hook.countFor(id))).toEqual(all.map(() => 1));
    expect(hook.deliveries).toHaveLength(all.length);
    expect(await cursorOf(harness, hook.url())).toBe(Math.max(...all));
  });

  it('stops within the shutdown budget, aborting a delivery the receiver never answers', async () => {
    // Without the abort, stop() would wait for WEBHOOK_TIMEOUT_MS (120 s), past this test's timeout.
    const hook = await receiver(() => neverAnswer);
    const harness = await harnessFor([hook.url()], { SHUTDOWN_TIMEOUT_MS: '200', WEBHOOK_TIMEOUT_MS: '120000' });
    const stop = await startDelivery(harness);
    const eventId = await stockEvent(harness, uniqueName('HANG'), 1);
    await waitFor('the request', () => hook.countFor(eventId) === 1);
    await stop();
    // The aborted attempt counts as failed and the job waits for its retry, here or elsewhere.
    const job = await harness.stockhold.queues.get('webhooks').getJob(webhookJobId(eventId, urlKeyOf(hook.url())));
    expect(await job?.getState()).toBe('delayed');
    expect(job?.failedReason).toBe('receiver unreachable: aborted (shutting down)');
    expect(await counted(harness)).toEqual({ delivered: 0, failed: 1, dead: 0 });
  });

  it("a cursor set by hand to an id the sequence skipped goes on from there, and holds up no other receiver", async () => {
    const [a, b] = ['http://127.0.0.1:9/a', 'http://127.0.0.1:9/b'];
    const harness = await harnessFor([a, b]);
    const first = await stockEvent(harness, uniqueName('GAP'), 1);
    // A gap in the sequence: an insert rolled back.
    const rolledBack = await harness.stockhold.knex.transaction();
    const gap = await insertEvent(rolledBack, 'rolled back');
    await rolledBack.rollback();
    const after = await stockEvent(harness, uniqueName('GAP'), 2);
    const added: WebhookJob[] = [];
    const probe = new WebhookDispatcher(harness.stockhold.knex, { addJobs: async (jobs) => void added.push(...jobs), backlog: async () => 0 }, harness.config);
    await probe.dispatchOnce(); // creates both cursors at 0 and hands on everything so far
    added.length = 0;
    // An operator sets a's cursor back to the gap, to resend what came after it.
    await harness.stockhold.knex('webhook_cursors').update({ last_event_id: gap }).where({ url: a });
    await harness.stockhold.knex('webhook_cursors').update({ last_event_id: first }).where({ url: b });
    // Ticks until both are handed on (the horizon is the whole instance's oldest transaction:
    // other tests' may hold it back a while); no tick may fail.
    await waitFor('both receivers handed on', async () => {
      for (const result of await probe.dispatchOnce()) expect(result.kind).not.toBe('failed');
      return added.length >= 2;
    });
    expect(added.map((job) => [job.target, job.eventId]).sort()).toEqual([[a, after], [b, after]]);
    expect(await cursorOf(harness, a)).toBe(after);
  });

  it('hands on nothing while the delivery queue holds WEBHOOK_BACKLOG_MAX, and resumes once it drains', async () => {
    const url = 'http://127.0.0.1:9/backlog';
    const harness = await harnessFor([url], { WEBHOOK_BACKLOG_MAX: '100' });
    const event = await stockEvent(harness, uniqueName('BACKLOG'), 3);
    const added: WebhookJob[] = [];
    let backlog = 100;
    const probe = new WebhookDispatcher(harness.stockhold.knex, { addJobs: async (jobs) => void added.push(...jobs), backlog: async () => backlog }, harness.config);
    expect(await probe.dispatchOnce()).toEqual([{ kind: 'backlogged', target: url, backlog: 100 }]);
    expect(added).toEqual([]);
    backlog = 99;
    await waitFor('the event handed on', async () => {
      const [result] = await probe.dispatchOnce();
      expect(result?.kind).not.toBe('backlogged');
      return added.some((job) => job.eventId === event);
    });
  });

  it('starts nothing without WEBHOOK_URLS', async () => {
    const harness = await startHarness({ WEBHOOK_URLS: '' }, { ownDatabase: true });
    cleanups.push(() => harness.close());
    const delivery = await startWebhooks(harness.stockhold, silent);
    await stockEvent(harness, uniqueName('OFF'), 1);
    await delivery.stop();
    expect(await harness.stockhold.knex('webhook_cursors').count({ count: '*' })).toEqual([{ count: '0' }]);
    expect(await harness.stockhold.queues.get('webhooks').getJobCountByTypes('waiting', 'delayed', 'completed', 'failed')).toBe(0);
  });
});
