// The Postgres side of commits and cancellations. A batch of commits is one transaction: the
// SKUs' projection rows are locked in SKU order (so concurrent batches cannot deadlock), the
// reservations the ledger already has are looked up under those locks (a second commit of the
// same reservation is a no-op, not a second allocation), the allocation entries go in as one multi-row insert,
// each taking its SKU's next ledger position, each SKU's projection is updated once, and one
// event per reservation goes to the outbox in the same transaction. The CHECKs (on-hand >= 0,
// one entry per reservation line and kind, one entry per SKU position) hold the same properties
// the Lua scripts assert.
//
// A reservation the ledger cannot allocate (Redis offered units the ledger does not have: Redis
// lost data, or a bug) is, when asked for (`rejectShort`), recorded as rejected instead: the
// compensation path, with a reservation.rejected event for whoever must tell the customer.
import type { Knex } from 'knex';
import { publicLines, publicSku } from '../stock/stripes';
import { appendEvents } from '../events/outbox';
import { assert } from '../errors';
import type { ProjectedEntry } from '../scripts/apply-entries';
import { entryColumns, projectedEntry } from '../stock/ledger-projection';
import type { CancelJob, CommitJob } from './commit-jobs';

export const rejectReason = 'insufficient_stock_in_ledger';
/**
 * A confirm that was never acknowledged (its WAIT fell short) whose pinned holds a Redis failover
 * took: the units may have been sold again, so nothing is allocated.
 */
export const holdsLostReason = 'holds_lost_in_failover';

export interface CommitOutcome {
  readonly ledger: 'committed' | 'already-committed' | 'rejected';
  /** The reservation's allocation entries (none when rejected). */
  readonly entries: readonly ProjectedEntry[];
}

export interface CancelOutcome {
  readonly ledger: 'cancelled' | 'already-cancelled' | 'stale';
  /** The reservation's deallocation entries (none when stale). */
  readonly entries: readonly ProjectedEntry[];
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
  seq: number;
}

async function lockProjections(transaction: Knex.Transaction, skus: readonly string[]): Promise<Map<string, Projection>> {
  const rows = await transaction('skus').select('sku', 'on_hand', 'version', 'seq').whereIn('sku', skus as string[]).orderBy('sku').forUpdate();
  return new Map(rows.map((row) => [row.sku as string, { onHand: Number(row.on_hand), version: Number(row.version), seq: Number(row.seq) }]));
}

type NewEntry = Record<string, unknown> & { sku: string };

/** The next entry of a SKU: its position and on-hand after, moving the projection along. */
function nextEntry(projections: Map<string, Projection>, sku: string, delta: number, fields: Record<string, unknown>): NewEntry {
  const projection = projections.get(sku);
  if (projection === undefined) throw new LedgerShortError(sku, delta);
  projection.onHand += delta;
  projection.seq += 1;
  if (projection.onHand < 0) throw new LedgerShortError(sku, projection.onHand);
  return { sku, delta, on_hand_after: projection.onHand, sku_version: projection.version, sku_seq: projection.seq, ...fields };
}

/** Inserts the entries and moves each touched SKU's projection to its new on-hand and position. */
async function appendEntries(transaction: Knex.Transaction, projections: Map<string, Projection>, entries: readonly NewEntry[]): Promise<ProjectedEntry[]> {
  if (entries.length === 0) return [];
  const rows = await transaction('ledger_entries').insert(entries).returning(['id', ...entryColumns]);
  const lastIds = new Map<string, number>();
  for (const row of rows) lastIds.set(row.sku, Math.max(lastIds.get(row.sku) ?? 0, Number(row.id)));
  const values = [...lastIds].map(([sku, lastId]) => [sku, projections.get(sku)!.onHand, projections.get(sku)!.seq, lastId]);
  await transaction.raw(
    `UPDATE skus SET on_hand = v.on_hand, seq = v.seq, last_entry_id = v.last_entry_id, updated_at = now()
       FROM (VALUES ${values.map(() => '(?::text, ?::bigint, ?::bigint, ?::bigint)').join(', ')}) AS v (sku, on_hand, seq, last_entry_id)
      WHERE skus.sku = v.sku`,
    values.flat(),
  );
  return rows.map(projectedEntry);
}

async function entriesOf(transaction: Knex.Transaction, reservationIds: readonly string[], kind: 'allocation' | 'deallocation'): Promise<ProjectedEntry[]> {
  if (reservationIds.length === 0) return [];
  return (await transaction('ledger_entries').select(...entryColumns).whereIn('reservation_id', [...reservationIds]).andWhere({ kind }).orderBy('id')).map(projectedEntry);
}

function reservationRow(job: CommitJob, status: 'committed' | 'rejected', reason: string = rejectReason) {
  return {
    id: job.reservationId,
    client_id: job.clientId,
    customer_id: job.customerId,
    lines: JSON.stringify(job.lines),
    status,
    fence: job.fence,
    created_at: new Date(job.createdAtMs),
    expires_at: new Date(job.expiresAtMs),
    confirmed_at: new Date(job.confirmedAtMs),
    ...(status === 'rejected' ? { committed_at: null, rejected_at: new Date(), reject_reason: reason } : {}),
  };
}

export class LedgerWriter {
  constructor(private readonly knex: Knex) {}

  /**
   * Commits every reservation of the batch in one transaction. With `rejectShort` (one job, after
   * its batch failed) a reservation the ledger cannot allocate is recorded as rejected.
   */
  async commitBatch(jobs: readonly CommitJob[], options: { rejectShort?: boolean } = {}): Promise<CommitOutcome[]> {
    assert(jobs.length >= 1, 'a batch has at least one commit');
    assert(new Set(jobs.map((job) => job.reservationId)).size === jobs.length, 'a batch holds each reservation once');
    assert(options.rejectShort !== true || jobs.length === 1, 'only a single commit is rejected');
    return this.knex.transaction(async (transaction) => {
      const skus = [...new Set(jobs.flatMap((job) => job.lines.map((line) => line.sku)))].sort();
      const projections = await lockProjections(transaction, skus);
      const earlier = new Map<string, string>(
        (await transaction('reservations').select('id', 'status').whereIn('id', jobs.map((job) => job.reservationId))).map((row: { id: string; status: string }) => [row.id, row.status]),
      );
      const fresh = jobs.filter((job) => !earlier.has(job.reservationId));
      let newEntries: NewEntry[];
      try {
        newEntries = fresh.flatMap((job) => job.lines.map((line) => nextEntry(projections, line.sku, -line.quantity, { kind: 'allocation', reservation_id: job.reservationId, client_id: job.clientId })));
      } catch (error) {
        if (!(error instanceof LedgerShortError) || options.rejectShort !== true || fresh.length === 0) throw error;
        return [await this.recordRejection(transaction, fresh[0]!, error)];
      }
      if (fresh.length > 0) await transaction('reservations').insert(fresh.map((job) => reservationRow(job, 'committed')));
      const inserted = await appendEntries(transaction, projections, newEntries);
      await appendEvents(transaction, fresh.map((job) => ({ type: 'reservation.committed' as const, requestId: job.requestId, data: { reservationId: job.reservationId, clientId: job.clientId, customerId: job.customerId, lines: publicLines(job.lines) } })));
      const allocatedBefore = [...earlier].filter(([, status]) => status !== 'rejected').map(([id]) => id);
      const before = await entriesOf(transaction, allocatedBefore, 'allocation');
      const all = [...inserted, ...before];
      return jobs.map((job): CommitOutcome => {
        const status = earlier.get(job.reservationId);
        if (status === 'rejected') return { ledger: 'rejected', entries: [] };
        return { ledger: status === undefined ? 'committed' : 'already-committed', entries: all.filter((entry) => entry.reservationId === job.reservationId) };
      });
    });
  }

  private async recordRejection(transaction: Knex.Transaction, job: CommitJob, short: LedgerShortError): Promise<CommitOutcome> {
    await transaction('reservations').insert(reservationRow(job, 'rejected'));
    await appendEvents(transaction, [{ type: 'reservation.rejected', requestId: job.requestId, data: { reservationId: job.reservationId, clientId: job.clientId, customerId: job.customerId, lines: publicLines(job.lines), reason: rejectReason, sku: publicSku(short.sku) } }]);
    return { ledger: 'rejected', entries: [] };
  }

  /** The ledger's decision on a reservation, if it has one. */
  async statusOf(reservationId: string): Promise<string | undefined> {
    const row = await this.knex('reservations').first('status').where({ id: reservationId });
    return row?.status as string | undefined;
  }

  /**
   * Records a confirmed reservation whose holds a Redis failover lost (holdsLostReason) as
   * rejected, allocating nothing; the ledger's earlier decision stands if it has one.
   */
  async rejectHoldsLost(job: CommitJob): Promise<CommitOutcome> {
    return this.knex.transaction(async (transaction) => {
      const earlier = await transaction('reservations').first('status').where({ id: job.reservationId }).forUpdate();
      if (earlier !== undefined) return { ledger: earlier.status === 'rejected' ? 'rejected' : 'already-committed', entries: earlier.status === 'rejected' ? [] : await entriesOf(transaction, [job.reservationId], 'allocation') };
      await transaction('reservations').insert(reservationRow(job, 'rejected', holdsLostReason));
      await appendEvents(transaction, [{ type: 'reservation.rejected', requestId: job.requestId, data: { reservationId: job.reservationId, clientId: job.clientId, customerId: job.customerId, lines: publicLines(job.lines), reason: holdsLostReason } }]);
      return { ledger: 'rejected', entries: [] };
    });
  }

  /** Returns a committed reservation's units to stock, once, if the job's fence is the newest. */
  async cancel(job: CancelJob): Promise<CancelOutcome> {
    return this.knex.transaction(async (transaction) => {
      const row = await transaction('reservations').first('status', 'fence').where({ id: job.reservationId }).forUpdate();
      assert(row !== undefined, `cancel job for ${job.reservationId}, which the ledger has not committed`);
      if (row.status === 'cancelled') return { ledger: 'already-cancelled', entries: await entriesOf(transaction, [job.reservationId], 'deallocation') };
      // The fencing check: a job from before a newer state must not write over it.
      if (Number(row.fence) >= job.fence || row.status !== 'committed') return { ledger: 'stale', entries: [] };
      const skus = [...new Set(job.lines.map((line) => line.sku))].sort();
      const projections = await lockProjections(transaction, skus);
      const entries = job.lines.map((line) => nextEntry(projections, line.sku, line.quantity, { kind: 'deallocation', reservation_id: job.reservationId, client_id: job.requestedBy }));
      const inserted = await appendEntries(transaction, projections, entries);
      await transaction('reservations').update({ status: 'cancelled', fence: job.fence, cancelled_at: transaction.fn.now() }).where({ id: job.reservationId });
      await appendEvents(transaction, [{ type: 'reservation.cancelled', requestId: job.requestId, data: { reservationId: job.reservationId, requestedBy: job.requestedBy, lines: publicLines(job.lines) } }]);
      return { ledger: 'cancelled', entries: inserted };
    });
  }
}
