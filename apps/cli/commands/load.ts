// `stockhold load --sku S --rate R --duration D`: rehearse a flash sale against a running service
// (the generator is apps/cli/load-generator.ts). Needs a checkout key (it reserves and confirms as
// a shop would). Progress goes to stderr: a bar on a terminal, a plain line a second otherwise;
// the summary goes to stdout (a table, or JSON with --json). Ctrl-C stops the schedule, lets
// the requests in flight finish and still prints the summary.
import type { Command } from 'commander';
import { cliLimits, decimalNumber, wholeNumber } from '../arguments';
import { runLoad, type LoadProgress, type LoadSummary } from '../load-generator';
import { renderPairs, renderTable } from '../output';
import type { CommandContext } from '../context';

interface LoadOptions {
  readonly sku: string;
  readonly rate: number;
  readonly duration: number;
  readonly quantity: number;
  readonly concurrency: number;
  readonly confirmShare: number;
  readonly ttl?: number;
}

export const progressBarWidth = 30;

export function progressLine(progress: LoadProgress, bar: boolean): string {
  const counts = `sent ${progress.sent}  created ${progress.created}  409 ${progress.insufficientStock}  other ${progress.other}  skipped ${progress.skipped}  in flight ${progress.inFlight}`;
  const elapsed = Math.min(progress.elapsedSeconds, progress.durationSeconds);
  const time = `${Math.floor(elapsed)}/${progress.durationSeconds} s`;
  if (!bar) return `load: ${time}  ${counts}\n`;
  const filled = Math.round((elapsed / progress.durationSeconds) * progressBarWidth);
  // \r back to the start of the line, \x1b[K clears what a longer previous line left.
  return `\r[${'#'.repeat(filled)}${'.'.repeat(progressBarWidth - filled)}] ${time}  ${counts}\x1b[K`;
}

function countsRows(counts: Readonly<Record<string, number>>, prefix: string): string[][] {
  return Object.entries(counts)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([outcome, count]) => [`${prefix}${outcome}`, String(count)]);
}

export function renderSummary(summary: LoadSummary): string {
  const header = `load ${summary.sku}: ${summary.requests} requests over ${summary.elapsedSeconds} s (target ${summary.targetRatePerSecond}/s for ${summary.durationSeconds} s, quantity ${summary.quantity}, concurrency ${summary.concurrency})${summary.interrupted ? ', stopped early by Ctrl-C' : ''}\n`;
  const rows: string[][] = [
    ['created (201)', String(summary.created)],
    ['insufficient_stock (409)', String(summary.insufficientStock)],
    ['other', String(summary.otherTotal)],
    ...countsRows(summary.other, '  '),
    ['skipped (in-flight bound)', String(summary.skipped)],
    ['requests', String(summary.requests)],
  ];
  if (summary.confirmShare > 0) {
    rows.push(['confirmed', String(summary.confirmed)], ...countsRows(summary.confirmFailed, '  confirm failed: '));
  }
  const latency = summary.latencyMs;
  const ms = (value: number | null) => (value === null ? '-' : `${value} ms`);
  return [
    header,
    renderTable([{ header: 'outcome' }, { header: 'count', align: 'right' }], rows),
    '\n',
    renderPairs([
      ['units created', summary.unitsCreated],
      ['achieved rate', `${summary.achievedRatePerSecond}/s`],
      ['latency p50', ms(latency.p50)],
      ['latency p90', ms(latency.p90)],
      ['latency p99', ms(latency.p99)],
      ['latency max', ms(latency.max)],
    ]),
  ].join('');
}

export function registerLoad(program: Command, context: CommandContext): void {
  program
    .command('load')
    .description('rehearse a flash sale: reserve (and confirm a share) at a target rate (checkout key)')
    .requiredOption('--sku <sku>', 'the SKU every reservation takes')
    .requiredOption('--rate <perSecond>', `reservations per second (up to ${cliLimits.loadRateMax})`, decimalNumber(0.1, cliLimits.loadRateMax))
    .requiredOption('--duration <seconds>', `how long (1-${cliLimits.loadDurationSecondsMax})`, wholeNumber(1, cliLimits.loadDurationSecondsMax))
    .option('--quantity <q>', `units per reservation (1-${cliLimits.loadQuantityMax})`, wholeNumber(1, cliLimits.loadQuantityMax), 1)
    .option('--concurrency <c>', `requests in flight at most (1-${cliLimits.loadConcurrencyMax})`, wholeNumber(1, cliLimits.loadConcurrencyMax), cliLimits.loadConcurrencyDefault)
    .option('--confirm-share <share>', 'share of created reservations to confirm, 0..1', decimalNumber(0, 1, 'a share from 0 to 1'), 0)
    .option('--ttl <seconds>', `hold ttl of each reservation (1-${cliLimits.loadTtlSecondsMax}); default the service's`, wholeNumber(1, cliLimits.loadTtlSecondsMax))
    .action(async (options: LoadOptions) => {
      // In-flight requests finish after Ctrl-C (each bounded by the timeout), so that the
      // summary counts what the service really did.
      const client = context.client({ interruptible: false });
      const bar = context.io.stderrIsTTY === true;
      const summary = await runLoad(
        client,
        {
          sku: options.sku,
          ratePerSecond: options.rate,
          durationSeconds: options.duration,
          quantity: options.quantity,
          concurrency: options.concurrency,
          confirmShare: options.confirmShare,
          ttlSeconds: options.ttl,
        },
        { signal: context.io.signal, onProgress: (progress) => context.io.stderr(progressLine(progress, bar)) },
      );
      if (bar) context.io.stderr('\n');
      if (context.json) context.printer.document(summary);
      else context.printer.text(renderSummary(summary));
    });
}
