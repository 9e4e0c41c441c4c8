// Reading a SKU's hot state from Redis, and rebuilding it from the ledger when Redis does not
// have it (first use after Redis lost its data). The rebuild never overwrites: initSku only
// creates, so two rebuilds racing cannot both apply. A SKU the ledger does not have either is
// remembered as unknown for UNKNOWN_SKU_CACHE_MS, so a flood of requests for it answers 404
// from Redis instead of reaching Postgres; creating the SKU deletes the marker
// (stageStockChange), and the marker is only ever read when Redis has no state for the SKU.
import type { Knex } from 'knex';
import { errors } from '../errors';
import { withPostgres } from '../postgres/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';

export interface SkuView {
  readonly sku: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly available: number;
}

export function skuView(sku: string, onHand: number, reserved: number): SkuView {
  return { sku, onHand, reserved, available: Math.max(onHand - reserved, 0) };
}

export const rebuildAttemptsMax = 2;

export class SkuState {
  constructor(
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly knex: Knex,
    private readonly reclaimPerSkuMax: number,
    private readonly unknownSkuCacheMs: number,
  ) {}

  async read(sku: string): Promise<SkuView> {
    for (let attempt = 1; attempt <= rebuildAttemptsMax; attempt += 1) {
      const reply = await this.scripts.run('readSku', [this.keys.skuState(sku), this.keys.skuHolds(sku)], [this.reclaimPerSkuMax]);
      if (reply[0] === 1) return skuView(sku, Number(reply[1]), Number(reply[2]));
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
    const rows = await withPostgres(() =>
      this.knex('skus').select('sku', 'on_hand', 'version', 'last_entry_id').whereIn('sku', skus as string[]),
    );
    const found = new Map<string, { on_hand: string; version: string; last_entry_id: string }>(rows.map((row) => [row.sku, row]));
    for (const [sku, row] of found) {
      const reply = await this.scripts.run('initSku', [this.keys.skuState(sku), this.keys.skuHolds(sku)], [row.on_hand, row.version, row.last_entry_id]);
      if (reply[0] === -1) throw new Error(`Redis holds for ${sku} exist without its state: refusing to rebuild`);
    }
    const unknown = skus.filter((sku) => !found.has(sku));
    if (this.unknownSkuCacheMs > 0) {
      await Promise.all(unknown.map((sku) => this.scripts.redis.set(this.keys.skuUnknown(sku), '1', 'PX', this.unknownSkuCacheMs).catch(() => undefined)));
    }
    return unknown;
  }
}
