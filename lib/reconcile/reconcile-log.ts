// The reconciliation log in Postgres: every run, every correction. (Counters for /metrics are the
// process's own, in lib/metrics: nothing about reconciliation is kept in Redis.)
import type { Knex } from 'knex';
import type { ReconcileReport } from './report';

export const runsListMax = 1000;
/** Old runs pruned per run, at most: the log shrinks steadily instead of in one long delete. */
export const runsPrunedPerRunMax = 1000;

export class ReconcileLog {
  constructor(
    private readonly knex: Knex,
    private readonly retentionDays: number,
  ) {}

  async record(report: ReconcileReport): Promise<void> {
    await this.knex.transaction(async (transaction) => {
      await transaction('reconcile_runs').insert({
        run_id: report.runId,
        trigger: report.trigger,
        dry_run: report.dryRun,
        started_at: report.startedAt,
        finished_at: report.finishedAt,
        holds_expired: report.holdsExpired,
        commits_requeued: report.commitsRequeued,
        skus_rebuilt: report.skusRebuilt,
        drift_corrected: report.driftCorrected,
        report: JSON.stringify(report),
      });
      if (!report.dryRun && report.corrections.length > 0) {
        await transaction('reconcile_corrections').insert(
          report.corrections.map((correction) => ({
            run_id: report.runId,
            sku: correction.sku,
            field: correction.field,
            before: correction.before,
            after: correction.after,
            action: correction.field === 'state' ? 'rebuilt from the ledger' : `set ${correction.field} from ${correction.before} to ${correction.after}`,
          })),
        );
      }
      // A run every few seconds adds up: runs that corrected nothing are kept for the retention
      // period; a run with corrections is kept for good, with them.
      await transaction.raw(
        `DELETE FROM reconcile_runs WHERE run_id IN (
           SELECT run_id FROM reconcile_runs r
            WHERE r.started_at < now() - make_interval(days => ?)
              AND NOT EXISTS (SELECT 1 FROM reconcile_corrections c WHERE c.run_id = r.run_id)
            LIMIT ?)`,
        [this.retentionDays, runsPrunedPerRunMax],
      );
    });
  }

  async latest(limit: number): Promise<ReconcileReport[]> {
    const rows = await this.knex('reconcile_runs').select('report').orderBy('started_at', 'desc').limit(Math.min(limit, runsListMax));
    return rows.map((row: { report: ReconcileReport }) => row.report);
  }
}
