// The transactional outbox: an event is written in the same Postgres transaction as the ledger
// change it reports, so a consumer never sees an event for a change that did not commit, nor
// misses one that did. Ids increase monotonically; a consumer resumes after the last id it saw.
// (A bigserial id can become visible out of order when transactions commit out of order; a
// consumer that must never skip one re-reads a short window behind its last id.)
import type { Knex } from 'knex';

export type EventType = 'reservation.committed' | 'reservation.cancelled' | 'reservation.rejected' | 'stock.adjusted';

export interface StockholdEvent {
  readonly id: number;
  readonly type: EventType;
  readonly occurredAt: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export const eventsPageMax = 1000;
export const eventsPageDefault = 100;

/** An event to append; requestId is the API request behind it (kept for logs, not delivered). */
export interface NewEvent {
  readonly type: EventType;
  readonly data: Record<string, unknown>;
  readonly requestId?: string | undefined;
}

export async function appendEvents(transaction: Knex.Transaction, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  await transaction('events').insert(events.map((event) => ({ type: event.type, data: JSON.stringify(event.data), request_id: event.requestId ?? null })));
}

export async function listEvents(knex: Knex, afterId: number, limit: number): Promise<{ events: StockholdEvent[]; next: number }> {
  const rows: Array<{ id: string; type: EventType; occurred_at: Date; data: Record<string, unknown> }> = await knex('events')
    .select('id', 'type', 'occurred_at', 'data')
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(Math.min(limit, eventsPageMax));
  const events = rows.map((row) => ({ id: Number(row.id), type: row.type, occurredAt: new Date(row.occurred_at).toISOString(), data: row.data }));
  return { events, next: events.length === 0 ? afterId : events[events.length - 1]!.id };
}
