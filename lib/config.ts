// The one place that reads process.env. Every setting is declared once with its default, its
// bounds and a sentence for the operator; loadConfig() parses them all, reports every problem at
// once and returns a frozen object. Everything else takes a Config as an argument.
import { parseApiKeys, type ApiKey } from './api-keys';

/** Where new reservation records go (lua/includes/record.lua): `compact` (16 keys a window, short fields) or `previous` (as versions before 2026-11-26). */
export type RecordLayout = 'compact' | 'previous';

export const DEVELOPMENT_API_KEYS =
  'checkout-dev:checkout:dev-checkout-secret,' +
  'fulfillment-dev:fulfillment:dev-fulfillment-secret,' +
  'admin-dev:admin+fulfillment:dev-admin-secret';

/** Webhook receivers at most: each event is one delivery job per URL. */
export const webhookUrlsMax = 16;
/** A receiver URL's length at most (its cursor row's key). */
export const webhookUrlLengthMax = 2048;

export interface Config {
  readonly nodeEnv: string;
  readonly port: number;
  readonly webConcurrency: number;
  /** Requests an API process serves at once; beyond it 503 `overloaded` at once (0: no bound). */
  readonly maxInFlight: number;
  /** Event-loop delay (ms, the worst in the last 100 ms sample) beyond which requests are shed (0: off). */
  readonly maxEventLoopDelayMs: number;
  /** Live (pending or confirmed) reservations one customer of a client may have across SKUs; 0: no cap. */
  readonly maxActiveHoldsPerCustomer: number;
  /** Requests per second per API client on /v1 (a token bucket in Redis); null: no limit. */
  readonly rateLimitPerClientRps: number | null;
  /** The bucket's size: requests a client may make at once after being idle. */
  readonly rateLimitBurst: number;
  readonly redisUrl: string;
  readonly redisKeyPrefix: string;
  /** Seeds of a Redis Cluster (REDIS_CLUSTER_NODES); null: the single Redis at redisUrl. */
  readonly redisClusterNodes: ReadonlyArray<{ readonly host: string; readonly port: number }> | null;
  /** Replicas that must have a confirmation before it is answered (Redis WAIT); 0: none. */
  readonly redisConfirmReplicas: number;
  readonly redisConfirmWaitMs: number;
  readonly databaseUrl: string;
  readonly apiKeys: readonly ApiKey[];
  readonly apiKeysAreDevelopmentDefaults: boolean;
  readonly quantityMax: number;
  readonly stockOnHandMax: number;
  readonly holdTtlDefaultSeconds: number;
  readonly idempotencyTtlSeconds: number;
  readonly idempotencyInFlightTtlSeconds: number;
  readonly reservationRetentionSeconds: number;
  readonly reclaimPerSkuMax: number;
  /** Reservations one Redis call carries at most (a turn's burst sent as one batch); 1 sends each alone. */
  readonly reservationBatchMax: number;
  /** Where new records go: `compact`, or `previous` during a rolling upgrade from a version before 2026-11-26 (both are always read). */
  readonly recordLayout: RecordLayout;
  readonly holdsRebuildMax: number;
  readonly unknownSkuCacheMs: number;
  readonly redisCommandTimeoutMs: number;
  readonly postgresPoolMax: number;
  readonly postgresStatementTimeoutMs: number;
  readonly postgresConnectTimeoutMs: number;
  readonly postgresApplicationName: string;
  readonly logLevel: string;
  readonly commitConcurrency: number;
  readonly commitBatchMax: number;
  readonly commitBatchWaitMs: number;
  readonly commitAttempts: number;
  readonly commitBackoffBaseMs: number;
  readonly commitBackoffMaxMs: number;
  readonly commitLockDurationMs: number;
  readonly commitStalledIntervalMs: number;
  readonly commitKeepCompleted: number;
  readonly commitKeepFailed: number;
  readonly reconcileIntervalMs: number;
  readonly reconcileSkuPage: number;
  readonly reconcileHoldsChunk: number;
  readonly reconcileTieMax: number;
  readonly reconcileReclaimPerSku: number;
  readonly reconcileConfirmedMax: number;
  readonly reconcileCommitGraceMs: number;
  readonly reconcileFailedJobsMax: number;
  readonly reconcileCancelWindowHours: number;
  readonly reconcileCorrectionsReportedMax: number;
  readonly reconcileLogRetentionDays: number;
  /** HTTP metrics middleware and GET /metrics on the API; domain counters are always kept. */
  readonly metricsEnabled: boolean;
  /** Port for /metrics in processes without the API (worker, reconciler); null: none. */
  readonly metricsPort: number | null;
  readonly shutdownTimeoutMs: number;
  readonly webhookUrls: readonly string[];
  readonly webhookSecret: string;
  readonly webhookAttempts: number;
  readonly webhookBackoffBaseMs: number;
  readonly webhookBackoffMaxMs: number;
  readonly webhookTimeoutMs: number;
  readonly webhookPollMs: number;
  readonly webhookPageMax: number;
  readonly webhookConcurrency: number;
  /** Deliveries waiting or delayed beyond which the dispatcher hands on no more (Redis memory). */
  readonly webhookBacklogMax: number;
  readonly webhookKeepCompleted: number;
  readonly webhookKeepFailed: number;
}

type Environment = Readonly<Record<string, string | undefined>>;

interface IntegerSetting {
  readonly name: string;
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
}

function readInteger(env: Environment, setting: IntegerSetting, problems: string[]): number {
  const raw = env[setting.name];
  if (raw === undefined || raw === '') return setting.fallback;
  if (!/^-?\d+$/.test(raw.trim())) {
    problems.push(`${setting.name} must be a whole number, got "${raw}"`);
    return setting.fallback;
  }
  const value = Number(raw.trim());
  if (value < setting.min || value > setting.max) {
    problems.push(`${setting.name} must be between ${setting.min} and ${setting.max}, got ${value}`);
    return setting.fallback;
  }
  return value;
}

function readUrl(env: Environment, name: string, fallback: string, protocols: string[], problems: string[]): string {
  const raw = env[name] === undefined || env[name] === '' ? fallback : (env[name] as string);
  try {
    const url = new URL(raw);
    if (!protocols.includes(url.protocol)) {
      problems.push(`${name} must use ${protocols.join(' or ')}, got "${url.protocol}"`);
    }
  } catch {
    problems.push(`${name} is not a valid URL: "${raw}"`);
  }
  return raw;
}

function readPattern(env: Environment, name: string, fallback: string, pattern: RegExp, problems: string[]): string {
  const raw = env[name] === undefined || env[name] === '' ? fallback : (env[name] as string);
  if (!pattern.test(raw)) problems.push(`${name} must match ${pattern.source}, got "${raw}"`);
  return raw;
}

function readChoice(env: Environment, name: string, fallback: string, choices: string[], problems: string[]): string {
  const raw = env[name] === undefined || env[name] === '' ? fallback : (env[name] as string);
  if (!choices.includes(raw)) problems.push(`${name} must be one of ${choices.join(', ')}, got "${raw}"`);
  return raw;
}

/** How the processes reach Redis, for their start-up log line. */
export function redisMode(config: Pick<Config, 'redisClusterNodes'>): 'single' | 'cluster' {
  return config.redisClusterNodes === null ? 'single' : 'cluster';
}

/** Seeds listed in REDIS_CLUSTER_NODES, at most. */
export const clusterSeedsMax = 64;

function readClusterNodes(env: Environment, problems: string[]): Array<{ host: string; port: number }> | null {
  const raw = env.REDIS_CLUSTER_NODES;
  if (raw === undefined || raw.trim() === '') return null;
  const nodes: Array<{ host: string; port: number }> = [];
  for (const entry of raw.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    const match = /^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]+\]):(\d{1,5})$/.exec(entry);
    const port = match === null ? Number.NaN : Number(match[2]);
    if (match === null || !(port >= 1 && port <= 65_535)) problems.push(`REDIS_CLUSTER_NODES: "${entry}" is not host:port`);
    else nodes.push({ host: (match[1] as string).replace(/^\[|\]$/g, ''), port });
  }
  if (nodes.length > clusterSeedsMax) problems.push(`REDIS_CLUSTER_NODES lists ${nodes.length} seeds; at most ${clusterSeedsMax}`);
  return nodes;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Environment = process.env): Config {
  const problems: string[] = [];
  const nodeEnv = env.NODE_ENV ?? 'development';
  const integer = (name: string, fallback: number, min: number, max: number) =>
    readInteger(env, { name, fallback, min, max }, problems);

  const keyPrefix = env.REDIS_KEY_PREFIX ?? 'sh:';
  if (!/^[A-Za-z0-9:_.-]{1,32}$/.test(keyPrefix)) {
    problems.push(`REDIS_KEY_PREFIX must be 1-32 of A-Z a-z 0-9 : _ . -, got "${keyPrefix}"`);
  }

  const apiKeysRaw = env.API_KEYS;
  const apiKeysAreDevelopmentDefaults = apiKeysRaw === undefined || apiKeysRaw.trim() === '';
  if (apiKeysAreDevelopmentDefaults && nodeEnv === 'production') {
    problems.push('API_KEYS is required when NODE_ENV=production (clientId:scope[+scope]:secret, comma-separated)');
  }
  const parsedKeys = parseApiKeys(apiKeysAreDevelopmentDefaults ? DEVELOPMENT_API_KEYS : (apiKeysRaw as string));
  problems.push(...parsedKeys.problems.map((problem) => `API_KEYS: ${problem}`));

  const idempotencyTtlSeconds = integer('IDEMPOTENCY_TTL_SECONDS', 86_400, 60, 7 * 86_400);
  const reservationRetentionSeconds = integer('RESERVATION_RETENTION_SECONDS', idempotencyTtlSeconds, 60, 30 * 86_400);
  if (reservationRetentionSeconds < idempotencyTtlSeconds) {
    // A replayed creation reads nothing but the idempotency record, yet a client that replays
    // expects to be able to GET the reservation it was given: keep the record at least as long.
    problems.push('RESERVATION_RETENTION_SECONDS must be at least IDEMPOTENCY_TTL_SECONDS');
  }

  const webhookUrls = (env.WEBHOOK_URLS ?? '').split(',').map((url) => url.trim()).filter((url) => url !== '');
  if (webhookUrls.length > webhookUrlsMax) problems.push(`WEBHOOK_URLS lists ${webhookUrls.length} URLs; at most ${webhookUrlsMax}`);
  for (const url of webhookUrls) {
    readUrl({ WEBHOOK_URLS: url }, 'WEBHOOK_URLS', url, ['http:', 'https:'], problems);
    if (url.length > webhookUrlLengthMax) problems.push(`WEBHOOK_URLS: a URL of ${url.length} characters; at most ${webhookUrlLengthMax}`);
  }
  const webhookSecret = env.WEBHOOK_SECRET ?? '';
  if (webhookUrls.length > 0 && webhookSecret.length < 16) problems.push('WEBHOOK_SECRET must be at least 16 characters when WEBHOOK_URLS is set');

  const redisClusterNodes = readClusterNodes(env, problems);
  const rateLimitPerClientRps = env.RATE_LIMIT_PER_CLIENT_RPS === undefined || env.RATE_LIMIT_PER_CLIENT_RPS === '' ? null : integer('RATE_LIMIT_PER_CLIENT_RPS', 1, 1, 1_000_000);
  const config: Config = {
    nodeEnv,
    port: integer('PORT', 3000, 0, 65_535),
    webConcurrency: integer('WEB_CONCURRENCY', 1, 1, 64),
    maxInFlight: integer('MAX_IN_FLIGHT', 512, 0, 100_000),
    maxEventLoopDelayMs: integer('MAX_EVENT_LOOP_DELAY_MS', 500, 0, 60_000),
    maxActiveHoldsPerCustomer: integer('MAX_ACTIVE_HOLDS_PER_CUSTOMER', 10, 0, 1000),
    rateLimitPerClientRps,
    // One second's worth by default; a bucket smaller than one request would refuse everything.
    rateLimitBurst: integer('RATE_LIMIT_BURST', rateLimitPerClientRps ?? 1, 1, 10_000_000),
    redisUrl: readUrl(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:'], problems),
    redisKeyPrefix: keyPrefix,
    redisClusterNodes,
    redisConfirmReplicas: integer('REDIS_CONFIRM_REPLICAS', redisClusterNodes === null ? 0 : 1, 0, 5),
    redisConfirmWaitMs: integer('REDIS_CONFIRM_WAIT_MS', 500, 10, 10_000),
    databaseUrl: readUrl(env, 'DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/stockhold', ['postgres:', 'postgresql:'], problems),
    apiKeys: parsedKeys.keys,
    apiKeysAreDevelopmentDefaults,
    quantityMax: integer('QUANTITY_MAX', 1000, 1, 1_000_000),
    stockOnHandMax: integer('STOCK_ON_HAND_MAX', 1_000_000_000, 1, 1_000_000_000_000),
    holdTtlDefaultSeconds: integer('HOLD_TTL_DEFAULT_SECONDS', 900, 1, 86_400),
    idempotencyTtlSeconds,
    idempotencyInFlightTtlSeconds: integer('IDEMPOTENCY_IN_FLIGHT_TTL_SECONDS', 30, 1, 600),
    reservationRetentionSeconds,
    reclaimPerSkuMax: integer('RECLAIM_PER_SKU_MAX', 100, 1, 1000),
    // At most 64: what lua/createReservation-n.lua takes (createBatchReservationsMax). 16 keeps
    // several calls in flight under 64 concurrent reservations, so Node and Redis work at once
    // (docs/benchmarks.md: 64 made them take turns).
    reservationBatchMax: integer('RESERVATION_BATCH_MAX', 16, 1, 64),
    // previous: new records where versions before 2026-11-26 look for them; set it while
    // processes of such a version still run (docs/operations.md). Both layouts are always read.
    recordLayout: readChoice(env, 'RECORD_LAYOUT', 'compact', ['compact', 'previous'], problems) as RecordLayout,
    holdsRebuildMax: integer('HOLDS_REBUILD_MAX', 100_000, 1, 10_000_000),
    unknownSkuCacheMs: integer('UNKNOWN_SKU_CACHE_MS', 2000, 0, 60_000),
    redisCommandTimeoutMs: integer('REDIS_COMMAND_TIMEOUT_MS', 2000, 50, 60_000),
    postgresPoolMax: integer('POSTGRES_POOL_MAX', 10, 1, 200),
    postgresStatementTimeoutMs: integer('POSTGRES_STATEMENT_TIMEOUT_MS', 5000, 100, 600_000),
    postgresConnectTimeoutMs: integer('POSTGRES_CONNECT_TIMEOUT_MS', 2000, 100, 60_000),
    postgresApplicationName: readPattern(env, 'POSTGRES_APPLICATION_NAME', 'stockhold', /^[A-Za-z0-9_.-]{1,63}$/, problems),
    commitConcurrency: integer('COMMIT_CONCURRENCY', 256, 1, 4096),
    commitBatchMax: integer('COMMIT_BATCH_MAX', 256, 1, 4096),
    commitBatchWaitMs: integer('COMMIT_BATCH_WAIT_MS', 5, 0, 1000),
    commitAttempts: integer('COMMIT_ATTEMPTS', 30, 1, 1000),
    commitBackoffBaseMs: integer('COMMIT_BACKOFF_BASE_MS', 500, 10, 600_000),
    commitBackoffMaxMs: integer('COMMIT_BACKOFF_MAX_MS', 30_000, 10, 3_600_000),
    commitLockDurationMs: integer('COMMIT_LOCK_DURATION_MS', 30_000, 500, 600_000),
    commitStalledIntervalMs: integer('COMMIT_STALLED_INTERVAL_MS', 15_000, 200, 600_000),
    commitKeepCompleted: integer('COMMIT_KEEP_COMPLETED', 1000, 0, 1_000_000),
    commitKeepFailed: integer('COMMIT_KEEP_FAILED', 100_000, 100, 10_000_000),
    reconcileIntervalMs: integer('RECONCILE_INTERVAL_MS', 5000, 100, 86_400_000),
    reconcileSkuPage: integer('RECONCILE_SKU_PAGE', 500, 1, 10_000),
    reconcileHoldsChunk: integer('RECONCILE_HOLDS_CHUNK', 1000, 10, 100_000),
    reconcileTieMax: integer('RECONCILE_TIE_MAX', 1000, 1, 100_000),
    reconcileReclaimPerSku: integer('RECONCILE_RECLAIM_PER_SKU', 1000, 1, 100_000),
    reconcileConfirmedMax: integer('RECONCILE_CONFIRMED_MAX', 1000, 1, 100_000),
    reconcileCommitGraceMs: integer('RECONCILE_COMMIT_GRACE_MS', 30_000, 0, 86_400_000),
    reconcileFailedJobsMax: integer('RECONCILE_FAILED_JOBS_MAX', 1000, 0, 100_000),
    reconcileCancelWindowHours: integer('RECONCILE_CANCEL_WINDOW_HOURS', 24, 1, 24 * 30),
    reconcileCorrectionsReportedMax: integer('RECONCILE_CORRECTIONS_REPORTED_MAX', 1000, 1, 100_000),
    reconcileLogRetentionDays: integer('RECONCILE_LOG_RETENTION_DAYS', 7, 1, 3650),
    metricsEnabled: readChoice(env, 'METRICS_ENABLED', 'true', ['true', 'false'], problems) === 'true',
    metricsPort: env.METRICS_PORT === undefined || env.METRICS_PORT === '' ? null : integer('METRICS_PORT', 0, 0, 65_535),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    webhookUrls,
    webhookSecret,
    webhookAttempts: integer('WEBHOOK_ATTEMPTS', 20, 1, 1000),
    webhookBackoffBaseMs: integer('WEBHOOK_BACKOFF_BASE_MS', 1000, 10, 600_000),
    webhookBackoffMaxMs: integer('WEBHOOK_BACKOFF_MAX_MS', 3_600_000, 10, 86_400_000),
    webhookTimeoutMs: integer('WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000),
    webhookPollMs: integer('WEBHOOK_POLL_MS', 1000, 10, 600_000),
    webhookPageMax: integer('WEBHOOK_PAGE_MAX', 500, 1, 10_000),
    webhookConcurrency: integer('WEBHOOK_CONCURRENCY', 16, 1, 1024),
    webhookBacklogMax: integer('WEBHOOK_BACKLOG_MAX', 100_000, 100, 10_000_000),
    webhookKeepCompleted: integer('WEBHOOK_KEEP_COMPLETED', 1000, 0, 1_000_000),
    webhookKeepFailed: integer('WEBHOOK_KEEP_FAILED', 100_000, 100, 10_000_000),
    logLevel: readChoice(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], problems),
  };
  if (config.redisConfirmReplicas > 0 && config.redisConfirmWaitMs >= config.redisCommandTimeoutMs) {
    problems.push('REDIS_CONFIRM_WAIT_MS must be below REDIS_COMMAND_TIMEOUT_MS (the WAIT is one command)');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
