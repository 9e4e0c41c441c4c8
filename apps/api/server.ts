// Serves the API on the configured port; resolves with a function that stops it.
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { redisMode } from '../../lib/config';
import type { Stockhold } from '../../lib/stockhold';
import type { Admission } from './admission';
import { createApp } from './app';

export const keepAliveTimeoutMs = 65_000;
export const requestTimeoutMs = 30_000;
/**
 * Connections the kernel queues for accept() (capped by net.core.somaxconn). Node's default, 511,
 * overflows when a drop opens thousands of connections at once: the overflow waits for SYN
 * retransmits (1 s, 3 s, ...) before its first request is even read.
 */
export const listenBacklog = 4096;
/** While stopping, idle keep-alive connections are closed this often. */
export const idleSweepMs = 50;

export async function startApi(stockhold: Stockhold, logger: Logger, port = stockhold.config.port): Promise<{ server: Server; stop: () => Promise<void> }> {
  const app = createApp(stockhold, logger);
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = app.listen(port, '0.0.0.0', listenBacklog, (error?: Error) => (error ? reject(error) : resolve(listening)));
  });
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  const address = server.address();
  logger.info({ port: typeof address === 'object' && address !== null ? address.port : port, redis: redisMode(stockhold.config) }, 'API listening');
  // Stopping: no new connections; requests in flight finish and are answered with
  // "Connection: close", and keep-alive connections are closed as soon as they are idle.
  let stopping = false;
  server.prependListener('request', (_request, response) => {
    if (stopping) response.setHeader('Connection', 'close');
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      stopping = true;
      stockhold.commits.stopWaiting();
      const sweep = setInterval(() => server.closeIdleConnections(), idleSweepMs);
      server.close(() => {
        clearInterval(sweep);
        (app.locals.admission as Admission).close();
        resolve();
      });
      server.closeIdleConnections();
    });
  return { server, stop };
}
