// The Postgres side of commits and cancellations. A batch of commits is one transaction: the
// SKUs' projection rows are locked in SKU order (so concurrent batches cannot deadlock), the
// reservations are inserted with ON CONFLICT DO NOTHING (a second commit of the same reservation
// is a no-op, not a second allocation), the allocation entries go in as one multi-row insert and
// each SKU's projection is updated once. The CHECKs (on-hand >= 0, one entry per reservation line
// and kind) hold the same properties the Lua scripts assert.
import type { Knex } from 'knex';
import { assert } from '../errors';
import type { CancelJob, CommitJob } from './commit-jobs';

export interface CommitOutcome {
  readonly ledger: 'committed' | 'already-committed';
  /** The id of each line's allocation entry, by SKU. */
  readonly entryIds: ReadonlyMap<string, number>;
}

export interface CancelOutcome {
  readonly ledger: 'cancelled' | 'already-cancelled' | 'stale';
  /** The id of each line's deallocation entry, by SKU (empty when stale). */
  readonly entryIds: ReadonlyMap<string, number>;
}

export class LedgerShortError extends Error {
  constructor(readonly sku: string, readonly onHandAfter: number) {
    super(`committing would take ${sku} to ${onHandAfter} in the ledger: Redis offered units the ledger does not have`);
    this.name = 'LedgerShortError';
  }
}

interface Projection {
  onHand: number;
  version: number;
  lastEntryId: number;
}

interface EntryRow {
  id: string;
  sku: string;
  reservation_id: string;
}

async function lockProjections(transaction: Knex.Transaction, skus: readonly string[]): Promise<Map<string, Projection>> {
  const rows = await transaction('skus').select('sku', 'on_hand', 'version', 'last_entry_id').whereIn('sku', skus as string[]).orderBy('sku').forUpdate();
  return new Map(rows.map((row) => [row.sku as string, { onHand: Number(row.on_hand), version: Number(row.version), lastEntryId: Number(row.last_entry_id) }]));
}

/** Inserts the entries and records, per SKU, the new on-hand and the id of its last entry. */
async function appendEntries(transaction: Knex.Transaction, projections: Map<string, Projection>, entries: ReadonlyArray<Record<string, unknown>>): Promise<EntryRow[]> {
  if (entries.length === 0) return [];
  const rows: EntryRow[] = await transaction('ledger_entries').insert(entries).returning(['id', 'sku', 'reservation_id']);
  for (const row of rows) {
    const projection = projections.get(row.sku)!;
    projection.lastEntryId = Math.max(projection.lastEntryId, Number(row.id));
  }
  const touched = [...new Set(rows.map((row) => row.sku))];
  const values = touched.map((sku) => [sku, projections.get(sku)!.onHand, projections.get(sku)!.lastEntryId]);
  await transaction.raw(
    `UPDATE skus SET on_hand = v.on_hand, last_entry_id = v.last_entry_id, updated_at = now()
       FROM (VALUES ${values.map(() => '(?::text, ?::bigint, ?::bigint)').join(', ')}) AS v (sku, on_hand, last_entry_id)
      WHERE skus.sku = v.sku`,
    values.flat(),
  );
  return rows;
}

function entryIdsOf(rows: readonly EntryRow[], reservationId: string): Map<string, number> {
  return new Map(rows.filter((row) => row.reservation_id === reservationId).map((row) => [row.sku, Number(row.id)]));
}

export class LedgerWriter {
  constructor(private readonly knex: Knex) {}

  /** Commits every reservation of the batch in one transaction. */
  async commitBatch(jobs: readonly CommitJob[]): Promise<CommitOutcome[]> {
    assert(jobs.length >= 1, 'a batch has at least one commit');
    assert(new Set(jobs.map((job) => job.reservationId)).size === jobs.length, 'a batch holds each reservation once');
    return this.knex.transaction(async (transaction) => {
      const skus = [...new Set(jobs.flatMap((job) => job.lines.map((line) => line.sku)))].sort();
      const projections = await lockProjections(transaction, skus);
      const inserted = await transaction('reservations')
        .insert(
          jobs.map((job) => ({
            id: job.reservationId,
            client_id: job.clientId,
            customer_id: job.customerId,
            lines: JSON.stringify(job.lines),
            status: 'committed',
            fence: job.fence,
            created_at: new Date(job.createdAtMs),
            expires_at: new Date(job.expiresAtMs),
            confirmed_at: new Date(job.confirmedAtMs),
          })),
        )
        .onConflict('id')
        .ignore()
        .returning('id');
      const fresh = new Set(inserted.map((row: { id: string }) => row.id));
      const entries: Array<Record<string, unknown>> = [];
      for (const job of jobs) {
        if (!fresh.has(job.reservationId)) continue;
        for (const line of job.lines) {
          const projection = projections.get(line.sku);
          if (projection === undefined) throw new LedgerShortError(line.sku, -line.quantity);
          projection.onHand -= line.quantity;
          if (projection.onHand < 0) throw new LedgerShortError(line.sku, projection.onHand);
          entries.push({
            sku: line.sku,
            kind: 'allocation',
            delta: -line.quantity,
            on_hand_after: projection.onHand,
            sku_version: projection.version,
            reservation_id: job.reservationId,
            client_id: job.clientId,
          });
        }
      }
      const rows = await appendEntries(transaction, projections, entries);
      const earlier = jobs.filter((job) => !fresh.has(job.reservationId)).map((job) => job.reservationId);
      if (earlier.length > 0) {
        rows.push(...(await transaction('ledger_entries').select('id', 'sku', 'reservation_id').whereIn('reservation_id', earlier).andWhere({ kind: 'allocation' })));
      }
      return jobs.map((job) => ({ ledger: fresh.has(job.reservationId) ? 'committed' : 'already-committed', entryIds: entryIdsOf(rows, job.reservationId) }));
    });
  }

  /** Returns a committed reservation's units to stock, once, if the job's fence is the newest. */
  async cancel(job: CancelJob): Promise<CancelOutcome> {
    return this.knex.transaction(async (transaction) => {
      const row = await transaction('reservations').first('status', 'fence').where({ id: job.reservationId }).forUpdate();
      assert(row !== undefined, `cancel job for ${job.reservationId}, which the ledger has not committed`);
      if (row.status === 'cancelled') {
        const rows = await transaction('ledger_entries').select('id', 'sku', 'reservation_id').where({ reservation_id: job.reservationId, kind: 'deallocation' });
        return { ledger: 'already-cancelled', entryIds: entryIdsOf(rows, job.reservationId) };
      }
      // The fencing check: a job from before a newer state must not write over it.
      if (Number(row.fence) >= job.fence) return { ledger: 'stale', entryIds: new Map() };
      const skus = [...new Set(job.lines.map((line) => line.sku))].sort();
      const projections = await lockProjections(transaction, skus);
      const entries = job.lines.map((line) => {
        const projection = projections.get(line.sku);
        assert(projection !== undefined, `committed reservation names unknown SKU ${line.sku}`);
        projection.onHand += line.quantity;
        return {
          sku: line.sku,
          kind: 'deallocation',
          delta: line.quantity,
          on_hand_after: projection.onHand,
          sku_version: projection.version,
          reservation_id: job.reservationId,
          client_id: job.requestedBy,
        };
      });
      const rows = await appendEntries(transaction, projections, entries);
      await transaction('reservations').update({ status: 'cancelled', fence: job.fence, cancelled_at: transaction.fn.now() }).where({ id: job.reservationId });
      return { ledger: 'cancelled', entryIds: entryIdsOf(rows, job.reservationId) };
    });
  }
}
