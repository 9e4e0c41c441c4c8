// `npm run bench:reconcile`: how long one full reconciliation run takes, and how its cost grows
// with SKUs and with live holds. For each shape it seeds a database of its own
// (<DATABASE_URL's name>_bench_reconcile, dropped afterwards) with N SKUs and Redis, under a key
// prefix of its own (deleted afterwards), with their states and H live pending holds spread over
// them, then times reconciler.run() (nothing to correct: the cost of looking) and a second run
// with 1 % of the SKUs drifted (the cost of correcting).
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../lib/config';
import { dropDatabase } from '../lib/postgres/connection';
import { prepareDatabaseAt } from '../lib/postgres/migrations';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { createStockhold, type Stockhold } from '../lib/stockhold';

const shapes: Array<[number, number]> = (process.argv[2] ?? '10000:10000,100000:0,100000:100000,10000:100000')
  .split(',')
  .map((shape) => shape.split(':').map(Number) as [number, number]);
const seedBatch = 5000;
const shapesMax = 10;
if (shapes.length > shapesMax || shapes.some(([skus, holds]) => !(skus >= 1 && skus <= 1_000_000 && holds >= 0 && holds <= 2_000_000))) {
  throw new Error('shapes: "skus:holds,..." with 1-1000000 SKUs and 0-2000000 holds, at most 10 shapes');
}

const base = loadConfig();
const databaseUrl = (() => {
  const url = new URL(base.databaseUrl);
  url.pathname = `${url.pathname}_bench_reconcile`;
  return url.toString();
})();

async function seed(stockhold: Stockhold, skuCount: number, holdCount: number, tag: string): Promise<string[]> {
  const skus = Array.from({ length: skuCount }, (_, index) => `R${tag}-${String(index).padStart(7, '0')}`);
  for (let start = 0; start < skuCount; start += seedBatch) {
    const slice = skus.slice(start, start + seedBatch);
    await stockhold.knex('skus').insert(slice.map((sku) => ({ sku, on_hand: 1000, version: 1, last_entry_id: 0 })));
    const pipeline = stockhold.redis.pipeline();
    for (const sku of slice) pipeline.hset(stockhold.keys.skuState(sku), 'onHand', 1000, 'pos', 0, 'reserved', 0, 'debit', 0);
    await pipeline.exec();
  }
  const expiresAt = Date.now() + 3_600_000;
  for (let start = 0; start < holdCount; start += seedBatch) {
    const pipeline = stockhold.redis.pipeline();
    for (let index = start; index < Math.min(holdCount, start + seedBatch); index += 1) {
      const sku = skus[index % skuCount] as string;
      pipeline.zadd(stockhold.keys.skuHolds(sku), expiresAt + index, `${randomBytes(16).toString('base64url')}:1`);
      pipeline.hincrby(stockhold.keys.skuState(sku), 'reserved', 1);
    }
    await pipeline.exec();
  }
  return skus;
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = process.hrtime.bigint();
  const result = await work();
  return [result, Number(process.hrtime.bigint() - started) / 1e6];
}

async function main(): Promise<void> {
  await dropDatabase(databaseUrl);
  await prepareDatabaseAt(databaseUrl);
  process.stdout.write('| SKUs | live holds | run, nothing to fix | run, 1 % of SKUs drifted | corrections |\n|---|---|---|---|---|\n');
  try {
    for (const [skuCount, holdCount] of shapes) {
      const prefix = `bench:${randomBytes(4).toString('hex')}:`;
      const stockhold = await createStockhold(loadConfig({ ...process.env, DATABASE_URL: databaseUrl, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', POSTGRES_STATEMENT_TIMEOUT_MS: '60000' }));
      try {
        const skus = await seed(stockhold, skuCount, holdCount, prefix.slice(6, 10));
        const [, cleanMs] = await timed(() => stockhold.reconciler.run('cli', false));
        for (let index = 0; index < skuCount; index += 100) await stockhold.redis.hincrby(stockhold.keys.skuState(skus[index] as string), 'onHand', 5);
        const [report, driftMs] = await timed(() => stockhold.reconciler.run('cli', false));
        process.stdout.write(`| ${skuCount.toLocaleString('en')} | ${holdCount.toLocaleString('en')} | ${(cleanMs / 1000).toFixed(2)} s | ${(driftMs / 1000).toFixed(2)} s | ${report.driftCorrected} |\n`);
        await stockhold.knex('reconcile_corrections').delete();
        await stockhold.knex('reconcile_runs').delete();
        await stockhold.knex('skus').delete();
      } finally {
        await deleteKeysWithPrefix(stockhold.redis, prefix);
        await stockhold.close();
      }
    }
  } finally {
    await dropDatabase(databaseUrl);
  }
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
