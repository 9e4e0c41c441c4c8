// Proves the contention lab runs and counts oversold units right: its oversell arithmetic on a
// strategy whose grants are known, and a short real run (against the test Postgres and Redis)
// that must catch the naive read-modify-write overselling, report none for the atomic
// strategies, write the documented JSON fields and the chart, and leave nothing behind.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { oversellDemandFactor, oversellPhase } from '../bench/contention/driver';
import { fencedRead, fencedWrite, type Strategy, type StockLine } from '../bench/contention/strategies';
import { createPostgres } from '../lib/postgres/connection';
import { testDatabaseUrl, testRedisUrl } from './support/harness';

describe('oversell counting', () => {
  it('counts units granted beyond the stock that existed, per SKU', async () => {
    let stock: StockLine[] = [];
    const grantsEverything: Strategy = {
      name: 'grants-everything',
      setup: async (lines) => {
        stock = [...lines];
      },
      attempt: async () => true,
      teardown: async () => undefined,
    };
    const oversold = await oversellPhase(grantsEverything, { hotSku: false, skus: ['A', 'B'], oversellUnitsPerSku: 4 }, 8);
    expect(stock).toEqual([{ sku: 'A', units: 4 }, { sku: 'B', units: 4 }]);
    expect(oversold).toBe(2 * 4 * (oversellDemandFactor - 1));
  });
});

describe('fencing tokens (redlock-pg-paused-fenced)', () => {
  // The worst interleaving, forced: holder A (token 5) reads and is paused past its lock's TTL;
  // B (token 6) takes the lock and reads the same units; A wakes and writes; then B writes. A
  // token checked only on the write let both through (the lab oversold 29 units over 1,000 SKUs).
  it('refuses the paused holder that wakes between a newer holder\'s read and its write', async () => {
    const pool = new Pool({ connectionString: testDatabaseUrl, max: 2 });
    const table = `fence_test_${process.pid}_${Date.now()}`;
    onTestFinished(async () => {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    });
    await pool.query(`CREATE TABLE ${table} (sku text PRIMARY KEY, n bigint NOT NULL, fence bigint NOT NULL DEFAULT 0)`);
    await pool.query(`INSERT INTO ${table} (sku, n) VALUES ('A', 10)`);
    const readByA = await fencedRead(pool, table, 'A', 5);
    expect(readByA).toBe(10);
    const readByB = await fencedRead(pool, table, 'A', 6);
    expect(readByB).toBe(10);
    expect(await fencedWrite(pool, table, 'A', 5, 10 - 1), 'the paused holder\'s stale write').toBe(false);
    expect(await fencedWrite(pool, table, 'A', 6, 10 - 1)).toBe(true);
    // A holder older than the row's token cannot even read.
    expect(await fencedRead(pool, table, 'A', 4)).toBe('refused');
    expect((await pool.query(`SELECT n, fence FROM ${table} WHERE sku = 'A'`)).rows).toEqual([{ n: '9', fence: '6' }]);
  });
});

/** The lab leaves no key of its own in the test Redis. */
async function expectNoBenchKeys(): Promise<void> {
  const redis = new Redis(testRedisUrl);
  const left: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', 'bench_*', 'COUNT', 10_000);
    left.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  redis.disconnect();
  expect(left).toEqual([]);
}

describe('npm run bench', () => {
  it('runs, catches the naive strategy overselling, writes JSON and SVG, and cleans up', async () => {
    const script = path.join(__dirname, '..', 'dist', 'bench', 'contention-lab.js');
    expect(existsSync(script), 'npm test builds dist/ first').toBe(true);
    const directory = mkdtempSync(path.join(tmpdir(), 'stockhold-bench-'));
    onTestFinished(() => rmSync(directory, { recursive: true, force: true }));
    const out = path.join(directory, 'out.json');
    await promisify(execFile)(process.execPath, [script, '--duration', '1', '--concurrency', '32', '--json', out, '--only', 'naive-read-modify-write,pg-conditional-update,redis-lua-reservation'], {
      env: { ...process.env, DATABASE_URL: testDatabaseUrl, REDIS_URL: testRedisUrl },
      timeout: 120_000,
    });
    const rows = JSON.parse(readFileSync(out, 'utf8'));
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['concurrency', 'durationSec', 'hotSku', 'maxMs', 'oversold', 'p50Ms', 'p99Ms', 'refusedWrites', 'strategy', 'throughputPerSec']);
      expect(row.refusedWrites).toBe(0);
      expect(row.concurrency).toBe(32);
      expect(row.durationSec).toBe(1);
      expect(row.throughputPerSec).toBeGreaterThan(0);
      expect(row.p99Ms).toBeGreaterThanOrEqual(row.p50Ms);
      expect(row.maxMs).toBeGreaterThanOrEqual(row.p99Ms);
    }
    const oversold = (strategy: string, hotSku: boolean) => rows.find((row: { strategy: string; hotSku: boolean }) => row.strategy === strategy && row.hotSku === hotSku).oversold;
    expect(oversold('naive-read-modify-write', true)).toBeGreaterThan(0);
    expect(oversold('pg-conditional-update', true)).toBe(0);
    expect(oversold('pg-conditional-update', false)).toBe(0);
    expect(oversold('redis-lua-reservation', true)).toBe(0);
    expect(oversold('redis-lua-reservation', false)).toBe(0);
    expect(readFileSync(out.replace(/\.json$/, '.svg'), 'utf8')).toMatch(/^<svg[\s\S]*redis-lua-reservation[\s\S]*<\/svg>$/);

    const knex = createPostgres({ url: testDatabaseUrl, poolMax: 1, statementTimeoutMs: 5000, connectTimeoutMs: 2000 });
    const tables = await knex('pg_tables').count({ n: '*' }).where('tablename', 'like', 'bench\\_%');
    await knex.destroy();
    expect(tables).toEqual([{ n: '0' }]);
    await expectNoBenchKeys();
  }, 180_000);

  // Kleppmann's argument, run for real: Redlock over three Redis processes the lab starts, some
  // lock holders paused past the lock's TTL between their read and their write.
  it('redlock with a holder paused past its TTL loses updates unfenced, and refuses the stale writes fenced', async () => {
    const script = path.join(__dirname, '..', 'dist', 'bench', 'contention-lab.js');
    const directory = mkdtempSync(path.join(tmpdir(), 'stockhold-bench-'));
    onTestFinished(() => rmSync(directory, { recursive: true, force: true }));
    const out = path.join(directory, 'redlock.json');
    await promisify(execFile)(process.execPath, [script, '--duration', '1', '--concurrency', '32', '--json', out, '--scenarios', 'both', '--only', 'redlock-pg-paused-unfenced,redlock-pg-paused-fenced'], {
      env: { ...process.env, DATABASE_URL: testDatabaseUrl, REDIS_URL: testRedisUrl },
      timeout: 120_000,
    });
    const rows = JSON.parse(readFileSync(out, 'utf8')) as Array<{ strategy: string; hotSku: boolean; oversold: number; refusedWrites: number }>;
    expect(rows.map((row) => [row.strategy, row.hotSku])).toEqual([
      ['redlock-pg-paused-unfenced', true], ['redlock-pg-paused-unfenced', false], ['redlock-pg-paused-fenced', true], ['redlock-pg-paused-fenced', false],
    ]);
    const [unfenced, , fenced, fencedSpread] = rows;
    expect(unfenced!.oversold, 'a paused holder\'s stale write loses updates').toBeGreaterThan(0);
    expect(unfenced!.refusedWrites).toBe(0);
    expect(fenced!.oversold, 'the fencing token refuses the stale write').toBe(0);
    expect(fenced!.refusedWrites).toBeGreaterThan(0);
    expect(fencedSpread!.oversold, 'fenced over 1,000 SKUs too').toBe(0);
    await expectNoBenchKeys();
  }, 180_000);
});
