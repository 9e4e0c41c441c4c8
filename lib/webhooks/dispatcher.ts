// The webhook dispatcher: hands outbox events on to the delivery queue, one job per (event,
// receiver URL), after a per-URL cursor in `webhook_cursors`, and never skips an event.
//
// Why not simply "id > cursor": ids come from a sequence, and a transaction that took an id can
// commit after one that took a later id. Worse, the transaction id (xid) order and the event id
// order disagree too: the ledger writers take their xid when they lock their rows, first, and
// insert their event last. So this interleaving happens in production:
//   T_S locks its rows (gets xid 100)  ·  T_E locks its rows (xid 101)  ·  T_E inserts event 7
//   T_S inserts event 8 and commits     ·  a dispatcher polls           ·  T_E commits
// At the poll, event 8 is visible and its transaction is older than every running one (100 <
// xmin 101), yet event 7 is still invisible. A cursor on ids alone would hand on 8, move to 8, and
// never see 7. (docs/webhooks.md names this interleaving; test/webhooks.test.ts forces it.)
//
// So the stream is ordered by (txid, id), not by id:
// - only events whose transaction is older than every transaction still running are read
//   (txid < pg_snapshot_xmin(pg_current_snapshot())): those are final, committed and visible;
// - every event not yet visible has a txid >= that xmin (its transaction is running, or has no
//   xid yet and will get a newer one), so it sorts after everything handed on so far;
// - the cursor is the last event handed on; its position (txid, id) is read back from the events
//   table, which is append-only, so `last_event_id` alone is enough to store it.
// Within one transaction events keep their id order; across transactions delivery follows xids.
//
// Several dispatchers (one per worker process) may run: each URL's cursor row is locked FOR UPDATE
// SKIP LOCKED inside the dispatch transaction, so one dispatcher serves a URL at a time and the
// others skip it for that tick. Jobs are added before the cursor moves, inside the transaction: a
// crash in between re-adds them, and the deterministic job id makes that a no-op while BullMQ still
// knows the job (otherwise a duplicate delivery, which at-least-once allows).
import type { Knex } from 'knex';
import { webhookUrlLengthMax, type Config } from '../config';
import type { EventType, StockholdEvent } from '../events/outbox';
import { assert } from '../errors';
import type { WebhookJobSink } from './webhook-queue';
import { redactUrl, webhookJobOf, type WebhookJob } from './webhook-jobs';

/** The `webhook_cursors.url` CHECK: a longer URL cannot have a cursor (config refuses it). */
export { webhookUrlLengthMax };

export type UrlDispatch =
  /** Events handed on; the cursor is now `lastEventId`. */
  | { readonly kind: 'dispatched'; readonly target: string; readonly count: number; readonly lastEventId: number }
  /** Nothing new that is safe to hand on yet. */
  | { readonly kind: 'idle'; readonly target: string }
  /** Another dispatcher holds this URL's cursor (or the row is being created): skipped this tick. */
  | { readonly kind: 'busy'; readonly target: string }
  /** The delivery queue holds WEBHOOK_BACKLOG_MAX or more: nothing handed on until it drains. */
  | { readonly kind: 'backlogged'; readonly target: string; readonly backlog: number }
  /** This URL's dispatch failed (the others went on); tried again next tick. */
  | { readonly kind: 'failed'; readonly target: string; readonly error: unknown };

interface EventRow {
  id: string;
  type: EventType;
  occurred_at: Date;
  data: Record<string, unknown>;
  request_id: string | null;
}

export class WebhookDispatcher {
  private readonly urls: readonly string[];
  private readonly pageMax: number;
  private readonly backlogMax: number;
  private cursorsExist = false;

  constructor(
    private readonly knex: Knex,
    private readonly sink: WebhookJobSink,
    config: Pick<Config, 'webhookUrls' | 'webhookPageMax' | 'webhookBacklogMax'>,
  ) {
    for (const url of config.webhookUrls) assert(url.length <= webhookUrlLengthMax, `webhook URL ${redactUrl(url)} is longer than ${webhookUrlLengthMax} characters`);
    assert(config.webhookPageMax >= 1, 'webhookPageMax must be at least 1');
    this.urls = [...new Set(config.webhookUrls)];
    this.pageMax = config.webhookPageMax;
    this.backlogMax = config.webhookBacklogMax;
  }

  /** One tick: for each URL, at most `webhookPageMax` events handed on. */
  async dispatchOnce(): Promise<UrlDispatch[]> {
    if (this.urls.length === 0) return [];
    if (!this.cursorsExist) {
      // A new URL starts at the beginning of the outbox (cursor 0): it gets every event.
      await this.knex('webhook_cursors').insert(this.urls.map((url) => ({ url }))).onConflict('url').ignore();
      this.cursorsExist = true;
    }
    // A receiver that is down for hours must not fill the Redis that holds the stock: past the
    // bound, events stay in the outbox (Postgres) until the deliveries drain.
    const backlog = await this.sink.backlog();
    if (backlog >= this.backlogMax) return this.urls.map((url) => ({ kind: 'backlogged', target: redactUrl(url), backlog }));
    const results: UrlDispatch[] = [];
    // Each URL on its own: one receiver's trouble (a cursor an operator set by hand) stops no other.
    for (const url of this.urls) results.push(await this.dispatchUrl(url).catch((error: unknown) => ({ kind: 'failed', target: redactUrl(url), error }) as const));
    return results;
  }

  private async dispatchUrl(url: string): Promise<UrlDispatch> {
    const target = redactUrl(url);
    return this.knex.transaction(async (transaction) => {
      const cursor: { last_event_id: string } | undefined = await transaction('webhook_cursors').first('last_event_id').where({ url }).forUpdate().skipLocked();
      if (cursor === undefined) {
        // Locked by another dispatcher, or deleted by an operator (to replay from the start):
        // look again without locking, and re-create missing rows on the next tick.
        const exists = await transaction('webhook_cursors').first('url').where({ url });
        if (exists === undefined) this.cursorsExist = false;
        return { kind: 'busy', target };
      }
      const afterId = Number(cursor.last_event_id);
      const events = await this.safeEventsAfter(transaction, afterId);
      if (events.length === 0) return { kind: 'idle', target };
      const jobs: WebhookJob[] = events.map((row) => webhookJobOf(eventOf(row), url, row.request_id));
      await this.sink.addJobs(jobs);
      const lastEventId = Number(events[events.length - 1]!.id);
      await transaction('webhook_cursors').update({ last_event_id: lastEventId, updated_at: transaction.fn.now() }).where({ url });
      return { kind: 'dispatched', target, count: jobs.length, lastEventId };
    });
  }

  /** The next page in (txid, id) order, of events whose transactions are all finished. */
  private async safeEventsAfter(transaction: Knex.Transaction, afterId: number): Promise<EventRow[]> {
    let afterTxid = '0';
    if (afterId > 0) {
      // The events table is append-only, so the event a cursor points at is there, unless an
      // operator set the cursor by hand to an id the sequence skipped: then the nearest event
      // below it stands for the position.
      const cursorEvent: { txid: string } | undefined = await transaction('events')
        .first(transaction.raw('txid::text AS txid'))
        .where('id', '<=', afterId)
        .orderBy('id', 'desc');
      if (cursorEvent !== undefined) afterTxid = cursorEvent.txid;
    }
    // The horizon is computed in the same statement as the read, so both see one snapshot.
    const result = await transaction.raw<{ rows: EventRow[] }>(
      `WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
       SELECT e.id, e.type, e.occurred_at, e.data, e.request_id
         FROM events e, horizon h
        WHERE (e.txid, e.id) > (?::xid8, ?::bigint) AND e.txid < h.xmin
        ORDER BY e.txid, e.id
        LIMIT ?`,
      [afterTxid, afterId, this.pageMax],
    );
    assert(result.rows.length <= this.pageMax, 'a page larger than webhookPageMax');
    return result.rows;
  }
}

/** The same shape GET /v1/events lists (lib/events/outbox.ts listEvents). */
function eventOf(row: EventRow): StockholdEvent {
  return { id: Number(row.id), type: row.type, occurredAt: new Date(row.occurred_at).toISOString(), data: row.data };
}
