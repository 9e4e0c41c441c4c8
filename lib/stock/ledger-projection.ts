// Redis's on-hand as an ordered projection of the ledger: the one mechanism by which on-hand
// moves in Redis. Every caller (the API after a stock change, the worker after a commit or
// cancel, a stock change or the reconciler catching up, a read-through rebuild) hands entries to
// applyEntries, which applies each exactly once, in the SKU's ledger order. A gap (Redis missed
// an entry: a crash between COMMIT and the Redis step, a lost reply) is filled from the ledger
// first; a SKU state Redis lost is rebuilt from the ledger row read FOR SHARE, so no ledger
// write for the SKU can land between the read and the rebuild.
import type { Knex } from 'knex';
import { assert, errors } from '../errors';
import { withPostgres } from '../postgres/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { applyEntries, entriesPerCallMax, type ApplyEntriesResult, type ProjectedEntry } from '../scripts/apply-entries';
import { initSku } from '../scripts/init-sku';

/** Script calls one apply or catch-up makes, at most (each applies up to entriesPerCallMax). */
export const applyRoundsMax = 64;

export interface ProjectionLimits {
  readonly holdsRebuildMax: number;
}

export type Applied = Extract<ApplyEntriesResult, { kind: 'applied' }>;

interface EntryRow {
  sku: string;
  sku_seq: string;
  delta: string;
  on_hand_after: string;
  kind: ProjectedEntry['kind'];
  reservation_id: string | null;
  debit_id: string | null;
}

export const entryColumns = ['sku', 'sku_seq', 'delta', 'on_hand_after', 'kind', 'reservation_id', 'debit_id'] as const;

export function projectedEntry(row: EntryRow): ProjectedEntry {
  return {
    sku: row.sku,
    seq: Number(row.sku_seq),
    delta: Number(row.delta),
    onHandAfter: Number(row.on_hand_after),
    kind: row.kind,
    reservationId: row.reservation_id,
    debitId: row.debit_id,
  };
}

/** A SKU's entries after position `afterSeq`, up to `uptoSeq` when given, in order, bounded. */
export async function readEntries(reader: Knex | Knex.Transaction, sku: string, afterSeq: number, uptoSeq?: number): Promise<ProjectedEntry[]> {
  const query = reader('ledger_entries').select(...entryColumns).where({ sku }).andWhere('sku_seq', '>', afterSeq).orderBy('sku_seq').limit(entriesPerCallMax);
  if (uptoSeq !== undefined) query.andWhere('sku_seq', '<=', uptoSeq);
  return (await query).map(projectedEntry);
}

export class LedgerProjection {
  constructor(
    private readonly knex: Knex,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly limits: ProjectionLimits,
  ) {}

  /**
   * Applies `entries` (one SKU's, ascending), filling any gap before them from the ledger (read
   * through `reader`: the caller's transaction when it holds the row). Returns the state after.
   */
  async apply(sku: string, entries: readonly ProjectedEntry[], reader: Knex | Knex.Transaction = this.knex): Promise<Applied> {
    assert(entries.length >= 1, 'something to apply');
    const target = entries[entries.length - 1]!.seq;
    let pending: readonly ProjectedEntry[] = entries.slice(-entriesPerCallMax);
    for (let round = 0; round < applyRoundsMax; round += 1) {
      const result = await applyEntries(this.scripts, this.keys, sku, pending);
      if (result.kind === 'applied' && result.pos >= target) return result;
      if (result.kind === 'missing') {
        await this.rebuildThrough(reader, sku);
        continue;
      }
      // A gap (or a chunk applied short of the target): read the next entries from the ledger.
      const from = result.pos;
      pending = await withPostgres(() => readEntries(reader, sku, from, target));
      if (pending.length === 0) throw new Error(`ledger has no entries of ${sku} after ${from} up to ${target}`);
    }
    throw new Error(`applying ${sku} up to position ${target} took more than ${applyRoundsMax} rounds`);
  }

  /** Brings Redis up to the ledger's position `uptoSeq` for the SKU (no-op when it is there). */
  async catchUp(sku: string, fromSeq: number, uptoSeq: number, reader: Knex | Knex.Transaction): Promise<void> {
    if (uptoSeq <= fromSeq) return;
    const entries = await withPostgres(() => readEntries(reader, sku, fromSeq, uptoSeq));
    if (entries.length === 0) return;
    await this.apply(sku, entries, reader);
  }

  /**
   * Creates Redis state from the ledger for the SKUs Redis lacks, reading their rows FOR SHARE
   * (in SKU order, as every writer locks them) so that no stock change, commit or cancel of
   * theirs lands in between. Returns the SKUs the ledger does not have.
   */
  async rebuild(skus: readonly string[]): Promise<string[]> {
    const rows: Array<{ sku: string; on_hand: string; seq: string }> = await withPostgres(() =>
      this.knex.transaction(async (transaction) => {
        const locked = await transaction('skus').select('sku', 'on_hand', 'seq', customerLimitOfRow(transaction)).whereIn('sku', [...skus]).orderBy('sku').forShare();
        for (const row of locked) await this.initFrom(row);
        return locked;
      }),
    );
    const found = new Set(rows.map((row) => row.sku));
    return skus.filter((sku) => !found.has(sku));
  }

  /**
   * Rebuilds a SKU Redis lost in the middle of an apply: through the caller's transaction when
   * there is one (it already holds the row: a second transaction asking FOR SHARE would wait on
   * it), else under a FOR SHARE of its own.
   */
  private async rebuildThrough(reader: Knex | Knex.Transaction, sku: string): Promise<void> {
    if (reader === this.knex) {
      await this.rebuild([sku]);
      return;
    }
    const row = await withPostgres(() => reader('skus').first('sku', 'on_hand', 'seq', customerLimitOfRow(reader)).where({ sku }));
    assert(row !== undefined, `entries of ${sku} but no projection row`);
    await this.initFrom(row);
  }

  /** Rebuilds one SKU from a row the caller read under a lock that keeps it still. */
  async initFrom(row: { sku: string; on_hand: string | number; seq: string | number; per_customer_limit?: number | null }): Promise<'created' | 'exists'> {
    const ledger = { onHand: Number(row.on_hand), seq: Number(row.seq), perCustomerLimit: row.per_customer_limit ?? null };
    const result = await initSku(this.scripts, this.keys, row.sku, ledger, this.limits.holdsRebuildMax);
    // Redis lost part of the SKU and kept more holds than one rebuild sums: the SKU cannot be
    // served until they expire or an operator raises HOLDS_REBUILD_MAX. Fail closed, as a 503.
    if (result.kind === 'too-many-holds') throw errors.backendUnavailable('redis', new Error(`${result.holdCount} holds of ${row.sku} outlived its state: more than ${this.limits.holdsRebuildMax} to rebuild it`));
    return result.kind;
  }
}

/** The per-customer cap a row's Redis state carries: its SKU's (a stripe `X~t` has X's). */
export function customerLimitOfRow(knex: Knex | Knex.Transaction): Knex.Raw {
  return knex.raw("(SELECT p.per_customer_limit FROM skus p WHERE p.sku = split_part(skus.sku, '~', 1)) AS per_customer_limit");
}
