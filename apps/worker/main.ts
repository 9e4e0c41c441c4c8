// `npm run start:worker`: the commit worker alone.
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, onShutdown, prepareDatabase } from '../bootstrap';
import { createLogger } from '../logger';
import { startMetricsServer } from '../metrics-server';
import { startWorker } from './worker';

async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold-worker');
  await prepareDatabase(config, logger);
  const stockhold = await createStockhold(config);
  const worker = await startWorker(stockhold, logger);
  const metricsServer = await startMetricsServer(stockhold.metrics, config.metricsPort, logger);
  onShutdown(config, logger, async () => {
    await worker.stop();
    await metricsServer.stop();
    await stockhold.close();
  });
}

main().catch((error) => {
  process.stderr.write(`stockhold-worker failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
