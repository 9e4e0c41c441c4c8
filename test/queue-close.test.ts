// Proves that closing the queue handles while Redis does not answer (a stop during an outage)
// leaves no unhandled rejection behind: BullMQ's close of a queue on a shared connection whose
// first connect is still in flight used to remove the queue's listeners, and the connect's later
// failure became an unhandled rejection, which crashes Node. Forced with a TCP server that
// accepts and never answers, so the connect is pending when the close runs.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommitQueue } from '../lib/commits/commit-queue';
import { loadConfig } from '../lib/config';
import { QueueSet } from '../lib/queues';
import { redisConnectTimeoutMs } from '../lib/redis/connection';

let silent: Server;
let port = 0;
const sockets: Socket[] = [];
beforeAll(async () => {
  silent = createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  port = (silent.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

describe('closing queue handles while Redis does not answer', () => {
  it('leaves no unhandled rejection once the pending connects fail', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      const config = loadConfig({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: 'qc:', REDIS_COMMAND_TIMEOUT_MS: '300' });
      const queues = new QueueSet(config);
      const commits = new CommitQueue(config);
      void queues.connect();
      void commits.connect();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([queues.close(), commits.close()]);
      // Past the connect timeout, when a pending connect would have failed.
      await new Promise((resolve) => setTimeout(resolve, redisConnectTimeoutMs + 500));
    } finally {
      process.off('unhandledRejection', record);
    }
    expect(unhandled.map(String)).toEqual([]);
  }, 15_000);
});
