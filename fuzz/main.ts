// `npm run fuzz -- [--requests N] [--seed S]`: N requests (default 2,000) generated from the
// OpenAPI document (fuzz/requests.ts: valid ones, and as many mutated) against an API started
// here on the Redis at REDIS_URL (a key prefix of its own) and a Postgres database of its own on
// the server at DATABASE_URL (created, migrated, dropped). One request at a time, so that each
// answer can be judged alone. Checked for every answer:
//   - no 5xx;
//   - an error is application/problem+json whose numeric `status` is the HTTP status, with a `code`;
//   - the answer is what the OpenAPI document says for its operation and status (fuzz/response-checker.ts);
//   - a refused mutation changed no stock: every SKU's Redis state and holds, and the ledger, are
//     as before it;
// and at the end, a dry-run reconciliation finds Redis and the ledger in agreement.
// Prints the figures; exit 1 on any violation (the first ones are printed with their request).
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import pino from 'pino';
import { createApp } from '../apps/api/app';
import { openApiDocument } from '../apps/api/openapi';
import { loadConfig } from '../lib/config';
import { dropDatabase } from '../lib/postgres/connection';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { createStockhold, type Stockhold } from '../lib/stockhold';
import { mutate, Random, remember, validRequest, type FuzzRequest, type KeyName, type Targets } from './requests';
import { judge, type Answer, type Violation } from './judge';
import { ResponseChecker } from './response-checker';

const requestsMax = 10_000_000;
/** Violations printed in full, at most. */
const violationsShownMax = 20;
/** One request's answer, at most (a stuck request is itself a finding). */
const requestTimeoutMs = 30_000;
const skusInPool = 8;
const mutatedShare = 0.5;

const flags = new Map<string, string>();
for (let index = 2; index < process.argv.length; index += 2) flags.set(String(process.argv[index]).replace(/^--/, ''), String(process.argv[index + 1]));
const unknownFlags = [...flags.keys()].filter((flag) => !['requests', 'seed'].includes(flag));
if (unknownFlags.length > 0) {
  process.stderr.write(`usage: npm run fuzz -- [--requests N] [--seed S]\nunknown: ${unknownFlags.join(' ')}\n`);
  process.exit(64);
}
const requests = Number(flags.get('requests') ?? 2000);
const seed = Number(flags.get('seed') ?? 1);
if (!(Number.isInteger(requests) && requests >= 1 && requests <= requestsMax)) throw new Error(`--requests: 1-${requestsMax}`);
if (!Number.isInteger(seed)) throw new Error('--seed: an integer');

const secrets: Record<KeyName, string> = {
  checkout: `fuzz-checkout-${randomBytes(8).toString('hex')}`,
  otherCheckout: `fuzz-other-${randomBytes(8).toString('hex')}`,
  fulfillment: `fuzz-fulfillment-${randomBytes(8).toString('hex')}`,
  admin: `fuzz-admin-${randomBytes(8).toString('hex')}`,
};

/** What a refused request must not change: each SKU's Redis state and holds, and the ledger. */
async function snapshot(stockhold: Stockhold, skus: readonly string[]): Promise<string> {
  const pipeline = stockhold.redis.pipeline();
  for (const sku of skus) {
    pipeline.hgetall(stockhold.keys.skuState(sku));
    pipeline.zcard(stockhold.keys.skuHolds(sku));
    pipeline.get(stockhold.keys.skuStripes(sku));
  }
  // The customers the generator uses most (the flash-sale guards' index): a refused request adds none.
  for (const customer of ['cust-1', 'cust-2', 'cust-3']) pipeline.zrange(stockhold.keys.customer('shop-a', customer), 0, -1);
  const replies = (await pipeline.exec()) ?? [];
  const [row] = await stockhold.knex('ledger_entries').count({ entries: '*' });
  return JSON.stringify([replies.map(([error, value]) => (error === null ? value : String(error))), row?.entries]);
}

async function send(baseUrl: string, request: FuzzRequest): Promise<Answer> {
  const body = request.raw ?? (request.body === undefined ? undefined : JSON.stringify(request.body));
  const response = await fetch(`${baseUrl}${request.path}`, {
    method: request.method,
    headers: request.headers,
    body: request.method === 'GET' || request.method === 'HEAD' ? undefined : body,
    signal: AbortSignal.timeout(requestTimeoutMs),
    redirect: 'manual',
  });
  // The path as sent: fetch resolves "." and ".." segments before it leaves.
  const sent = new URL(response.url);
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text(), path: `${sent.pathname}${sent.search}`, headers: response.headers };
}

function describe(request: FuzzRequest): string {
  const body = request.raw ?? (request.body === undefined ? '' : JSON.stringify(request.body));
  return `${request.method} ${request.path.slice(0, 200)} [${request.operation}${request.mutation === undefined ? '' : ` / ${request.mutation}`}] ${body.slice(0, 200)}`;
}

async function main(): Promise<void> {
  const databaseUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/stockhold');
  databaseUrl.pathname = `/stockhold_fuzz_${randomBytes(5).toString('hex')}`;
  const prefix = `fuzz:${randomBytes(4).toString('hex')}:`;
  await prepareDatabaseAt(databaseUrl.toString());
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: databaseUrl.toString(),
    REDIS_KEY_PREFIX: prefix,
    API_KEYS: [`shop-a:checkout:${secrets.checkout}`, `shop-b:checkout:${secrets.otherCheckout}`, `warehouse:fulfillment:${secrets.fulfillment}`, `ops:admin:${secrets.admin}`].join(','),
    // Nothing shed, nothing rate limited: every answer is the service's own judgement.
    MAX_IN_FLIGHT: '0',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    RATE_LIMIT_PER_CLIENT_RPS: '',
    // No hold expires during a run: an expiry reclaimed by a refused request would look like a change.
    HOLD_TTL_DEFAULT_SECONDS: '86400',
    LOG_LEVEL: 'silent',
  });
  const stockhold = await createStockhold(config);
  // 5xx answers are logged (at error) with their cause, to stderr.
  const app = createApp(stockhold, pino({ level: 'error' }, pino.destination(2)));
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const checker = new ResponseChecker(openApiDocument(config));
  const random = new Random(seed);
  const violations: Violation[] = [];
  const byStatus = new Map<number, number>();
  const byMutation = new Map<string, number>();
  let mutated = 0;
  let sentCount = 0;
  const startedAt = Date.now();
  try {
    const skus = Array.from({ length: skusInPool }, (_, index) => `FUZZ-${index}`);
    for (const sku of skus) {
      const created = await send(baseUrl, { operation: 'setStock', method: 'PUT', path: `/v1/skus/${sku}/stock`, headers: { authorization: `Bearer ${secrets.admin}`, 'content-type': 'application/json' }, body: { onHand: 1000 } });
      if (created.status !== 200) throw new Error(`creating ${sku}: ${created.status} ${created.text}`);
    }
    const targets: Targets = { skus, reservationIds: [], usedKeys: [], secrets };
    // Ctrl-C or SIGTERM ends the run after the request in flight; the database and keys still go.
    let stopping = false;
    const stop = () => {
      stopping = true;
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    for (let sent = 0; sent < requests && !stopping; sent += 1) {
      sentCount = sent + 1;
      let request = validRequest(random, targets);
      if (random.chance(mutatedShare)) {
        request = mutate(request, random, targets);
        if (request.mutation !== undefined) {
          mutated += 1;
          byMutation.set(request.mutation, (byMutation.get(request.mutation) ?? 0) + 1);
        }
      }
      const mutation = request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'OPTIONS';
      const before = mutation ? await snapshot(stockhold, skus) : '';
      let answer: Awaited<ReturnType<typeof send>>;
      try {
        answer = await send(baseUrl, request);
      } catch (error) {
        violations.push({ kind: 'no-answer', detail: String(error), request });
        continue;
      }
      byStatus.set(answer.status, (byStatus.get(answer.status) ?? 0) + 1);
      const after = mutation && answer.status >= 400 ? await snapshot(stockhold, skus) : before;
      const json = judge(checker, request, answer, before, after, violations);
      // The server runs in this process: a prototype-pollution key that reached an object's
      // prototype chain would show on every object here.
      if (Object.keys(Object.prototype).length > 0 || (({}) as { polluted?: unknown }).polluted !== undefined) {
        violations.push({ kind: 'polluted', detail: Object.keys(Object.prototype).join(', '), request });
        for (const key of Object.keys(Object.prototype)) delete (Object.prototype as Record<string, unknown>)[key];
      }
      if (answer.status === 201 && request.operation === 'createReservation' && request.mutation === undefined) {
        const id = (json as { id?: unknown } | undefined)?.id;
        if (typeof id === 'string') remember(targets.reservationIds, id);
        remember(targets.usedKeys, { key: request.headers['idempotency-key']!, body: request.body });
      }
      if (sent > 0 && sent % 10_000 === 0) process.stderr.write(`fuzz: ${sent} requests, ${violations.length} violations\n`);
    }
    const report = await stockhold.reconciler.run('cli', true);
    if (report.skusOutOfAgreement > 0 || report.corrections.length > 0) violations.push({ kind: 'disagreement', detail: JSON.stringify(report.corrections).slice(0, 500) });
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    (app.locals.admission as { close(): void }).close();
    await deleteKeysWithPrefix(stockhold.redis, prefix);
    await stockhold.close();
    await dropDatabase(databaseUrl.toString());
  }
  const seconds = (Date.now() - startedAt) / 1000;
  const count = (kind: Violation['kind']) => violations.filter((violation) => violation.kind === kind).length;
  const statuses = [...byStatus].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`).join(', ');
  const mutationsSeen = [...byMutation].sort(([a], [b]) => a.localeCompare(b)).map(([name, n]) => `${name} ${n}`).join(', ');
  const polluted = violations.filter((violation) => violation.kind === 'polluted').length;
  process.stdout.write(
    `fuzz: ${sentCount} requests${sentCount < requests ? ` (stopped early, of ${requests})` : ''} (seed ${seed}), ${mutated} mutated, ${seconds.toFixed(1)} s\n` +
      `statuses: ${statuses}\n` +
      `mutations: ${mutationsSeen}\n` +
      `answers checked against the document: ${[...checker.checked.values()].reduce((sum, n) => sum + n, 0)} (${checker.checked.size} operation/status pairs)\n` +
      `5xx: ${count('5xx')}, problem documents wrong: ${count('problem')}, schema mismatches: ${count('schema')}, stock changed by a refused request: ${count('stock-changed')}, no answer: ${count('no-answer')}, Redis and ledger disagree: ${count('disagreement')}, prototype polluted: ${polluted}\n`,
  );
  for (const violation of violations.slice(0, violationsShownMax)) {
    process.stdout.write(`  ${violation.kind}: ${violation.detail}\n    ${violation.request === undefined ? '' : describe(violation.request)}\n`);
  }
  process.stdout.write(violations.length === 0 ? 'verdict: no violations\n' : `verdict: ${violations.length} violations\n`);
  if (violations.length > 0) process.exitCode = 1;
}

main().catch((error) => {
  process.stderr.write(`fuzz failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
