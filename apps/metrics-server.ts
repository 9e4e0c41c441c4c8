// GET /metrics for the processes without the API (worker, reconciler), and for the API's cluster
// primary (the sum over its workers), on METRICS_PORT when it is set. A bare node:http server:
// nothing else is served, and it closes with the process.
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';

export interface MetricsSource {
  render(): Promise<{ contentType: string; body: string }>;
}

export async function startMetricsServer(metrics: MetricsSource, port: number | null, logger: Logger): Promise<{ stop: () => Promise<void> }> {
  if (port === null) return { stop: async () => undefined };
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => response.writeHead(200, { 'Content-Type': contentType }).end(body),
      (error: Error) => {
        logger.error({ err: error }, 'metrics: rendering failed');
        response.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve());
  });
  const address = server.address();
  logger.info({ port: typeof address === 'object' && address !== null ? address.port : port }, 'metrics listening');
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
