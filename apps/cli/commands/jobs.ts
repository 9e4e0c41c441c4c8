// `stockhold jobs failed` lists failed BullMQ jobs (all queues, or one) with their reasons;
// `stockhold jobs retry <queue> <jobId>` or `--all` moves failed jobs back to waiting. Both use
// the admin routes (apps/api/admin-routes.ts). Retrying a commit job is safe: the commit is
// idempotent (the ledger refuses a second allocation; the Redis steps are fenced).
import type { Command } from 'commander';
import type { JobSummary, RetriedJob } from '../../api/admin-routes';
import { cliLimits, UsageError, wholeNumber } from '../arguments';
import type { QueueName } from '../../../lib/queues';
import { ProblemError, type ServiceClient } from '../http-client';
import { cell, describeProblem, isoTime, renderTable } from '../output';
import { exitCodes } from '../exit-codes';
import type { CommandContext } from '../context';

interface JobsPage {
  readonly jobs: JobSummary[];
}

// The queue name goes as the operator typed it: the service says which names it knows (400).
const failedJobs = (client: ServiceClient, queue: string | undefined, limit: number) =>
  client.typed<JobsPage>(client.api.GET('/v1/admin/jobs', { params: { query: { state: 'failed', limit, ...(queue === undefined ? {} : { queue: queue as QueueName }) } } }));
const retryJob = (client: ServiceClient, queue: string, jobId: string) =>
  client.typed<RetriedJob>(client.api.POST('/v1/admin/jobs/{queue}/{jobId}/retry', { params: { path: { queue: queue as QueueName, jobId } } }));

function renderJobs(jobs: readonly JobSummary[]): string {
  return renderTable(
    [{ header: 'queue' }, { header: 'id' }, { header: 'name' }, { header: 'attempts', align: 'right' }, { header: 'failedAt' }, { header: 'reason' }],
    jobs.map((job) => [job.queue, job.id, job.name, String(job.attemptsMade), isoTime(job.finishedOn), cell(job.failedReason)]),
  );
}

interface RetryResult {
  readonly queue: string;
  readonly id: string;
  readonly retried: boolean;
  readonly problem?: { readonly status: number; readonly code?: string; readonly detail?: string };
}

/** Retries every failed job of a queue, up to `limit`, one request each; refusals are listed. */
async function retryAll(context: CommandContext, queue: string, limit: number): Promise<RetryResult[]> {
  const client = context.client();
  const { body } = await failedJobs(client, queue, limit);
  const results: RetryResult[] = [];
  for (const job of body.jobs) {
    try {
      await retryJob(client, queue, job.id);
      results.push({ queue, id: job.id, retried: true });
    } catch (error) {
      // One job moving on meanwhile (the reconciler retried it) must not stop the others.
      if (!(error instanceof ProblemError) || error.status >= 500) throw error;
      results.push({ queue, id: job.id, retried: false, problem: { status: error.status, code: error.problem.code, detail: error.problem.detail } });
    }
  }
  return results;
}

export function registerJobs(program: Command, context: CommandContext): void {
  const jobs = program.command('jobs').description('failed background jobs, and retrying them (admin key)');

  jobs
    .command('failed')
    .description('failed jobs, newest first, with the reason they failed')
    .option('--queue <queue>', 'only this queue (commits, reconcile, webhooks); default all')
    .option('--limit <n>', `how many (1-${cliLimits.listLimitMax})`, wholeNumber(1, cliLimits.listLimitMax), cliLimits.jobsLimitDefault)
    .action(async (options: { queue?: string; limit: number }) => {
      const { body } = await failedJobs(context.client(), options.queue, options.limit);
      if (context.json) context.printer.document(body);
      else context.printer.text(body.jobs.length === 0 ? 'no failed jobs' : renderJobs(body.jobs));
    });

  jobs
    .command('retry')
    .description('move a failed job (or, with --all, every failed job of the queue) back to waiting')
    .argument('<queue>', 'queue name (commits, reconcile, webhooks)')
    .argument('[jobId]', 'the failed job (see `jobs failed`)')
    .option('--all', 'retry every failed job of the queue, up to --limit')
    .option('--limit <n>', `--all: at most this many (1-${cliLimits.listLimitMax})`, wholeNumber(1, cliLimits.listLimitMax), cliLimits.jobsLimitDefault)
    .action(async (queue: string, jobId: string | undefined, options: { all?: boolean; limit: number }) => {
      if (options.all === true && jobId !== undefined) throw new UsageError('give a job id or --all, not both');
      if (options.all !== true && jobId === undefined) throw new UsageError('give the id of a failed job, or --all');
      if (jobId !== undefined) {
        const { body } = await retryJob(context.client(), queue, jobId);
        if (context.json) context.printer.document(body);
        else context.printer.text(`retried ${body.queue}/${body.id}: back to waiting`);
        return;
      }
      const results = await retryAll(context, queue, options.limit);
      const refused = results.filter((result) => !result.retried);
      if (refused.length > 0) context.exitCode = exitCodes.problem;
      if (context.json) {
        context.printer.document({ queue, retried: results.length - refused.length, refused: refused.length, jobs: results });
        return;
      }
      for (const result of results) {
        if (result.retried) context.printer.text(`retried ${result.queue}/${result.id}: back to waiting`);
        else context.io.stderr(describeProblem(result.problem?.status ?? 0, { ...result.problem, title: `not retried: ${result.queue}/${result.id}` }, null));
      }
      context.printer.text(`${results.length - refused.length} of ${results.length} failed jobs in ${queue} retried`);
    });
}
