// `npm run bench:commit`: confirm-to-committed throughput on one hot SKU, one Postgres
// transaction per reservation (COMMIT_BATCH_MAX=1) against group commit (the default), side by
// side in alternating rounds of one run. The worker runs as its own process, as in production;
// this process creates the reservations, confirms them as fast as it can and watches the ledger.
// It works in a database of its own (<DATABASE_URL's name>_bench_commit, dropped afterwards) and
// under a Redis key prefix of its own (deleted afterwards).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadConfig, type Config } from '../lib/config';
import { dropDatabase } from '../lib/postgres/connection';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import type { Reservation } from '../lib/reservations/reservation-service';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { readReservation } from '../lib/scripts/reservation-record';
import { createStockhold, type Stockhold } from '../lib/stockhold';

const flags = new Map<string, string>();
for (let index = 2; index < process.argv.length; index += 2) flags.set(String(process.argv[index]).replace(/^--/, ''), String(process.argv[index + 1]));
const reservationsPerRound = Number(flags.get('reservations') ?? 5000);
const rounds = Number(flags.get('rounds') ?? 3);
const confirmConcurrency = Number(flags.get('concurrency') ?? 64);
if (!(reservationsPerRound >= 100 && reservationsPerRound <= 200_000 && rounds >= 1 && rounds <= 10 && confirmConcurrency >= 1 && confirmConcurrency <= 1024)) {
  throw new Error('--reservations 100-200000, --rounds 1-10, --concurrency 1-1024');
}
const roundTimeoutMs = 10 * 60_000;
const createBatch = 200;
const pollMs = 20;

const baseConfig = loadConfig();
const benchDatabaseUrl = (() => {
  const url = new URL(baseConfig.databaseUrl);
  url.pathname = `${url.pathname}_bench_commit`;
  return url.toString();
})();

function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'apps', 'worker', 'main.js')], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('commit worker started')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

async function runPool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await work(item);
    }
  }));
}

const percentile = (sorted: number[], fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number;

interface RoundResult {
  mode: string;
  commitsPerSec: number;
  lagP50Ms: number;
  lagP99Ms: number;
}

async function createReservations(stockhold: Stockhold, sku: string): Promise<Reservation[]> {
  const created: Reservation[] = [];
  for (let start = 0; start < reservationsPerRound; start += createBatch) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(createBatch, reservationsPerRound - start) }, (_, offset) =>
        stockhold.reservations.create({
          clientId: 'bench', idempotencyKey: `r-${start + offset}`, fingerprint: `f-${start + offset}`, lines: [{ sku, quantity: 1 }], holdTtlSeconds: 3600, customerId: null,
        }),
      ),
    );
    created.push(...batch.map((result) => result.reservation));
  }
  return created;
}

async function round(mode: string, batchMax: number): Promise<RoundResult> {
  const prefix = `bench:${randomBytes(4).toString('hex')}:`;
  const env = { DATABASE_URL: benchDatabaseUrl, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info', COMMIT_BATCH_MAX: String(batchMax), COMMIT_CONCURRENCY: '256' };
  const config: Config = loadConfig({ ...process.env, ...env, LOG_LEVEL: 'silent' });
  const stockhold = await createStockhold(config);
  const sku = `HOT-${prefix.slice(6, 14)}`;
  let worker: ChildProcess | undefined;
  try {
    await stockhold.stock.setOnHand(sku, reservationsPerRound, 'bench');
    const reservations = await createReservations(stockhold, sku);
    worker = await startWorker(env);
    const startedAt = Date.now();
    await runPool(reservations, confirmConcurrency, async (reservation) => {
      await stockhold.commits.confirm(reservation);
    });
    let committed = 0;
    while (committed < reservationsPerRound) {
      if (Date.now() - startedAt > roundTimeoutMs) throw new Error(`${mode}: only ${committed} of ${reservationsPerRound} committed`);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
      const [row] = await stockhold.knex('ledger_entries').count({ n: '*' }).where({ sku, kind: 'allocation' });
      committed = Number(row!.n);
    }
    const elapsedMs = Date.now() - startedAt;
    // Wait for the Redis side of the last batch, then read each reservation's confirm and commit times.
    let lags: number[] = [];
    for (let attempt = 0; attempt < 500 && lags.length < reservationsPerRound; attempt += 1) {
      const records = await Promise.all(reservations.map((reservation) => readReservation(stockhold.scripts, stockhold.keys, reservation.id)));
      lags = records.flatMap((record) =>
        record?.status === 'committed' && record.settledAtMs !== null && record.confirmedAtMs !== null ? [record.settledAtMs - record.confirmedAtMs] : [],
      );
      if (lags.length < reservationsPerRound) await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    const view = await stockhold.stock.read(sku);
    if (view.onHand !== 0 || view.reserved !== 0) throw new Error(`${mode}: after the round Redis shows ${JSON.stringify(view)}`);
    lags.sort((a, b) => a - b);
    return { mode, commitsPerSec: (reservationsPerRound * 1000) / elapsedMs, lagP50Ms: percentile(lags, 0.5), lagP99Ms: percentile(lags, 0.99) };
  } finally {
    if (worker !== undefined && worker.exitCode === null) {
      const exited = new Promise((resolve) => worker!.once('exit', resolve));
      worker.kill('SIGTERM');
      await exited;
    }
    await deleteKeysWithPrefix(stockhold.redis, prefix);
    await stockhold.close();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function main(): Promise<void> {
  await dropDatabase(benchDatabaseUrl);
  await prepareDatabaseAt(benchDatabaseUrl);
  const modes: Array<[string, number]> = [['one-per-transaction', 1], ['batched', baseConfig.commitBatchMax]];
  const results: RoundResult[] = [];
  try {
    for (let index = 1; index <= rounds; index += 1) {
      for (const [mode, batchMax] of index % 2 === 1 ? modes : [...modes].reverse()) {
        const result = await round(mode, batchMax);
        results.push(result);
        process.stdout.write(`round ${index} ${mode.padEnd(20)} ${result.commitsPerSec.toFixed(0).padStart(6)} commits/s  confirm->committed p50 ${result.lagP50Ms} ms  p99 ${result.lagP99Ms} ms\n`);
      }
    }
  } finally {
    await dropDatabase(benchDatabaseUrl);
  }
  const single = median(results.filter((r) => r.mode === 'one-per-transaction').map((r) => r.commitsPerSec));
  const batched = median(results.filter((r) => r.mode === 'batched').map((r) => r.commitsPerSec));
  const batchedRuns = results.filter((r) => r.mode === 'batched');
  process.stdout.write(`\n${reservationsPerRound} reservations per round on one hot SKU, ${rounds} rounds, confirmations ${confirmConcurrency} at a time\n`);
  process.stdout.write(`one transaction per reservation: ${single.toFixed(0)} commits/s (median)\n`);
  process.stdout.write(`group commit (batch ${baseConfig.commitBatchMax}):       ${batched.toFixed(0)} commits/s (median)\n`);
  process.stdout.write(`ratio: ${(batched / single).toFixed(2)}x\n`);
  process.stdout.write(`group commit lag confirm->committed: p50 ${median(batchedRuns.map((r) => r.lagP50Ms))} ms, p99 ${median(batchedRuns.map((r) => r.lagP99Ms))} ms (medians of rounds)\n`);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
