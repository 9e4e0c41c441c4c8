// `stockhold reconcile [--dry-run]` runs one reconciliation now and prints what it corrected (or,
// dry, would correct) and its counts; `stockhold runs` lists the latest runs from the log.
import type { Command } from 'commander';
import type { ReconcileReport } from '../../../lib/reconcile/report';
import { cliLimits, wholeNumber } from '../arguments';
import { cell, renderPairs, renderTable } from '../output';
import type { CommandContext } from '../context';

/** The counts of a report, in the order they are printed. */
export const reportCounts = ['skusChecked', 'holdsExpired', 'commitsRequeued', 'skusRebuilt', 'driftCorrected', 'debitsReleased', 'confirmedTruncated', 'skusFailed'] as const;

/** Shorter headers for the runs table, which has a column per count. */
const runsHeaders: Readonly<Record<(typeof reportCounts)[number], string>> = {
  skusChecked: 'checked',
  holdsExpired: 'expired',
  commitsRequeued: 'requeued',
  skusRebuilt: 'rebuilt',
  driftCorrected: 'drift',
  debitsReleased: 'debits',
  confirmedTruncated: 'truncated',
  skusFailed: 'failed',
};

function durationMs(report: ReconcileReport): number {
  return Date.parse(report.finishedAt) - Date.parse(report.startedAt);
}

export function renderReport(report: ReconcileReport): string {
  const parts: string[] = [];
  const kind = report.dryRun ? 'dry run: nothing was changed; corrections it would make' : 'corrections';
  parts.push(`run ${report.runId}  ${report.trigger}  ${report.startedAt}  ${durationMs(report)} ms\n`);
  if (report.corrections.length === 0) parts.push(report.dryRun ? 'dry run: nothing to correct\n' : 'no corrections\n');
  else {
    parts.push(`${kind}:\n`);
    parts.push(
      renderTable(
        [{ header: 'sku' }, { header: 'field' }, { header: 'before', align: 'right' }, { header: 'after', align: 'right' }],
        report.corrections.map((correction) => [correction.sku, correction.field, cell(correction.before), cell(correction.after)]),
      ),
    );
  }
  if (report.failures.length > 0) {
    parts.push('failures:\n');
    parts.push(renderTable([{ header: 'sku' }, { header: 'message' }], report.failures.map((failure) => [failure.sku, cell(failure.message)])));
  }
  parts.push('\n');
  parts.push(renderPairs(reportCounts.map((name) => [name, report[name]] as const)));
  return parts.join('');
}

export function registerReconcile(program: Command, context: CommandContext): void {
  program
    .command('reconcile')
    .description('run one reconciliation now (admin key); --dry-run reports and changes nothing')
    .option('--dry-run', 'report what would be corrected, change nothing')
    .action(async (options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const client = context.client();
      const { body } = await client.typed<ReconcileReport>(client.api.POST('/v1/reconcile', { params: { query: { dryRun: dryRun ? 'true' : 'false' } } }));
      if (context.json) context.printer.document(body);
      else context.printer.text(renderReport(body));
    });

  program
    .command('runs')
    .description('the latest reconciliation runs, newest first (admin key)')
    .option('--limit <n>', `how many (1-${cliLimits.listLimitMax})`, wholeNumber(1, cliLimits.listLimitMax), cliLimits.runsLimitDefault)
    .action(async (options: { limit: number }) => {
      const client = context.client();
      const { body } = await client.typed<{ runs: ReconcileReport[] }>(client.api.GET('/v1/reconcile/runs', { params: { query: { limit: options.limit } } }));
      if (context.json) {
        context.printer.document(body);
        return;
      }
      if (body.runs.length === 0) {
        context.printer.text('no runs');
        return;
      }
      const columns = [
        { header: 'runId' },
        { header: 'trigger' },
        { header: 'dryRun' },
        { header: 'startedAt' },
        { header: 'ms', align: 'right' },
        ...reportCounts.map((name) => ({ header: runsHeaders[name], align: 'right' }) as const),
      ] as const;
      const rows = body.runs.map((run) => [run.runId, run.trigger, run.dryRun ? 'yes' : 'no', run.startedAt, String(durationMs(run)), ...reportCounts.map((name) => String(run[name]))]);
      context.printer.text(renderTable(columns, rows));
    });
}
