// Reconciles one page of SKUs: expired holds reclaimed, missing SKUs rebuilt, on-hand compared
// with the ledger and corrected, reserved audited against the holds.
//
// On-hand. The comparison runs while the page's projection rows are held FOR SHARE, so no
// ledger write (stock change, commit, cancel) for these SKUs can land meanwhile. What Redis
// should show is the ledger's on-hand, plus the units of commits in flight (in the ledger, Redis
// not told yet: their confirmed hold is still in Redis and their reservation is committed in
// Postgres), minus the units of cancels in flight (deallocated in the ledger, Redis record still
// waiting for applyCancel). Those are counted from the ledger's side, once each. A Redis step
// that finishes while we look bumps `ov`, and correctOnHand's compare-and-set on `ov` refuses;
// we look again, a bounded number of times. Reservations never bump `ov`, so traffic cannot
// starve the correction.
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { RedisKeys } from '../redis/keys';
import type { ScriptReply, ScriptRunner } from '../redis/scripts';
import type { Redis } from 'ioredis';
import type { RunTally } from './report';

export const correctionAttemptsMax = 3;
export const auditCallsPerSkuMax = 10_000;

export interface Inspection {
  readonly sku: string;
  readonly missing: boolean;
  readonly onHand: number;
  readonly reserved: number;
  readonly version: number;
  readonly ov: number;
  readonly holdCount: number;
  /** Confirmed holds: reservation id and quantity. */
  readonly confirmed: ReadonlyArray<{ id: string; quantity: number }>;
}

interface LedgerRow {
  sku: string;
  on_hand: string;
  version: string;
  last_entry_id: string;
}

export interface StuckCandidate {
  readonly id: string;
  readonly committedInLedger: boolean;
}

function parseInspection(sku: string, reply: ScriptReply): Inspection {
  if (reply[0] === -1) return { sku, missing: true, onHand: 0, reserved: 0, version: 0, ov: 0, holdCount: Number(reply[1]), confirmed: [] };
  const confirmed = reply.slice(9).map((member) => {
    const text = String(member);
    const separator = text.lastIndexOf(':');
    return { id: text.slice(0, separator), quantity: Number(text.slice(separator + 1)) };
  });
  return { sku, missing: false, onHand: Number(reply[1]), reserved: Number(reply[2]), version: Number(reply[3]), ov: Number(reply[4]), holdCount: Number(reply[8]), confirmed };
}

export class SkuReconciliation {
  constructor(
    private readonly knex: Knex,
    private readonly redis: Redis,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly config: Config,
  ) {}

  /** Returns the confirmed reservations of the page, for the stuck-commit check. */
  async reconcilePage(skus: readonly string[], runId: string, dryRun: boolean, tally: RunTally): Promise<StuckCandidate[]> {
    const stuck = await this.knex.transaction(async (transaction) => {
      const ledger: LedgerRow[] = await transaction('skus').select('sku', 'on_hand', 'version', 'last_entry_id').whereIn('sku', skus as string[]).orderBy('sku').forShare();
      const inspections = await Promise.all(skus.map((sku) => this.inspect(sku, dryRun, tally)));
      const confirmedIds = [...new Set(inspections.flatMap((inspection) => inspection.confirmed.map((hold) => hold.id)))];
      const committed = new Set<string>(
        confirmedIds.length === 0 ? [] : (await transaction('reservations').select('id').whereIn('id', confirmedIds)).map((row: { id: string }) => row.id),
      );
      const cancelling = await this.cancelsInFlight(transaction, skus);
      for (const row of ledger) {
        const inspection = inspections.find((candidate) => candidate.sku === row.sku);
        if (inspection === undefined) continue;
        if (inspection.missing) {
          await this.rebuild(row, inspection, dryRun, tally);
          continue;
        }
        await this.correctOnHand(row, inspection, committed, cancelling.get(row.sku) ?? 0, dryRun, tally);
      }
      return inspections.flatMap((inspection) => inspection.confirmed.map((hold) => ({ id: hold.id, committedInLedger: committed.has(hold.id) })));
    });
    // Audits of different SKUs touch different keys: run the page's audits side by side.
    await Promise.all(skus.map((sku) => this.auditReserved(sku, runId, dryRun, tally)));
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

  /** Units of deallocations the ledger has and Redis has not applied yet, by SKU. */
  private async cancelsInFlight(transaction: Knex.Transaction, skus: readonly string[]): Promise<Map<string, number>> {
    const { rows } = await transaction.raw(
      `SELECT r.id, line->>'sku' AS sku, (line->>'quantity')::bigint AS quantity
         FROM reservations r, jsonb_array_elements(r.lines) AS line
        WHERE r.status = 'cancelled' AND r.cancelled_at > now() - make_interval(hours => ?)
          AND line->>'sku' IN (?)`,
      [this.config.reconcileCancelWindowHours, [...skus]],
    );
    const units = new Map<string, number>();
    for (const row of rows as Array<{ id: string; sku: string; quantity: string }>) {
      const [status, requested] = await this.redis.hmget(this.keys.reservation(row.id), 's', 'cx');
      if (status === 'committed' && requested !== null) units.set(row.sku, (units.get(row.sku) ?? 0) + Number(row.quantity));
    }
    return units;
  }

  private async rebuild(row: LedgerRow, inspection: Inspection, dryRun: boolean, tally: RunTally): Promise<void> {
    if (!dryRun) {
      const reply = await this.scripts.run('initSku', [this.keys.skuState(row.sku), this.keys.skuHolds(row.sku)], [row.on_hand, row.version, row.last_entry_id]);
      if (reply[0] === -1) throw new Error(`holds of ${row.sku} survived without its state (${inspection.holdCount} holds): refusing to rebuild`);
      if (reply[0] === 0) return;
    }
    tally.skusRebuilt += 1;
    tally.correct({ sku: row.sku, field: 'state', before: null, after: Number(row.on_hand) });
  }

  private async correctOnHand(row: LedgerRow, first: Inspection, committed: ReadonlySet<string>, cancellingUnits: number, dryRun: boolean, tally: RunTally): Promise<void> {
    let inspection = first;
    for (let attempt = 1; attempt <= correctionAttemptsMax; attempt += 1) {
      const inFlightCommits = inspection.confirmed.filter((hold) => committed.has(hold.id)).reduce((sum, hold) => sum + hold.quantity, 0);
      const expected = Number(row.on_hand) + inFlightCommits - cancellingUnits;
      if (inspection.onHand === expected && inspection.version === Number(row.version)) return;
      if (dryRun) {
        tally.correct({ sku: row.sku, field: 'onHand', before: inspection.onHand, after: expected });
        return;
      }
      const reply = await this.scripts.run('correctOnHand', [this.keys.skuState(row.sku)], [inspection.ov, inspection.version, expected, row.version, row.last_entry_id]);
      if (reply[0] === 1) {
        tally.correct({ sku: row.sku, field: 'onHand', before: Number(reply[1]), after: expected });
        return;
      }
      if (reply[0] === -1) return;
      // Something finished its Redis step while we looked: look again.
      inspection = await this.inspect(row.sku, true, undefined);
    }
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
