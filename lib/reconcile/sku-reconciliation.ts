// Reconciles one page of SKUs: expired holds reclaimed, missing SKUs rebuilt, Redis brought to
// the ledger's position and compared with it there, reserved audited against the holds.
//
// On-hand. The page's projection rows are held FOR SHARE, so no stock change, commit or cancel
// of these SKUs can write the ledger (or stage a debit) meanwhile. Redis is first caught up to
// the ledger's position (the entries it has not applied yet: a worker between COMMIT and its
// Redis step, a lost reply), so the comparison is like with like: at the same position any
// difference is real drift, set to the ledger's, and a debit still pending was left by a
// transaction that ended without committing, so it is released. There is no arithmetic of
// commits or cancels in flight. A SKU that fails (Redis refuses, holds too many to rebuild) is
// counted and reported and the run goes on with the next.
import type { Knex } from 'knex';
import type { Metrics } from '../metrics/metrics';
import type { Config } from '../config';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { auditHolds } from '../scripts/audit-holds';
import { correctOnHand } from '../scripts/correct-on-hand';
import { inspectSku, type Inspection, type InspectSkuResult } from '../scripts/inspect-sku';
import { customerLimitOfRow, type LedgerProjection } from '../stock/ledger-projection';
import { writeCustomerLimit } from '../stock/sku-state';
import { publicSku } from '../stock/stripes';
import { withRedis } from '../redis/connection';
import type { RunTally } from './report';

export const correctionAttemptsMax = 3;
export const auditCallsPerSkuMax = 10_000;

interface LedgerRow {
  sku: string;
  on_hand: string;
  seq: string;
  per_customer_limit: number | null;
}

/** A confirmed (pinned) hold found on a SKU: its reservation, the SKU and its quantity. */
export interface StuckCandidate {
  readonly id: string;
  readonly sku: string;
  readonly quantity: number;
}

export class SkuReconciliation {
  constructor(
    private readonly knex: Knex,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly projection: LedgerProjection,
    private readonly config: Config,
    private readonly metrics: Metrics,
  ) {}

  /** Returns the confirmed reservations of the page, for the stuck-commit check. */
  async reconcilePage(skus: readonly string[], runId: string, dryRun: boolean, tally: RunTally): Promise<StuckCandidate[]> {
    const stuck = await this.knex.transaction(async (transaction) => {
      const ledger: LedgerRow[] = await transaction('skus').select('sku', 'on_hand', 'seq', customerLimitOfRow(transaction)).whereIn('sku', skus as string[]).orderBy('sku').forShare();
      const limits = await this.customerLimits(transaction, ledger);
      // Different SKUs touch different keys and rows: reconcile the page's SKUs side by side, their
      // Redis steps at once; their SQL takes turns on the transaction's one connection (pg queues
      // a query sent while another runs, which pg 8 warns is deprecated and pg 9 refuses).
      const turns = new Turns();
      const perSku = await Promise.all(
        ledger.map(async (row): Promise<StuckCandidate[]> => {
          try {
            // The cap of the statement after the lock: the page's own row may carry the cap of
            // before a change it waited for (customerLimits).
            const limit = limits.get(publicSku(row.sku)) ?? null;
            const inspection = await this.inspect(row.sku, dryRun, tally);
            if (inspection.kind === 'missing') {
              await this.rebuild({ ...row, per_customer_limit: limit }, dryRun, tally);
              return [];
            }
            await this.reconcileOnHand(transaction, turns, row, inspection, dryRun, tally);
            await this.reconcileCustomerLimit(row.sku, limit, dryRun, tally);
            if (inspection.confirmedTruncated) tally.confirmedTruncated += 1;
            return inspection.confirmed.map((hold) => ({ id: hold.id, sku: row.sku, quantity: hold.quantity }));
          } catch (error) {
            tally.fail(row.sku, error);
            return [];
          }
        }),
      );
      return perSku.flat();
    });
    // Audits of different SKUs touch different keys: run the page's audits side by side.
    await Promise.all(skus.map((sku) => this.auditReserved(sku, runId, dryRun, tally).catch((error) => tally.fail(sku, error))));
    return stuck;
  }

  private async inspect(sku: string, dryRun: boolean, tally: RunTally | undefined): Promise<InspectSkuResult> {
    const inspection = await inspectSku(this.scripts, this.keys, { sku, reclaimMax: this.config.reconcileReclaimPerSku, confirmedMax: this.config.reconcileConfirmedMax, dryRun });
    if (inspection.kind === 'found' && inspection.reclaimed.length > 0) this.metrics.holdsReclaimed(inspection.reclaimed);
    if (tally !== undefined && inspection.kind === 'found') {
      tally.skusChecked += 1;
      tally.holdsExpired += inspection.expiredHolds;
    }
    return inspection;
  }

  private async rebuild(row: LedgerRow, dryRun: boolean, tally: RunTally): Promise<void> {
    if (!dryRun && (await this.projection.initFrom(row)) === 'exists') return;
    tally.skusRebuilt += 1;
    tally.correct({ sku: row.sku, field: 'state', before: null, after: Number(row.on_hand) });
  }

  /** Catches Redis up to the ledger's position, then compares and corrects at that position. */
  private async reconcileOnHand(transaction: Knex.Transaction, turns: Turns, row: LedgerRow, first: Inspection, dryRun: boolean, tally: RunTally): Promise<void> {
    const ledger = { onHand: Number(row.on_hand), seq: Number(row.seq) };
    if (dryRun) return turns.run(() => this.reportDrift(transaction, row, first, tally));
    let pos = first.pos;
    for (let attempt = 1; attempt <= correctionAttemptsMax; attempt += 1) {
      // Reads the ledger through the transaction only when Redis is behind (rare): its turn then.
      if (pos < ledger.seq) await turns.run(() => this.projection.catchUp(row.sku, pos, ledger.seq, transaction));
      const result = await correctOnHand(this.scripts, this.keys, row.sku, ledger, false);
      if (result.kind === 'missing') return;
      if (result.kind === 'done') {
        if (result.onHandBefore !== ledger.onHand) tally.correct({ sku: row.sku, field: 'onHand', before: result.onHandBefore, after: ledger.onHand });
        if (result.debitReleased > 0) tally.debitsReleased += 1;
        return;
      }
      pos = result.pos;
    }
  }

  /**
   * The per-customer caps of the page's SKUs (their public SKUs: a stripe takes its SKU's), read in
   * one statement of their own after the page's FOR SHARE: the page's SELECT may have waited for
   * a change's lock and still read a SKU's cap as of before that change (its snapshot), and would
   * take the cap just set for drift (or rebuild a lost state with it). Under the FOR SHARE no
   * stock change of these rows can commit another cap meanwhile: a change of a striped SKU locks
   * every stripe row before its last cap write and its COMMIT, though it may write the cap already
   * committed into the stripes' states before it waits for them. (Stripe rows left from a SKU that
   * went back to one stripe are not locked by its changes: a page may write the SKU's earlier cap
   * into such a stripe's state, which holds no stock, until a re-striping rewrites it.)
   */
  private async customerLimits(transaction: Knex.Transaction, ledger: readonly LedgerRow[]): Promise<Map<string, number | null>> {
    const publicSkus = [...new Set(ledger.map((row) => publicSku(row.sku)))];
    if (publicSkus.length === 0) return new Map();
    const rows: Array<{ sku: string; per_customer_limit: number | null }> = await transaction('skus').select('sku', 'per_customer_limit').whereIn('sku', publicSkus);
    return new Map(rows.map((row) => [row.sku, row.per_customer_limit === null ? null : Number(row.per_customer_limit)]));
  }

  /**
   * The per-customer cap Redis enforces against the ledger's (`after`, from customerLimits): a
   * stock change writes it before its COMMIT, so a COMMIT that failed can leave a cap the ledger
   * does not have.
   */
  private async reconcileCustomerLimit(stripe: string, after: number | null, dryRun: boolean, tally: RunTally): Promise<void> {
    const stored = await withRedis(() => this.scripts.redis.hget(this.keys.skuState(stripe), 'pcl'));
    const before = stored === null ? null : Number(stored);
    if (before === after) return;
    if (!dryRun) await withRedis(() => writeCustomerLimit(this.scripts.redis, this.keys, stripe, after));
    tally.correct({ sku: stripe, field: 'perCustomerLimit', before, after });
  }

  /** A dry run changes nothing: Redis is compared with the ledger at Redis's own position. */
  private async reportDrift(transaction: Knex.Transaction, row: LedgerRow, inspection: Inspection, tally: RunTally): Promise<void> {
    let expected = Number(row.on_hand);
    if (inspection.pos < Number(row.seq)) {
      const entry = await transaction('ledger_entries').first('on_hand_after').where({ sku: row.sku, sku_seq: inspection.pos });
      expected = entry === undefined ? 0 : Number(entry.on_hand_after);
    }
    if (inspection.onHand !== expected) tally.correct({ sku: row.sku, field: 'onHand', before: inspection.onHand, after: expected });
  }

  private async auditReserved(sku: string, runId: string, dryRun: boolean, tally: RunTally): Promise<void> {
    const audit = { sku, auditId: runId, chunkMax: this.config.reconcileHoldsChunk, tieMax: this.config.reconcileTieMax, correct: !dryRun };
    let result = await auditHolds(this.scripts, this.keys, { ...audit, step: 'start' });
    for (let call = 1; result.kind === 'more' && call < auditCallsPerSkuMax; call += 1) {
      result = await auditHolds(this.scripts, this.keys, { ...audit, step: 'next' });
    }
    if (result.kind === 'finished' && result.drift !== 0) {
      tally.correct({ sku, field: 'reserved', before: result.reservedBefore, after: result.reservedBefore - result.drift });
    }
  }
}

/** Runs tasks one after another, in the order they were given (a failed one does not stop the next). */
class Turns {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
