// One reconciliation run over every SKU the ledger knows, page by page (keyset pagination, a
// bounded number of pages), then the failed-job sweep; the report goes to the log.
import type { Knex } from 'knex';
import type { CommitQueue } from '../commits/commit-queue';
import type { Metrics } from '../metrics/metrics';
import type { Config } from '../config';
import { errors } from '../errors';
import { RunLease } from '../scripts/lease-run';
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

/** What the reconciler needs of striped SKUs (lib/stock/stock-service.ts). */
export interface StripeBalancer {
  /** Tells every process the SKU's stripes again (Redis may have lost them): the tags of stripes 1..k-1. */
  publishStripes(sku: string, stripeTags: readonly number[]): Promise<void>;
  /** Evens the SKU's stripes out when they differ by more than a bound; whether it did (would, in a dry run). */
  rebalance(sku: string, dryRun: boolean): Promise<boolean>;
}

export class Reconciler {
  private readonly skus: SkuReconciliation;
  private readonly stuck: StuckCommits;
  readonly log: ReconcileLog;
  private readonly leaseKey: string;
  private readonly scripts: ScriptRunner;
  private stopRequested = false;
  /** The token of this process's last acquire that got no answer: its lease, if it took one, is this process's to take back. */
  private unsettledLeaseToken: string | undefined;

  constructor(
    private readonly knex: Knex,
    scripts: ScriptRunner,
    keys: RedisKeys,
    projection: LedgerProjection,
    queue: CommitQueue,
    reservations: ReservationService,
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly stripes: StripeBalancer,
  ) {
    this.scripts = scripts;
    this.skus = new SkuReconciliation(knex, scripts, keys, projection, config, metrics);
    this.stuck = new StuckCommits(queue, reservations, config, scripts, keys);
    this.leaseKey = `${config.redisKeyPrefix}reconcile:lease`;
    this.log = new ReconcileLog(knex, config.reconcileLogRetentionDays);
  }

  /**
   * One run, whoever asks (the schedule, the API, the CLI): a lease in Redis lets one run at a
   * time; another asking meanwhile gets reconcile_in_progress. (Runs are safe to overlap, since
   * every step is idempotent or fenced, but overlapping runs only duplicate work.)
   */
  async run(trigger: ReconcileTrigger, dryRun: boolean): Promise<ReconcileReport> {
    const leaseMs = Math.max(reconcileLeaseMsMin, this.config.reconcileIntervalMs * 10);
    // Taken by one run only (no await in between): two runs of this process never share a token.
    const lease = new RunLease(this.scripts, this.leaseKey, leaseMs, this.unsettledLeaseToken);
    this.unsettledLeaseToken = undefined;
    let acquired: boolean;
    try {
      acquired = await lease.acquire();
    } catch (error) {
      this.unsettledLeaseToken = lease.token;
      throw error;
    }
    if (!acquired) throw errors.reconcileInProgress();
    const renewal = setInterval(() => void lease.renew().catch(() => undefined), leaseMs / 3);
    try {
      const report = await this.runHeld(lease.token, trigger, dryRun);
      this.count(report);
      return report;
    } finally {
      clearInterval(renewal);
      await lease.release();
    }
  }

  /** A run in progress ends after its current page (shutdown); later runs still start. */
  stopAfterPage(): void {
    this.stopRequested = true;
  }

  /** The run's figures for /metrics (a dry run counts as a run, corrects nothing, still sees drift). */
  private count(report: ReconcileReport): void {
    const { metrics } = this;
    metrics.reconcileRuns.inc({ trigger: report.trigger });
    metrics.reconcileDuration.observe((Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000);
    metrics.drift.set(report.skusOutOfAgreement);
    metrics.reconcileLastSuccess.set(Date.parse(report.finishedAt) / 1000);
    if (report.dryRun) return;
    const byField: ReadonlyArray<readonly [string, number]> = [
      ['onHand', report.onHandCorrected],
      ['reserved', report.reservedCorrected],
      ['state', report.skusRebuilt],
      ['holds_expired', report.holdsExpired],
      ['commits_requeued', report.commitsRequeued],
      ['pins_released', report.pinsReleased],
      ['stripes_rebalanced', report.stripesRebalanced],
      ['debits_released', report.debitsReleased],
    ];
    for (const [field, count] of byField) if (count > 0) metrics.reconcileCorrections.inc({ field }, count);
  }

  /**
   * For the page's striped SKUs: their stripe count written to Redis again, and their stripes
   * evened out when the units on offer differ by more than a bound (each a stock change that moves
   * units between stripes in one ledger transaction). Outside the page's FOR SHARE transaction,
   * whose row locks the move's FOR UPDATE would wait on. One SKU failing is counted and skipped.
   */
  private async balanceStripes(page: readonly string[], dryRun: boolean, tally: RunTally): Promise<number> {
    const striped: Array<{ sku: string; stripe_tags: number[] }> = await withPostgres(() => this.knex('skus').select('sku', 'stripe_tags').whereIn('sku', [...page]).andWhere('stripes', '>', 1));
    let rebalanced = 0;
    for (const { sku, stripe_tags: tags } of striped) {
      try {
        if (!dryRun) await this.stripes.publishStripes(sku, tags.map(Number));
        if (await this.stripes.rebalance(sku, dryRun)) rebalanced += 1;
      } catch (error) {
        tally.fail(sku, error);
      }
    }
    return rebalanced;
  }

  private async runHeld(runId: string, trigger: ReconcileTrigger, dryRun: boolean): Promise<ReconcileReport> {
    const startedAt = new Date();
    const tally = new RunTally(this.config.reconcileCorrectionsReportedMax);
    const pageSize = this.config.reconcileSkuPage;
    let after = '';
    let stoppedEarly = false;
    for (let visited = 0; visited < skusPerRunMax; visited += pageSize) {
      const page: string[] = await withPostgres(async () =>
        (await this.knex('skus').select('sku').where('sku', '>', after).orderBy('sku').limit(pageSize)).map((row: { sku: string }) => row.sku),
      );
      if (page.length === 0) break;
      if (this.stopRequested) {
        stoppedEarly = true;
        break;
      }
      const candidates = await withPostgres(() => this.skus.reconcilePage(page, runId, dryRun, tally));
      const stuck = await this.stuck.requeue(candidates, Date.now(), dryRun);
      tally.commitsRequeued += stuck.requeued;
      tally.pinsReleased += stuck.pinsReleased;
      tally.stripesRebalanced += await this.balanceStripes(page, dryRun, tally);
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
      pinsReleased: tally.pinsReleased,
      stripesRebalanced: tally.stripesRebalanced,
      skusRebuilt: tally.skusRebuilt,
      driftCorrected: tally.driftCorrected,
      onHandCorrected: tally.onHandCorrected,
      reservedCorrected: tally.reservedCorrected,
      skusOutOfAgreement: tally.skusOutOfAgreement.size,
      stoppedEarly,
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
