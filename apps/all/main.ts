// `npm start`: creates the database if missing, migrates, and runs the API, the commit worker
// and the reconciler in one process (for development and small installs).
import { createStockhold } from '../../lib/stockhold';
import { startApi } from '../api/server';
import { configOrExit, onShutdown, prepareDatabase, warnAboutDevelopmentKeys } from '../bootstrap';
import { createLogger } from '../logger';
import { startReconciler } from '../reconciler/reconciler';
import { startWebhooks } from '../worker/webhooks';
import { startWorker } from '../worker/worker';

async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold');
  warnAboutDevelopmentKeys(config, logger);
  await prepareDatabase(config, logger);
  const stockhold = await createStockhold(config);
  const worker = await startWorker(stockhold, logger);
  const reconciler = await startReconciler(stockhold, logger);
  const webhooks = await startWebhooks(stockhold, logger);
  const api = await startApi(stockhold, logger);
  // Side by side, within one SHUTDOWN_TIMEOUT_MS: in-flight requests, the reconcile page, the
  // deliveries and the commit jobs each finish on their own.
  onShutdown(config, logger, async () => {
    await Promise.all([api.stop(), reconciler.stop(), webhooks.stop(), worker.stop()]);
    await stockhold.close();
  });
}

main().catch((error) => {
  process.stderr.write(`stockhold failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
