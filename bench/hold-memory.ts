// `npm run bench:memory`: Redis memory per active hold and per idempotency record, measured by
// creating real reservations through the same lib/ code and Lua script the API uses, under a key
// prefix of its own (deleted afterwards). Two shapes: every hold on one hot SKU (the holds index
// is a skiplist), and holds spread over 1,000 SKUs (small indexes stay listpacks).
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../lib/config';
import { requestFingerprint } from '../lib/idempotency/fingerprint';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { createStockhold, type Stockhold } from '../lib/stockhold';
import { measureLayouts } from './memory-layouts';

// `npm run bench:memory [-- HOLDS] [-- --rate N] [-- --layouts]`: holds per shape (default
// 20,000); --rate makes them at about N a second (every 10 ms a hundredth of N at once) rather
// than as fast as it can (200 at once); --layouts also measures the candidate layouts of the
// redesign (bench/memory-layouts.ts).
const layoutsToo = process.argv.includes('--layouts');
const rateIndex = process.argv.indexOf('--rate');
const ratePerSecond = rateIndex === -1 ? undefined : Number(process.argv[rateIndex + 1]);
const rateMax = 100_000;
if (ratePerSecond !== undefined && !(Number.isInteger(ratePerSecond) && ratePerSecond >= 100 && ratePerSecond <= rateMax)) throw new Error(`--rate: 100-${rateMax} a second`);
const holdsPerShape = Number(process.argv.slice(2).find((argument, index, all) => /^\d+$/.test(argument) && all[index - 1] !== '--rate') ?? 20_000);
const holdsMax = 1_000_000;
if (!(holdsPerShape >= 1000 && holdsPerShape <= holdsMax)) throw new Error(`holds per shape: 1000-${holdsMax}`);
const batch = ratePerSecond === undefined ? 200 : Math.ceil(ratePerSecond / 100);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function usedMemory(stockhold: Stockhold): Promise<number> {
  const info = await stockhold.redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

async function memoryUsage(stockhold: Stockhold, key: string): Promise<number> {
  return Number(await stockhold.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
}

async function measure(stockhold: Stockhold, label: string, skus: string[]) {
  const { keys } = stockhold;
  for (const sku of skus) await stockhold.redis.hset(keys.skuState(sku), 'onHand', 1_000_000_000, 'pos', 0, 'reserved', 0, 'debit', 0);
  const before = await usedMemory(stockhold);
  const startedAt = performance.now();
  let sample: { id: string; idempotencyKey: string } | undefined;
  const buckets = new Set<string>();
  for (let start = 0; start < holdsPerShape; start += batch) {
    if (ratePerSecond !== undefined) await sleep(startedAt + (start / ratePerSecond) * 1000 - performance.now());
    const created = await Promise.all(
      Array.from({ length: Math.min(batch, holdsPerShape - start) }, async (_, offset) => {
        const sku = skus[(start + offset) % skus.length] as string;
        const idempotencyKey = randomUUID();
        const lines = [{ sku, quantity: 1 }];
        const { reservation } = await stockhold.reservations.create({
          clientId: 'checkout-web', idempotencyKey, fingerprint: requestFingerprint('POST /v1/reservations', { lines }), lines, holdTtlSeconds: 900, customerId: null,
        });
        return { id: reservation.id, idempotencyKey };
      }),
    );
    sample ??= created[0];
    for (const { id } of created) buckets.add(keys.reservation(id));
  }
  const rate = holdsPerShape / ((performance.now() - startedAt) / 1000);
  const after = await usedMemory(stockhold);
  // Records share buckets (lua/includes/record.lua): a record's cost is its share of theirs. A
  // bucket past hash-max-listpack-entries fields is a hashtable (about 130 B a record, not 60).
  let recordBytes = 0;
  let hashtables = 0;
  let fullest = 0;
  for (const bucket of buckets) {
    recordBytes += await memoryUsage(stockhold, bucket);
    if (String(await stockhold.redis.call('OBJECT', 'ENCODING', bucket)) === 'hashtable') hashtables += 1;
    fullest = Math.max(fullest, await stockhold.redis.hlen(bucket));
  }
  const record = recordBytes / holdsPerShape;
  const idempotency = await memoryUsage(stockhold, keys.idempotency('checkout-web', sample!.idempotencyKey));
  let index = 0;
  for (const sku of skus) index += await memoryUsage(stockhold, keys.skuHolds(sku));
  const indexPerHold = index / holdsPerShape;
  process.stdout.write(
    `${label}: ${holdsPerShape} holds, made at ${rate.toFixed(0)}/s\n` +
      `  used_memory growth per reservation (hold + idempotency record): ${((after - before) / holdsPerShape).toFixed(0)} B\n` +
      `  MEMORY USAGE reservation record: ${record.toFixed(0)} B (${buckets.size} buckets, ${(holdsPerShape / buckets.size).toFixed(0)} records each, at most ${fullest}; ${hashtables} of them hashtables), holds index per hold: ${indexPerHold.toFixed(0)} B => per hold ${(record + indexPerHold).toFixed(0)} B\n` +
      `  MEMORY USAGE idempotency record (36-char key): ${idempotency} B\n`,
  );
}

async function main(): Promise<void> {
  const prefix = `bench:${randomBytes(4).toString('hex')}:`;
  const stockhold = await createStockhold(loadConfig({ ...process.env, REDIS_KEY_PREFIX: prefix }));
  try {
    await measure(stockhold, 'one hot SKU', ['MEM-HOT']);
    await measure(stockhold, 'spread over 1,000 SKUs', Array.from({ length: 1000 }, (_, index) => `MEM-${index}`));
    if (layoutsToo) process.stdout.write(await measureLayouts(stockhold.redis, holdsPerShape));
  } finally {
    await deleteKeysWithPrefix(stockhold.redis, prefix);
    await stockhold.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
