// Stock changes: the ledger first, Redis a projection of it. The projection row is locked FOR
// UPDATE for the whole change, so changes to one SKU are serialised, and inside the transaction:
//   1. a retried Idempotency-Key is answered from the ledger before anything is checked;
//   2. Redis is brought to the ledger's position (missing entries applied) and, for a decrease,
//      the units are debited as a pending debit with its own id (lua/prepareStockChange-3.lua):
//      Redis never offers units the ledger may be about to lose;
//   3. the entry (naming the debit it absorbs), the projection and a stock.adjusted event go in;
//   4. COMMIT (awaited for real: knex's commit() resolves even when the COMMIT fails).
// Then the entry is applied to Redis like every other entry (lua/applyEntries-2.lua), which
// absorbs the debit. A transaction that fails before COMMIT releases its debit by id, so a late
// release can never land on another change; a COMMIT whose outcome is unknown leaves the debit
// pending (Redis low, never high) until the entry is applied or the next holder of the row
// finds it orphaned.
import type { Knex } from 'knex';
import { randomId } from '../random-ids';
import { appendEvents } from '../events/outbox';
import type { Metrics } from '../metrics/metrics';
import { assert, errors, StockholdError } from '../errors';
import type { IdempotencyScope, IdempotencyStore } from '../idempotency/idempotency-store';
import { withPostgres } from '../postgres/connection';
import { withRedis } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import { slotOwners, waitForReplicas, type SlotOwners } from '../redis/replication';
import type { ScriptRunner } from '../redis/scripts';
import type { ProjectedEntry } from '../scripts/apply-entries';
import { prepareStockChange } from '../scripts/prepare-stock-change';
import { releaseDebit } from '../scripts/release-debit';
import type { LedgerProjection } from './ledger-projection';
import { skuView, type SkuState, type SkuView } from './sku-state';

export interface StockLimits {
  readonly stockOnHandMax: number;
  readonly reclaimPerSkuMax: number;
  readonly holdsRebuildMax: number;
  /** Replicas that must have a staged debit before the decrease commits (REDIS_CONFIRM_REPLICAS). */
  readonly redisConfirmReplicas: number;
  readonly redisConfirmWaitMs: number;
}

/** Rounds of "Redis is behind, apply the missing entries" one stock change makes, at most. */
export const catchUpRoundsMax = 4;

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
  readonly onHandAfter: number;
  readonly reserved: number;
  readonly entry: ProjectedEntry | null;
}

interface LockedRow {
  readonly onHand: number;
  readonly seq: number;
  readonly version: number;
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
    private readonly projection: LedgerProjection,
    private readonly idempotency: IdempotencyStore,
    private readonly limits: StockLimits,
    private readonly metrics: Metrics,
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
    const debitId = randomId();
    const transaction = await withPostgres(() => this.knex.transaction());
    const progress = { debitStaged: false };
    let staged: StagedChange;
    try {
      staged = await withPostgres(() => this.stageInTransaction(transaction, request, debitId, progress));
    } catch (error) {
      // Nothing committed (a transaction that ended underneath us, its connection dropped, is a
      // 503 from withPostgres: knex says "Transaction query already complete").
      await transaction.rollback().catch(() => undefined);
      // By id: whenever this lands, it releases this change's debit and nothing else.
      if (progress.debitStaged) await releaseDebit(this.scripts, this.keys, request.sku, debitId).catch(() => undefined);
      throw error;
    }
    try {
      await withPostgres(async () => {
        await transaction.commit();
        await transaction.executionPromise;
      });
    } catch (error) {
      // The COMMIT's outcome is unknown: the debit stays pending (Redis low, never high) until
      // the entry is applied, or the next holder of the row finds it orphaned and releases it.
      throw error instanceof StockholdError ? error : errors.backendUnavailable('postgres', error);
    }
    // Committed: the ledger is right whatever happens now. Applying the entry is best effort;
    // whoever touches the SKU next (a stock change, a commit, the reconciler) catches Redis up.
    if (staged.entry !== null) await this.projection.apply(request.sku, [staged.entry]).catch(() => undefined);
    return staged;
  }

  private async stageInTransaction(transaction: Knex.Transaction, request: ChangeRequest, debitId: string, progress: { debitStaged: boolean }): Promise<StagedChange> {
    const { sku } = request;
    const ownersBefore = slotOwners(this.scripts.redis, [this.keys.skuState(sku)]);
    const row = await this.lockRow(transaction, request);
    const delta = request.deltaFrom(row.onHand);
    const onHandAfter = row.onHand + delta;
    if (onHandAfter > this.limits.stockOnHandMax) {
      throw errors.validation([{ field: 'onHand', message: `on-hand would be ${onHandAfter}, above the limit of ${this.limits.stockOnHandMax}` }]);
    }
    const debit = delta < 0 && onHandAfter >= 0 ? { id: debitId, units: -delta } : undefined;
    const reserved = await this.prepareRedis(transaction, sku, row, debit);
    if (onHandAfter < 0) throw errors.stockBelowReserved(sku, onHandAfter, reserved);
    if (debit !== undefined) {
      progress.debitStaged = true;
      await this.awaitDebitReplicated(sku, ownersBefore);
    }
    if (delta === 0) return { delta, onHandAfter, reserved, entry: null };
    const entry = await this.appendEntry(transaction, request, row, delta, onHandAfter, debit?.id ?? null);
    return { delta, onHandAfter, reserved, entry };
  }

  /**
   * With REDIS_CONFIRM_REPLICAS set, a decrease commits only once its staged debit is on the
   * replicas of the SKU's primary: a failover that lost the debit while the ledger committed the
   * decrease would have the promoted replica offer units the ledger no longer has (until the entry
   * is applied), and the ledger would then reject an acknowledged confirm. Short of that: 503, the
   * transaction rolled back and the debit released by id (change()).
   */
  private async awaitDebitReplicated(sku: string, ownersBefore: SlotOwners): Promise<void> {
    const wanted = this.limits.redisConfirmReplicas;
    if (wanted === 0) return;
    const acknowledged = await withRedis(() => waitForReplicas(this.scripts.redis, { keys: [this.keys.skuState(sku)], replicas: wanted, timeoutMs: this.limits.redisConfirmWaitMs, witness: (key) => this.keys.replicationWitness(key), ownersBefore }));
    if (acknowledged < wanted) throw errors.notReplicated('stock change', wanted, acknowledged);
  }

  /** Locks the projection row; a retried key is answered from the ledger before any check. */
  private async lockRow(transaction: Knex.Transaction, request: ChangeRequest): Promise<LockedRow> {
    const { sku } = request;
    if (request.createIfMissing) {
      await transaction.raw('INSERT INTO skus (sku, on_hand, version) VALUES (?, 0, 1) ON CONFLICT (sku) DO NOTHING', [sku]);
    }
    const row = await transaction('skus').first('on_hand', 'seq', 'version').where({ sku }).forUpdate();
    if (row === undefined) throw errors.skuNotFound([sku]);
    // Under the row lock an earlier attempt with this key has either committed (and is visible
    // now) or not: a retried key is answered from the ledger before any stock check runs.
    if (request.idempotency !== null && (await this.appliedEntry(transaction, request.clientId, request.idempotency.key)) !== undefined) {
      throw new AlreadyApplied();
    }
    return { onHand: Number(row.on_hand), seq: Number(row.seq), version: Number(row.version) };
  }

  /** Brings Redis to the ledger's position and stages the debit; returns what is reserved. */
  private async prepareRedis(transaction: Knex.Transaction, sku: string, row: LockedRow, debit: { id: string; units: number } | undefined): Promise<number> {
    for (let round = 0; round < catchUpRoundsMax; round += 1) {
      const result = await prepareStockChange(this.scripts, this.keys, {
        sku,
        ledgerSeq: row.seq,
        ledgerOnHand: row.onHand,
        ...(debit === undefined ? {} : { debit }),
        reclaimPerSkuMax: this.limits.reclaimPerSkuMax,
        holdsRebuildMax: this.limits.holdsRebuildMax,
      });
      if (result.kind !== 'behind' && result.kind !== 'too-many-holds' && result.reclaimed.length > 0) this.metrics.holdsReclaimed(result.reclaimed);
      if (result.kind === 'ready') return result.reserved;
      if (result.kind === 'below-reserved') throw errors.stockBelowReserved(sku, row.onHand - (debit?.units ?? 0), result.reserved);
      if (result.kind === 'too-many-holds') throw errors.backendUnavailable('redis', new Error(`${result.holdCount} holds of ${sku} outlived its state`));
      await this.projection.catchUp(sku, result.pos, row.seq, transaction);
    }
    throw errors.backendUnavailable('redis', new Error(`Redis did not reach ledger position ${row.seq} of ${sku} in ${catchUpRoundsMax} rounds`));
  }

  private async appendEntry(transaction: Knex.Transaction, request: ChangeRequest, row: LockedRow, delta: number, onHandAfter: number, debitId: string | null): Promise<ProjectedEntry> {
    const seq = row.seq + 1;
    const [inserted] = await transaction('ledger_entries')
      .insert({
        sku: request.sku,
        kind: 'adjustment',
        delta,
        on_hand_after: onHandAfter,
        sku_version: row.version + 1,
        sku_seq: seq,
        debit_id: debitId,
        reason: request.reason,
        client_id: request.clientId,
        idempotency_key: request.idempotency?.key ?? null,
        request_fingerprint: request.idempotency?.fingerprint ?? null,
      })
      .returning('id');
    const entryId = Number(inserted.id);
    await transaction('skus').update({ on_hand: onHandAfter, version: row.version + 1, seq, last_entry_id: entryId, updated_at: transaction.fn.now() }).where({ sku: request.sku });
    await appendEvents(transaction, [{ type: 'stock.adjusted', data: { sku: request.sku, delta, onHandAfter, reason: request.reason, clientId: request.clientId, entryId, position: seq } }]);
    return { sku: request.sku, seq, delta, onHandAfter, kind: 'adjustment', reservationId: null, debitId };
  }
}
