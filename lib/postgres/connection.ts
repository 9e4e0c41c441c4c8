// The Postgres adapter: one knex instance with explicit pool bounds and timeouts, the
// create-database step `npm start` needs, and the mapping of connection failures to 503.
import knexFactory, { type Knex } from 'knex';
import { Client } from 'pg';
import { errors } from '../errors';

export interface PostgresOptions {
  readonly url: string;
  readonly poolMax: number;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Shown in pg_stat_activity; lets an operator (or a test) find this process's sessions. */
  readonly applicationName?: string;
}

const ignore = (): void => undefined;

export function createPostgres(options: PostgresOptions): Knex {
  return knexFactory({
    client: 'pg',
    connection: {
      connectionString: options.url,
      connectionTimeoutMillis: options.connectTimeoutMs,
      statement_timeout: options.statementTimeoutMs,
      application_name: options.applicationName ?? 'stockhold',
    },
    pool: { min: 0, max: options.poolMax, idleTimeoutMillis: 30_000 },
    acquireConnectionTimeout: options.connectTimeoutMs,
    // lib/ does not log: failures reach the caller as errors, and the edges log them.
    log: { warn: ignore, error: ignore, deprecate: ignore, debug: ignore },
  });
}

const databaseNamePattern = /^[A-Za-z0-9_]{1,63}$/;

/** Creates the database named in `url` when it does not exist yet (connecting to "postgres"). */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!databaseNamePattern.test(name)) throw new Error(`database name "${name}" must be 1-63 of A-Z a-z 0-9 _`);
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const client = new Client({ connectionString: maintenance.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount !== 0) return false;
    try {
      await client.query(`CREATE DATABASE "${name}"`);
    } catch (error) {
      // Two processes starting at once: the other one created it first.
      if ((error as { code?: string }).code !== '42P04') throw error;
    }
    return true;
  } finally {
    await client.end();
  }
}

/** Drops the database named in `url` if it exists (for tests and benchmarks on scratch databases). */
export async function dropDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!databaseNamePattern.test(name)) throw new Error(`database name "${name}" must be 1-63 of A-Z a-z 0-9 _`);
  target.pathname = '/postgres';
  const client = new Client({ connectionString: target.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

// SQLSTATE classes and driver messages that mean "Postgres cannot serve now".
const unavailableCodes = new Set(['57P01', '57P02', '57P03', '53300', '53400', '08000', '08001', '08003', '08004', '08006', '08007', '57014']);
const unavailableMessages = [/ECONNREFUSED/, /is not queryable/, /Transaction query already complete/, /ECONNRESET/, /Timeout acquiring a connection/, /Connection terminated/, /timeout expired/, /ENOTFOUND/, /EPIPE/];

export function isPostgresUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code !== undefined && unavailableCodes.has(code)) return true;
  return unavailableMessages.some((pattern) => pattern.test(error.message));
}

/** Runs Postgres work, turning connection failures into 503 backend_unavailable. */
export async function withPostgres<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isPostgresUnavailable(error)) throw errors.backendUnavailable('postgres', error);
    throw error;
  }
}
