// `npm run start:api`: the HTTP API alone (production runs worker and reconciler separately).
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, onShutdown, prepareDatabase, warnAboutDevelopmentKeys } from '../bootstrap';
import { createLogger } from '../logger';
import { startApi } from './server';

async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold-api');
  warnAboutDevelopmentKeys(config, logger);
  await prepareDatabase(config, logger);
  const stockhold = await createStockhold(config);
  const api = await startApi(stockhold, logger);
  onShutdown(logger, async () => {
    await api.stop();
    await stockhold.close();
  });
}

main().catch((error) => {
  process.stderr.write(`stockhold-api failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
