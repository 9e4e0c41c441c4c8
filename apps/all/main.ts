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
  onShutdown(config, logger, async () => {
    await api.stop();
    await reconciler.stop();
    await webhooks.stop();
    await worker.stop();
    await stockhold.close();
  });
}

main().catch((error) => {
  process.stderr.write(`stockhold failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
