// One reconciliation run over every SKU the ledger knows, page by page (keyset pagination, a
// bounded number of pages), then the failed-job sweep; the report goes to the log.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { CommitQueue } from '../commits/commit-queue';
import type { Config } from '../config';
import { withPostgres } from '../postgres/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import type { ReservationService } from '../reservations/reservation-service';
import type { LedgerProjection } from '../stock/ledger-projection';
import { ReconcileLog } from './reconcile-log';
import { RunTally, type ReconcileReport, type ReconcileTrigger } from './report';
import { SkuReconciliation } from './sku-reconciliation';
import { StuckCommits } from './stuck-commits';

/** SKUs one run visits, at most: pages past it wait for the next run. */
export const skusPerRunMax = 10_000_000;

export class Reconciler {
  private readonly skus: SkuReconciliation;
  private readonly stuck: StuckCommits;
  readonly log: ReconcileLog;

  constructor(
    private readonly knex: Knex,
    redis: Redis,
    scripts: ScriptRunner,
    keys: RedisKeys,
    projection: LedgerProjection,
    queue: CommitQueue,
    reservations: ReservationService,
    private readonly config: Config,
  ) {
    this.skus = new SkuReconciliation(knex, scripts, keys, projection, config);
    this.stuck = new StuckCommits(queue, reservations, config);
    this.log = new ReconcileLog(knex, redis, `${config.redisKeyPrefix}metrics`, config.reconcileLogRetentionDays);
  }

  async run(trigger: ReconcileTrigger, dryRun: boolean): Promise<ReconcileReport> {
    const runId = randomUUID();
    const startedAt = new Date();
    const tally = new RunTally(this.config.reconcileCorrectionsReportedMax);
    const pageSize = this.config.reconcileSkuPage;
    let after = '';
    for (let visited = 0; visited < skusPerRunMax; visited += pageSize) {
      const page: string[] = await withPostgres(async () =>
        (await this.knex('skus').select('sku').where('sku', '>', after).orderBy('sku').limit(pageSize)).map((row: { sku: string }) => row.sku),
      );
      if (page.length === 0) break;
      const candidates = await withPostgres(() => this.skus.reconcilePage(page, runId, dryRun, tally));
      tally.commitsRequeued += await this.stuck.requeue(candidates, Date.now(), dryRun);
      after = page[page.length - 1] as string;
      if (page.length < pageSize) break;
    }
    tally.commitsRequeued += await this.stuck.retryFailed(dryRun);
    const report: ReconcileReport = {
      runId,
      trigger,
      dryRun,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      skusChecked: tally.skusChecked,
      holdsExpired: tally.holdsExpired,
      commitsRequeued: tally.commitsRequeued,
      skusRebuilt: tally.skusRebuilt,
      driftCorrected: tally.driftCorrected,
      debitsReleased: tally.debitsReleased,
      confirmedTruncated: tally.confirmedTruncated,
      skusFailed: tally.skusFailed,
      failures: tally.failures,
      corrections: tally.corrections,
    };
    await withPostgres(() => this.log.record(report));
    return report;
  }
}
