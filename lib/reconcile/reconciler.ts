// One reconciliation run over every SKU the ledger knows, page by page (keyset pagination, a
// bounded number of pages), then the failed-job sweep; the report goes to the log.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { CommitQueue } from '../commits/commit-queue';
import type { Config } from '../config';
import { errors } from '../errors';
import { leaseRun } from '../scripts/lease-run';
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
/** The run lease lasts at least this long, renewed every third of it while the run goes on. */
export const reconcileLeaseMsMin = 60_000;

export class Reconciler {
  private readonly skus: SkuReconciliation;
  private readonly stuck: StuckCommits;
  readonly log: ReconcileLog;
  private readonly leaseKey: string;
  private readonly scripts: ScriptRunner;

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
    this.scripts = scripts;
    this.skus = new SkuReconciliation(knex, scripts, keys, projection, config);
    this.stuck = new StuckCommits(queue, reservations, config);
    this.leaseKey = `${config.redisKeyPrefix}reconcile:lease`;
    this.log = new ReconcileLog(knex, redis, `${config.redisKeyPrefix}metrics`, config.reconcileLogRetentionDays);
  }

  /**
   * One run, whoever asks (the schedule, the API, the CLI): a lease in Redis lets one run at a
   * time; another asking meanwhile gets reconcile_in_progress. (Runs are safe to overlap, since
   * every step is idempotent or fenced, but overlapping runs only duplicate work.)
   */
  async run(trigger: ReconcileTrigger, dryRun: boolean): Promise<ReconcileReport> {
    const token = randomUUID();
    const leaseMs = Math.max(reconcileLeaseMsMin, this.config.reconcileIntervalMs * 10);
    const lease = (op: 'acquire' | 'renew' | 'release') => leaseRun(this.scripts, this.leaseKey, op, token, leaseMs);
    if (!(await lease('acquire'))) throw errors.reconcileInProgress();
    const renewal = setInterval(() => void lease('renew').catch(() => undefined), leaseMs / 3);
    try {
      return await this.runHeld(token, trigger, dryRun);
    } finally {
      clearInterval(renewal);
      await lease('release').catch(() => undefined);
    }
  }

  private async runHeld(runId: string, trigger: ReconcileTrigger, dryRun: boolean): Promise<ReconcileReport> {
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
