// Proves the admin jobs routes over real HTTP, Redis and BullMQ: a job that really failed (a
// BullMQ worker in this file whose processor throws) is listed with its reason, by queue and
// across queues; retrying it moves it back to waiting, once; only admin keys get in; a bad queue,
// state or limit is 400; an unknown job is 404 and one that is not failed 409; and Redis down answers 503, not 500.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bullPrefix, queueNames } from '../lib/queues';
import { PrivateRedis } from '../chaos/servers';
import { startHarness, testRedisUrl, uniqueName, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness.close();
});

const failureReason = 'webhook endpoint answered 500';
/** Polls of a job's state while waiting for BullMQ to settle it, at most. */
const statePollsMax = 200;

async function stateOf(queueName: string, id: string): Promise<string> {
  const job = await harness.stockhold.queues.get(queueName as 'webhooks').getJob(id);
  return job === undefined ? 'missing' : job.getState();
}

/** Adds jobs to the webhooks queue and runs a worker whose processor throws until they failed. */
async function failJobs(ids: readonly string[]): Promise<void> {
  const queue = harness.stockhold.queues.get(queueNames.webhooks);
  const connection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(
    queueNames.webhooks,
    async () => {
      throw new Error(failureReason);
    },
    { connection, prefix: bullPrefix(harness.config), concurrency: 1, autorun: true },
  );
  try {
    for (const id of ids) await queue.add('deliver', { eventId: id }, { jobId: id, attempts: 1, removeOnFail: false });
    for (const id of ids) {
      for (let poll = 0; poll < statePollsMax && (await stateOf(queueNames.webhooks, id)) !== 'failed'; poll += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(await stateOf(queueNames.webhooks, id)).toBe('failed');
    }
  } finally {
    await worker.close();
    connection.disconnect();
  }
}

describe('authentication and scope', () => {
  it('answers 401 without a key and 403 for checkout and fulfillment keys, on both routes', async () => {
    for (const [method, path] of [['GET', '/v1/admin/jobs'], ['POST', '/v1/admin/jobs/webhooks/x/retry']] as const) {
      const anonymous = await harness.call(method, path, { as: null });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.code).toBe('unauthorized');
      for (const as of ['checkout', 'fulfillment'] as const) {
        const refused = await harness.call(method, path, { as });
        expect(refused.status).toBe(403);
        expect(refused.body.code).toBe('forbidden');
      }
    }
  });
});

describe('bad input', () => {
  it('a queue that does not exist is 400, in the query and in the path', async () => {
    const listed = await harness.call('GET', '/v1/admin/jobs?queue=nope');
    expect(listed.status).toBe(400);
    expect(listed.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'query.queue', message: 'must be one of commits, reconcile, webhooks' }] });
    const retried = await harness.call('POST', '/v1/admin/jobs/nope/some-id/retry');
    expect(retried.status).toBe(400);
    expect(retried.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'path.queue' }] });
  });

  it('a state outside failed|waiting|active|delayed|completed and a limit outside 1..1000 are 400', async () => {
    for (const query of ['state=paused', 'state=', 'limit=0', 'limit=1001', 'limit=ten', 'queue=commits&queue=webhooks']) {
      const response = await harness.call('GET', `/v1/admin/jobs?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.code, query).toBe('validation_failed');
    }
    const atMost = await harness.call('GET', '/v1/admin/jobs?limit=1000&state=completed');
    expect(atMost.status).toBe(200);
    expect(atMost.body).toEqual({ jobs: [] });
  });
});

describe('a job that really failed', () => {
  it('is listed with its reason, retried back to waiting once, and then refused', async () => {
    const id = uniqueName('hook');
    const before = Date.now();
    await failJobs([id]);

    const byQueue = await harness.call('GET', '/v1/admin/jobs?queue=webhooks&state=failed&limit=10');
    expect(byQueue.status).toBe(200);
    const listed = byQueue.body.jobs.find((job: { id: string }) => job.id === id);
    expect(listed).toEqual({ queue: 'webhooks', id, name: 'deliver', failedReason: failureReason, attemptsMade: 1, timestamp: expect.any(Number), finishedOn: expect.any(Number) });
    expect(listed.timestamp).toBeGreaterThanOrEqual(before - 1000);
    expect(listed.finishedOn).toBeGreaterThanOrEqual(listed.timestamp);
    // Failed is the default state; without a queue every queue is listed.
    expect((await harness.call('GET', '/v1/admin/jobs')).body.jobs.map((job: { id: string }) => job.id)).toContain(id);
    expect((await harness.call('GET', '/v1/admin/jobs?queue=commits')).body.jobs).toEqual([]);

    const retried = await harness.call('POST', `/v1/admin/jobs/webhooks/${id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toEqual({ queue: 'webhooks', id, retried: true });
    expect(await stateOf(queueNames.webhooks, id)).toBe('waiting');
    expect((await harness.call('GET', '/v1/admin/jobs?queue=webhooks')).body.jobs.map((job: { id: string }) => job.id)).not.toContain(id);
    const waiting = (await harness.call('GET', '/v1/admin/jobs?queue=webhooks&state=waiting')).body.jobs.find((job: { id: string }) => job.id === id);
    expect(waiting).toMatchObject({ id, failedReason: null, finishedOn: null });

    // No longer failed: a second retry is refused and the job stays where it is.
    const again = await harness.call('POST', `/v1/admin/jobs/webhooks/${id}/retry`);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'job_not_failed', queue: 'webhooks', jobId: id, jobState: 'waiting' });
    expect(await stateOf(queueNames.webhooks, id)).toBe('waiting');
  });

  it('lists newest first and honours the limit across queues', async () => {
    const ids = [uniqueName('hook-a'), uniqueName('hook-b'), uniqueName('hook-c')];
    await failJobs(ids);
    const response = await harness.call('GET', '/v1/admin/jobs?limit=2');
    expect(response.status).toBe(200);
    expect(response.body.jobs).toHaveLength(2);
    const [first, second] = response.body.jobs as Array<{ finishedOn: number }>;
    expect(first!.finishedOn).toBeGreaterThanOrEqual(second!.finishedOn);
  });

  it('an unknown job is refused and nothing is created', async () => {
    const id = uniqueName('never-added');
    const response = await harness.call('POST', `/v1/admin/jobs/commits/${id}/retry`);
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ code: 'job_not_found', queue: 'commits', jobId: id });
    expect(await stateOf(queueNames.commits, id)).toBe('missing');
  });
});

describe('Redis down', () => {
  let redis: PrivateRedis;
  let downHarness: Harness;
  beforeAll(async () => {
    redis = await PrivateRedis.start();
    downHarness = await startHarness({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '500' });
  });
  afterAll(async () => {
    // Closing BullMQ's queues waits for Redis: bring it back (empty) first.
    await redis.start();
    await downHarness.close();
    await redis.remove();
  });

  it('listing and retrying answer 503 backend_unavailable with Retry-After, never 500', async () => {
    expect((await downHarness.call('GET', '/v1/admin/jobs')).status).toBe(200);
    await redis.kill();
    for (const [method, path] of [['GET', '/v1/admin/jobs'], ['GET', '/v1/admin/jobs?queue=commits&state=waiting'], ['POST', '/v1/admin/jobs/commits/some-id/retry']] as const) {
      const response = await downHarness.call(method, path);
      expect(response.status, path).toBe(503);
      expect(response.body).toMatchObject({ code: 'backend_unavailable', backend: 'redis' });
      expect(response.headers.get('retry-after')).toBe('1');
    }
  });
});
