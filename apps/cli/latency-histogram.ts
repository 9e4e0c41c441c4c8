// Latency percentiles in bounded memory: logarithmic buckets 1 % wide, so a run of any length
// keeps the same few thousand counters and every percentile is within 1 % of the true value
// (reported as its bucket's upper edge, never above the largest latency seen).

/** Bucket i holds latencies up to lowestMs * growth^i. */
const lowestMs = 0.01;
const growth = 1.01;
/** 0.01 ms * 1.01^2000 is about 4.4e6 ms: far past any request timeout. */
export const latencyBucketCount = 2000;

export interface LatencySummary {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export class LatencyHistogram {
  private readonly buckets = new Float64Array(latencyBucketCount);
  private recorded = 0;
  private largestMs = 0;

  get count(): number {
    return this.recorded;
  }

  record(ms: number): void {
    const value = Math.max(ms, lowestMs);
    const index = Math.min(latencyBucketCount - 1, Math.max(0, Math.ceil(Math.log(value / lowestMs) / Math.log(growth))));
    this.buckets[index] = (this.buckets[index] ?? 0) + 1;
    this.recorded += 1;
    if (ms > this.largestMs) this.largestMs = ms;
  }

  /** The latency at quantile q (0 < q <= 1), or null before anything was recorded. */
  quantile(q: number): number | null {
    if (this.recorded === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.recorded));
    let seen = 0;
    for (let index = 0; index < latencyBucketCount; index += 1) {
      seen += this.buckets[index] ?? 0;
      if (seen >= rank) return Math.min(lowestMs * growth ** index, this.largestMs);
    }
    return this.largestMs;
  }

  summary(): LatencySummary {
    const round = (value: number | null) => (value === null ? null : Math.round(value * 100) / 100);
    return {
      count: this.recorded,
      p50: round(this.quantile(0.5)),
      p90: round(this.quantile(0.9)),
      p99: round(this.quantile(0.99)),
      max: this.recorded === 0 ? null : round(this.largestMs),
    };
  }
}
