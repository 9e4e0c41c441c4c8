// One chaos run: private Redis (AOF) and Postgres behind fault proxies, the production process
// layout (two APIs, two commit workers, one reconciler), seeded clients and a seeded nemesis for
// the given duration, then quiet, the final checks, and the verdict over the recorded history.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { createPostgres } from '../lib/postgres/connection';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import { checkHistory, type CheckResult, type CustomerCaps, type LedgerDump } from './checker';
import { checkAgreement, drainCommits, dumpLedger, sellOut, waitHoldsCleared, waitReady, type FinalSetting, type FinalTimings } from './final-checks';
import { endpoint, send, type ApiEndpoint } from './http-client';
import type { Fault, FaultKind, Operation, Violation } from './history';
import { Nemesis, type Cluster, type RedisSetup, type Timeouts } from './nemesis';
import { Service } from './processes';
import { FaultProxy } from './proxy';
import { Random } from './random';
import { freePort, PrivatePostgres, PrivateRedis, PrivateRedisCluster } from './servers';
import { ChaosClient, Recorder, sleep, type Customers, type Secrets } from './workload';

export interface RunOptions {
  readonly seed: number;
  readonly durationS: number;
  readonly clients: number;
  readonly skus: number;
  readonly dataLoss: boolean;
  /** On a Redis Cluster (three primaries, three replicas) instead of one Redis. */
  readonly redisCluster: boolean;
  /** Stripes of every SKU (1: not striped; docs/design.md, "Hot-SKU striping"). */
  readonly stripes: number;
  readonly only: readonly FaultKind[] | undefined;
  readonly distDirectory: string;
  readonly log: (line: string) => void;
}

export interface RunResult {
  readonly operations: readonly Operation[];
  readonly faults: readonly Fault[];
  readonly violations: readonly Violation[];
  readonly check: CheckResult;
  readonly ledger: LedgerDump;
  readonly timings: FinalTimings;
  readonly logDirectory: string;
}

const secrets: Secrets = { checkout: 'chaos-checkout-secret', fulfillment: 'chaos-fulfillment-secret', admin: 'chaos-admin-secret' };
const apiKeys = `chaos-shop:checkout:${secrets.checkout},chaos-fulfillment:fulfillment:${secrets.fulfillment},chaos-admin:admin+fulfillment:${secrets.admin}`;
export const startingOnHand = 10;
export const holdTtlSecondsMax = 5;
export const databaseName = 'stockhold_chaos';

/**
 * The flash-sale guards a run sets: every other SKU limited to 4 units a customer, at most 3 live reservations a customer; 30 % of
 * carts come from 3 hoarding bots (every client shares them, so their carts race into both caps
 * across both API processes), the rest from 40 shoppers.
 */
export const chaosCustomers: Customers = {
  bots: Array.from({ length: 3 }, (_, index) => `bot-${index + 1}`),
  shoppers: Array.from({ length: 40 }, (_, index) => `shopper-${index + 1}`),
  botShare: 0.3,
};
export const chaosPerCustomerLimit = 4;
export const chaosActiveHoldsMax = 3;
function capsOf(skus: readonly string[]): CustomerCaps {
  return { perCustomerLimit: new Map(skus.filter((_, index) => index % 2 === 0).map((sku) => [sku, chaosPerCustomerLimit])), activeHoldsMax: chaosActiveHoldsMax };
}

/** Short timeouts and intervals, so that faults outlast them and recovery fits in a short run. */
export const timeouts: Timeouts = { redisCommandTimeoutMs: 1000, postgresStatementTimeoutMs: 2000, commitLockDurationMs: 2000 };
export const reconcileIntervalMs = 2000;
export const commitGraceMs = 4000;

function serviceEnvironment(redis: RedisSetup, postgresPort: number): Record<string, string> {
  return {
    NODE_ENV: 'production',
    API_KEYS: apiKeys,
    LOG_LEVEL: 'warn',
    ...(redis.kind === 'single' ? { REDIS_URL: `redis://127.0.0.1:${redis.proxy.listenPort}` } : { REDIS_CLUSTER_NODES: redis.cluster.seeds }),
    DATABASE_URL: `postgres://postgres@127.0.0.1:${postgresPort}/${databaseName}`,
    REDIS_COMMAND_TIMEOUT_MS: String(timeouts.redisCommandTimeoutMs),
    POSTGRES_STATEMENT_TIMEOUT_MS: String(timeouts.postgresStatementTimeoutMs),
    POSTGRES_CONNECT_TIMEOUT_MS: '1000',
    COMMIT_LOCK_DURATION_MS: String(timeouts.commitLockDurationMs),
    COMMIT_STALLED_INTERVAL_MS: '1000',
    COMMIT_BACKOFF_BASE_MS: '100',
    COMMIT_BACKOFF_MAX_MS: '2000',
    COMMIT_ATTEMPTS: '1000',
    COMMIT_CONCURRENCY: '64',
    RECONCILE_INTERVAL_MS: String(reconcileIntervalMs),
    RECONCILE_COMMIT_GRACE_MS: String(commitGraceMs),
    IDEMPOTENCY_IN_FLIGHT_TTL_SECONDS: '5',
    MAX_ACTIVE_HOLDS_PER_CUSTOMER: String(chaosActiveHoldsMax),
  };
}

interface Started {
  readonly cluster: Cluster;
  readonly services: readonly Service[];
  readonly apis: readonly ApiEndpoint[];
  readonly knex: Knex;
  readonly logDirectory: string;
}

async function startCluster(options: RunOptions): Promise<Started> {
  const logDirectory = mkdtempSync(path.join(tmpdir(), 'stockhold-chaos-'));
  const redis = await startRedis(options.redisCluster);
  const postgres = await PrivatePostgres.start();
  await prepareDatabaseAt(postgres.url(databaseName));
  const postgresProxy = new FaultProxy(await freePort(), postgres.port);
  await postgresProxy.start();
  const env = serviceEnvironment(redis, postgresProxy.listenPort);
  const script = (name: string) => path.join(options.distDirectory, 'apps', name, 'main.js');
  const apiPorts = [await freePort(), await freePort()];
  const apis = apiPorts.map((port, index) => new Service({ name: `api-${index + 1}`, script: script('api'), env: { ...env, PORT: String(port) } }, logDirectory));
  const workers = [1, 2].map((index) => new Service({ name: `worker-${index}`, script: script('worker'), env }, logDirectory));
  const reconcilers = [new Service({ name: 'reconciler-1', script: script('reconciler'), env }, logDirectory)];
  const services = [...apis, ...workers, ...reconcilers];
  for (const service of services) service.start();
  const knex = createPostgres({ url: postgres.url(databaseName), poolMax: 4, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
  const cluster: Cluster = { apis, workers, reconcilers, redis, postgres, databaseName, postgresProxy, timeouts };
  return { cluster, services, apis: apiPorts.map(endpoint), knex, logDirectory };
}

/** One Redis (AOF, fsync always) behind a fault proxy, or a 3+3 Redis Cluster (AOF on every node). */
async function startRedis(onCluster: boolean): Promise<RedisSetup> {
  if (onCluster) return { kind: 'cluster', cluster: await PrivateRedisCluster.start({ primaries: 3, replicasPerPrimary: 1, appendOnly: true }) };
  const server = await PrivateRedis.start({ appendOnly: true });
  const proxy = new FaultProxy(await freePort(), server.port);
  await proxy.start();
  return { kind: 'single', server, proxy };
}

async function createSkus(apis: readonly ApiEndpoint[], skus: readonly string[], stripes: number, caps: CustomerCaps | undefined): Promise<void> {
  for (const sku of skus) {
    const limit = caps?.perCustomerLimit.get(sku);
    const reply = await send(apis[0]!, { method: 'PUT', path: `/v1/skus/${sku}/stock`, secret: secrets.admin, body: { onHand: startingOnHand, ...(stripes > 1 ? { stripes } : {}), ...(limit === undefined ? {} : { perCustomerLimit: limit }) } });
    if (reply.status !== 200) throw new Error(`creating ${sku}: ${reply.status} ${JSON.stringify(reply.body)}`);
  }
}

async function stopCluster(started: Started): Promise<void> {
  await Promise.all(started.services.map((service) => service.stop()));
  await started.knex.destroy();
  await started.cluster.postgresProxy.stop();
  const redis = started.cluster.redis;
  if (redis.kind === 'single') {
    await redis.proxy.stop();
    await redis.server.remove();
  } else {
    await redis.cluster.remove();
  }
  await started.cluster.postgres.remove();
}

export async function runChaos(options: RunOptions): Promise<RunResult> {
  const root = new Random(options.seed);
  const started = await startCluster(options);
  try {
    return await drive(options, root, started);
  } finally {
    await stopCluster(started);
  }
}

async function drive(options: RunOptions, root: Random, started: Started): Promise<RunResult> {
  const { apis, knex, cluster } = started;
  if (!(await waitReady(apis))) throw new Error(`the API processes did not become ready; logs in ${started.logDirectory}`);
  const skus = Array.from({ length: options.skus }, (_, index) => `CHAOS-${index + 1}`);
  const caps = capsOf(skus);
  await createSkus(apis, skus, options.stripes, caps);
  const startOnHand = new Map(skus.map((sku) => [sku, startingOnHand]));
  const watermark = Number((await knex('ledger_entries').max({ id: 'id' }).first())?.id ?? 0);
  const recorder = new Recorder();
  const runLabel = `s${options.seed}`;
  const setting = { apis, skus, secrets, recorder, runLabel, holdTtlSecondsMax, ...(caps === undefined ? {} : { customers: chaosCustomers }) };
  const clients = Array.from({ length: options.clients }, (_, index) => new ChaosClient(`c${index + 1}`, root.fork(`client-${index + 1}`), setting));
  const nemesis = new Nemesis(cluster, root.fork('nemesis'), new ChaosClient('nemesis', root.fork('race'), setting), skus, options.dataLoss, options.only);
  let stopAt = Date.now() + options.durationS * 1000;
  // Ctrl-C (or SIGTERM) ends the run early: faults healed, history checked, servers removed.
  const interrupt = () => {
    options.log('chaos: interrupted; stopping the clients and checking what was recorded');
    stopAt = Date.now();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const stopped = () => Date.now() >= stopAt;
  options.log(`chaos: seed ${options.seed}, ${options.clients} clients, ${options.durationS} s, ${options.redisCluster ? 'on a Redis Cluster (3 primaries, 3 replicas)' : 'on one Redis'}, ${options.stripes > 1 ? `SKUs in ${options.stripes} stripes, ` : ''}${options.dataLoss ? 'with' : 'without'} Redis data loss; logs in ${started.logDirectory}`);
  const progress = setInterval(() => options.log(`chaos: ${recorder.operations.length} operations, ${nemesis.faults.length} faults`), 10_000);
  try {
    await Promise.all([nemesis.loop(stopped).then(() => nemesis.healAll()), ...clients.map((client) => client.loop(stopped))]);
  } finally {
    clearInterval(progress);
    await nemesis.healAll();
  }
  options.log(`chaos: quiet after ${recorder.operations.length} operations and ${nemesis.faults.length} faults; checking`);
  return finish(root, started, { skus, startOnHand, watermark, recorder, faults: nemesis.faults, runLabel, caps });
}

interface Driven {
  readonly skus: readonly string[];
  readonly startOnHand: ReadonlyMap<string, number>;
  readonly watermark: number;
  readonly recorder: Recorder;
  readonly faults: readonly Fault[];
  readonly runLabel: string;
  readonly caps: CustomerCaps | undefined;
}

async function finish(root: Random, started: Started, driven: Driven): Promise<RunResult> {
  const violations: Violation[] = [];
  const final: FinalSetting = {
    apis: started.apis,
    skus: driven.skus,
    secrets,
    recorder: driven.recorder,
    random: root.fork('final'),
    knex: started.knex,
    reconcileIntervalMs,
    commitGraceMs,
    holdTtlSecondsMax,
    runLabel: driven.runLabel,
    faults: driven.faults,
    perCustomerLimit: driven.caps?.perCustomerLimit ?? new Map(),
  };
  const begin = Date.now();
  const elapsed = () => Date.now() - begin;
  if (!(await waitReady(started.apis))) throw new Error(`the API processes did not come back; logs in ${started.logDirectory}`);
  const timings: FinalTimings = { readyMs: elapsed(), commitsDrainedMs: null, holdsClearedMs: null, agreementMs: null };
  if (await drainCommits(final)) timings.commitsDrainedMs = elapsed();
  if (await waitHoldsCleared(final)) timings.holdsClearedMs = elapsed();
  const agreementStart = Date.now();
  if (await checkAgreement(final, violations)) timings.agreementMs = Date.now() - agreementStart;
  await sellOut(final, violations);
  await sleep(100);
  const ledger = await dumpLedger(started.knex, driven.skus, driven.watermark);
  const check = checkHistory({ operations: driven.recorder.operations, faults: driven.faults, ledger, startOnHand: driven.startOnHand, ...(driven.caps === undefined ? {} : { caps: driven.caps }) });
  violations.push(...check.violations);
  return { operations: driven.recorder.operations, faults: driven.faults, violations, check, ledger, timings, logDirectory: started.logDirectory };
}

export function removeLogs(result: RunResult): void {
  rmSync(result.logDirectory, { recursive: true, force: true });
}
