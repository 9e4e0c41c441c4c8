// `npm run start:api`: the HTTP API alone (production runs worker and reconciler separately).
// With WEB_CONCURRENCY=N above 1 it forks N API processes sharing the port (Node's cluster
// module); the primary only migrates, forks, and restarts a worker that dies.
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { Metrics } from '../../lib/metrics/metrics';
import { createStockhold } from '../../lib/stockhold';
import { configOrExit, onShutdown, prepareDatabase, warnAboutDevelopmentKeys } from '../bootstrap';
import { createLogger } from '../logger';
import { startMetricsServer } from '../metrics-server';
import { startApi } from './server';

/** A worker dying more often than this per minute is not restarted: something is wrong. */
export const restartsPerMinuteMax = 10;

async function serve(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold-api');
  const metrics = new Metrics();
  // In a cluster, the primary asks each worker for this registry and serves the sum. Answer from
  // the start: a worker still waiting for Redis must not time out the primary's whole scrape.
  if (cluster.isWorker) {
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry(); // installs the worker's answer to the primary's request
  }
  const stockhold = await createStockhold(config, metrics);
  const api = await startApi(stockhold, logger);
  onShutdown(config, logger, async () => {
    await api.stop();
    await stockhold.close();
  });
}

async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config, 'stockhold-api');
  if (cluster.isWorker) return serve();
  warnAboutDevelopmentKeys(config, logger);
  await prepareDatabase(config, logger);
  if (config.webConcurrency === 1) return serve();
  const restarts: number[] = [];
  for (let index = 0; index < config.webConcurrency; index += 1) cluster.fork();
  // GET /metrics on the shared port answers for one worker; METRICS_PORT serves every worker's sum.
  const aggregator = new AggregatorRegistry();
  const metricsServer = await startMetricsServer(
    { render: async () => ({ contentType: aggregator.contentType, body: await (await aggregator.clusterMetrics()) }) },
    config.metricsPort,
    logger,
  );
  let stopping = false;
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    const now = Date.now();
    while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift();
    if (code === 0 || signal === 'SIGTERM' || signal === 'SIGINT') return;
    if (restarts.length >= restartsPerMinuteMax) {
      logger.fatal({ pid: worker.process.pid, code, signal }, 'API workers keep dying; not restarting');
      return;
    }
    restarts.push(now);
    logger.error({ pid: worker.process.pid, code, signal }, 'API worker died; starting another');
    cluster.fork();
  });
  onShutdown(config, logger, async () => {
    stopping = true;
    await metricsServer.stop();
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (Object.keys(cluster.workers ?? {}).length === 0) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
  });
  logger.info({ workers: config.webConcurrency }, 'API cluster started');
}

main().catch((error) => {
  process.stderr.write(`stockhold-api failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
