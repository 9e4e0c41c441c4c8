// Load shedding: the first second of a drop must not queue without bound inside the process.
// A request is admitted while fewer than `maxInFlight` are being served and the event loop's
// delay (the longest a timer waited past its time in the last sample, 100 ms) is at most
// `maxEventLoopDelayMs`; otherwise it is answered at once with 503 `overloaded` and Retry-After,
// before its body is read or any backend is asked: it touches no stock. Health probes and
// /metrics are never shed, so an overloaded process still says how it is.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** The event-loop delay is sampled (and its histogram reset) this often. */
export const eventLoopSampleMs = 100;
/** The histogram's resolution: a timer every 10 ms; its own period is not delay. */
const histogramResolutionMs = 10;
/** Retry-After of a shed request, seconds: a drop's burst passes in about that. */
export const shedRetryAfterSeconds = 1;

export type ShedReason = 'in_flight' | 'event_loop_delay';

export interface AdmissionLimits {
  /** 0: no bound. */
  readonly maxInFlight: number;
  /** 0: not watched. The worst timer delay in the last sample, ms. */
  readonly maxEventLoopDelayMs: number;
}

export class Admission {
  private served = 0;
  private delayMs = 0;
  private readonly histogram: IntervalHistogram | undefined;
  private readonly sampler: NodeJS.Timeout | undefined;

  /** `observe` is told, at every sample, the requests in flight and the delay (for gauges). */
  constructor(private readonly limits: AdmissionLimits, observe?: (inFlight: number, eventLoopDelayMs: number) => void) {
    const histogram = limits.maxEventLoopDelayMs > 0 ? monitorEventLoopDelay({ resolution: histogramResolutionMs }) : undefined;
    histogram?.enable();
    this.histogram = histogram;
    if (histogram === undefined && observe === undefined) return;
    this.sampler = setInterval(() => {
      if (histogram !== undefined) {
        // The worst wait, not the mean (under-pressure's): one 150 ms stall among ten free timers
        // has a mean of 15 ms, yet every request that came in during it waited 150 ms. Before the
        // first timer fired the histogram is empty (max 0).
        this.delayMs = Math.max(0, histogram.max / 1e6 - histogramResolutionMs);
        histogram.reset();
      }
      observe?.(this.served, this.delayMs);
    }, eventLoopSampleMs);
    this.sampler.unref();
  }

  /** Requests admitted and not yet finished. */
  get inFlight(): number {
    return this.served;
  }

  /** The event loop's delay at the last sample, ms. */
  get eventLoopDelayMs(): number {
    return this.delayMs;
  }

  /** Admits a request (the caller must `release()` it once), or says why it is shed. */
  admit(): ShedReason | undefined {
    if (this.limits.maxInFlight > 0 && this.served >= this.limits.maxInFlight) return 'in_flight';
    if (this.limits.maxEventLoopDelayMs > 0 && this.delayMs > this.limits.maxEventLoopDelayMs) return 'event_loop_delay';
    this.served += 1;
    return undefined;
  }

  release(): void {
    this.served -= 1;
  }

  close(): void {
    if (this.sampler !== undefined) clearInterval(this.sampler);
    this.histogram?.disable();
  }
}
