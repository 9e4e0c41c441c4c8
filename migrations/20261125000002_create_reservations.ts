// Committed reservations: the durable copy that answers reads long after Redis has forgotten a
// reservation, and the fence (per-reservation version from Redis) that every ledger write for a
// reservation checks. Allocation and deallocation entries name their reservation, and a unique
// index makes a second commit of the same reservation line impossible.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE reservations (
      id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{22}$'),
      client_id text NOT NULL,
      customer_id text,
      lines jsonb NOT NULL CHECK (jsonb_typeof(lines) = 'array' AND jsonb_array_length(lines) BETWEEN 1 AND 50),
      status text NOT NULL CHECK (status IN ('committed', 'cancelled')),
      fence bigint NOT NULL CHECK (fence >= 1),
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      confirmed_at timestamptz NOT NULL,
      committed_at timestamptz NOT NULL DEFAULT now(),
      cancelled_at timestamptz,
      CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
    );

    ALTER TABLE ledger_entries
      ADD CONSTRAINT ledger_entries_reservation_fk FOREIGN KEY (reservation_id) REFERENCES reservations (id),
      ADD CONSTRAINT ledger_entries_kind_reservation CHECK ((kind = 'adjustment') = (reservation_id IS NULL)),
      ADD CONSTRAINT ledger_entries_allocation_sign CHECK (kind <> 'allocation' OR delta < 0),
      ADD CONSTRAINT ledger_entries_deallocation_sign CHECK (kind <> 'deallocation' OR delta > 0);
    CREATE UNIQUE INDEX ledger_entries_reservation_line ON ledger_entries (reservation_id, sku, kind)
      WHERE reservation_id IS NOT NULL;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX ledger_entries_reservation_line;
    ALTER TABLE ledger_entries
      DROP CONSTRAINT ledger_entries_reservation_fk,
      DROP CONSTRAINT ledger_entries_kind_reservation,
      DROP CONSTRAINT ledger_entries_allocation_sign,
      DROP CONSTRAINT ledger_entries_deallocation_sign;
    DROP TABLE reservations;
  `);
}
