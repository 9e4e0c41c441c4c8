// The scheduled reconciler: expires orphaned holds on SKUs nobody touches, re-drives stuck
// commits and repairs drift from the ledger. Not built yet: issue 4 fills this in. Until then
// expired holds are reclaimed only when their SKU is touched (reserve, read, stock change).
import type { Logger } from 'pino';
import type { Stockhold } from '../../lib/stockhold';

export async function startReconciler(_stockhold: Stockhold, logger: Logger): Promise<{ stop: () => Promise<void> }> {
  logger.warn('reconciler: no scheduled reconciliation yet (issue 4); expired holds are reclaimed when their SKU is touched');
  return { stop: async () => undefined };
}
