// `npm run reconcile [-- --dry-run]`: one reconciliation run from the command line; prints the
// report as JSON (the same report POST /v1/reconcile answers) and exits.
import { StockholdError } from '../../lib/errors';
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, prepareDatabase } from '../bootstrap';
import { createLogger } from '../logger';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => arg !== '--dry-run');
  if (unknown.length > 0) {
    process.stderr.write(`usage: npm run reconcile [-- --dry-run]\nunknown: ${unknown.join(' ')}\n`);
    process.exit(64);
  }
  const config = configOrExit();
  await prepareDatabase(config, createLogger({ logLevel: 'warn' }, 'stockhold-reconcile'));
  const stockhold = await createStockhold(config);
  try {
    const report = await stockhold.reconciler.run('cli', args.includes('--dry-run'));
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await stockhold.close();
  }
}

main().catch((error) => {
  if (error instanceof StockholdError && error.code === 'reconcile_in_progress') {
    process.stderr.write(`reconcile: ${error.message}\n`);
    process.exit(75);
  }
  process.stderr.write(`reconcile failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
