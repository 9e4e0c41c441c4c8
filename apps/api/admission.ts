// Load shedding: the first second of a drop must not queue without bound inside the process.
// A request is admitted while fewer than `maxInFlight` are being served and the event loop's
// delay (how late a 10 ms timer fired at worst, in the last 100-200 ms) is at most
// `maxEventLoopDelayMs`; otherwise it is answered at once with 503 `overloaded` and Retry-After,
// before its body is read or any backend is asked: it touches no stock. Health probes and
// /metrics are never shed, so an overloaded process still says how it is.
import { performance } from 'node:perf_hooks';

/** A sample of the event-loop delay ends this often (the gauges are told; the delay keeps the worst of two). */
export const eventLoopSampleMs = 100;
/** The delay timer fires this often; how late it fires is the event loop's delay. */
export const delayTickMs = 10;
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
  private readonly sampler: NodeJS.Timeout | undefined;

  /**
   * `observe` is told, every sample, the requests in flight and the delay (for gauges). The delay
   * is measured by a timer of our own every `delayTickMs`: each firing records how late it came
   * (a stall is recorded by the first firing after it, whatever else ran first), and the delay
   * is the worst of this sample and the one before, so a stall raises it at once and for at
   * least one full sample. (perf_hooks' histogram, reset each sample, lost a stall when the reset
   * ran before its own timer did: the forced test saw it.)
   */
  constructor(private readonly limits: AdmissionLimits, observe?: (inFlight: number, eventLoopDelayMs: number) => void) {
    const watching = limits.maxEventLoopDelayMs > 0;
    if (!watching && observe === undefined) return;
    let expected = performance.now() + delayTickMs;
    let sampleStart = performance.now();
    let previousMax = 0;
    let currentMax = 0;
    this.sampler = setInterval(() => {
      const now = performance.now();
      currentMax = Math.max(currentMax, now - expected);
      expected = now + delayTickMs;
      if (watching) this.delayMs = Math.max(previousMax, currentMax);
      if (now - sampleStart >= eventLoopSampleMs) {
        observe?.(this.served, this.delayMs);
        previousMax = currentMax;
        currentMax = 0;
        sampleStart = now;
      }
    }, delayTickMs);
    this.sampler.unref();
  }

  /** Requests admitted and not yet finished. */
  get inFlight(): number {
    return this.served;
  }

  /** The event loop's delay: the worst lateness of the delay timer in this sample and the last, ms. */
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
    // Never below zero: a release without an admission would raise the bound for good.
    if (this.served > 0) this.served -= 1;
  }

  close(): void {
    if (this.sampler !== undefined) clearInterval(this.sampler);
  }
}
