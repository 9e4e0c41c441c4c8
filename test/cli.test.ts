// Proves the operator CLI end to end: runCli in-process against a real harness (real Redis,
// Postgres, BullMQ and, where confirms must commit, a real commit worker). Each command's table
// and --json output is checked against the service's state afterwards; a printed
// Idempotency-Key repeats a change without applying it twice; --follow picks up an event that
// appears while it follows and stops on its AbortSignal; a commit job the real processor rejects
// is listed and retried; the load generator's counts add up and never sell more than the stock;
// and the exit codes tell a problem (1), a usage error (2) and an unreachable service (3) apart.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CancelJob } from '../lib/commits/commit-jobs';
import { runCli } from '../apps/cli/program';
import { progressLine } from '../apps/cli/commands/load';
import { LatencyHistogram } from '../apps/cli/latency-histogram';
import { idempotencyKey, secrets, startHarness, uniqueName, type Harness } from './support/harness';

let harness: Harness;
beforeAll(async () => {
  // Its own database: reconcile walks every SKU of the ledger, and events are all this file's.
  harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '1' }, { ownDatabase: true });
});
afterAll(async () => {
  await harness.close();
});

interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

interface CliOptions {
  readonly as?: keyof typeof secrets | null;
  readonly env?: Record<string, string | undefined>;
  readonly signal?: AbortSignal;
  /** Receives stdout as it is written (for --follow, which runs until its signal aborts). */
  readonly onStdout?: (text: string) => void;
}

async function cli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  let out = '';
  let err = '';
  const as = options.as === undefined ? 'admin' : options.as;
  const env = { STOCKHOLD_URL: harness.baseUrl, STOCKHOLD_API_KEY: as === null ? undefined : secrets[as], ...options.env };
  const code = await runCli(args, {
    env,
    stdout: (text) => {
      out += text;
      options.onStdout?.(text);
    },
    stderr: (text) => {
      err += text;
    },
    signal: options.signal,
  });
  return { code, out, err };
}

function keyPrinted(out: string): string {
  const match = /^Idempotency-Key: (\S+)$/m.exec(out);
  expect(match, out).not.toBeNull();
  return match![1]!;
}

const skuRow = (sku: string, onHand: number, reserved: number, available: number) => new RegExp(`^${sku}\\s+${onHand}\\s+${reserved}\\s+${available}$`, 'm');
const view = async (sku: string) => (await harness.call('GET', `/v1/skus/${sku}`)).body;
const maxEventId = async () => Number((await harness.stockhold.knex('events').max({ id: 'id' }).first())?.id ?? 0);

describe('stock', () => {
  it('set --stripes splits a hot SKU; get shows the stripes\' sums and their count', async () => {
    const sku = uniqueName('CLIS');
    const set = await cli(['stock', 'set', sku, '12', '--stripes', '3']);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toMatch(/^sku\s+onHand\s+reserved\s+available\s+stripes$/m);
    expect(set.out).toMatch(new RegExp(`^${sku}\\s+12\\s+0\\s+12\\s+3$`, 'm'));
    const got = await cli(['stock', 'get', sku, '--json']);
    expect(JSON.parse(got.out)).toEqual({ sku, onHand: 12, reserved: 0, available: 12, stripes: 3 });
    expect((await cli(['stock', 'set', sku, '12', '--stripes', '65'])).code).toBe(2);
  });

  it('set --per-customer-limit caps a SKU per customer; get shows it; --no-per-customer-limit removes it', async () => {
    const sku = uniqueName('CLIC');
    const set = await cli(['stock', 'set', sku, '20', '--per-customer-limit', '2']);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toMatch(/^sku\s+onHand\s+reserved\s+available\s+perCustomerLimit$/m);
    expect(set.out).toMatch(new RegExp(`^${sku}\\s+20\\s+0\\s+20\\s+2$`, 'm'));
    expect(JSON.parse((await cli(['stock', 'get', sku, '--json'])).out)).toEqual({ sku, onHand: 20, reserved: 0, available: 20, perCustomerLimit: 2 });
    expect((await cli(['stock', 'set', sku, '20', '--per-customer-limit', '1001'])).code).toBe(2);
    expect((await cli(['stock', 'set', sku, '20', '--no-per-customer-limit'])).code).toBe(0);
    expect(await view(sku)).toEqual({ sku, onHand: 20, reserved: 0, available: 20 });
  });

  it('set, get and adjust round trip; the printed key repeats an adjustment without applying it twice', async () => {
    const sku = uniqueName('CLI');
    const set = await cli(['stock', 'set', sku, '10']);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toMatch(/^sku\s+onHand\s+reserved\s+available$/m);
    expect(set.out).toMatch(skuRow(sku, 10, 0, 10));
    keyPrinted(set.out);

    const got = await cli(['stock', 'get', sku, '--json']);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out)).toEqual({ sku, onHand: 10, reserved: 0, available: 10 });

    const adjusted = await cli(['stock', 'adjust', sku, '-3', '--reason', 'damaged in the warehouse']);
    expect(adjusted.code, adjusted.err).toBe(0);
    expect(adjusted.out).toMatch(skuRow(sku, 7, 0, 7));
    expect(adjusted.out).not.toMatch(/replayed/);
    const key = keyPrinted(adjusted.out);
    expect(adjusted.err).toContain(`--idempotency-key ${key}`);

    // The operator's terminal died: the same command with the printed key changes nothing more.
    const repeated = await cli(['stock', 'adjust', sku, '-3', '--reason', 'damaged in the warehouse', '--idempotency-key', key]);
    expect(repeated.code, repeated.err).toBe(0);
    expect(repeated.out).toMatch(skuRow(sku, 7, 0, 7));
    expect(repeated.out).toMatch(/^replayed: /m);
    expect(keyPrinted(repeated.out)).toBe(key);
    expect(await view(sku)).toEqual({ sku, onHand: 7, reserved: 0, available: 7 });
    const entries = await harness.stockhold.knex('ledger_entries').where({ sku, idempotency_key: key }).count({ n: '*' }).first();
    expect(Number(entries?.n)).toBe(1);

    const json = await cli(['--json', 'stock', 'adjust', sku, '5']);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.out);
    expect(body).toEqual({ sku, onHand: 12, reserved: 0, available: 12, idempotencyKey: expect.stringMatching(/^cli-/), replayed: false });
    const replayed = JSON.parse((await cli(['--json', 'stock', 'adjust', sku, '5', '--idempotency-key', body.idempotencyKey])).out);
    expect(replayed).toEqual({ ...body, replayed: true });
    expect((await view(sku)).onHand).toBe(12);

    // The same key with another change is the service's 422: exit code 1, nothing changed.
    const reused = await cli(['stock', 'adjust', sku, '-1', '--idempotency-key', body.idempotencyKey]);
    expect(reused.code).toBe(1);
    expect(reused.err).toContain('(422 idempotency_key_reused)');
    expect((await view(sku)).onHand).toBe(12);
  });
});

describe('reservation show', () => {
  it('shows a pending reservation, then the committed one after its confirm', async () => {
    const sku = uniqueName('CLI');
    expect((await cli(['stock', 'set', sku, '5'])).code).toBe(0);
    const created = await harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body: { lines: [{ sku, quantity: 2 }], customerId: 'customer-7' } });
    expect(created.status).toBe(201);
    const id: string = created.body.id;

    const shown = await cli(['reservation', 'show', id]);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toMatch(new RegExp(`^id\\s+${id}$`, 'm'));
    expect(shown.out).toMatch(/^status\s+pending$/m);
    expect(shown.out).toMatch(/^customerId\s+customer-7$/m);
    expect(shown.out).toMatch(new RegExp(`^${sku}\\s+2$`, 'm'));

    const stopWorker = await harness.startWorker();
    try {
      const confirmed = await harness.call('POST', `/v1/reservations/${id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
      expect(confirmed.body.status).toBe('committed');
    } finally {
      await stopWorker();
    }
    const json = await cli(['reservation', 'show', id, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ id, status: 'committed', lines: [{ sku, quantity: 2 }], customerId: 'customer-7' });

    const unknown = await cli(['reservation', 'show', 'res_doesnotexist']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('(404 reservation_not_found)');
  });
});

describe('reconcile and runs', () => {
  it('a dry run prints the correction it would make and changes nothing; a real run corrects and is listed', async () => {
    const sku = uniqueName('CLI');
    expect((await cli(['stock', 'set', sku, '10'])).code).toBe(0);
    await harness.stockhold.redis.hset(harness.stockhold.keys.skuState(sku), 'onHand', 999);

    const dry = await cli(['reconcile', '--dry-run']);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(/^dry run: nothing was changed; corrections it would make:$/m);
    expect(dry.out).toMatch(/^sku\s+field\s+before\s+after$/m);
    expect(dry.out).toMatch(new RegExp(`^${sku}\\s+onHand\\s+999\\s+10$`, 'm'));
    expect(dry.out).toMatch(/^skusChecked\s+\d+$/m);
    expect(dry.out).toMatch(/^driftCorrected\s+1$/m);
    expect(await harness.stockhold.redis.hget(harness.stockhold.keys.skuState(sku), 'onHand')).toBe('999');

    const dryJson = await cli(['--json', 'reconcile', '--dry-run']);
    expect(dryJson.code).toBe(0);
    const dryReport = JSON.parse(dryJson.out);
    expect(dryReport).toMatchObject({ dryRun: true, trigger: 'manual', corrections: [{ sku, field: 'onHand', before: 999, after: 10 }] });

    const real = await cli(['--json', 'reconcile']);
    expect(real.code).toBe(0);
    const report = JSON.parse(real.out);
    expect(report).toMatchObject({ dryRun: false, corrections: [{ sku, field: 'onHand', before: 999, after: 10 }] });
    expect((await view(sku)).onHand).toBe(10);
    const clean = await cli(['reconcile']);
    expect(clean.out).toMatch(/^no corrections$/m);

    const runs = await cli(['--json', 'runs', '--limit', '3']);
    expect(runs.code).toBe(0);
    const listed = JSON.parse(runs.out).runs as Array<{ runId: string }>;
    expect(listed.map((run) => run.runId)).toContain(report.runId);
    expect(listed).toHaveLength(3);
    const table = await cli(['runs', '--limit', '10']);
    expect(table.out).toMatch(/^runId\s+trigger\s+dryRun\s+startedAt\s+ms\s+checked/m);
    expect(table.out).toMatch(new RegExp(`^${report.runId}\\s+manual\\s+no\\s+`, 'm'));
    expect(table.out).toMatch(new RegExp(`^${dryReport.runId}\\s+manual\\s+yes\\s+`, 'm'));
  });
});

describe('events', () => {
  it('lists the events after an id, as lines and as JSON', async () => {
    const after = await maxEventId();
    const sku = uniqueName('CLI');
    expect((await cli(['stock', 'set', sku, '4'])).code).toBe(0);
    const listed = await cli(['events', '--after', String(after)]);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/^id\s+occurredAt\s+type\s+data$/m);
    expect(listed.out).toMatch(new RegExp(`^\\d+\\s+\\S+Z\\s+stock\\.adjusted\\s+\\{.*"sku":"${sku}"`, 'm'));
    const json = JSON.parse((await cli(['--json', 'events', '--after', String(after), '--limit', '10'])).out);
    expect(json.events).toHaveLength(1);
    expect(json.events[0]).toMatchObject({ type: 'stock.adjusted', data: expect.objectContaining({ sku }) });
    expect(json.next).toBe(json.events[0].id);
    expect((await cli(['events', '--after', String(json.next)])).out).toBe(`no events after ${json.next}\n`);
  });

  it('--follow prints an event that appears while it follows, resumes after it, and stops on its signal', async () => {
    const after = await maxEventId();
    const sku = uniqueName('CLI');
    expect((await cli(['stock', 'set', sku, '1'])).code).toBe(0);
    const stop = new AbortController();
    let seen = '';
    const following = cli(['--json', 'events', '--follow', '--after', String(after), '--interval', '100', '--limit', '1'], { signal: stop.signal, onStdout: (text) => (seen += text) });
    await vi.waitFor(() => expect(seen).toContain(sku), { timeout: 10_000, interval: 20 });
    // A new event, written while the command follows.
    const adjusted = await harness.call('POST', `/v1/skus/${sku}/adjustments`, { idempotencyKey: idempotencyKey(), body: { delta: 2, reason: 'late receipt' } });
    expect(adjusted.status).toBe(201);
    await vi.waitFor(() => expect(seen.trim().split('\n')).toHaveLength(2), { timeout: 10_000, interval: 20 });
    stop.abort();
    const { code, out, err } = await following;
    expect(code, err).toBe(0);
    const events = out.trim().split('\n').map((line) => JSON.parse(line));
    expect(events.map((event) => event.type)).toEqual(['stock.adjusted', 'stock.adjusted']);
    expect(events[1].data).toMatchObject({ sku, delta: 2 });
    expect(events[1].id).toBeGreaterThan(events[0].id);
  });
});

describe('jobs', () => {
  /** A cancel job for a reservation the ledger never committed: the real processor rejects it. */
  async function rejectedCancelJob(): Promise<string> {
    const reservationId = `res_${randomBytes(8).toString('hex')}`;
    const job: CancelJob = { kind: 'cancel', reservationId, fence: 2, requestedBy: 'ops', lines: [{ sku: 'NO-SUCH-SKU', quantity: 1 }] };
    const jobId = `cancel-${reservationId}`;
    await harness.stockhold.commitQueue.queue.add('cancel', job, { jobId, attempts: 1 });
    return jobId;
  }
  const stateOf = async (id: string) => (await harness.stockhold.commitQueue.queue.getJob(id))?.getState();

  it('lists commit jobs the real worker failed, and retries one, then all, back to waiting', async () => {
    const stopWorker = await harness.startWorker();
    const ids = [await rejectedCancelJob(), await rejectedCancelJob(), await rejectedCancelJob()];
    try {
      for (const id of ids) await vi.waitFor(async () => expect(await stateOf(id)).toBe('failed'), { timeout: 10_000, interval: 25 });
    } finally {
      await stopWorker();
    }

    const failed = await cli(['jobs', 'failed', '--queue', 'commits']);
    expect(failed.code, failed.err).toBe(0);
    expect(failed.out).toMatch(/^queue\s+id\s+name\s+attempts\s+failedAt\s+reason$/m);
    for (const id of ids) expect(failed.out).toMatch(new RegExp(`^commits\\s+${id}\\s+cancel\\s+1\\s+\\S+Z\\s+assertion failed: cancel job for`, 'm'));
    const json = JSON.parse((await cli(['--json', 'jobs', 'failed'])).out);
    expect(json.jobs.map((job: { id: string }) => job.id).sort()).toEqual([...ids].sort());
    expect(json.jobs[0]).toMatchObject({ queue: 'commits', name: 'cancel', attemptsMade: 1, failedReason: expect.stringContaining('which the ledger has not committed') });

    const one = await cli(['jobs', 'retry', 'commits', ids[0]!]);
    expect(one.code, one.err).toBe(0);
    expect(one.out).toBe(`retried commits/${ids[0]}: back to waiting\n`);
    expect(await stateOf(ids[0]!)).toBe('waiting');

    const again = await cli(['jobs', 'retry', 'commits', ids[0]!]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('is waiting, not failed');

    const all = await cli(['--json', 'jobs', 'retry', 'commits', '--all']);
    expect(all.code, all.err).toBe(0);
    expect(JSON.parse(all.out)).toMatchObject({ queue: 'commits', retried: 2, refused: 0 });
    for (const id of ids) expect(await stateOf(id)).toBe('waiting');
    expect((await cli(['jobs', 'failed'])).out).toBe('no failed jobs\n');
  });

  it('usage errors: neither an id nor --all, both, or an unknown queue', async () => {
    expect((await cli(['jobs', 'retry', 'commits'])).code).toBe(2);
    expect((await cli(['jobs', 'retry', 'commits', 'some-id', '--all'])).code).toBe(2);
    const badQueue = await cli(['jobs', 'failed', '--queue', 'nope']);
    expect(badQueue.code).toBe(1);
    expect(badQueue.err).toContain('query.queue: must be one of commits, reconcile, webhooks');
  });
});

describe('load', () => {
  it('reserves on schedule, confirms a share, counts add up, and never sells more than the stock', async () => {
    const stock = 25;
    const sku = uniqueName('CLI');
    expect((await cli(['stock', 'set', sku, String(stock)])).code).toBe(0);
    const stopWorker = await harness.startWorker();
    try {
      const run = await cli(['--json', 'load', '--sku', sku, '--rate', '20', '--duration', '2', '--concurrency', '8', '--confirm-share', '0.5'], { as: 'checkout' });
      expect(run.code, run.err).toBe(0);
      const summary = JSON.parse(run.out);
      expect(summary).toMatchObject({ sku, planned: 40, requests: 40, interrupted: false, quantity: 1, confirmFailed: {} });
      expect(summary.sent + summary.skipped).toBe(summary.requests);
      expect(summary.created + summary.insufficientStock + summary.otherTotal).toBe(summary.sent);
      expect(summary.other).toEqual({});
      expect(summary.unitsCreated).toBe(summary.created);
      expect(summary.created).toBeLessThanOrEqual(stock);
      // A refusal means the stock had run out: nothing was released, so every unit was sold.
      if (summary.insufficientStock > 0) expect(summary.created).toBe(stock);
      expect(summary.confirmed).toBe(Math.floor(summary.created * 0.5));
      expect(summary.latencyMs.count).toBe(summary.sent);
      expect(summary.latencyMs.p50).toBeLessThanOrEqual(summary.latencyMs.p99);
      expect(summary.latencyMs.p99).toBeLessThanOrEqual(summary.latencyMs.max);
      expect(run.err).toMatch(/^load: \d+\/2 s {2}sent \d+/m);

      const after = await view(sku);
      expect(after.available).toBe(stock - summary.created);
      expect(after.available).toBeGreaterThanOrEqual(0);
      // The confirmed ones reach the ledger through the real worker.
      await vi.waitFor(async () => expect((await view(sku)).onHand).toBe(stock - summary.confirmed), { timeout: 15_000, interval: 50 });
    } finally {
      await stopWorker();
    }
  });

  it('prints a summary table, and refuses bounds out of range as usage errors', async () => {
    const sku = uniqueName('CLI');
    expect((await cli(['stock', 'set', sku, '1'])).code).toBe(0);
    const run = await cli(['load', '--sku', sku, '--rate', '5', '--duration', '1'], { as: 'checkout' });
    expect(run.code, run.err).toBe(0);
    expect(run.out).toMatch(/^created \(201\)\s+1$/m);
    expect(run.out).toMatch(/^insufficient_stock \(409\)\s+4$/m);
    expect(run.out).toMatch(/^requests\s+5$/m);
    expect(run.out).toMatch(/^latency p99\s+[\d.]+ ms$/m);
    for (const bad of [
      ['--rate', '0', '--duration', '1'],
      ['--rate', '5001', '--duration', '1'],
      ['--rate', '1', '--duration', '3601'],
      ['--rate', '1', '--duration', '1', '--concurrency', '1025'],
      ['--rate', '1', '--duration', '1', '--confirm-share', '1.5'],
      ['--rate', '1'],
    ]) {
      const refused = await cli(['load', '--sku', sku, ...bad], { as: 'checkout' });
      expect(refused.code, bad.join(' ')).toBe(2);
      expect(refused.out).toBe('');
    }
    expect((await view(sku)).available).toBe(0);
    // An admin key cannot reserve: every request is "other", the run still ends with its summary.
    const forbidden = JSON.parse((await cli(['--json', 'load', '--sku', sku, '--rate', '2', '--duration', '1'])).out);
    expect(forbidden.other).toEqual({ '403 forbidden': 2 });
  });

  it('progress: a bar on a terminal, a plain line otherwise', () => {
    const progress = { elapsedSeconds: 5.2, durationSeconds: 10, sent: 100, created: 90, insufficientStock: 8, other: 2, skipped: 0, inFlight: 3 };
    expect(progressLine(progress, false)).toBe('load: 5/10 s  sent 100  created 90  409 8  other 2  skipped 0  in flight 3\n');
    expect(progressLine(progress, true)).toBe(`\r[${'#'.repeat(16)}${'.'.repeat(14)}] 5/10 s  sent 100  created 90  409 8  other 2  skipped 0  in flight 3\x1b[K`);
  });

  it('latency percentiles stay within 1 % of the true value', () => {
    const histogram = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms += 1) histogram.record(ms);
    const summary = histogram.summary();
    expect(summary.count).toBe(1000);
    expect(summary.p50! / 500).toBeGreaterThanOrEqual(1);
    expect(summary.p50! / 500).toBeLessThanOrEqual(1.01);
    expect(summary.p99! / 990).toBeLessThanOrEqual(1.01);
    expect(summary.p99! / 990).toBeGreaterThanOrEqual(1);
    expect(summary.max).toBe(1000);
  });
});

describe('exit codes', () => {
  it('1: a problem the service answered, with title, code and detail on stderr (JSON with --json), no stack', async () => {
    const sku = uniqueName('CLI-MISSING');
    const missing = await cli(['stock', 'get', sku]);
    expect(missing.code).toBe(1);
    expect(missing.out).toBe('');
    expect(missing.err).toContain('stockhold: Unknown SKU (404 sku_not_found)');
    expect(missing.err).toContain(`Unknown SKU: ${sku}`);
    expect(missing.err).not.toMatch(/^\s+at /m);
    const json = await cli(['--json', 'stock', 'get', sku]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.err)).toMatchObject({ status: 404, code: 'sku_not_found', title: 'Unknown SKU' });
    const forbidden = await cli(['stock', 'set', sku, '3'], { as: 'checkout' });
    expect(forbidden.code).toBe(1);
    expect(forbidden.err).toContain('(403 forbidden)');
  });

  it('2: usage errors, before anything is sent', async () => {
    const usage: string[][] = [[], ['nope'], ['stock', 'get'], ['stock', 'set', 'S', '-1'], ['stock', 'adjust', 'S', '0'], ['stock', 'adjust', 'S', 'x'], ['events', '--limit', '0'], ['runs', '--limit', '1001'], ['--timeout', '0', 'runs'], ['stock', 'get', 'S', '--bogus'], ['stock', 'set', 'S', '1', '--idempotency-key', 'has space'], ['stock', 'adjust', 'S', '+1', '--idempotency-key', 'ключ']];
    for (const args of usage) {
      const run = await cli(args, { env: { STOCKHOLD_URL: 'http://127.0.0.1:9' } });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.out, args.join(' ')).not.toContain('Unknown SKU');
    }
    const noKey = await cli(['stock', 'get', 'S'], { as: null });
    expect(noKey.code).toBe(2);
    expect(noKey.err).toContain('no API key: set STOCKHOLD_API_KEY or pass --api-key');
    expect((await cli(['stock', 'get', 'S', '--url', 'not a url'])).code).toBe(2);
    expect((await cli(['--help'])).code).toBe(0);
  });

  describe('3: nothing answers', () => {
    let silent: Server;
    const silentSockets = new Set<Socket>();
    let silentUrl: string;
    let closedUrl: string;
    beforeAll(async () => {
      // A port that was just free: nothing listens there.
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      closedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      // A server that accepts connections and never answers.
      silent = createServer((socket) => silentSockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      for (const socket of silentSockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });

    it('connection refused', async () => {
      const run = await cli(['stock', 'get', 'S', '--url', closedUrl]);
      expect(run.code).toBe(3);
      expect(run.err).toBe(`stockhold: GET ${closedUrl}/v1/skus/S: could not reach the service (ECONNREFUSED)\n`);
    });

    it('130: Ctrl-C while a request waits for its answer', async () => {
      const interrupt = new AbortController();
      const running = cli(['--timeout', '30', 'runs'], { env: { STOCKHOLD_URL: silentUrl }, signal: interrupt.signal });
      await vi.waitFor(() => expect(silentSockets.size).toBeGreaterThan(0), { timeout: 5000, interval: 10 });
      interrupt.abort();
      const run = await running;
      expect(run.code).toBe(130);
      expect(run.err).toBe('stockhold: interrupted\n');
    });

    it('no answer within --timeout', async () => {
      const run = await cli(['--timeout', '1', 'runs'], { env: { STOCKHOLD_URL: silentUrl } });
      expect(run.code).toBe(3);
      expect(run.err).toBe(`stockhold: GET ${silentUrl}/v1/reconcile/runs?limit=20: no answer within 1 s\n`);
    });
  });
});
