// Stock changes: the ledger first, Redis in step with it. The projection row is locked for the
// whole change, so changes to one SKU are serialised; Redis is staged inside the transaction so
// that Redis never offers units the ledger does not have (see lua/stageStockChange-3.lua):
//   decrease: Redis lowers on-hand (checked against reserved) -> ledger commits;
//             if the transaction fails before COMMIT, the units are given back.
//   increase: Redis checks -> ledger commits -> Redis raises on-hand.
// A COMMIT whose outcome is unknown leaves Redis low (never high); the version fence makes the
// next stock change (or the reconciler) resynchronise it from the ledger.
import type { Knex } from 'knex';
import { assert, errors, StockholdError } from '../errors';
import type { IdempotencyScope, IdempotencyStore } from '../idempotency/idempotency-store';
import { withPostgres } from '../postgres/connection';
import type { RedisKeys } from '../redis/keys';
import type { ScriptRunner } from '../redis/scripts';
import { skuView, type SkuState, type SkuView } from './sku-state';

export interface StockLimits {
  readonly stockOnHandMax: number;
  readonly reclaimPerSkuMax: number;
}

interface ChangeRequest {
  readonly sku: string;
  /** Creates the SKU (on-hand 0) when the ledger does not have it. */
  readonly createIfMissing: boolean;
  readonly deltaFrom: (onHandBefore: number) => number;
  readonly reason: string | null;
  readonly clientId: string;
  readonly idempotency: IdempotencyScope | null;
}

interface StagedChange {
  readonly delta: number;
  readonly versionBefore: number;
  readonly onHandAfter: number;
  readonly reserved: number;
}

const uniqueViolation = '23505';

/** Thrown inside the transaction when the ledger already has this Idempotency-Key's entry. */
class AlreadyApplied extends Error {}

export class StockService {
  constructor(
    private readonly knex: Knex,
    private readonly scripts: ScriptRunner,
    private readonly keys: RedisKeys,
    private readonly skuState: SkuState,
    private readonly idempotency: IdempotencyStore,
    private readonly limits: StockLimits,
  ) {}

  read(sku: string): Promise<SkuView> {
    return this.skuState.read(sku);
  }

  /** PUT semantics: on-hand becomes `onHand`; the difference is recorded as an adjustment. */
  async setOnHand(sku: string, onHand: number, clientId: string): Promise<SkuView> {
    assert(Number.isSafeInteger(onHand) && onHand >= 0, 'onHand is a non-negative integer');
    const change = await this.change({ sku, createIfMissing: true, deltaFrom: (before) => onHand - before, reason: 'set on-hand', clientId, idempotency: null });
    return skuView(sku, change.onHandAfter, change.reserved);
  }

  /** Records a receipt (+) or shrinkage (-). Idempotent per client and Idempotency-Key. */
  async adjust(sku: string, delta: number, reason: string, clientId: string, idempotency: IdempotencyScope): Promise<{ status: number; body: unknown; replayed: boolean }> {
    assert(Number.isSafeInteger(delta) && delta !== 0, 'delta is a non-zero integer');
    const begun = await this.idempotency.begin(idempotency);
    if (begun.kind === 'replay') return { ...begun.response, replayed: true };
    try {
      const change = await this.change({ sku, createIfMissing: false, deltaFrom: () => delta, reason, clientId, idempotency });
      const body = skuView(sku, change.onHandAfter, change.reserved);
      await this.idempotency.store(idempotency, { status: 201, body });
      return { status: 201, body, replayed: false };
    } catch (error) {
      if (error instanceof AlreadyApplied || (error as { code?: string }).code === uniqueViolation) {
        // An earlier attempt committed but its response record is gone (never stored because
        // Redis stalled, or lost with Redis): the ledger answers, before any stock check.
        return this.replayFromLedger(sku, clientId, idempotency);
      }
      await this.idempotency.forget(idempotency);
      throw error;
    }
  }

  private async replayFromLedger(sku: string, clientId: string, idempotency: IdempotencyScope) {
    const entry = await withPostgres(() => this.appliedEntry(this.knex, clientId, idempotency.key));
    if (entry === undefined || entry.request_fingerprint !== idempotency.fingerprint) {
      await this.idempotency.forget(idempotency);
      if (entry === undefined) throw errors.backendUnavailable('postgres', new Error('the entry that refused this key is not visible yet'));
      throw errors.idempotencyKeyReused();
    }
    const body = await this.skuState.read(sku);
    await this.idempotency.store(idempotency, { status: 201, body });
    return { status: 201, body, replayed: true };
  }

  private appliedEntry(knex: Knex | Knex.Transaction, clientId: string, key: string): Promise<{ request_fingerprint: string } | undefined> {
    return knex('ledger_entries').first('request_fingerprint').where({ client_id: clientId, idempotency_key: key });
  }

  private async change(request: ChangeRequest): Promise<StagedChange> {
    const transaction = await withPostgres(() => this.knex.transaction());
    const progress: { decreaseStaged?: StagedChange } = {};
    let staged: StagedChange;
    try {
      staged = await withPostgres(() => this.stageInTransaction(transaction, request, progress));
    } catch (error) {
      // The transaction can also have ended underneath us (its connection dropped): knex then
      // says "Transaction query already complete". Either way it did not commit.
      const endedUnderneath = transaction.isCompleted() && !(error instanceof StockholdError);
      await transaction.rollback().catch(() => undefined);
      if (progress.decreaseStaged !== undefined) await this.giveBack(request.sku, progress.decreaseStaged);
      throw endedUnderneath ? errors.backendUnavailable('postgres', error) : error;
    }
    try {
      // knex's commit() resolves even when the COMMIT fails; the failure reaches only the
      // transaction's executionPromise, so wait on that too before touching Redis again.
      await withPostgres(async () => {
        await transaction.commit();
        await transaction.executionPromise;
      });
    } catch (error) {
      // The COMMIT's outcome is unknown: leave Redis low (a staged decrease stays applied, an
      // increase is not applied). The stock version tells the next change which one happened.
      throw error instanceof StockholdError ? error : errors.backendUnavailable('postgres', error);
    }
    if (staged.delta > 0) {
      const versionAfter = staged.versionBefore + 1;
      await this.scripts.run('applyOnHandDelta', [this.keys.skuState(request.sku)], [staged.delta, staged.versionBefore, versionAfter]);
    }
    return staged;
  }

  /** Undoes a staged decrease whose transaction was rolled back (not one whose COMMIT failed). */
  private async giveBack(sku: string, staged: StagedChange): Promise<void> {
    assert(staged.delta < 0, 'only a decrease is staged in Redis before the commit');
    const versionStaged = staged.versionBefore + 1;
    // Best effort: if Redis is unreachable it stays low, the safe side, until the next resync.
    await this.scripts.run('applyOnHandDelta', [this.keys.skuState(sku)], [-staged.delta, versionStaged, staged.versionBefore]).catch(() => undefined);
  }

  private async stageInTransaction(
    transaction: Knex.Transaction,
    request: ChangeRequest,
    progress: { decreaseStaged?: StagedChange },
  ): Promise<StagedChange> {
    const { sku } = request;
    if (request.createIfMissing) {
      await transaction.raw('INSERT INTO skus (sku, on_hand, version) VALUES (?, 0, 1) ON CONFLICT (sku) DO NOTHING', [sku]);
    }
    const row = await transaction('skus').first('on_hand', 'version', 'last_entry_id').where({ sku }).forUpdate();
    if (row === undefined) throw errors.skuNotFound([sku]);
    // Under the row lock an earlier attempt with this key has either committed (and is visible
    // now) or not: a retried key is answered from the ledger before any stock check runs.
    if (request.idempotency !== null && (await this.appliedEntry(transaction, request.clientId, request.idempotency.key)) !== undefined) {
      throw new AlreadyApplied();
    }
    const onHandBefore = Number(row.on_hand);
    const versionBefore = Number(row.version);
    const delta = request.deltaFrom(onHandBefore);
    const onHandAfter = onHandBefore + delta;
    if (onHandAfter > this.limits.stockOnHandMax) {
      throw errors.validation([{ field: 'onHand', message: `on-hand would be ${onHandAfter}, above the limit of ${this.limits.stockOnHandMax}` }]);
    }
    const reply = await this.scripts.run(
      'stageStockChange',
      [this.keys.skuState(sku), this.keys.skuHolds(sku), this.keys.skuUnknown(sku)],
      [delta, onHandBefore, versionBefore, versionBefore + 1, this.limits.reclaimPerSkuMax, row.last_entry_id],
    );
    if (reply[0] === -2) throw new Error(`Redis holds for ${sku} exist without its state: refusing the stock change`);
    const reserved = Number(reply[2]);
    if (reply[0] === -1 || onHandAfter < 0) throw errors.stockBelowReserved(sku, onHandAfter, reserved);
    assert(reply[0] === 1, `stageStockChange returned ${String(reply[0])}`);
    const staged = { delta, versionBefore, onHandAfter, reserved };
    if (delta < 0) progress.decreaseStaged = staged;
    if (delta !== 0) {
      const entryId = await this.appendEntry(transaction, request, delta, onHandAfter, versionBefore + 1);
      await transaction('skus').update({ on_hand: onHandAfter, version: versionBefore + 1, last_entry_id: entryId, updated_at: transaction.fn.now() }).where({ sku });
    }
    return staged;
  }

  private async appendEntry(transaction: Knex.Transaction, request: ChangeRequest, delta: number, onHandAfter: number, skuVersion: number): Promise<number> {
    const [row] = await transaction('ledger_entries').insert({
      sku: request.sku,
      kind: 'adjustment',
      delta,
      on_hand_after: onHandAfter,
      sku_version: skuVersion,
      reason: request.reason,
      client_id: request.clientId,
      idempotency_key: request.idempotency?.key ?? null,
      request_fingerprint: request.idempotency?.fingerprint ?? null,
    }).returning('id');
    return Number(row.id);
  }
}
