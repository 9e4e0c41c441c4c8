// Proves the migrations run up from an empty database, down to nothing, and up again, on a
// scratch database of their own.
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgres, dropDatabase, ensureDatabase } from '../lib/postgres/connection';
import { migrateToLatest, migrationConfig } from '../lib/postgres/migrations';
import { testDatabaseUrl } from './support/harness';

const scratch = new URL(testDatabaseUrl);
scratch.pathname = `/stockhold_test_migrations_${process.pid}`;
const scratchUrl = scratch.toString();

const dropScratch = () => dropDatabase(scratchUrl);

afterAll(dropScratch);

const all = ['20261125000001_create_ledger', '20261125000002_create_reservations', '20261125000003_reconciliation', '20261126000004_ledger_positions', '20261127000005_operations', '20261128000006_stripes', '20261129000007_customer_limits'];

describe('migrations', () => {
  it('go up from empty, down, and up again', async () => {
    await dropScratch();
    expect(await ensureDatabase(scratchUrl)).toBe(true);
    expect(await ensureDatabase(scratchUrl)).toBe(false);
    const knex = createPostgres({ url: scratchUrl, poolMax: 1, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
    const tables = async () =>
      (await knex('information_schema.tables').select('table_name').where({ table_schema: 'public' }).orderBy('table_name')).map((row) => row.table_name);
    try {
      expect(await migrateToLatest(knex)).toEqual(all);
      expect(await tables()).toEqual(expect.arrayContaining(['events', 'ledger_entries', 'reservations', 'skus']));
      expect(await migrateToLatest(knex)).toEqual([]);

      await knex.migrate.rollback(migrationConfig, true);
      expect(await tables()).not.toContain('ledger_entries');
      expect(await tables()).not.toContain('skus');
      expect(await tables()).not.toContain('reservations');
      expect(await tables()).not.toContain('reconcile_runs');
      expect(await tables()).not.toContain('events');
      expect(await tables()).not.toContain('webhook_cursors');

      // Up to the third, with entries written the old way; the fourth numbers them per SKU.
      for (let step = 0; step < 3; step += 1) await knex.migrate.up(migrationConfig);
      await knex('skus').insert([{ sku: 'OLD-A', on_hand: 5, version: 3 }, { sku: 'OLD-B', on_hand: 2, version: 2 }]);
      const entry = (sku: string, delta: number, onHandAfter: number) => ({ sku, kind: 'adjustment', delta, on_hand_after: onHandAfter, sku_version: 1, client_id: 'm' });
      await knex('ledger_entries').insert([entry('OLD-A', 4, 4), entry('OLD-B', 2, 2), entry('OLD-A', 1, 5)]);
      await knex.migrate.up(migrationConfig);
      // An event written before the fifth: it gets a transaction id (delivered by webhooks).
      await knex('events').insert({ type: 'stock.adjusted', data: JSON.stringify({ sku: 'OLD-A' }) });
      expect(await migrateToLatest(knex)).toEqual(['20261127000005_operations', '20261128000006_stripes', '20261129000007_customer_limits']);
      const [old] = await knex('events').select('txid', 'request_id');
      expect(old.txid).toMatch(/^\d+$/);
      expect(old.request_id).toBeNull();
      expect(await tables()).toContain('webhook_cursors');
      expect(await knex('ledger_entries').select('sku', 'sku_seq').orderBy('id')).toEqual([
        { sku: 'OLD-A', sku_seq: '1' },
        { sku: 'OLD-B', sku_seq: '1' },
        { sku: 'OLD-A', sku_seq: '2' },
      ]);
      expect(await knex('skus').select('sku', 'seq').orderBy('sku')).toEqual([{ sku: 'OLD-A', seq: '2' }, { sku: 'OLD-B', seq: '1' }]);
      await knex('skus').insert({ sku: 'M-1', on_hand: 1, version: 1 });
      await expect(knex('skus').insert({ sku: 'bad sku', on_hand: 1, version: 1 })).rejects.toThrow(/check constraint/);
      // The sixth: a stripe's name (`~t`, t 1..9999) is a SKU of the ledger; nothing else is; a SKU's
      // stripe tags number its stripes but one.
      expect((await knex('skus').first('stripes').where({ sku: 'M-1' }))?.stripes).toBe(1);
      await knex('skus').insert({ sku: 'M-1~1', on_hand: 0, version: 1 });
      for (const bad of ['M-1~0', 'M-1~', 'M-1~10000', 'M-1~1~2', '~1']) await expect(knex('skus').insert({ sku: bad, on_hand: 0, version: 1 })).rejects.toThrow(/check constraint/);
      await expect(knex('skus').update({ stripes: 65 }).where({ sku: 'M-1' })).rejects.toThrow(/check constraint/);
      await expect(knex('skus').update({ stripes: 3, stripe_tags: [1] }).where({ sku: 'M-1' })).rejects.toThrow(/check constraint/);
      await knex('skus').update({ stripes: 2, stripe_tags: [1] }).where({ sku: 'M-1' });
      // The seventh: a per-customer cap of 1-1000 units, or none; the reconciler may log its correction.
      expect((await knex('skus').first('per_customer_limit').where({ sku: 'M-1' }))?.per_customer_limit).toBeNull();
      for (const bad of [0, 1001]) await expect(knex('skus').update({ per_customer_limit: bad }).where({ sku: 'M-1' })).rejects.toThrow(/check constraint/);
      await knex('skus').update({ per_customer_limit: 1000 }).where({ sku: 'M-1' });
    } finally {
      await knex.destroy();
    }
  });
});
