// The ledger as an ordered log per SKU, so Redis can be an exact projection of it: every entry
// gets its SKU's next position (`sku_seq`, dense from 1), the projection row records the last
// position (`seq`), and Redis records the position it reflects. A decrease names the pending
// debit it absorbs in Redis (`debit_id`). Reservations the ledger refused end `rejected`, and an
// outbox of events is written in the same transaction as the change it reports.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE ledger_entries ADD COLUMN sku_seq bigint, ADD COLUMN debit_id text CHECK (char_length(debit_id) <= 64);
    ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only;
    UPDATE ledger_entries e SET sku_seq = n.seq
      FROM (SELECT id, row_number() OVER (PARTITION BY sku ORDER BY id) AS seq FROM ledger_entries) n
     WHERE e.id = n.id;
    ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only;
    ALTER TABLE ledger_entries ALTER COLUMN sku_seq SET NOT NULL, ADD CONSTRAINT ledger_entries_sku_seq_positive CHECK (sku_seq >= 1);
    CREATE UNIQUE INDEX ledger_entries_sku_seq ON ledger_entries (sku, sku_seq);

    ALTER TABLE skus ADD COLUMN seq bigint NOT NULL DEFAULT 0 CHECK (seq >= 0);
    UPDATE skus SET seq = COALESCE((SELECT max(sku_seq) FROM ledger_entries WHERE ledger_entries.sku = skus.sku), 0);

    ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
    ALTER TABLE reservations ADD CONSTRAINT reservations_status_check CHECK (status IN ('committed', 'cancelled', 'rejected'));
    ALTER TABLE reservations ALTER COLUMN committed_at DROP NOT NULL;
    ALTER TABLE reservations ADD COLUMN rejected_at timestamptz, ADD COLUMN reject_reason text;
    ALTER TABLE reservations ADD CONSTRAINT reservations_rejected_fields CHECK (
      (status = 'rejected') = (rejected_at IS NOT NULL) AND (status = 'rejected') = (reject_reason IS NOT NULL)
      AND (status = 'rejected' OR committed_at IS NOT NULL));

    CREATE TABLE events (
      id bigserial PRIMARY KEY,
      type text NOT NULL CHECK (type IN ('reservation.committed', 'reservation.cancelled', 'reservation.rejected', 'stock.adjusted')),
      occurred_at timestamptz NOT NULL DEFAULT now(),
      data jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object')
    );
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'events is append-only (% refused)', TG_OP;
    END;
    $$;
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION events_append_only();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE events;
    DROP FUNCTION events_append_only();
    ALTER TABLE reservations DROP CONSTRAINT reservations_rejected_fields;
    ALTER TABLE reservations DROP COLUMN rejected_at, DROP COLUMN reject_reason;
    DELETE FROM reservations WHERE status = 'rejected';
    ALTER TABLE reservations ALTER COLUMN committed_at SET NOT NULL;
    ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
    ALTER TABLE reservations ADD CONSTRAINT reservations_status_check CHECK (status IN ('committed', 'cancelled'));
    ALTER TABLE skus DROP COLUMN seq;
    DROP INDEX ledger_entries_sku_seq;
    ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_sku_seq_positive;
    ALTER TABLE ledger_entries DROP COLUMN sku_seq, DROP COLUMN debit_id;
  `);
}
