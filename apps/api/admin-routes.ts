// Operator routes under /v1/admin (admin scope; app.ts mounts this router behind authentication,
// the scope check and JSON parsing): the jobs of each queue by state, and retrying a failed one.
// Every BullMQ call goes through withRedis, so Redis down answers 503, never a 500.
import type { Job, Queue } from 'bullmq';
import { Router } from 'express';
import { errors, type FieldProblem } from '../../lib/errors';
import { allQueueNames, isQueueName, type QueueName } from '../../lib/queues';
import { withRedis } from '../../lib/redis/connection';
import type { Stockhold } from '../../lib/stockhold';
import { wholeNumberQuery } from './routes';

/** The job states an operator can list (BullMQ has more; these are the ones worth looking at). */
export const jobStates = ['failed', 'waiting', 'active', 'delayed', 'completed'] as const;
export type JobState = (typeof jobStates)[number];
export const jobStateDefault: JobState = 'failed';
export const jobsListDefault = 50;
/** Jobs one listing answers at most (per queue read, and in all). */
export const jobsListMax = 1000;
/** BullMQ job ids here are reservation ids, "cancel-<id>" or webhook ids: all far shorter. */
export const jobIdLengthMax = 255;
const jobIdPattern = /^[\x21-\x7e]+$/;

/** One job as GET /v1/admin/jobs lists it; times are BullMQ's, milliseconds since the epoch. */
export interface JobSummary {
  readonly queue: QueueName;
  readonly id: string;
  readonly name: string;
  readonly failedReason: string | null;
  readonly attemptsMade: number;
  readonly timestamp: number;
  readonly finishedOn: number | null;
}

export interface RetriedJob {
  readonly queue: QueueName;
  readonly id: string;
  readonly retried: true;
}

function invalid(field: string, message: string): never {
  const problem: FieldProblem = { field, message };
  throw errors.validation([problem]);
}

function queueNameOf(raw: unknown, field: string): QueueName {
  if (typeof raw !== 'string' || !isQueueName(raw)) invalid(field, `must be one of ${allQueueNames.join(', ')}`);
  return raw;
}

function jobStateOf(raw: unknown): JobState {
  if (raw === undefined) return jobStateDefault;
  const state = jobStates.find((candidate) => candidate === raw);
  if (state === undefined) invalid('query.state', `must be one of ${jobStates.join(', ')}`);
  return state;
}

function jobIdOf(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length > jobIdLengthMax || !jobIdPattern.test(raw)) {
    invalid('path.id', `must be 1-${jobIdLengthMax} visible ASCII characters`);
  }
  return raw;
}


function summaryOf(queue: QueueName, job: Job): JobSummary {
  return {
    queue,
    id: String(job.id),
    name: job.name,
    failedReason: job.failedReason === undefined || job.failedReason === null || job.failedReason === '' ? null : job.failedReason,
    attemptsMade: job.attemptsMade,
    timestamp: job.timestamp,
    finishedOn: job.finishedOn ?? null,
  };
}

/** Newest first: by when the job finished, or else when it was added; ids break ties. */
function newestFirst(a: JobSummary, b: JobSummary): number {
  const difference = (b.finishedOn ?? b.timestamp) - (a.finishedOn ?? a.timestamp);
  return difference !== 0 ? difference : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

async function listJobs(stockhold: Stockhold, names: readonly QueueName[], state: JobState, limit: number): Promise<JobSummary[]> {
  const perQueue = await Promise.all(
    names.map(async (name) => {
      const jobs = await withRedis(() => stockhold.queues.get(name).getJobs([state], 0, limit - 1));
      // getJobs leaves a hole where a job was removed between reading the set and the job.
      return jobs.filter((job): job is Job => job !== undefined && job !== null).map((job) => summaryOf(name, job));
    }),
  );
  return perQueue.flat().sort(newestFirst).slice(0, limit);
}

type RetryOutcome = { readonly kind: 'retried' } | { readonly kind: 'missing' } | { readonly kind: 'not-failed'; readonly state: string };

async function currentState(queue: Queue, id: string): Promise<RetryOutcome | { readonly kind: 'failed'; readonly job: Job }> {
  const job = await withRedis(() => queue.getJob(id));
  if (job === undefined || job === null) return { kind: 'missing' };
  const state = await withRedis(() => job.getState());
  if (state === 'unknown') return { kind: 'missing' };
  return state === 'failed' ? { kind: 'failed', job } : { kind: 'not-failed', state };
}

/**
 * Moves a failed job back to waiting (it keeps its attempt count, as the reconciler's retries
 * do). BullMQ refuses with a plain Error when the job left the failed set since it was read (the
 * reconciler retried it, or it was removed); a transport failure also throws. Reading the state
 * again tells the two apart: the job moved on (answered as such), or Redis failed (503).
 */
async function retryFailedJob(queue: Queue, id: string): Promise<RetryOutcome> {
  const before = await currentState(queue, id);
  if (before.kind !== 'failed') return before;
  try {
    await before.job.retry('failed');
    return { kind: 'retried' };
  } catch (error) {
    const after = await currentState(queue, id);
    if (after.kind !== 'failed') return after;
    throw errors.backendUnavailable('redis', error);
  }
}

export function adminRoutes(stockhold: Stockhold): Router {
  const router = Router();

  router.get('/jobs', async (request, response) => {
    const names = request.query.queue === undefined ? allQueueNames : [queueNameOf(request.query.queue, 'query.queue')];
    const state = jobStateOf(request.query.state);
    const limit = wholeNumberQuery(request.query.limit, 'limit', 1, jobsListMax, jobsListDefault);
    response.json({ jobs: await listJobs(stockhold, names, state, limit) });
  });

  router.post('/jobs/:queue/:id/retry', async (request, response) => {
    const name = queueNameOf(request.params.queue, 'path.queue');
    const id = jobIdOf(request.params.id);
    const outcome = await retryFailedJob(stockhold.queues.get(name), id);
    // Until lib/errors.ts has job_not_found (404) and job_not_failed (409), both answer
    // validation_failed on path.id, each with its own message.
    if (outcome.kind === 'missing') throw errors.jobNotFound(name, id);
    if (outcome.kind === 'not-failed') throw errors.jobNotFailed(name, id, outcome.state);
    const body: RetriedJob = { queue: name, id, retried: true };
    response.json(body);
  });

  return router;
}
