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
import type { Config } from '../config';
import type { RedisKeys } from '../redis/keys';
import type { ScriptReply, ScriptRunner } from '../redis/scripts';
import { correctOnHand } from '../scripts/correct-on-hand';
import type { LedgerProjection } from '../stock/ledger-projection';
import type { RunTally } from './report';

export const correctionAttemptsMax = 3;
export const auditCallsPerSkuMax = 10_000;

export interface Inspection {
  readonly sku: string;
  readonly missing: boolean;
  readonly onHand: number;
  readonly reserved: number;
  readonly pos: number;
  readonly debit: number;
  readonly holdCount: number;
  /** Confirmed holds: reservation id and quantity. */
  readonly confirmed: ReadonlyArray<{ id: string; quantity: number }>;
  /** More confirmed holds than RECONCILE_CONFIRMED_MAX: the rest wait for the next run. */
  readonly confirmedTruncated: boolean;
}

interface LedgerRow {
  sku: string;
  on_hand: string;
  seq: string;
}

export interface StuckCandidate {
  readonly id: string;
}

function parseInspection(sku: string, reply: ScriptReply): Inspection {
  if (reply[0] === -1) return { sku, missing: true, onHand: 0, reserved: 0, pos: 0, debit: 0, holdCount: Number(reply[1]), confirmed: [], confirmedTruncated: false };
  const confirmed = reply.slice(9).map((member) => {
    const text = String(member);
    const separator = text.lastIndexOf(':');
    return { id: text.slice(0, separator), quantity: Number(text.slice(separator + 1)) };
  });
  return {
    sku,
    missing: false,
    onHand: Number(reply[1]),
    reserved: Number(reply[2]),
    pos: Number(reply[3]),
    debit: Number(reply[4]),
    holdCount: Number(reply[7]),
    confirmed,
    confirmedTruncated: reply[8] === 1,
  };
}

export class SkuReconciliation {
  constructor(
    private readonly knex: Knex,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly projection: LedgerProjection,
    private readonly config: Config,
  ) {}

  /** Returns the confirmed reservations of the page, for the stuck-commit check. */
  async reconcilePage(skus: readonly string[], runId: string, dryRun: boolean, tally: RunTally): Promise<StuckCandidate[]> {
    const stuck = await this.knex.transaction(async (transaction) => {
      const ledger: LedgerRow[] = await transaction('skus').select('sku', 'on_hand', 'seq').whereIn('sku', skus as string[]).orderBy('sku').forShare();
      // Different SKUs touch different keys and rows: reconcile the page's SKUs side by side.
      const perSku = await Promise.all(
        ledger.map(async (row): Promise<StuckCandidate[]> => {
          try {
            const inspection = await this.inspect(row.sku, dryRun, tally);
            if (inspection.missing) await this.rebuild(row, dryRun, tally);
            else await this.reconcileOnHand(transaction, row, inspection, dryRun, tally);
            if (inspection.confirmedTruncated) tally.confirmedTruncated += 1;
            return inspection.confirmed.map((hold) => ({ id: hold.id }));
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

  private async inspect(sku: string, dryRun: boolean, tally: RunTally | undefined): Promise<Inspection> {
    const reply = await this.scripts.run(
      'inspectSku',
      [this.keys.skuState(sku), this.keys.skuHolds(sku)],
      [this.config.reconcileReclaimPerSku, this.config.reconcileConfirmedMax, dryRun ? '1' : '0'],
    );
    if (tally !== undefined && reply[0] === 1) {
      tally.skusChecked += 1;
      tally.holdsExpired += Number(reply[5]);
    }
    return parseInspection(sku, reply);
  }

  private async rebuild(row: LedgerRow, dryRun: boolean, tally: RunTally): Promise<void> {
    if (!dryRun && (await this.projection.initFrom(row)) === 'exists') return;
    tally.skusRebuilt += 1;
    tally.correct({ sku: row.sku, field: 'state', before: null, after: Number(row.on_hand) });
  }

  /** Catches Redis up to the ledger's position, then compares and corrects at that position. */
  private async reconcileOnHand(transaction: Knex.Transaction, row: LedgerRow, first: Inspection, dryRun: boolean, tally: RunTally): Promise<void> {
    const ledger = { onHand: Number(row.on_hand), seq: Number(row.seq) };
    if (dryRun) return this.reportDrift(transaction, row, first, tally);
    let inspection = first;
    for (let attempt = 1; attempt <= correctionAttemptsMax; attempt += 1) {
      await this.projection.catchUp(row.sku, inspection.pos, ledger.seq, transaction);
      const result = await correctOnHand(this.scripts, this.keys, row.sku, ledger, false);
      if (result.kind === 'missing') return;
      if (result.kind === 'done') {
        if (result.onHandBefore !== ledger.onHand) tally.correct({ sku: row.sku, field: 'onHand', before: result.onHandBefore, after: ledger.onHand });
        if (result.debitReleased > 0) tally.debitsReleased += 1;
        return;
      }
      inspection = await this.inspect(row.sku, true, undefined);
    }
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
    const keys = [this.keys.skuState(sku), this.keys.skuHolds(sku)];
    const chunk = [this.config.reconcileHoldsChunk, this.config.reconcileTieMax, dryRun ? '0' : '1'];
    let reply = await this.scripts.run('auditHolds', keys, [runId, 'start', ...chunk]);
    for (let call = 1; reply[0] === 1 && call < auditCallsPerSkuMax; call += 1) {
      reply = await this.scripts.run('auditHolds', keys, [runId, 'next', ...chunk]);
    }
    if (reply[0] === 2 && Number(reply[2]) !== 0) {
      const before = Number(reply[1]);
      tally.correct({ sku, field: 'reserved', before, after: before - Number(reply[2]) });
    }
  }
}
