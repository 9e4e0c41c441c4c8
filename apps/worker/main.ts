// `npm run start:worker`: the commit worker and webhook delivery (when WEBHOOK_URLS is set).
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, onShutdown, prepareDatabase } from '../bootstrap';
import { createLogger } from '../logger';
import { startMetricsServer } from '../metrics-server';
import { startWebhooks } from './webhooks';
import { startWorker } from './worker';

async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold-worker');
  await prepareDatabase(config, logger);
  const stockhold = await createStockhold(config);
  const worker = await startWorker(stockhold, logger);
  const webhooks = await startWebhooks(stockhold, logger);
  const metricsServer = await startMetricsServer(stockhold.metrics, config.metricsPort, logger);
  onShutdown(config, logger, async () => {
    await Promise.all([webhooks.stop(), worker.stop()]);
    await metricsServer.stop();
    await stockhold.close();
  });
}

main().catch((error) => {
  process.stderr.write(`stockhold-worker failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
