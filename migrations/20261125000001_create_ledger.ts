// The durable ledger: an append-only list of stock changes and, per SKU, a projection row with
// the current on-hand, updated in the same transaction as the entries. The same properties the
// Lua scripts assert before they write are asserted here as constraints.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE skus (
      sku text PRIMARY KEY CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$'),
      on_hand bigint NOT NULL CHECK (on_hand >= 0),
      version bigint NOT NULL CHECK (version >= 1),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE ledger_entries (
      id bigserial PRIMARY KEY,
      sku text NOT NULL REFERENCES skus (sku),
      kind text NOT NULL CHECK (kind IN ('adjustment', 'allocation', 'deallocation')),
      delta bigint NOT NULL CHECK (delta <> 0),
      on_hand_after bigint NOT NULL CHECK (on_hand_after >= 0),
      sku_version bigint NOT NULL CHECK (sku_version >= 1),
      reservation_id text,
      reason text CHECK (char_length(reason) <= 500),
      client_id text NOT NULL,
      idempotency_key text,
      request_fingerprint text,
      created_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((idempotency_key IS NULL) = (request_fingerprint IS NULL))
    );
    CREATE UNIQUE INDEX ledger_entries_idempotency ON ledger_entries (client_id, idempotency_key)
      WHERE idempotency_key IS NOT NULL;
    CREATE INDEX ledger_entries_sku ON ledger_entries (sku, id);

    -- Append-only: history is corrected by new entries, never rewritten.
    CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
    END;
    $$;
    CREATE TRIGGER ledger_entries_append_only
      BEFORE UPDATE OR DELETE ON ledger_entries
      FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
    CREATE TRIGGER ledger_entries_no_truncate
      BEFORE TRUNCATE ON ledger_entries
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE ledger_entries;
    DROP FUNCTION ledger_entries_append_only();
    DROP TABLE skus;
  `);
}
