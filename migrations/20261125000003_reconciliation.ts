// Reconciliation: each SKU's projection records the id of its last ledger entry (a Redis state
// rebuilt from the ledger remembers it, so a commit finishing after the rebuild knows whether the
// rebuilt on-hand already counts it), and a log of reconciliation runs and their corrections.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE skus ADD COLUMN last_entry_id bigint NOT NULL DEFAULT 0 CHECK (last_entry_id >= 0);
    UPDATE skus SET last_entry_id = COALESCE((SELECT max(id) FROM ledger_entries WHERE ledger_entries.sku = skus.sku), 0);

    CREATE TABLE reconcile_runs (
      run_id uuid PRIMARY KEY,
      trigger text NOT NULL CHECK (trigger IN ('manual', 'scheduled', 'cli')),
      dry_run boolean NOT NULL,
      started_at timestamptz NOT NULL,
      finished_at timestamptz NOT NULL CHECK (finished_at >= started_at),
      holds_expired integer NOT NULL CHECK (holds_expired >= 0),
      commits_requeued integer NOT NULL CHECK (commits_requeued >= 0),
      skus_rebuilt integer NOT NULL CHECK (skus_rebuilt >= 0),
      drift_corrected integer NOT NULL CHECK (drift_corrected >= 0),
      report jsonb NOT NULL
    );
    CREATE INDEX reconcile_runs_newest ON reconcile_runs (started_at DESC);

    CREATE TABLE reconcile_corrections (
      id bigserial PRIMARY KEY,
      run_id uuid NOT NULL REFERENCES reconcile_runs (run_id),
      sku text NOT NULL,
      field text NOT NULL CHECK (field IN ('onHand', 'reserved', 'state')),
      before bigint,
      after bigint,
      action text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX reconcile_corrections_sku ON reconcile_corrections (sku, created_at);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE reconcile_corrections;
    DROP TABLE reconcile_runs;
    ALTER TABLE skus DROP COLUMN last_entry_id;
  `);
}
