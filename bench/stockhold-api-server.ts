// The Stockhold API as shipped, for the benchmark: the same app and logging as
// `npm run start:api`, on an ephemeral port, reporting the port to its parent.
import { createLogger } from '../apps/logger';
import { startApi } from '../apps/api/server';
import { loadConfig } from '../lib/config';
import { createStockhold } from '../lib/stockhold';

async function main(): Promise<void> {
  const config = loadConfig();
  const stockhold = await createStockhold(config);
  const { server } = await startApi(stockhold, createLogger(config, 'stockhold-api'), 0);
  const address = server.address();
  process.send?.({ port: typeof address === 'object' && address !== null ? address.port : 0 });
  process.on('SIGTERM', () => server.close(() => void stockhold.close().then(() => process.exit(0))));
}

void main();
