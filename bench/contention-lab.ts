// `npm run bench`: the contention lab. Runs each strategy from the overselling literature
// against the same real Postgres and Redis, on one hot SKU and on stock spread over 1,000 SKUs,
// at the same concurrency for the same duration, and reports throughput, p50/p99/max latency and
// oversold units. Reads REDIS_URL and DATABASE_URL like the server; creates only tables and keys
// under a prefix of its own and removes them afterwards.
//   --duration SECONDS (5)  --concurrency N (64)  --json FILE  --only a,b  --scenarios hot|spread|both
//   --url URL
//   --checkout-key SECRET --admin-key SECRET (with --url: a running server to drive over HTTP)
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../lib/config';
import { oversellPhase, throughputPhase, type Scenario } from './contention/driver';
import { svgChart, table, type BenchRow } from './contention/report';
import { strategyFactories, type BenchEnvironment } from './contention/strategies';

const knownFlags = new Set(['duration', 'concurrency', 'json', 'only', 'scenarios', 'url', 'checkout-key', 'admin-key']);
const flags = new Map<string, string>();
for (let index = 2; index < process.argv.length; index += 2) {
  const name = String(process.argv[index]).replace(/^--/, '');
  if (!knownFlags.has(name) || process.argv[index + 1] === undefined) {
    process.stderr.write(`usage: npm run bench -- [--duration S] [--concurrency N] [--json FILE] [--only a,b] [--scenarios hot|spread|both] [--url URL --checkout-key K --admin-key K]\n`);
    process.exit(64);
  }
  flags.set(name, String(process.argv[index + 1]));
}
const durationSec = Number(flags.get('duration') ?? 5);
const concurrency = Number(flags.get('concurrency') ?? 64);
const concurrencyMax = 1024;
if (!(Number.isInteger(durationSec) && durationSec >= 1 && durationSec <= 3600)) throw new Error('--duration: whole seconds, 1-3600');
if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= concurrencyMax)) throw new Error(`--concurrency: 1-${concurrencyMax}`);

const config = loadConfig();
const prefix = `bench_${randomBytes(4).toString('hex')}:`;
const environment: BenchEnvironment = {
  prefix,
  databaseUrl: config.databaseUrl,
  redisUrl: config.redisUrl,
  concurrency,
  url: flags.get('url'),
  checkoutKey: flags.get('checkout-key'),
  adminKey: flags.get('admin-key'),
};
const spreadSkus = 1000;
const scenarioChoice = flags.get('scenarios') ?? 'both';
if (!['hot', 'spread', 'both'].includes(scenarioChoice)) throw new Error('--scenarios: hot, spread or both');
const scenarios: Scenario[] = [
  { hotSku: true, skus: [`${prefix.slice(0, -1)}-HOT`], oversellUnitsPerSku: 100 },
  { hotSku: false, skus: Array.from({ length: spreadSkus }, (_, index) => `${prefix.slice(0, -1)}-S${index}`), oversellUnitsPerSku: 3 },
].filter((scenario) => scenarioChoice === 'both' || (scenarioChoice === 'hot') === scenario.hotSku);

function progress(label: string, done: number, total: number, elapsedSec: number): void {
  const width = 30;
  const filled = Math.min(width, Math.round((done / total) * width));
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(done).padStart(2)}/${total} ${label.padEnd(40)} ${elapsedSec.toFixed(1)}s   `);
}

async function main(): Promise<void> {
  const only = flags.get('only')?.split(',');
  const unknown = (only ?? []).filter((name) => !strategyFactories.some(([known]) => known === name));
  if (unknown.length > 0) throw new Error(`unknown strategies: ${unknown.join(', ')}`);
  const chosen = strategyFactories.filter(([name]) => only === undefined || only.includes(name));
  const rows: BenchRow[] = [];
  const total = chosen.length * scenarios.length;
  let done = 0;
  for (const [, build] of chosen) {
    const strategy = build(environment);
    try {
      for (const scenario of scenarios) {
        const label = `${strategy.name} (${scenario.hotSku ? 'hot SKU' : '1,000 SKUs'})`;
        const phase = await throughputPhase(strategy, scenario, concurrency, durationSec, (elapsed) => progress(label, done, total, elapsed));
        progress(`${label}: oversell check`, done, total, durationSec);
        const oversold = await oversellPhase(strategy, scenario, concurrency);
        const refusedWrites = strategy.refusedWrites?.() ?? 0;
        done += 1;
        rows.push({ strategy: strategy.name, hotSku: scenario.hotSku, concurrency, durationSec, throughputPerSec: phase.throughputPerSec, p50Ms: phase.p50Ms, p99Ms: phase.p99Ms, maxMs: phase.maxMs, oversold, refusedWrites });
      }
    } finally {
      await strategy.teardown();
    }
  }
  progress('done', done, total, 0);
  process.stderr.write('\n');
  process.stdout.write(`\n${concurrency} clients, ${durationSec} s per row; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}\n`);
  process.stdout.write(`${table(rows)}\n`);
  const conditional = rows.find((row) => row.strategy === 'pg-conditional-update' && row.hotSku);
  const lua = rows.find((row) => row.strategy === 'redis-lua-reservation' && row.hotSku);
  if (conditional !== undefined && lua !== undefined) {
    process.stdout.write(`\nredis-lua-reservation / pg-conditional-update on the hot SKU: ${(lua.throughputPerSec / conditional.throughputPerSec).toFixed(1)}x\n`);
  }
  const jsonFile = flags.get('json');
  if (jsonFile !== undefined) {
    mkdirSync(path.dirname(path.resolve(jsonFile)), { recursive: true });
    writeFileSync(jsonFile, `${JSON.stringify(rows, null, 2)}\n`);
    const svgFile = jsonFile.replace(/\.json$/i, '') + '.svg';
    writeFileSync(svgFile, svgChart(rows, `${concurrency} clients, ${durationSec} s per row, ${os.cpus().length} CPUs, ${new Date().toISOString().slice(0, 10)}`));
    process.stdout.write(`wrote ${jsonFile} and ${svgFile}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`\n${(error as Error).stack}\n`);
  process.exit(1);
});
