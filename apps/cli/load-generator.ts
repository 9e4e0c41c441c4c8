// A load generator for rehearsing a flash sale against a running service: POST /v1/reservations
// on an open-loop schedule (request i is due at start + i / rate, whatever the answers do), with
// a bound on requests in flight. A request that falls due while the bound is reached is not sent
// and is counted as skipped, so a slow service shows up as skipped requests and a lower achieved
// rate rather than as a quietly slower schedule. Every request carries its own Idempotency-Key.
// A share of the created reservations is confirmed (the confirm shares its reservation's slot).
import { performance } from 'node:perf_hooks';
import { abortableSleep } from './abortable-sleep';
import { newIdempotencyKey, ProblemError, UnreachableError, type ServiceClient } from './http-client';
import { LatencyHistogram, type LatencySummary } from './latency-histogram';

export interface LoadPlan {
  readonly sku: string;
  readonly ratePerSecond: number;
  readonly durationSeconds: number;
  readonly quantity: number;
  /** Requests in flight at most (a reservation and its confirm count as one). */
  readonly concurrency: number;
  /** 0..1: the share of created reservations to confirm. */
  readonly confirmShare: number;
  /** Hold ttl sent with each reservation; absent: the service's default. */
  readonly ttlSeconds?: number;
}

export interface LoadProgress {
  readonly elapsedSeconds: number;
  readonly durationSeconds: number;
  readonly sent: number;
  readonly created: number;
  readonly insufficientStock: number;
  readonly other: number;
  readonly skipped: number;
  readonly inFlight: number;
}

export interface LoadSummary {
  readonly sku: string;
  readonly quantity: number;
  readonly targetRatePerSecond: number;
  readonly durationSeconds: number;
  readonly concurrency: number;
  readonly confirmShare: number;
  /** Requests the schedule had due (fewer than planned when Ctrl-C stopped it early). */
  readonly requests: number;
  readonly planned: number;
  readonly sent: number;
  /** Due while `concurrency` requests were in flight: not sent. */
  readonly skipped: number;
  readonly created: number;
  readonly insufficientStock: number;
  /** Every other outcome, by "status code" (or "no answer"). */
  readonly other: Readonly<Record<string, number>>;
  readonly otherTotal: number;
  readonly unitsCreated: number;
  readonly confirmed: number;
  readonly confirmFailed: Readonly<Record<string, number>>;
  readonly interrupted: boolean;
  readonly elapsedSeconds: number;
  /** Requests sent per second of the whole run (first send to last answer). */
  readonly achievedRatePerSecond: number;
  /** Of the reservation requests that got an answer, send to answer. */
  readonly latencyMs: LatencySummary;
}

export const progressIntervalMs = 1000;

class Tally {
  sent = 0;
  skipped = 0;
  created = 0;
  insufficientStock = 0;
  confirmed = 0;
  inFlight = 0;
  readonly other = new Map<string, number>();
  readonly confirmFailed = new Map<string, number>();
  readonly latency = new LatencyHistogram();
  /** A bug while handling an answer: kept and thrown once the run has drained. */
  unexpected: unknown = undefined;

  otherTotal(): number {
    let total = 0;
    for (const count of this.other.values()) total += count;
    return total;
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function outcomeOf(status: number, body: unknown): string {
  const code = typeof body === 'object' && body !== null ? (body as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? `${status} ${code}` : String(status);
}

function failureOf(error: unknown): string | undefined {
  if (error instanceof UnreachableError) return 'no answer';
  if (error instanceof ProblemError) return `${error.status} not JSON`;
  return undefined;
}

/** Decides which created reservations to confirm: exactly floor(n * share) of the first n. */
class ConfirmShare {
  private credit = 0;
  constructor(private readonly share: number) {}

  take(): boolean {
    this.credit += this.share;
    if (this.credit < 1 - 1e-9) return false;
    this.credit -= 1;
    return true;
  }
}

export async function runLoad(client: ServiceClient, plan: LoadPlan, options: { signal?: AbortSignal; onProgress?: (progress: LoadProgress) => void } = {}): Promise<LoadSummary> {
  const tally = new Tally();
  const confirmShare = new ConfirmShare(plan.confirmShare);
  const keyStem = newIdempotencyKey().replace(/^cli-/, 'load-');
  const body = { lines: [{ sku: plan.sku, quantity: plan.quantity }], ...(plan.ttlSeconds === undefined ? {} : { ttlSeconds: plan.ttlSeconds }) };

  const confirm = async (id: string) => {
    try {
      const answer = await client.send('POST', `/v1/reservations/${encodeURIComponent(id)}/confirm`);
      if (answer.status === 200 || answer.status === 202) tally.confirmed += 1;
      else increment(tally.confirmFailed, outcomeOf(answer.status, answer.body));
    } catch (error) {
      const failure = failureOf(error);
      if (failure === undefined) throw error;
      increment(tally.confirmFailed, failure);
    }
  };

  const reserve = async (sequence: number) => {
    tally.sent += 1;
    tally.inFlight += 1;
    const sentAt = performance.now();
    try {
      const answer = await client.send<{ id?: string; code?: string }>('POST', '/v1/reservations', { body, idempotencyKey: `${keyStem}-${sequence}` });
      tally.latency.record(performance.now() - sentAt);
      if (answer.status === 201 && typeof answer.body?.id === 'string') {
        tally.created += 1;
        if (confirmShare.take()) await confirm(answer.body.id);
      } else if (answer.status === 409 && answer.body?.code === 'insufficient_stock') tally.insufficientStock += 1;
      else increment(tally.other, outcomeOf(answer.status, answer.body));
    } catch (error) {
      const failure = failureOf(error);
      if (failure !== undefined) increment(tally.other, failure);
      else tally.unexpected ??= error;
    } finally {
      tally.inFlight -= 1;
    }
  };

  const planned = Math.max(1, Math.floor(plan.ratePerSecond * plan.durationSeconds));
  const startedAt = performance.now();
  const progress = (): LoadProgress => ({
    elapsedSeconds: (performance.now() - startedAt) / 1000,
    durationSeconds: plan.durationSeconds,
    sent: tally.sent,
    created: tally.created,
    insufficientStock: tally.insufficientStock,
    other: tally.otherTotal(),
    skipped: tally.skipped,
    inFlight: tally.inFlight,
  });
  const progressTimer = options.onProgress === undefined ? undefined : setInterval(() => options.onProgress?.(progress()), progressIntervalMs);
  let due: number;
  try {
    due = await schedule(plan, planned, startedAt, tally, reserve, options.signal);
  } finally {
    if (progressTimer !== undefined) clearInterval(progressTimer);
  }
  if (tally.unexpected !== undefined) throw tally.unexpected;
  return summarise(plan, tally, { requests: due, planned, interrupted: options.signal?.aborted === true, elapsedSeconds: (performance.now() - startedAt) / 1000 });
}

/**
 * Launches request i at startedAt + i / rate (skipping it when `concurrency` are in flight),
 * then waits for those in flight. Returns how many fell due.
 */
async function schedule(plan: LoadPlan, planned: number, startedAt: number, tally: Tally, reserve: (sequence: number) => Promise<void>, signal: AbortSignal | undefined): Promise<number> {
  const intervalMs = 1000 / plan.ratePerSecond;
  const running = new Set<Promise<void>>();
  let due = 0;
  // One pass per timer wake-up; each wakes when the next request is due, so the passes are
  // bounded by the requests planned plus one a millisecond of the run.
  const passesMax = planned + Math.ceil(plan.durationSeconds * 1000) + 1;
  for (let pass = 0; pass < passesMax && due < planned && signal?.aborted !== true; pass += 1) {
    const dueNow = Math.min(planned, Math.floor((performance.now() - startedAt) / intervalMs) + 1);
    for (; due < dueNow; due += 1) {
      if (running.size >= plan.concurrency) {
        tally.skipped += 1;
        continue;
      }
      const task: Promise<void> = reserve(due).finally(() => running.delete(task));
      running.add(task);
    }
    if (due < planned) await abortableSleep(Math.max(1, startedAt + due * intervalMs - performance.now()), signal);
  }
  // Every request is bounded by the client's timeout, so the drain is too.
  await Promise.all(running);
  return due;
}

function summarise(plan: LoadPlan, tally: Tally, run: { requests: number; planned: number; interrupted: boolean; elapsedSeconds: number }): LoadSummary {
  const { elapsedSeconds } = run;
  return {
    sku: plan.sku,
    quantity: plan.quantity,
    targetRatePerSecond: plan.ratePerSecond,
    durationSeconds: plan.durationSeconds,
    concurrency: plan.concurrency,
    confirmShare: plan.confirmShare,
    requests: run.requests,
    planned: run.planned,
    sent: tally.sent,
    skipped: tally.skipped,
    created: tally.created,
    insufficientStock: tally.insufficientStock,
    other: Object.fromEntries(tally.other),
    otherTotal: tally.otherTotal(),
    unitsCreated: tally.created * plan.quantity,
    confirmed: tally.confirmed,
    confirmFailed: Object.fromEntries(tally.confirmFailed),
    interrupted: run.interrupted,
    elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
    achievedRatePerSecond: elapsedSeconds > 0 ? Math.round((tally.sent / elapsedSeconds) * 10) / 10 : 0,
    latencyMs: tally.latency.summary(),
  };
}
