// Runs the real entry points from dist/ (as production does: one OS process each) against the
// test Redis and a database of the test's own, and reads their JSON log lines as they come.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createPostgres, dropDatabase } from '../../lib/postgres/connection';
import { prepareDatabaseAt } from '../../lib/postgres/migrations';
import { Cluster, Redis } from 'ioredis';
import { inject } from 'vitest';
import { bullPrefix } from '../../lib/queues';
import { deleteKeysWithPrefix } from '../../lib/redis/delete-keys';
import type { RedisClient } from '../../lib/redis/connection';
import type { Knex } from 'knex';
import { secrets, testDatabaseUrl, testRedisUrl } from './harness';

export const root = path.join(__dirname, '..', '..');
/** How long a service may take to log that it is up. */
export const serviceStartMs = 15_000;

export const apiKeys = [
  `shop-a:checkout:${secrets.checkout}`,
  `warehouse:fulfillment:${secrets.fulfillment}`,
  `ops:admin:${secrets.admin}`,
].join(',');

export type LogLine = Record<string, unknown> & { msg?: string };

export interface Service {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  /** Everything the process wrote, stdout and stderr, as text. */
  output(): string;
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process has exited. */
  hasExited(): boolean;
}

export function spawnService(command: string, args: readonly string[], env: Record<string, string>): Service {
  const child = spawn(command, args, { cwd: root, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let text = '';
  let pending = '';
  const waiters: Array<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];
  const take = (chunk: Buffer) => {
    const part = chunk.toString();
    text += part;
    pending += part;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const raw = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
      if (!raw.startsWith('{')) continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return {
    child,
    lines,
    output: () => text,
    exited,
    hasExited: () => done,
    waitForLog(match, timeoutMs = serviceStartMs) {
      const found = lines.find(match);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; output so far:\n${text.slice(-3000)}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`exited (code ${code}, signal ${signal}) before the log line; output:\n${text.slice(-3000)}`));
        });
      });
    },
  };
}

/** A database and a Redis key prefix of the test's own, and the env every service gets. */
export interface Environment {
  readonly env: Record<string, string>;
  readonly knex: Knex;
  /** The Redis the services use: the run's cluster in the cluster run, else the test Redis. */
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Where the services' BullMQ keys live (`<prefix>bull`, or `<prefix>{bull}` on a cluster). */
  readonly bullPrefix: string;
  close(): Promise<void>;
}

/**
 * The services run on the cluster this run provides (the cluster run, vitest.cluster.config.mts:
 * REDIS_CLUSTER_NODES in their environment), else on the test Redis.
 */
export async function privateEnvironment(extra: Record<string, string> = {}): Promise<Environment> {
  const seeds = inject('clusterSeeds');
  const onCluster = seeds !== undefined && seeds !== '';
  const url = new URL(testDatabaseUrl);
  url.pathname = `/stockhold_test_${randomBytes(6).toString('hex')}`;
  const databaseUrl = url.toString();
  await prepareDatabaseAt(databaseUrl);
  const prefix = `t:${randomBytes(4).toString('hex')}:`;
  const knex = createPostgres({ url: databaseUrl, poolMax: 4, statementTimeoutMs: 60_000, connectTimeoutMs: 2000, applicationName: 'stockhold-test' });
  const redis: RedisClient = onCluster ? new Cluster(seeds.split(',').map((seed) => ({ host: seed.split(':')[0]!, port: Number(seed.split(':')[1]) })), { scaleReads: 'master' }) : new Redis(testRedisUrl);
  const redisEnv: Record<string, string> = onCluster ? { REDIS_CLUSTER_NODES: seeds } : { REDIS_URL: testRedisUrl };
  return {
    env: { NODE_ENV: 'test', DATABASE_URL: databaseUrl, ...redisEnv, REDIS_KEY_PREFIX: prefix, API_KEYS: apiKeys, LOG_LEVEL: 'info', ...extra },
    knex,
    redis,
    prefix,
    bullPrefix: bullPrefix({ redisKeyPrefix: prefix, redisClusterNodes: onCluster ? [] : null }),
    async close() {
      await deleteKeysWithPrefix(redis, prefix);
      redis.disconnect();
      await knex.destroy();
      await dropDatabase(databaseUrl);
    },
  };
}

/** Starts `dist/apps/<app>/main.js`; resolves once it logged that it is up. */
export async function startApp(app: 'api' | 'worker' | 'reconciler' | 'all', env: Record<string, string>): Promise<Service & { port: number }> {
  const script = path.join(root, 'dist', 'apps', app, 'main.js');
  if (!existsSync(script)) throw new Error(`${script} is missing: npm test builds dist/ first (npm run build)`);
  const service = spawnService(process.execPath, [script], { PORT: '0', ...env });
  const ready: Record<typeof app, string> = { api: 'API listening', all: 'API listening', worker: 'commit worker started', reconciler: 'reconciler scheduled' };
  const line = await service.waitForLog((entry) => entry.msg === ready[app]);
  // The process runs on what this run provides: a cluster in the cluster run, else the test Redis.
  const expected = env.REDIS_CLUSTER_NODES === undefined ? 'single' : 'cluster';
  if (line.redis !== expected) throw new Error(`${app} started on ${String(line.redis)} Redis, expected ${expected}`);
  return Object.assign(service, { port: typeof line.port === 'number' ? line.port : 0 });
}

export async function stopApp(service: Service, timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (!service.hasExited()) service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), timeoutMs);
  try {
    return await service.exited;
  } finally {
    clearTimeout(timer);
  }
}
