// `npm run migrate:records`: moves reservation records of the layout before the shared buckets
// into their buckets (lib/reservations/legacy-records.ts). Run it once every process of the
// earlier version has stopped; running it again moves what is left and changes nothing else.
// Prints the report as JSON; exit 0 when done, 75 when it stopped at its bound (run it again).
import { migrateLegacyRecords } from '../../lib/reservations/legacy-records';
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, prepareDatabase } from '../bootstrap';
import { createLogger } from '../logger';

async function main(): Promise<void> {
  if (process.argv.length > 2) {
    process.stderr.write(`usage: npm run migrate:records\nunknown: ${process.argv.slice(2).join(' ')}\n`);
    process.exit(64);
  }
  const config = configOrExit();
  await prepareDatabase(config, createLogger({ logLevel: 'warn' }, 'stockhold-migrate-records'));
  const stockhold = await createStockhold(config);
  try {
    const report = await migrateLegacyRecords({ redis: stockhold.redis, scripts: stockhold.scripts, keys: stockhold.keys, knex: stockhold.knex, prefix: config.redisKeyPrefix });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (report.truncated) process.exitCode = 75;
  } finally {
    await stockhold.close();
  }
}

main().catch((error) => {
  process.stderr.write(`migrate:records failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
