// Drives one strategy with N concurrent clients inside this process. Two phases:
//  - throughput: stock that cannot run out, for the given duration; every attempt is timed;
//  - oversell: little stock and three times as much demand, then an independent count: units
//    granted (as the clients were told) minus units that existed, per SKU.
import type { Strategy, StockLine } from './strategies';

export const latencySamplesMax = 5_000_000;
export const throughputStockUnits = 1_000_000_000;
export const oversellDemandFactor = 3;

export interface Scenario {
  readonly hotSku: boolean;
  readonly skus: readonly string[];
  /** Units per SKU in the oversell phase. */
  readonly oversellUnitsPerSku: number;
}

export interface PhaseResult {
  readonly attempts: number;
  readonly throughputPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number;
}

const round = (value: number) => Math.round(value * 1000) / 1000;

export async function throughputPhase(strategy: Strategy, scenario: Scenario, concurrency: number, durationSec: number, onTick: (elapsedSec: number) => void): Promise<PhaseResult> {
  await strategy.setup(scenario.skus.map((sku) => ({ sku, units: throughputStockUnits })));
  const latencies = new Float64Array(latencySamplesMax);
  let recorded = 0;
  let attempts = 0;
  const started = performance.now();
  const deadline = started + durationSec * 1000;
  const ticker = setInterval(() => onTick((performance.now() - started) / 1000), 200);
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, client) => {
        let next = client;
        while (performance.now() < deadline) {
          const sku = scenario.skus[next % scenario.skus.length] as string;
          next += concurrency;
          const begun = performance.now();
          await strategy.attempt(sku, 1);
          const elapsed = performance.now() - begun;
          attempts += 1;
          if (recorded < latencySamplesMax) latencies[recorded++] = elapsed;
        }
      }),
    );
  } finally {
    clearInterval(ticker);
  }
  const wallSec = (performance.now() - started) / 1000;
  const sorted = latencies.subarray(0, recorded).sort();
  return { attempts, throughputPerSec: round(attempts / wallSec), p50Ms: round(percentile(sorted, 0.5)), p99Ms: round(percentile(sorted, 0.99)), maxMs: round(sorted[sorted.length - 1] ?? 0) };
}

/** Returns the units oversold: sum over SKUs of max(0, granted - existed). */
export async function oversellPhase(strategy: Strategy, scenario: Scenario, concurrency: number): Promise<number> {
  const stock: StockLine[] = scenario.skus.map((sku) => ({ sku, units: scenario.oversellUnitsPerSku }));
  await strategy.setup(stock);
  const demand = scenario.skus.length * scenario.oversellUnitsPerSku * oversellDemandFactor;
  const granted = new Map<string, number>();
  let issued = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < demand) {
        const sku = scenario.skus[issued % scenario.skus.length] as string;
        issued += 1;
        if (await strategy.attempt(sku, 1)) granted.set(sku, (granted.get(sku) ?? 0) + 1);
      }
    }),
  );
  let oversold = 0;
  for (const line of stock) oversold += Math.max(0, (granted.get(line.sku) ?? 0) - line.units);
  return oversold;
}
