// Prometheus metrics (prom-client), one registry per Stockhold instance, kept in the process and
// never in Redis (a Redis that loses its data must not take the evidence with it). Label values
// are bounded: no SKU, customer, reservation or client label anywhere; routes are templates.
//
// Each family is declared once, here; the Grafana dashboard and the alert rules are tested
// against what a running service really exposes (test/deploy.test.ts).
import type { ReclaimedHold } from '../scripts/reclaimed-holds';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const metricPrefix = 'stockhold_';

/** Seconds, for request latency: 0.5 ms to 10 s. */
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds, for hold lifetimes: 1 s to 1 day (the longest hold TTL). */
const holdBuckets = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 86_400];
/** Seconds past expiry before a hold's units came back: 10 ms to 1 h. */
const reclaimLagBuckets = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600];
/** Seconds from confirm to ledger: 5 ms to 15 min. */
const commitLagBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const batchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const reservationBatchBuckets = [1, 2, 4, 8, 16, 32, 64];
const runBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export type ReservationOutcome = 'created' | 'replayed' | 'insufficient_stock' | 'guarded' | 'sku_not_found' | 'unavailable';
export type ReservationTransition = 'released' | 'expired' | 'confirmed' | 'committed' | 'cancelled' | 'rejected';
export type HoldOutcome = 'confirmed' | 'released' | 'expired';
export type QueueState = 'waiting' | 'active' | 'delayed' | 'failed';
export type WebhookResult = 'delivered' | 'failed' | 'dead';
export const queueStates: readonly QueueState[] = ['waiting', 'active', 'delayed', 'failed'];

export interface MetricsOptions {
  /** Default process and Node metrics (CPU, memory, event loop, GC). On in every process. */
  readonly defaultMetrics?: boolean;
}

/** A sample taken at scrape time (queue depths, clock skew); bounded by the scrape itself. */
export type Sampler = () => Promise<void>;

export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'stockhold_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpShed = new Counter({
    name: 'stockhold_http_shed_total',
    help: 'Requests answered 503 overloaded at once, without being served, by reason (in_flight, event_loop_delay).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly httpInFlight = new Gauge({
    name: 'stockhold_http_in_flight',
    help: 'Requests being served by this API process (MAX_IN_FLIGHT bounds it).',
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'stockhold_http_request_duration_seconds',
    help: 'HTTP request duration from arrival to the last byte of the answer, by method and route template.',
    labelNames: ['method', 'route'] as const,
    buckets: latencyBuckets,
    registers: [this.registry],
  });
  readonly reservations = new Counter({
    name: 'stockhold_reservations_total',
    help: 'Reservation requests by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly transitions = new Counter({
    name: 'stockhold_reservation_transitions_total',
    help: 'Reservations entering a state (expired: holds reclaimed past their expiry, one per cart line).',
    labelNames: ['to'] as const,
    registers: [this.registry],
  });
  readonly holdDuration = new Histogram({
    name: 'stockhold_hold_duration_seconds',
    help: 'How long a hold lived until it was confirmed, released or expired.',
    labelNames: ['outcome'] as const,
    buckets: holdBuckets,
    registers: [this.registry],
  });
  readonly reclaimLag = new Histogram({
    name: 'stockhold_hold_reclaim_lag_seconds',
    help: 'How long past its expiry an expired hold was reclaimed (its units unavailable meanwhile).',
    buckets: reclaimLagBuckets,
    registers: [this.registry],
  });
  readonly commitLag = new Histogram({
    name: 'stockhold_commit_lag_seconds',
    help: 'From the confirm to the commit in the ledger.',
    buckets: commitLagBuckets,
    registers: [this.registry],
  });
  readonly commitBatchSize = new Histogram({
    name: 'stockhold_commit_batch_size',
    help: 'Reservations written to the ledger in one group commit.',
    buckets: batchBuckets,
    registers: [this.registry],
  });
  readonly reservationBatchSize = new Histogram({
    name: 'stockhold_reservation_batch_size',
    help: 'Reservations one hot-path Redis call carried (one Redis; RESERVATION_BATCH_MAX at most).',
    buckets: reservationBatchBuckets,
    registers: [this.registry],
  });
  readonly queueJobs = new Gauge({
    name: 'stockhold_queue_jobs',
    help: 'BullMQ jobs by queue and state, sampled at scrape time.',
    labelNames: ['queue', 'state'] as const,
    registers: [this.registry],
    // Every process sees the same queues: a cluster's sum would count them once per worker.
    aggregator: 'max',
    collect: () => this.sample('queue_jobs'),
  });
  readonly reconcileRuns = new Counter({
    name: 'stockhold_reconcile_runs_total',
    help: 'Reconcile runs finished, by trigger.',
    labelNames: ['trigger'] as const,
    registers: [this.registry],
  });
  readonly reconcileCorrections = new Counter({
    name: 'stockhold_reconcile_corrections_total',
    help: 'What reconcile runs changed, by field.',
    labelNames: ['field'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'stockhold_reconcile_run_duration_seconds',
    help: 'Duration of a reconcile run.',
    buckets: runBuckets,
    registers: [this.registry],
  });
  readonly drift = new Gauge({
    name: 'stockhold_redis_ledger_drift_skus',
    help: 'SKUs the last reconcile run found out of agreement between Redis and the ledger (should be 0).',
    registers: [this.registry],
    aggregator: 'max',
  });
  readonly reconcileLastSuccess = new Gauge({
    name: 'stockhold_reconcile_last_success_timestamp_seconds',
    help: 'Unix time at which the last reconcile run of this process finished.',
    registers: [this.registry],
    aggregator: 'max',
  });
  readonly clockSkew = new Gauge({
    name: 'stockhold_redis_clock_skew_seconds',
    help: "Redis TIME minus this process's clock, sampled at scrape time (hold expiry uses Redis time).",
    registers: [this.registry],
    aggregator: 'average',
    collect: () => this.sample('clock_skew'),
  });
  readonly jobsFailed = new Counter({
    name: 'stockhold_jobs_failed_total',
    help: 'BullMQ jobs that failed for good (out of attempts), by queue; the failed set shows only what is there when scraped.',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'stockhold_webhook_deliveries_total',
    help: 'Webhook delivery attempts by result (dead: gave up after WEBHOOK_ATTEMPTS).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'stockhold_ready',
    help: '1 when Redis and Postgres both answered the last readiness sample, else 0.',
    registers: [this.registry],
    aggregator: 'min',
    collect: () => this.sample('readiness'),
  });
  readonly samplerFailures = new Counter({
    name: 'stockhold_metrics_sample_failures_total',
    help: 'Scrape-time samples that could not be taken (a backend down), by sample.',
    labelNames: ['sample'] as const,
    registers: [this.registry],
    // Collected after the sampled gauges started (registration order): wait for them, so a
    // failure shows in the same scrape.
    collect: async () => {
      await Promise.all(this.samplesInFlight);
    },
  });

  private readonly samplers = new Map<string, Sampler>();
  private readonly samplesInFlight = new Set<Promise<void>>();

  constructor(options: MetricsOptions = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    for (const outcome of ['created', 'replayed', 'insufficient_stock', 'guarded', 'sku_not_found', 'unavailable'] as const) this.reservations.inc({ outcome }, 0);
    for (const to of ['released', 'expired', 'confirmed', 'committed', 'cancelled', 'rejected'] as const) this.transitions.inc({ to }, 0);
    for (const result of ['delivered', 'failed', 'dead'] as const) this.webhookDeliveries.inc({ result }, 0);
    for (const reason of ['in_flight', 'event_loop_delay'] as const) this.httpShed.inc({ reason }, 0);
  }

  /**
   * Sets the sample a scrape-time gauge takes when collected (each bounded by its backend's own
   * timeout): `queue_jobs`, `clock_skew`, `readiness`. Collection happens on every render, also
   * when a cluster primary asks a worker for its registry.
   */
  addSampler(name: 'queue_jobs' | 'clock_skew' | 'readiness', sample: Sampler): void {
    this.samplers.set(name, sample);
  }

  private sample(name: string): Promise<void> {
    const sample = this.samplers.get(name);
    if (sample === undefined) return Promise.resolve();
    const taking = sample().catch(() => {
      this.samplerFailures.inc({ sample: name });
      if (name === 'readiness') this.ready.set(0);
    });
    this.samplesInFlight.add(taking);
    return taking.finally(() => this.samplesInFlight.delete(taking));
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Expired holds a script gave back: the TTL skew, the lifetime, the transition. */
  holdsReclaimed(holds: readonly ReclaimedHold[]): void {
    for (const hold of holds) {
      this.reclaimLag.observe(Math.max(0, hold.reclaimedAtMs - hold.expiresAtMs) / 1000);
      this.transitions.inc({ to: 'expired' });
      if (hold.createdAtMs !== undefined) this.holdEnded('expired', hold.createdAtMs, hold.expiresAtMs);
    }
  }

  holdEnded(outcome: HoldOutcome, createdAtMs: number, endedAtMs: number): void {
    const seconds = (endedAtMs - createdAtMs) / 1000;
    if (Number.isFinite(seconds) && seconds >= 0) this.holdDuration.observe({ outcome }, seconds);
  }
}
