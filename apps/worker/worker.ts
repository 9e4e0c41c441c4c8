// The commit worker: BullMQ processors that commit confirmed reservations to the ledger.
// Not built yet: issue 3 (commit pipeline) fills this in. Until then it starts nothing, and says so.
import type { Logger } from 'pino';
import type { Stockhold } from '../../lib/stockhold';

export async function startWorker(_stockhold: Stockhold, logger: Logger): Promise<{ stop: () => Promise<void> }> {
  logger.warn('commit worker: no commit pipeline yet (issue 3); nothing to process');
  return { stop: async () => undefined };
}
