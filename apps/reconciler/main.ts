// `npm run start:reconciler`: the reconciler alone.
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, onShutdown, prepareDatabase } from '../bootstrap';
import { createLogger } from '../logger';
import { startMetricsServer } from '../metrics-server';
import { startReconciler } from './reconciler';

async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold-reconciler');
  await prepareDatabase(config, logger);
  const stockhold = await createStockhold(config);
  const reconciler = await startReconciler(stockhold, logger);
  const metricsServer = await startMetricsServer(stockhold.metrics, config.metricsPort, logger);
  onShutdown(config, logger, async () => {
    await reconciler.stop();
    await metricsServer.stop();
    await stockhold.close();
  });
}

main().catch((error) => {
  process.stderr.write(`stockhold-reconciler failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
