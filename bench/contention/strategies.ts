// The concurrency-control strategies from the overselling literature, each behind one interface
// so the driver compares concurrency control and nothing else. Each works only in tables and
// keys named with the bench's own prefix, and removes them in teardown().
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import path from 'node:path';
import { Pool } from 'pg';
import { Redis } from 'ioredis';
import Redlock, { ExecutionError, type Lock } from 'redlock';
import { StockholdError } from '../../lib/errors';
import { requestFingerprint } from '../../lib/idempotency/fingerprint';
import { loadConfig } from '../../lib/config';
import { deleteKeysWithPrefix } from '../../lib/redis/delete-keys';
import type { RedisClient } from '../../lib/redis/connection';
import { createStockhold, type Stockhold } from '../../lib/stockhold';
import { PrivateRedis } from '../../chaos/servers';

export interface StockLine {
  readonly sku: string;
  readonly units: number;
}

export interface Strategy {
  readonly name: string;
  /** (Re)creates its state with exactly this stock. */
  setup(stock: readonly StockLine[]): Promise<void>;
  /** One customer trying to buy: true when granted, false when refused for want of stock. */
  attempt(sku: string, quantity: number): Promise<boolean>;
  teardown(): Promise<void>;
  /** Writes a fencing token refused since the last setup (fenced strategies only). */
  refusedWrites?(): number;
}

export interface BenchEnvironment {
  readonly prefix: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly concurrency: number;
  readonly url: string | undefined;
  readonly checkoutKey: string | undefined;
  readonly adminKey: string | undefined;
}


/** Postgres strategies share a table of their own: sku -> n, with a fence for redlock-pg. */
abstract class PostgresStrategy implements Strategy {
  abstract readonly name: string;
  protected readonly pool: Pool;
  protected readonly table: string;

  constructor(protected readonly environment: BenchEnvironment, suffix: string) {
    // One connection per client, within Postgres's default max_connections of 100.
    this.pool = new Pool({ connectionString: environment.databaseUrl, max: Math.min(environment.concurrency, 80) });
    this.table = `${environment.prefix.replace(/[^a-z0-9_]/gi, '_')}${suffix}`;
  }

  async setup(stock: readonly StockLine[]): Promise<void> {
    await this.pool.query(`DROP TABLE IF EXISTS ${this.table}`);
    await this.pool.query(`CREATE TABLE ${this.table} (sku text PRIMARY KEY, n bigint NOT NULL, fence bigint NOT NULL DEFAULT 0)`);
    const batch = 1000;
    for (let start = 0; start < stock.length; start += batch) {
      const slice = stock.slice(start, start + batch);
      await this.pool.query(
        `INSERT INTO ${this.table} (sku, n) SELECT * FROM unnest($1::text[], $2::bigint[])`,
        [slice.map((line) => line.sku), slice.map((line) => line.units)],
      );
    }
  }

  abstract attempt(sku: string, quantity: number): Promise<boolean>;

  async teardown(): Promise<void> {
    await this.pool.query(`DROP TABLE IF EXISTS ${this.table}`);
    await this.pool.end();
  }
}

/** SELECT, check in the application, UPDATE with the computed value: the lost update. */
export class NaiveReadModifyWrite extends PostgresStrategy {
  readonly name = 'naive-read-modify-write';
  constructor(environment: BenchEnvironment) {
    super(environment, 'naive');
  }
  async attempt(sku: string, quantity: number): Promise<boolean> {
    const { rows } = await this.pool.query(`SELECT n FROM ${this.table} WHERE sku = $1`, [sku]);
    const n = Number(rows[0].n);
    if (n < quantity) return false;
    await this.pool.query(`UPDATE ${this.table} SET n = $2 WHERE sku = $1`, [sku, n - quantity]);
    return true;
  }
}

/** One conditional UPDATE: the database-native atomic operation. */
export class PostgresConditionalUpdate extends PostgresStrategy {
  readonly name = 'pg-conditional-update';
  constructor(environment: BenchEnvironment) {
    super(environment, 'conditional');
  }
  async attempt(sku: string, quantity: number): Promise<boolean> {
    const result = await this.pool.query(`UPDATE ${this.table} SET n = n - $2 WHERE sku = $1 AND n >= $2`, [sku, quantity]);
    return result.rowCount === 1;
  }
}

/** A row lock, the check, the update, in one transaction. */
export class PostgresSelectForUpdate extends PostgresStrategy {
  readonly name = 'pg-select-for-update';
  constructor(environment: BenchEnvironment) {
    super(environment, 'forupdate');
  }
  async attempt(sku: string, quantity: number): Promise<boolean> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(`SELECT n FROM ${this.table} WHERE sku = $1 FOR UPDATE`, [sku]);
      if (Number(rows[0].n) < quantity) {
        await client.query('ROLLBACK');
        return false;
      }
      await client.query(`UPDATE ${this.table} SET n = n - $2 WHERE sku = $1`, [sku, quantity]);
      await client.query('COMMIT');
      return true;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}

/** The variants of redlock-pg: as meant to be used, and with a holder paused past its lock's TTL. */
export type RedlockVariant = 'plain' | 'paused-unfenced' | 'paused-fenced';

/** Redis servers the lab starts for Redlock's majority (independent processes, no replication). */
export const redlockServers = 3;
/** The lock's TTL: long enough for the critical section (two Postgres round trips) under load. */
export const redlockTtlMs = 2000;
/** The paused variants: a shorter TTL, so a pause past it does not stall the run for seconds. */
export const pausedLockTtlMs = 250;
/** A pause (a GC pause, a page fault, a descheduled VM) longer than the TTL... */
export const holderPauseMs = 400;
/** ...in every this-many-th lock holder, between its read and its write. */
export const pauseEveryAcquisitions = 50;

/**
 * Redlock (the majority algorithm, node-redlock) over independent Redis processes that the lab
 * starts, around a read-modify-write in Postgres. Kleppmann's argument, as a number:
 * - `plain`: a TTL long enough for the critical section, and the UPDATE checks a fencing token;
 * - `paused-unfenced`: some holders pause past the TTL between their read and their write; the
 *   lock expires, another client takes it and writes; the paused one wakes and writes its stale
 *   value: lost updates, counted as oversold units;
 * - `paused-fenced`: the same pauses, and the row checks a fencing token on the read and on the
 *   write (fencedRead, fencedWrite): the stale write is refused (counted in refusedWrites),
 *   nothing oversold.
 * The token is an INCR on the first Redis (Redlock itself has no fencing token: that is the point
 * of the argument; a real system would take it from a consensus-backed counter).
 */
export class RedlockPostgres extends PostgresStrategy {
  readonly name: string;
  private servers: PrivateRedis[] = [];
  private clients: Redis[] = [];
  private redlock: Redlock | undefined;
  private acquisitions = 0;
  private refused = 0;

  constructor(environment: BenchEnvironment, private readonly variant: RedlockVariant = 'plain') {
    super(environment, variant === 'plain' ? 'redlock' : `redlock_${variant.replace('-', '_')}`);
    this.name = variant === 'plain' ? 'redlock-pg' : `redlock-pg-${variant}`;
  }

  override async setup(stock: readonly StockLine[]): Promise<void> {
    await super.setup(stock);
    this.refused = 0;
    this.acquisitions = 0;
    if (this.redlock !== undefined) {
      for (const client of this.clients) await client.flushdb();
      return;
    }
    for (let index = 0; index < redlockServers; index += 1) this.servers.push(await PrivateRedis.start());
    this.clients = this.servers.map((server) => new Redis(server.url));
    this.redlock = new Redlock(this.clients, { retryCount: 2000, retryDelay: 5, retryJitter: 5, driftFactor: 0.01 });
  }

  refusedWrites(): number {
    return this.refused;
  }

  async attempt(sku: string, quantity: number): Promise<boolean> {
    const paused = this.variant !== 'plain';
    let lock: Lock;
    try {
      lock = await this.redlock!.acquire([`lock:{${sku}}`], paused ? pausedLockTtlMs : redlockTtlMs);
    } catch (error) {
      // No quorum within the retry window (2,000 tries): this buyer gave up, nothing was sold. (A
      // slow machine's paused holders made some wait past it, which stopped the whole lab once.)
      if (error instanceof ExecutionError) return false;
      throw error;
    }
    this.acquisitions += 1;
    const pauseNow = paused && this.acquisitions % pauseEveryAcquisitions === 0;
    try {
      if (this.variant === 'paused-unfenced') {
        const { rows } = await this.pool.query(`SELECT n FROM ${this.table} WHERE sku = $1`, [sku]);
        const n = Number(rows[0].n);
        if (n < quantity) return false;
        if (pauseNow) await new Promise((resolve) => setTimeout(resolve, holderPauseMs));
        await this.pool.query(`UPDATE ${this.table} SET n = $2 WHERE sku = $1`, [sku, n - quantity]);
        return true;
      }
      const fence = await this.clients[0]!.incr(`fence:{${sku}}`);
      const read = await fencedRead(this.pool, this.table, sku, fence);
      if (read === 'refused') {
        this.refused += 1;
        return false;
      }
      if (read < quantity) return false;
      if (pauseNow) await new Promise((resolve) => setTimeout(resolve, holderPauseMs));
      if (await fencedWrite(this.pool, this.table, sku, fence, read - quantity)) return true;
      this.refused += 1;
      return false;
    } finally {
      // Once: a lock that expired under a paused holder cannot be released, and retrying
      // (node-redlock's default, the acquire settings) would hold this client for seconds.
      await this.redlock!.release(lock, { retryCount: 0 }).catch(() => undefined);
    }
  }

  override async teardown(): Promise<void> {
    await super.teardown();
    for (const client of this.clients) client.disconnect();
    await Promise.all(this.servers.map((server) => server.remove()));
    this.servers = [];
    this.clients = [];
    this.redlock = undefined;
  }
}

/**
 * The fenced read of a read-modify-write: the row takes the holder's token first (the storage
 * now refuses every older holder, as fencing requires), and answers its units; 'refused' when a
 * newer holder has been there. Checking the token only on the write is not enough: a paused
 * holder A (token 5) that wakes after B (token 6) read but before B wrote would still write,
 * then B too, both from the same read (the lab measured 29 units oversold that way over 1,000 SKUs).
 */
export async function fencedRead(pool: Pool, table: string, sku: string, token: number): Promise<number | 'refused'> {
  const { rows } = await pool.query(`UPDATE ${table} SET fence = $2 WHERE sku = $1 AND fence < $2 RETURNING n`, [sku, token]);
  return rows.length === 1 ? Number(rows[0].n) : 'refused';
}

/** The fenced write: applies only while the row still carries this holder's token. */
export async function fencedWrite(pool: Pool, table: string, sku: string, token: number, units: number): Promise<boolean> {
  const result = await pool.query(`UPDATE ${table} SET n = $3 WHERE sku = $1 AND fence = $2`, [sku, token, units]);
  return result.rowCount === 1;
}

async function seedRedisSkus(redis: RedisClient, prefix: string, stock: readonly StockLine[]): Promise<void> {
  await deleteKeysWithPrefix(redis, prefix);
  const batch = 1000;
  for (let start = 0; start < stock.length; start += batch) {
    const pipeline = redis.pipeline();
    for (const line of stock.slice(start, start + batch)) {
      pipeline.hset(`${prefix}sku:{${line.sku}}`, 'onHand', line.units, 'pos', 0, 'reserved', 0, 'debit', 0);
    }
    await pipeline.exec();
  }
}

/** This service's reserve path, the same lib/ code and Lua script the API uses, called directly. */
export class RedisLuaReservation implements Strategy {
  readonly name = 'redis-lua-reservation';
  private stockhold: Stockhold | undefined;
  private counter = 0;

  constructor(private readonly environment: BenchEnvironment) {}

  async setup(stock: readonly StockLine[]): Promise<void> {
    this.stockhold ??= await createStockhold(loadConfig({ ...process.env, REDIS_URL: this.environment.redisUrl, DATABASE_URL: this.environment.databaseUrl, REDIS_KEY_PREFIX: this.environment.prefix, LOG_LEVEL: 'silent' }));
    await seedRedisSkus(this.stockhold.redis, this.environment.prefix, stock);
  }

  async attempt(sku: string, quantity: number): Promise<boolean> {
    const lines = [{ sku, quantity }];
    this.counter += 1;
    try {
      await this.stockhold!.reservations.create({
        clientId: 'bench',
        idempotencyKey: `b${this.counter}`,
        fingerprint: requestFingerprint('POST /v1/reservations', { lines }),
        lines,
        holdTtlSeconds: 900,
        customerId: null,
      });
      return true;
    } catch (error) {
      if (error instanceof StockholdError && error.code === 'insufficient_stock') return false;
      throw error;
    }
  }

  async teardown(): Promise<void> {
    if (this.stockhold === undefined) return;
    await deleteKeysWithPrefix(this.stockhold.redis, this.environment.prefix);
    await this.stockhold.close();
  }
}

/** End to end: POST /v1/reservations of a server as shipped (started here, or the one at --url). */
export class HttpReservation implements Strategy {
  readonly name = 'http-reservation';
  private child: ChildProcess | undefined;
  private baseUrl = '';
  private readonly redis: Redis;
  private counter = 0;
  private readonly checkoutKey: string;
  // node:http with keep-alive costs the client less CPU than fetch, which matters when the
  // client, the server and Redis share two cores.
  private readonly agent: Agent;

  constructor(private readonly environment: BenchEnvironment) {
    this.redis = new Redis(environment.redisUrl);
    this.checkoutKey = environment.checkoutKey ?? 'bench-checkout-secret';
    this.agent = new Agent({ keepAlive: true, maxSockets: environment.concurrency });
  }

  async setup(stock: readonly StockLine[]): Promise<void> {
    if (this.environment.url !== undefined) {
      this.baseUrl = this.environment.url.replace(/\/$/, '');
      await this.seedThroughApi(stock);
      return;
    }
    await seedRedisSkus(this.redis, this.environment.prefix, stock);
    if (this.child !== undefined) return;
    const child = fork(path.join(__dirname, '..', 'stockhold-api-server.js'), [], {
      env: { ...process.env, PORT: '0', REDIS_URL: this.environment.redisUrl, DATABASE_URL: this.environment.databaseUrl, REDIS_KEY_PREFIX: this.environment.prefix, API_KEYS: `bench:checkout:${this.checkoutKey}`, NODE_ENV: 'production', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child = child;
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message: { port: number }) => resolve(message.port));
      child.once('exit', (code) => reject(new Error(`API server exited with ${code}`)));
    });
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  /** A server elsewhere: stock is set with its admin API (which writes its ledger). */
  private async seedThroughApi(stock: readonly StockLine[]): Promise<void> {
    if (this.environment.adminKey === undefined) throw new Error('--url needs --admin-key to set the bench SKUs\' stock');
    for (const line of stock) {
      const response = await fetch(`${this.baseUrl}/v1/skus/${line.sku}/stock`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${this.environment.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ onHand: line.units }),
      });
      if (response.status !== 200) throw new Error(`setting stock of ${line.sku}: ${response.status} ${await response.text()}`);
    }
  }

  async attempt(sku: string, quantity: number): Promise<boolean> {
    this.counter += 1;
    const body = JSON.stringify({ lines: [{ sku, quantity }] });
    const status = await new Promise<number>((resolve, reject) => {
      const outgoing = httpRequest(`${this.baseUrl}/v1/reservations`, {
        method: 'POST',
        agent: this.agent,
        headers: {
          authorization: `Bearer ${this.checkoutKey}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'idempotency-key': `${this.environment.prefix}${this.counter}`,
        },
      }, (incoming) => {
        incoming.resume();
        incoming.on('end', () => resolve(incoming.statusCode ?? 0));
        incoming.on('error', reject);
      });
      outgoing.on('error', reject);
      outgoing.end(body);
    });
    if (status === 201) return true;
    if (status === 409) return false;
    throw new Error(`POST /v1/reservations answered ${status}`);
  }

  async teardown(): Promise<void> {
    if (this.child !== undefined && this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child!.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    this.agent.destroy();
    await deleteKeysWithPrefix(this.redis, this.environment.prefix);
    this.redis.disconnect();
  }
}

/** Every strategy, by name, in report order; each is built (and connects) only when run. */
export const strategyFactories: ReadonlyArray<readonly [string, (environment: BenchEnvironment) => Strategy]> = [
  ['naive-read-modify-write', (environment) => new NaiveReadModifyWrite(environment)],
  ['pg-conditional-update', (environment) => new PostgresConditionalUpdate(environment)],
  ['pg-select-for-update', (environment) => new PostgresSelectForUpdate(environment)],
  ['redlock-pg', (environment) => new RedlockPostgres(environment, 'plain')],
  ['redlock-pg-paused-unfenced', (environment) => new RedlockPostgres(environment, 'paused-unfenced')],
  ['redlock-pg-paused-fenced', (environment) => new RedlockPostgres(environment, 'paused-fenced')],
  ['redis-lua-reservation', (environment) => new RedisLuaReservation(environment)],
  ['http-reservation', (environment) => new HttpReservation(environment)],
];
