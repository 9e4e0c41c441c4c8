// Proves clean shutdown of the real processes (dist/, one OS process each) under load:
// - the API, on SIGTERM, answers every request it has in flight (confirms waiting for a commit
//   with Prefer: wait=25 are answered 202 at once, within the budget),
//   refuses new connections, and exits 0; nothing it acknowledged is lost (every acknowledged
//   reservation is there afterwards, every acknowledged confirm reaches the ledger);
// - the commit worker finishes its active jobs before exiting 0: its jobs are held in flight by
//   a Postgres lock on the ledger (the designed interleaving: SIGTERM arrives while a group
//   commit waits on the lock), the process is still alive while the lock is held, and exits 0
//   once its jobs have committed; past SHUTDOWN_TIMEOUT_MS it exits 1 and another worker re-runs
//   the jobs, each committed once;
// - the reconciler exits 0;
// - `npm run start:api` signalled through npm alone leaves no orphan node process.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secrets } from './support/harness';
import { privateEnvironment, spawnService, startApp, stopApp, type Environment } from './support/services';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let environment: Environment;
beforeAll(async () => {
  environment = await privateEnvironment({ SHUTDOWN_TIMEOUT_MS: '8000' });
});
afterAll(async () => {
  await environment.close();
});

interface Answer {
  readonly status: number;
  readonly body: any;
}

function client(port: number) {
  return async (method: string, path: string, options: { as?: keyof typeof secrets; body?: unknown; key?: string; headers?: Record<string, string> } = {}): Promise<Answer> => {
    const headers: Record<string, string> = { authorization: `Bearer ${secrets[options.as ?? 'admin']}`, ...options.headers };
    if (options.key !== undefined) headers['idempotency-key'] = options.key;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  };
}

const newKey = () => `key-${randomBytes(8).toString('hex')}`;
const newSku = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;

async function ledgerCommitted(ids: readonly string[]): Promise<number> {
  const rows = await environment.knex('reservations').whereIn('id', [...ids]).andWhere({ status: 'committed' }).count<{ count: string }[]>('* as count');
  return Number(rows[0]!.count);
}

describe('API shutdown under load', () => {
  it('answers every request in flight, refuses new ones, exits 0, and loses nothing it acknowledged', async () => {
    const api = await startApp('api', environment.env);
    const call = client(api.port);
    const sku = newSku('SHUT');
    expect((await call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 10_000 }, key: newKey() })).status).toBe(200);
    const held: string[] = [];
    for (let index = 0; index < 12; index += 1) {
      const created = await call('POST', '/v1/reservations', { as: 'checkout', key: newKey(), body: { lines: [{ sku, quantity: 1 }] } });
      expect(created.status).toBe(201);
      held.push(created.body.id);
    }
    // No worker runs: each confirm would wait its full 25 s for a commit that cannot come (longer
    // than the 8 s shutdown budget), so it is certainly in flight when SIGTERM arrives, and the
    // stop must end the wait and answer it.
    const confirms = held.map((id) => call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=25' } }).then(
      (answer) => ({ id, answer }),
      (error: Error) => ({ id, error }),
    ));
    // And a stream of reservations from 16 clients until the API is gone.
    const attempts: Array<{ key: string; answer?: Answer; error?: Error }> = [];
    let signalled = false;
    const loops = Array.from({ length: 16 }, async () => {
      for (let round = 0; round < 10_000; round += 1) {
        const key = newKey();
        try {
          attempts.push({ key, answer: await call('POST', '/v1/reservations', { as: 'checkout', key, body: { lines: [{ sku, quantity: 1 }] } }) });
        } catch (error) {
          attempts.push({ key, error: error as Error });
          if (signalled) return;
        }
      }
    });
    await sleep(400);
    signalled = true;
    const signalledAt = Date.now();
    api.child.kill('SIGTERM');
    const exit = await api.exited;
    const stoppedAfterMs = Date.now() - signalledAt;
    await Promise.all(loops);
    const confirmed = await Promise.all(confirms);

    expect(exit).toEqual({ code: 0, signal: null });
    expect(stoppedAfterMs).toBeLessThan(8000);
    // Every confirm in flight was answered, none cut.
    for (const result of confirmed) {
      expect('answer' in result ? result.answer.status : (result as { error: Error }).error.message, result.id).toBe(202);
      if ('answer' in result) expect(result.answer.body.status).toBe('confirmed');
    }
    expect(api.lines.some((line) => line.msg === 'shutting down' && line.signal === 'SIGTERM')).toBe(true);
    expect(attempts.filter((attempt) => attempt.answer?.status === 201).length).toBeGreaterThan(0);
    expect(attempts.every((attempt) => attempt.answer === undefined || [201, 503].includes(attempt.answer.status))).toBe(true);

    // A new API and a worker: every acknowledged reservation is there; a request that got no
    // answer, replayed with its key, either finds the one it made or makes it now, never two;
    // every acknowledged confirm reaches the ledger.
    const again = await startApp('api', environment.env);
    const worker = await startApp('worker', environment.env);
    try {
      const callAgain = client(again.port);
      for (const attempt of attempts) {
        if (attempt.answer?.status === 201) {
          expect((await callAgain('GET', `/v1/reservations/${attempt.answer.body.id}`, { as: 'checkout' })).body.status).toBe('pending');
        } else {
          const replay = await callAgain('POST', '/v1/reservations', { as: 'checkout', key: attempt.key, body: { lines: [{ sku, quantity: 1 }] } });
          expect(replay.status).toBe(201);
        }
      }
      for (const id of held) expect((await callAgain('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } })).body.status).toBe('committed');
      expect(await ledgerCommitted(held)).toBe(held.length);
      const view = (await callAgain('GET', `/v1/skus/${sku}`)).body;
      const acknowledged = attempts.length;
      expect(view.onHand).toBe(10_000 - held.length);
      expect(view.reserved).toBe(acknowledged);
    } finally {
      await stopApp(again);
      await stopApp(worker);
    }
  }, 60_000);
});

/** Creates a SKU and `count` pending reservations of one unit each; returns their ids. */
async function reservations(call: ReturnType<typeof client>, prefix: string, count: number): Promise<{ sku: string; ids: string[] }> {
  const sku = newSku(prefix);
  expect((await call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand: 100 }, key: newKey() })).status).toBe(200);
  const ids: string[] = [];
  for (let index = 0; index < count; index += 1) ids.push((await call('POST', '/v1/reservations', { as: 'checkout', key: newKey(), body: { lines: [{ sku, quantity: 1 }] } })).body.id);
  return { sku, ids };
}

/**
 * The designed interleaving: the ledger locked, the reservations confirmed, the worker's group
 * commit waiting on the lock when `whileHeld` runs (SIGTERM arrives then); the lock goes after.
 */
async function confirmedWhileLedgerLocked(call: ReturnType<typeof client>, ids: readonly string[], whileHeld: () => Promise<void>): Promise<void> {
  const locker = await environment.knex.transaction();
  try {
    await locker.raw('LOCK TABLE ledger_entries IN ACCESS EXCLUSIVE MODE');
    for (const id of ids) expect((await call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout' })).status).toBe(202);
    await waitUntil(async () => (await activeCommitJobs()) > 0, 5000);
    await whileHeld();
  } finally {
    await locker.commit();
  }
}

/** A new worker finishes what is left; every reservation is committed, each exactly once. */
async function committedOnceEach(call: ReturnType<typeof client>, env: Record<string, string>, sku: string, ids: readonly string[]): Promise<void> {
  const next = await startApp('worker', env);
  try {
    for (const id of ids) expect((await call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=15' } })).body.status).toBe('committed');
  } finally {
    await stopApp(next);
  }
  expect(await ledgerCommitted(ids)).toBe(ids.length);
  const entries = await environment.knex('ledger_entries').where({ sku, kind: 'allocation' }).count<{ count: string }[]>('* as count');
  expect(Number(entries[0]!.count)).toBe(ids.length);
}

describe('worker shutdown', () => {
  it('finishes the jobs it holds (held by a Postgres lock) before exiting 0; each commits once', async () => {
    const api = await startApp('api', environment.env);
    const worker = await startApp('worker', { ...environment.env, COMMIT_BATCH_WAIT_MS: '0' });
    const call = client(api.port);
    try {
      const { sku, ids } = await reservations(call, 'WSHUT', 8);
      await confirmedWhileLedgerLocked(call, ids, async () => {
        worker.child.kill('SIGTERM');
        await worker.waitForLog((line) => line.msg === 'shutting down');
        await sleep(700);
        expect(worker.hasExited(), 'the worker waits for its active jobs').toBe(false);
      });
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(worker.lines.filter((line) => line.msg === 'commit job done').length).toBeGreaterThan(0);
      // What it had not taken is still queued: a new worker finishes it; each commits once.
      await committedOnceEach(call, environment.env, sku, ids);
    } finally {
      await stopApp(api);
      await stopApp(worker);
    }
  }, 60_000);

  it('exits 1 past SHUTDOWN_TIMEOUT_MS; another worker re-runs its stalled jobs, each committed once', async () => {
    const env = { ...environment.env, SHUTDOWN_TIMEOUT_MS: '500', COMMIT_LOCK_DURATION_MS: '1000', COMMIT_STALLED_INTERVAL_MS: '500', COMMIT_BATCH_WAIT_MS: '0' };
    const api = await startApp('api', env);
    const worker = await startApp('worker', env);
    const call = client(api.port);
    try {
      const { sku, ids } = await reservations(call, 'WSLOW', 4);
      await confirmedWhileLedgerLocked(call, ids, async () => {
        worker.child.kill('SIGTERM');
        expect(await worker.exited).toEqual({ code: 1, signal: null });
        expect(worker.lines.some((line) => line.msg === 'shutdown did not finish in time; exiting')).toBe(true);
      });
      await committedOnceEach(call, env, sku, ids);
    } finally {
      await stopApp(api);
      await stopApp(worker);
    }
  }, 60_000);
});

describe('reconciler and npm', () => {
  it('the reconciler exits 0 on SIGTERM', async () => {
    const reconciler = await startApp('reconciler', { ...environment.env, RECONCILE_INTERVAL_MS: '200' });
    await sleep(500);
    expect(await stopApp(reconciler)).toEqual({ code: 0, signal: null });
  }, 30_000);

  it('npm run start:api signalled through npm alone stops node too (no orphan), exit 0', async () => {
    const npm = spawnService('npm', ['run', '--silent', 'start:api'], { ...environment.env, PORT: '0' });
    const listening = await npm.waitForLog((line) => line.msg === 'API listening');
    const nodePid = listening.pid as number;
    expect(nodePid).not.toBe(npm.child.pid);
    npm.child.kill('SIGTERM');
    const exit = await npm.exited;
    expect(exit.code, npm.output().slice(-4000)).toBe(0);
    await waitUntil(async () => !alive(nodePid), 5000);
    expect(npm.lines.some((line) => line.msg === 'stopped' && line.pid === nodePid)).toBe(true);
  }, 30_000);
});

async function activeCommitJobs(): Promise<number> {
  return environment.redis.llen(`${environment.bullPrefix}:commits:active`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}
