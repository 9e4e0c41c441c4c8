// Operations: webhook delivery from the events outbox.
// - events.txid: the writing transaction's id (xid8). A dispatcher hands on events in (txid, id)
//   order and only those whose transaction is older than every transaction still running
//   (pg_snapshot_xmin), so an event that commits late is never skipped, whatever its id
//   (lib/webhooks/dispatcher.ts); the (txid, id) index keeps each poll an index range scan.
// - events.request_id: the API request that led to the event, so one reservation can be followed
//   from the HTTP request through the commit job to the webhook delivery in the logs.
// - webhook_cursors: per receiver URL, the last event id handed to the delivery queue.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                       ADD COLUMN request_id text CHECK (char_length(request_id) <= 128);
    CREATE INDEX events_txid_id ON events (txid, id);
    CREATE TABLE webhook_cursors (
      url text PRIMARY KEY CHECK (char_length(url) <= 2048),
      last_event_id bigint NOT NULL DEFAULT 0 CHECK (last_event_id >= 0),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE webhook_cursors;
    ALTER TABLE events DROP COLUMN request_id, DROP COLUMN txid;
  `);
}
