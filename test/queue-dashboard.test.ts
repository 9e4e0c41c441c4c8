// Proves the queue dashboard at /admin/queues over a real Stockhold, Redis and headless Chromium:
// only admin keys get in (Bearer, or Basic with the key's client id), everyone else gets a
// problem+json 401 with a Basic challenge or a 403; a browser signing in with Basic loads the
// page and every asset from the service alone and sees the three queues, and a job that really
// failed (a BullMQ worker in this file throws) shows its reason on the queue's failed tab.
import { tmpdir } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueDashboardChallenge, queueDashboardPath } from '../apps/api/queue-dashboard';
import { allQueueNames, bullPrefix, queueNames } from '../lib/queues';
import { secrets, startHarness, type Harness } from './support/harness';

// The docs' screenshots are refreshed with UPDATE_SCREENSHOTS=1; otherwise they go to a temporary
// directory, so a test run leaves the working tree as it found it.
const imagesDirectory = process.env.UPDATE_SCREENSHOTS === '1' ? resolve(__dirname, '..', 'docs', 'images') : resolve(tmpdir(), 'stockhold-screenshots');
const failedReason = 'receiver answered 500';
/** How long the worker may take to fail the one job; a bound, not an assertion on time. */
const jobFailureWaitMs = 15_000;
/** How long the browser may take to find a text on the page. */
const pageTextWaitMs = 15_000;

let harness: Harness;
let browser: Browser;
let workerConnection: Redis;
let worker: Worker;
let failedJobId: string;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
const dashboard = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  fetch(`${harness.baseUrl}${queueDashboardPath}${path}`, { method, headers });

/** Fails one webhook job for real: attempts 1, and a processor that throws. */
async function failOneWebhookJob(): Promise<string> {
  workerConnection = new Redis(harness.config.redisUrl, { maxRetriesPerRequest: null });
  const failed = new Promise<Job>((resolveFailed, rejectFailed) => {
    const bound = setTimeout(() => rejectFailed(new Error(`no job failed within ${jobFailureWaitMs} ms`)), jobFailureWaitMs);
    worker = new Worker(
      queueNames.webhooks,
      async (): Promise<void> => {
        // Only the message: the stack would show this file's frames in the docs' screenshot.
        const error = new Error(failedReason);
        error.stack = `Error: ${failedReason}`;
        throw error;
      },
      { connection: workerConnection, prefix: bullPrefix(harness.config), concurrency: 1, autorun: true },
    );
    worker.on('failed', (job) => {
      clearTimeout(bound);
      if (job === undefined) rejectFailed(new Error('a job failed without its record'));
      else resolveFailed(job);
    });
  });
  const added = await harness.stockhold.queues.get(queueNames.webhooks).add(
    'deliver',
    { eventId: 1, url: 'https://receiver.invalid/hooks' },
    { attempts: 1, removeOnComplete: true, removeOnFail: false },
  );
  const job = await failed;
  expect(job.id).toBe(added.id);
  return String(added.id);
}

beforeAll(async () => {
  harness = await startHarness();
  failedJobId = await failOneWebhookJob();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  await mkdir(imagesDirectory, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await worker?.close();
  workerConnection?.disconnect();
  await harness?.close();
});

describe('who gets in', () => {
  const expectChallenge = async (response: Response) => {
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(queueDashboardChallenge);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = await response.json();
    expect(body).toMatchObject({ status: 401, code: 'unauthorized', instance: `${queueDashboardPath}/` });
  };

  it('challenges a request without credentials, for the page and for its assets', async () => {
    await expectChallenge(await dashboard('/'));
    const asset = await fetch(`${harness.baseUrl}${queueDashboardPath}/static/images/logo.svg`);
    expect(asset.status).toBe(401);
    expect(asset.headers.get('www-authenticate')).toBe(queueDashboardChallenge);
  });

  it('challenges a wrong password, an unknown Bearer secret and a malformed header', async () => {
    await expectChallenge(await dashboard('/', { authorization: basic('ops', `${secrets.admin}-wrong`) }));
    await expectChallenge(await dashboard('/', { authorization: 'Bearer not-a-key-at-all' }));
    await expectChallenge(await dashboard('/', { authorization: 'Basic %%%not-base64' }));
    await expectChallenge(await dashboard('/', { authorization: `Basic ${Buffer.from(secrets.admin).toString('base64')}` }));
  });

  it('challenges Basic whose user is not the client id of the key the password authenticates', async () => {
    await expectChallenge(await dashboard('/', { authorization: basic('shop-a', secrets.admin) }));
    await expectChallenge(await dashboard('/', { authorization: basic('', secrets.admin) }));
    await expectChallenge(await dashboard('/', { authorization: basic('OPS', secrets.admin) }));
  });

  it('forbids a valid key without the admin scope, by Bearer and by Basic', async () => {
    for (const response of [
      await dashboard('/', { authorization: `Bearer ${secrets.checkout}` }),
      await dashboard('/', { authorization: basic('shop-a', secrets.checkout) }),
      await dashboard('/api/queues', { authorization: `Bearer ${secrets.fulfillment}` }),
    ]) {
      expect(response.status).toBe(403);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await response.json()).toMatchObject({ status: 403, code: 'forbidden' });
    }
  });

  it('lets an admin key in by Bearer and by Basic (scheme names in any case)', async () => {
    for (const authorization of [`Bearer ${secrets.admin}`, basic('ops', secrets.admin), `bearer ${secrets.admin}`, basic('ops', secrets.admin).replace('Basic', 'BASIC')]) {
      const response = await dashboard('/', { authorization });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(response.headers.get('x-powered-by')).toBeNull();
      expect(await response.text()).toContain(`<base href="${queueDashboardPath}/"`);
    }
  });

  it('answers the board API with every queue of the service and the failed job with its reason', async () => {
    const response = await dashboard(`/api/queues?activeQueue=${queueNames.webhooks}&status=failed&page=1`, { authorization: `Bearer ${secrets.admin}` });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { queues: Array<{ name: string; jobs: Array<{ id: string; failedReason?: string }> }> };
    expect(body.queues.map((queue) => queue.name).sort()).toEqual([...allQueueNames].sort());
    const webhooks = body.queues.find((queue) => queue.name === queueNames.webhooks);
    expect(webhooks?.jobs).toEqual([expect.objectContaining({ id: failedJobId, failedReason })]);
  });

  it('answers a path the board does not have with the service\'s own problem+json 404', async () => {
    const response = await dashboard('/no-such-page/here', { authorization: `Bearer ${secrets.admin}` });
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ code: 'route_not_found', instance: `${queueDashboardPath}/no-such-page/here` });
  });

  it('refuses a queue change a foreign page makes the browser send, and takes one from the board itself', async () => {
    const reconcileQueue = harness.stockhold.queues.get(queueNames.reconcile);
    const pause = `/api/queues/${queueNames.reconcile}/pause`;
    const asBrowser = { authorization: basic('ops', secrets.admin) };
    const crossSite = await dashboard(pause, { ...asBrowser, 'sec-fetch-site': 'cross-site' }, 'PUT');
    expect(crossSite.status).toBe(403);
    expect(await crossSite.json()).toMatchObject({ code: 'forbidden' });
    const foreignOrigin = await dashboard(pause, { ...asBrowser, origin: 'https://attacker.invalid' }, 'PUT');
    expect(foreignOrigin.status).toBe(403);
    expect(await reconcileQueue.isPaused()).toBe(false);

    const sameOrigin = await dashboard(pause, { ...asBrowser, 'sec-fetch-site': 'same-origin' }, 'PUT');
    expect(sameOrigin.status).toBe(200);
    expect(await reconcileQueue.isPaused()).toBe(true);
    await reconcileQueue.resume();
  });
});

describe('in a browser', () => {
  let context: BrowserContext;
  const leftTheOrigin: string[] = [];
  const failedOnTheOrigin: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    context = await browser.newContext({
      httpCredentials: { username: 'ops', password: secrets.admin, origin: harness.baseUrl },
      viewport: { width: 1280, height: 800 },
    });
    // Nothing may leave the machine: a request to another origin is recorded and aborted.
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      if (url.startsWith(`${harness.baseUrl}/`)) await route.continue();
      else {
        leftTheOrigin.push(url);
        await route.abort();
      }
    });
    context.on('response', (response) => {
      if (response.status() >= 400) failedOnTheOrigin.push(`${response.status()} ${response.url()}`);
    });
    context.on('weberror', (error) => {
      pageErrors.push(error.error().message);
    });
  });

  afterAll(async () => {
    await context?.close();
  });

  it('renders the overview with the three queues, every asset served under the mount path', async () => {
    const page = await context.newPage();
    const assets: string[] = [];
    page.on('response', (response) => {
      if (response.url().startsWith(`${harness.baseUrl}${queueDashboardPath}/static/`) && response.status() === 200) assets.push(response.url());
    });
    const response = await page.goto(`${harness.baseUrl}${queueDashboardPath}`);
    expect(response?.status()).toBe(200);
    for (const name of allQueueNames) {
      await page.getByRole('link', { name, exact: true }).first().waitFor({ timeout: pageTextWaitMs });
    }
    await page.screenshot({ path: resolve(imagesDirectory, 'queue-dashboard.png'), fullPage: true });
    expect(assets.some((url) => url.endsWith('.js'))).toBe(true);
    expect(assets.some((url) => url.endsWith('.css'))).toBe(true);
    expect(leftTheOrigin).toEqual([]);
    expect(failedOnTheOrigin).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('lets the board page itself change a queue (the browser marks its request same-origin)', async () => {
    const reconcileQueue = harness.stockhold.queues.get(queueNames.reconcile);
    const page = await context.newPage();
    await page.goto(`${harness.baseUrl}${queueDashboardPath}`);
    // Resolved against the page's <base href>, as the board's own buttons do.
    const status = await page.evaluate(async (path) => (await fetch(path, { method: 'PUT' })).status, `api/queues/${queueNames.reconcile}/pause`);
    expect(status).toBe(200);
    expect(await reconcileQueue.isPaused()).toBe(true);
    await reconcileQueue.resume();
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it("shows the failed job's reason on the webhooks queue's failed tab", async () => {
    const page = await context.newPage();
    await page.goto(`${harness.baseUrl}${queueDashboardPath}/queue/${queueNames.webhooks}?status=failed`);
    await page.getByText(failedReason).first().waitFor({ timeout: pageTextWaitMs });
    await page.screenshot({ path: resolve(imagesDirectory, 'queue-dashboard-failed.png'), fullPage: true });
    expect(leftTheOrigin).toEqual([]);
    expect(failedOnTheOrigin).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
