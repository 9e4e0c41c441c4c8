// Reading a SKU's hot state from Redis, and rebuilding it from the ledger when Redis does not
// have it (first use after Redis lost its data). The rebuild reads the ledger row FOR SHARE and
// never overwrites (see ledger-projection.ts), so two rebuilds racing cannot both apply and no
// commit can land between the read and the rebuild. A SKU the ledger does not have either is
// remembered as unknown for UNKNOWN_SKU_CACHE_MS, so a flood of requests for it answers 404
// from Redis instead of reaching Postgres; creating the SKU deletes the marker
// (prepareStockChange), and the marker is only ever read when Redis has no state for the SKU.
import { errors } from '../errors';
import type { Metrics } from '../metrics/metrics';
import type { RedisClient } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { readSku } from '../scripts/read-sku';
import type { LedgerProjection } from './ledger-projection';

export interface SkuView {
  readonly sku: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly available: number;
  /** A striped SKU's stripe count (lib/stock/stripes.ts); absent when it has one. */
  readonly stripes?: number;
  /** Units one customer may hold across live reservations (lua/includes/guards.lua); absent: no cap. */
  readonly perCustomerLimit?: number;
}

export function skuView(sku: string, onHand: number, reserved: number): SkuView {
  return { sku, onHand, reserved, available: Math.max(onHand - reserved, 0) };
}

export const rebuildAttemptsMax = 2;

export class SkuState {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly projection: LedgerProjection,
    private readonly reclaimPerSkuMax: number,
    private readonly unknownSkuCacheMs: number,
    private readonly metrics: Metrics,
  ) {}

  async read(sku: string): Promise<SkuView> {
    for (let attempt = 1; attempt <= rebuildAttemptsMax; attempt += 1) {
      const state = await readSku(this.scripts, this.keys, sku, this.reclaimPerSkuMax);
      if (state.kind === 'found') {
        if (state.reclaimed.length > 0) this.metrics.holdsReclaimed(state.reclaimed);
        return skuView(sku, state.onHand, state.reserved);
      }
      const unknown = await this.rebuild([sku]);
      if (unknown.length > 0) throw errors.skuNotFound(unknown);
    }
    throw errors.skuNotFound([sku]);
  }

  /**
   * Creates Redis state from the ledger for SKUs Redis lacks. Returns the SKUs the ledger does
   * not know either. Needs Postgres: with it down, this fails closed (503).
   */
  async rebuild(skus: readonly string[]): Promise<string[]> {
    const marked = await Promise.all(skus.map((sku) => this.scripts.redis.exists(this.keys.skuUnknown(sku)).catch(() => 0)));
    if (marked.every((exists) => exists === 1)) return [...skus];
    const unknown = await this.projection.rebuild(skus);
    if (this.unknownSkuCacheMs > 0) {
      await Promise.all(unknown.map((sku) => this.scripts.redis.set(this.keys.skuUnknown(sku), '1', 'PX', this.unknownSkuCacheMs).catch(() => undefined)));
    }
    return unknown;
  }
}

/**
 * A stripe's per-customer cap (field `pcl` of its state, lua/includes/guards.lua), or its absence.
 * A state rebuilt later keeps it (rebuildState writes its own fields, deletes none of these).
 */
export async function writeCustomerLimit(redis: RedisClient, keys: RedisKeys, stripe: string, limit: number | null): Promise<void> {
  if (limit === null) await redis.hdel(keys.skuState(stripe), 'pcl');
  else await redis.hset(keys.skuState(stripe), 'pcl', limit);
}
