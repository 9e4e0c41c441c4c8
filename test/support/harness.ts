// A real Stockhold over the real Redis and Postgres, with a key prefix of its own, an HTTP server
// on an ephemeral port, and helpers to call it. close() removes every key under the prefix.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import pino from 'pino';
import { inject } from 'vitest';
import type { Admission } from '../../apps/api/admission';
import { createApp } from '../../apps/api/app';
import { openApiDocument } from '../../apps/api/openapi';
import { startWorker } from '../../apps/worker/worker';
import { ResponseChecker } from '../../fuzz/response-checker';
import { loadConfig, type Config } from '../../lib/config';
import { dropDatabase } from '../../lib/postgres/connection';
import { prepareDatabaseAt } from '../../lib/postgres/migrations';
import { deleteKeysWithPrefix } from '../../lib/redis/delete-keys';
import { createStockhold, type Stockhold } from '../../lib/stockhold';

export const testDatabaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/stockhold_test';
export const testRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/9';

export const secrets = {
  checkout: 'test-checkout-secret',
  otherCheckout: 'test-other-checkout-secret',
  fulfillment: 'test-fulfillment-secret',
  admin: 'test-admin-secret',
} as const;
const apiKeys = [
  `shop-a:checkout:${secrets.checkout}`,
  `shop-b:checkout:${secrets.otherCheckout}`,
  `warehouse:fulfillment:${secrets.fulfillment}`,
  `ops:admin:${secrets.admin}`,
].join(',');

/**
 * The tests' application log: only 500s and other unexpected errors reach it (stderr, shown with
 * the test that caused them), so a 500 in a test run says why; 503s, which outage tests expect by
 * the hundred, are left out.
 */
const errorsOnly = pino(
  {
    level: 'error',
    hooks: {
      logMethod(args, method) {
        const [fields] = args as unknown as [Record<string, any> | undefined];
        if (fields !== undefined && typeof fields === 'object' && (fields.status === 503 || fields.err?.code === 'backend_unavailable')) return;
        method.apply(this, args);
      },
    },
  },
  pino.destination(2),
);

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    REDIS_URL: testRedisUrl,
    DATABASE_URL: testDatabaseUrl,
    REDIS_KEY_PREFIX: `t:${randomBytes(4).toString('hex')}:`,
    API_KEYS: apiKeys,
    LOG_LEVEL: 'silent',
    // Load shedding off in tests unless a test turns it on: a loaded CI machine's event-loop
    // delay would shed a test's request at random (test/overload.test.ts tests the bounds).
    MAX_IN_FLIGHT: '0',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    ...overrides,
  });
}

export interface Harness {
  readonly stockhold: Stockhold;
  /** The API's admission (load shedding), to see what it holds. */
  readonly admission: Admission;
  readonly config: Config;
  /** Starts an in-process commit worker (stopped by close()). */
  startWorker(): Promise<() => Promise<void>>;
  readonly baseUrl: string;
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  /** Stops server and workers; deletes the test's Redis keys unless `keepData`. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export interface CallOptions {
  readonly as?: keyof typeof secrets | null;
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
  readonly idempotencyKey?: string;
}

export interface CallResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
}


export interface HarnessOptions {
  /**
   * A database of the test file's own (created, migrated, dropped at close): for tests whose
   * code walks every SKU of the ledger (the reconciler), so other files' SKUs never show up.
   */
  readonly ownDatabase?: boolean;
  /**
   * Run on this Redis Cluster (seeds host:port): the configuration refuses REDIS_CLUSTER_NODES
   * until cluster mode is complete, so the harness sets it past the check, for the cluster tests.
   */
  readonly clusterSeeds?: ReadonlyArray<{ readonly host: string; readonly port: number }>;
}

/** The cluster this run's tests share (the cluster run only), as harness seeds. */
function runClusterSeeds(): Array<{ host: string; port: number }> | undefined {
  const seeds = inject('clusterSeeds');
  if (seeds === undefined || seeds === '') return undefined;
  return seeds.split(',').map((seed) => {
    const [host, port] = seed.split(':');
    return { host: host as string, port: Number(port) };
  });
}

export async function startHarness(overrides: Record<string, string> = {}, options: HarnessOptions = {}): Promise<Harness> {
  let ownDatabaseUrl: string | undefined;
  if (options.ownDatabase === true) {
    const url = new URL(testDatabaseUrl);
    url.pathname = `/stockhold_test_${randomBytes(6).toString('hex')}`;
    ownDatabaseUrl = url.toString();
    await prepareDatabaseAt(ownDatabaseUrl);
  }
  const loaded = testConfig({ ...(ownDatabaseUrl === undefined ? {} : { DATABASE_URL: ownDatabaseUrl }), ...overrides });
  // The cluster run (vitest.cluster.config.mts) puts every harness on its cluster, unless a test
  // points the harness at a Redis of its own.
  const clusterSeeds = options.clusterSeeds ?? (overrides.REDIS_URL === undefined ? runClusterSeeds() : undefined);
  const config: Config = clusterSeeds === undefined ? loaded : Object.freeze({ ...loaded, redisClusterNodes: clusterSeeds, redisConfirmReplicas: Number(overrides.REDIS_CONFIRM_REPLICAS ?? 1) });
  const stockhold = await createStockhold(config);
  const app = createApp(stockhold, errorsOnly);
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const workers: Array<() => Promise<void>> = [];
  // Every response call() receives is held to the OpenAPI document the server serves.
  const responses = new ResponseChecker(openApiDocument(config));
  return {
    stockhold,
    admission: app.locals.admission as Admission,
    config,
    baseUrl,
    async startWorker() {
      const worker = await startWorker(stockhold, pino({ level: 'silent' }));
      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        await worker.stop();
      };
      workers.push(stop);
      return stop;
    },
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      const as = options.as === undefined ? 'admin' : options.as;
      if (as !== null) headers.authorization = `Bearer ${secrets[as]}`;
      if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
      let body: string | undefined = options.rawBody;
      if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetchRetryingResets(`${baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
      const text = await response.text();
      const parsed = text === '' ? undefined : JSON.parse(text);
      responses.check(method, path, response.status, response.headers.get('content-type'), parsed, response.headers);
      return { status: response.status, headers: response.headers, body: parsed };
    },
    async close(options = {}) {
      for (const stop of workers) await stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      (app.locals.admission as Admission).close();
      if (stockhold.redis.status === 'ready' && options.keepData !== true) await deleteKeysWithPrefix(stockhold.redis, config.redisKeyPrefix);
      await stockhold.close();
      if (ownDatabaseUrl !== undefined) await dropDatabase(ownDatabaseUrl);
    },
  };
}

/** Connection resets retried per request at most, before any response came. */
export const resetRetriesMax = 2;

/**
 * fetch, sending the request again when the connection was reset before any response (a
 * keep-alive socket the server closed as the request went out: seen once under a loaded CI run
 * with 1,000 requests in flight), as a client does. Safe for every Stockhold call: mutations carry
 * an Idempotency-Key, and confirm, release and reads are idempotent.
 */
async function fetchRetryingResets(url: string, init: RequestInit): Promise<Response> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fetch(url, init);
    } catch (error) {
      const code = ((error as { cause?: { code?: string } }).cause ?? {}).code;
      if (attempt >= resetRetriesMax || (code !== 'ECONNRESET' && code !== 'UND_ERR_SOCKET')) throw error;
    }
  }
}

/** Creates a SKU with `onHand` units through the API, as an operator would. */
export async function createSku(harness: Harness, onHand: number, prefix = 'SKU'): Promise<string> {
  const sku = uniqueName(prefix);
  const response = await harness.call('PUT', `/v1/skus/${sku}/stock`, { body: { onHand } });
  if (response.status !== 200) throw new Error(`creating ${sku} failed: ${response.status} ${JSON.stringify(response.body)}`);
  return sku;
}

let keyCounter = 0;
export function idempotencyKey(): string {
  keyCounter += 1;
  return `key-${process.pid}-${keyCounter}-${randomBytes(4).toString('hex')}`;
}
