// Migrations are compiled with the rest of the code and handed to knex from this list, so the
// same files run from TypeScript (tests) and from dist/ (npm start) without a knex CLI.
import type { Knex } from 'knex';
import { createPostgres, ensureDatabase } from './connection';
import * as createLedger from '../../migrations/20261125000001_create_ledger';
import * as createReservations from '../../migrations/20261125000002_create_reservations';
import * as reconciliation from '../../migrations/20261125000003_reconciliation';
import * as ledgerPositions from '../../migrations/20261126000004_ledger_positions';
import * as operations from '../../migrations/20261127000005_operations';
import * as stripes from '../../migrations/20261128000006_stripes';
import * as customerLimits from '../../migrations/20261129000007_customer_limits';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const migrations: ReadonlyArray<readonly [string, Migration]> = [
  ['20261125000001_create_ledger', createLedger],
  ['20261125000002_create_reservations', createReservations],
  ['20261125000003_reconciliation', reconciliation],
  ['20261126000004_ledger_positions', ledgerPositions],
  ['20261127000005_operations', operations],
  ['20261128000006_stripes', stripes],
  ['20261129000007_customer_limits', customerLimits],
];

const source: Knex.MigrationSource<string> = {
  getMigrations: async () => migrations.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = migrations.find(([candidate]) => candidate === name);
    if (found === undefined) throw new Error(`unknown migration ${name}`);
    return found[1];
  },
};

export const migrationConfig: Knex.MigratorConfig = { migrationSource: source, tableName: 'knex_migrations' };

export async function migrateToLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest(migrationConfig)) as [number, string[]];
  return applied;
}

export const migrationStatementTimeoutMs = 60_000;

/** Creates the database in `url` if it is missing and migrates it, on a connection of its own. */
export async function prepareDatabaseAt(url: string, connectTimeoutMs = 5000): Promise<{ created: boolean; applied: string[] }> {
  const created = await ensureDatabase(url);
  const knex = createPostgres({ url, poolMax: 1, statementTimeoutMs: migrationStatementTimeoutMs, connectTimeoutMs });
  try {
    return { created, applied: await migrateToLatest(knex) };
  } finally {
    await knex.destroy();
  }
}
