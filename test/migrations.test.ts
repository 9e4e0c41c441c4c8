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

describe('migrations', () => {
  it('go up from empty, down, and up again', async () => {
    await dropScratch();
    expect(await ensureDatabase(scratchUrl)).toBe(true);
    expect(await ensureDatabase(scratchUrl)).toBe(false);
    const knex = createPostgres({ url: scratchUrl, poolMax: 1, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
    const tables = async () =>
      (await knex('information_schema.tables').select('table_name').where({ table_schema: 'public' }).orderBy('table_name')).map((row) => row.table_name);
    try {
      expect(await migrateToLatest(knex)).toEqual(['20261125000001_create_ledger', '20261125000002_create_reservations', '20261125000003_reconciliation']);
      expect(await tables()).toEqual(expect.arrayContaining(['ledger_entries', 'reservations', 'skus']));
      expect(await migrateToLatest(knex)).toEqual([]);

      await knex.migrate.rollback(migrationConfig, true);
      expect(await tables()).not.toContain('ledger_entries');
      expect(await tables()).not.toContain('skus');
      expect(await tables()).not.toContain('reservations');
      expect(await tables()).not.toContain('reconcile_runs');

      expect(await migrateToLatest(knex)).toEqual(['20261125000001_create_ledger', '20261125000002_create_reservations', '20261125000003_reconciliation']);
      await knex('skus').insert({ sku: 'M-1', on_hand: 1, version: 1 });
      await expect(knex('skus').insert({ sku: 'bad sku', on_hand: 1, version: 1 })).rejects.toThrow(/check constraint/);
    } finally {
      await knex.destroy();
    }
  });
});
