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
import { skuView, writeCustomerLimit, type SkuState, type SkuView } from './sku-state';
import { chooseStripeTags, encodeStripeTags, stripeSkus, type StripeLayouts } from './stripes';

export interface StockLimits {
  readonly stockOnHandMax: number;
  readonly reclaimPerSkuMax: number;
  readonly holdsRebuildMax: number;
  /** Replicas that must have a staged debit before the decrease commits (REDIS_CONFIRM_REPLICAS). */
  readonly redisConfirmReplicas: number;
  readonly redisConfirmWaitMs: number;
}

/** A striped SKU's stripes are evened out when the units they offer differ by more than this (or half a stripe's share). */
export const stripeImbalanceUnitsMin = 2;

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
  /** PUT only: the stripe count to have afterwards (undefined: keep the SKU's). */
  readonly stripes?: number;
  /** PUT only: units one customer may hold (null: no cap; undefined: keep the SKU's). */
  readonly perCustomerLimit?: number | null;
}

interface StagedChange {
  readonly delta: number;
  readonly onHandAfter: number;
  readonly reserved: number;
  /** The entries written, each on its own (stripe) SKU. */
  readonly entries: readonly ProjectedEntry[];
  readonly stripes: number;
  /** The tags of stripes 1..k-1 after the change (lib/stock/stripes.ts). */
  readonly stripeTags: readonly number[];
  /** The SKU's per-customer cap after the change (null: none). */
  readonly perCustomerLimit: number | null;
}

interface LockedRow {
  readonly onHand: number;
  readonly seq: number;
  readonly version: number;
  readonly stripes: number;
  readonly stripeTags: readonly number[];
  readonly perCustomerLimit: number | null;
  /** The cap the ledger has now (before this change). */
  readonly committedPerCustomerLimit: number | null;
}

/** What a change staged in Redis before its COMMIT: debits to release by id if it fails. */
interface Progress {
  readonly debits: Array<{ readonly sku: string; readonly id: string }>;
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
    private readonly stripeLayouts: StripeLayouts,
  ) {}

  /** A SKU's view; a striped SKU's is the sum of its stripes' (read side by side). */
  async read(sku: string): Promise<SkuView> {
    const stripes = await this.stripeLayouts.of(sku);
    const views = await Promise.all(stripes.map((stripe) => this.skuState.read(stripe)));
    const limit = await withRedis(() => this.scripts.redis.hget(this.keys.skuState(sku), 'pcl'));
    const cap = limit === null ? {} : { perCustomerLimit: Number(limit) };
    if (stripes.length === 1) return { ...views[0]!, ...cap };
    const onHand = views.reduce((sum, view) => sum + view.onHand, 0);
    const reserved = views.reduce((sum, view) => sum + view.reserved, 0);
    return { ...skuView(sku, onHand, reserved), stripes: stripes.length, ...cap };
  }

  /**
   * PUT semantics: on-hand becomes `onHand`; the difference is recorded as an adjustment. With
   * `stripes`, the SKU's stock is split over that many stripes (lib/stock/stripes.ts).
   */
  async setOnHand(sku: string, onHand: number, clientId: string, stripes?: number, perCustomerLimit?: number | null): Promise<SkuView> {
    assert(Number.isSafeInteger(onHand) && onHand >= 0, 'onHand is a non-negative integer');
    const change = await this.change({
      sku, createIfMissing: true, deltaFrom: (before) => onHand - before, reason: 'set on-hand', clientId, idempotency: null,
      ...(stripes === undefined ? {} : { stripes }),
      ...(perCustomerLimit === undefined ? {} : { perCustomerLimit }),
    });
    return this.viewOf(sku, change);
  }

  private viewOf(sku: string, change: StagedChange): SkuView {
    const view = skuView(sku, change.onHandAfter, change.reserved);
    return {
      ...view,
      ...(change.stripes === 1 ? {} : { stripes: change.stripes }),
      ...(change.perCustomerLimit === null ? {} : { perCustomerLimit: change.perCustomerLimit }),
    };
  }

  /** Records a receipt (+) or shrinkage (-). Idempotent per client and Idempotency-Key. */
  async adjust(sku: string, delta: number, reason: string, clientId: string, idempotency: IdempotencyScope): Promise<{ status: number; body: unknown; replayed: boolean }> {
    assert(Number.isSafeInteger(delta) && delta !== 0, 'delta is a non-zero integer');
    const begun = await this.idempotency.begin(idempotency);
    if (begun.kind === 'replay') return { ...begun.response, replayed: true };
    try {
      const change = await this.change({ sku, createIfMissing: false, deltaFrom: () => delta, reason, clientId, idempotency });
      const body = this.viewOf(sku, change);
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
    const body = await this.read(sku);
    await this.idempotency.store(idempotency, { status: 201, body });
    return { status: 201, body, replayed: true };
  }

  private appliedEntry(knex: Knex | Knex.Transaction, clientId: string, key: string): Promise<{ request_fingerprint: string } | undefined> {
    return knex('ledger_entries').first('request_fingerprint').where({ client_id: clientId, idempotency_key: key });
  }

  private async change(request: ChangeRequest): Promise<StagedChange> {
    const transaction = await withPostgres(() => this.knex.transaction());
    const progress: Progress = { debits: [] };
    let staged: StagedChange;
    try {
      staged = await withPostgres(() => this.stageInTransaction(transaction, request, progress));
      // A change that sets the cap or the stripes writes the SKU's cap into every stripe's state
      // (the guard reads the stripe a line lands on), under the row lock and as the last step
      // before COMMIT: two changes of one SKU cannot land their caps out of order, a stripe just
      // added has its cap before any reservation can use it (publishStripes comes after the
      // COMMIT), and a refused change writes none. Any other change left the ledger's cap, which
      // stageInTransaction wrote first (before a state Redis lost could be rebuilt). A COMMIT that
      // then fails leaves Redis with the new cap until the reconciler compares it with the ledger
      // (lib/reconcile/sku-reconciliation.ts).
      if (request.perCustomerLimit !== undefined || request.stripes !== undefined) {
        await this.publishCustomerLimit(stripeSkus(request.sku, staged.stripeTags), staged.perCustomerLimit);
      }
    } catch (error) {
      // Nothing committed (a transaction that ended underneath us, its connection dropped, is a
      // 503 from withPostgres: knex says "Transaction query already complete").
      await transaction.rollback().catch(() => undefined);
      // By id: whenever this lands, it releases this change's debit and nothing else.
      await Promise.all(progress.debits.map((debit) => releaseDebit(this.scripts, this.keys, debit.sku, debit.id).catch(() => undefined)));
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
    // Committed: the ledger is right whatever happens now. Applying the entries is best effort;
    // whoever touches the SKU next (a stock change, a commit, the reconciler) catches Redis up.
    await Promise.all(staged.entries.map((entry) => this.projection.apply(entry.sku, [entry]).catch(() => undefined)));
    if (staged.stripes > 1 || request.stripes !== undefined) await this.publishStripes(request.sku, staged.stripeTags);
    return staged;
  }

  /**
   * Evens a striped SKU's stripes out when the units they offer differ by more than
   * max(stripeImbalanceUnitsMin, half a stripe's even share): a stock change with the total
   * unchanged (stageStriped moves units in one ledger transaction). Whether it did (would).
   */
  async rebalance(sku: string, dryRun: boolean): Promise<boolean> {
    const stripes = await this.stripeLayouts.of(sku, 0);
    if (stripes.length <= 1) return false;
    const available = (await Promise.all(stripes.map((stripe) => this.skuState.read(stripe)))).map((view) => view.available);
    const total = available.reduce((sum, units) => sum + units, 0);
    if (Math.max(...available) - Math.min(...available) <= Math.max(stripeImbalanceUnitsMin, Math.floor(total / stripes.length / 2))) return false;
    if (dryRun) return true;
    const change = await this.change({ sku, createIfMissing: false, deltaFrom: () => 0, reason: 'rebalance stripes', clientId: 'reconciler', idempotency: null });
    return change.entries.length > 0;
  }

  /** Writes a SKU's per-customer cap (or its absence) into the Redis state of each of its stripes. */
  private async publishCustomerLimit(stripes: readonly string[], limit: number | null): Promise<void> {
    await withRedis(() => Promise.all(stripes.map((stripe) => writeCustomerLimit(this.scripts.redis, this.keys, stripe, limit))));
  }

  /** Tells every process the SKU's stripes now (the reconciler writes them again if this is lost). */
  async publishStripes(sku: string, stripeTags: readonly number[]): Promise<void> {
    this.stripeLayouts.remember(sku, stripeSkus(sku, stripeTags));
    await withRedis(() => this.scripts.redis.set(this.keys.skuStripes(sku), encodeStripeTags(stripeTags))).catch(() => undefined);
  }

  /** The primary a stripe's state lives on (one Redis: all alike), for chooseStripeTags. */
  private ownerOf(stripe: string): string {
    const owners = slotOwners(this.scripts.redis, [this.keys.skuState(stripe)]);
    return owners === null ? 'single' : [...owners.values()][0]!;
  }

  private async stageInTransaction(transaction: Knex.Transaction, request: ChangeRequest, progress: Progress): Promise<StagedChange> {
    const { sku } = request;
    const ownersBefore = slotOwners(this.scripts.redis, [this.keys.skuState(sku)]);
    const row = await this.lockRow(transaction, request);
    // The ledger's cap first, before prepareStockChange may rebuild a state Redis lost (the
    // rebuild keeps fields it does not write): no reservation meets that state uncapped while
    // this change runs. A change of the cap or the stripes writes its own at its end (change()).
    await this.publishCustomerLimit(stripeSkus(sku, row.stripeTags), row.committedPerCustomerLimit);
    if (row.stripes > 1 || (request.stripes ?? 1) > 1) return this.stageStriped(transaction, request, row, progress);
    const debitId = randomId();
    const delta = request.deltaFrom(row.onHand);
    const onHandAfter = row.onHand + delta;
    if (onHandAfter > this.limits.stockOnHandMax) {
      throw errors.validation([{ field: 'onHand', message: `on-hand would be ${onHandAfter}, above the limit of ${this.limits.stockOnHandMax}` }]);
    }
    const debit = delta < 0 && onHandAfter >= 0 ? { id: debitId, units: -delta } : undefined;
    const reserved = await this.prepareRedis(transaction, sku, row, debit);
    if (onHandAfter < 0) throw errors.stockBelowReserved(sku, onHandAfter, reserved);
    if (debit !== undefined) {
      progress.debits.push({ sku, id: debit.id });
      await this.awaitDebitsReplicated([sku], ownersBefore);
    }
    if (delta === 0) return { delta, onHandAfter, reserved, entries: [], stripes: 1, stripeTags: [], perCustomerLimit: row.perCustomerLimit };
    const entry: ProjectedEntry & { readonly entryId: number } = await this.appendEntry(transaction, request, sku, row, delta, onHandAfter, debit?.id ?? null, request.idempotency?.key ?? null);
    await appendEvents(transaction, [{ type: 'stock.adjusted', data: { sku, delta, onHandAfter, reason: request.reason, clientId: request.clientId, entryId: entry.entryId, position: entry.seq } }]);
    return { delta, onHandAfter, reserved, entries: [entry], stripes: 1, stripeTags: [], perCustomerLimit: row.perCustomerLimit };
  }

  /**
   * A change of a striped SKU (or one that becomes striped): in this one transaction, every
   * stripe row locked (in name order, as commits lock them), each stripe's Redis state brought to
   * its position and its reserved units read, and the new total given out as `reserved + an even
   * share of what is free`; each decrease a debit staged on its stripe before COMMIT, each change
   * an entry on its stripe, one stock.adjusted event for the SKU. Units moved between stripes are
   * thus one transaction: the decrease staged before COMMIT, the increase applied after.
   */
  private async stageStriped(transaction: Knex.Transaction, request: ChangeRequest, parent: LockedRow, progress: Progress): Promise<StagedChange> {
    const { sku } = request;
    const stripes = request.stripes ?? parent.stripes;
    const stripeTags = chooseStripeTags(sku, parent.stripeTags, stripes, (stripe) => this.ownerOf(stripe));
    const kept = stripeSkus(sku, stripeTags);
    // The stripes it has and the ones it will have; dropped ones end at 0 (their rows stay).
    const all = [...new Set([...stripeSkus(sku, parent.stripeTags), ...kept])];
    for (const stripe of all.slice(1)) await transaction.raw('INSERT INTO skus (sku, on_hand, version) VALUES (?, 0, 1) ON CONFLICT (sku) DO NOTHING', [stripe]);
    const locked = await transaction('skus').select('sku', 'on_hand', 'seq', 'version').whereIn('sku', all.slice(1)).orderBy('sku').forUpdate();
    const rows = new Map<string, LockedRow>([[sku, parent], ...locked.map((row): [string, LockedRow] => [row.sku as string, { onHand: Number(row.on_hand), seq: Number(row.seq), version: Number(row.version), stripes: 1, stripeTags: [], perCustomerLimit: parent.perCustomerLimit, committedPerCustomerLimit: parent.committedPerCustomerLimit }])]);
    const ownersBefore = slotOwners(this.scripts.redis, all.map((stripe) => this.keys.skuState(stripe)));
    const reserved = new Map<string, number>();
    for (const stripe of all) reserved.set(stripe, await this.prepareRedis(transaction, stripe, rows.get(stripe)!, undefined));
    const totalBefore = all.reduce((sum, stripe) => sum + rows.get(stripe)!.onHand, 0);
    const delta = request.deltaFrom(totalBefore);
    const onHandAfter = totalBefore + delta;
    if (onHandAfter > this.limits.stockOnHandMax) {
      throw errors.validation([{ field: 'onHand', message: `on-hand would be ${onHandAfter}, above the limit of ${this.limits.stockOnHandMax}` }]);
    }
    const reservedTotal = [...reserved.values()].reduce((sum, units) => sum + units, 0);
    const dropped = all.filter((stripe) => !kept.includes(stripe));
    const heldOnDropped = dropped.reduce((sum, stripe) => sum + reserved.get(stripe)!, 0);
    if (heldOnDropped > 0) throw errors.stripesInUse(sku, stripes, heldOnDropped);
    const free = onHandAfter - reservedTotal;
    if (free < 0) throw errors.stockBelowReserved(sku, onHandAfter, reservedTotal);
    const targets = all.map((stripe) => {
      const index = kept.indexOf(stripe);
      return index < 0 ? 0 : reserved.get(stripe)! + Math.floor(free / stripes) + (index < free % stripes ? 1 : 0);
    });
    // Decreases first, each a debit on its stripe checked against what that stripe holds now.
    for (const [index, stripe] of all.entries()) {
      const row = rows.get(stripe)!;
      if (targets[index]! >= row.onHand) continue;
      const debit = { id: randomId(), units: row.onHand - targets[index]! };
      await this.prepareRedis(transaction, stripe, row, debit);
      progress.debits.push({ sku: stripe, id: debit.id });
    }
    if (progress.debits.length > 0) await this.awaitDebitsReplicated(progress.debits.map((debit) => debit.sku), ownersBefore);
    const entries: Array<ProjectedEntry & { readonly entryId: number }> = [];
    for (const [index, stripe] of all.entries()) {
      const row = rows.get(stripe)!;
      const stripeDelta = targets[index]! - row.onHand;
      if (stripeDelta === 0) continue;
      // The key on the first entry (a retry finds it under the row lock), `key~j` on the others.
      const key = request.idempotency === null ? null : entries.length === 0 ? request.idempotency.key : `${request.idempotency.key}~${index}`;
      const debitId = progress.debits.find((debit) => debit.sku === stripe)?.id ?? null;
      entries.push(await this.appendEntry(transaction, request, stripe, row, stripeDelta, targets[index]!, debitId, key));
    }
    if (entries.length === 0 && stripes === parent.stripes) return { delta, onHandAfter, reserved: reservedTotal, entries, stripes, stripeTags, perCustomerLimit: parent.perCustomerLimit };
    await transaction('skus').update({ stripes, stripe_tags: stripeTags, updated_at: transaction.fn.now() }).where({ sku });
    await appendEvents(transaction, [{ type: 'stock.adjusted', data: { sku, delta, onHandAfter, reason: request.reason, clientId: request.clientId, stripes, entryIds: entries.map((entry) => entry.entryId) } }]);
    return { delta, onHandAfter, reserved: reservedTotal, entries, stripes, stripeTags, perCustomerLimit: parent.perCustomerLimit };
  }

  /**
   * With REDIS_CONFIRM_REPLICAS set, a decrease commits only once its staged debit is on the
   * replicas of the SKU's primary: a failover that lost the debit while the ledger committed the
   * decrease would have the promoted replica offer units the ledger no longer has (until the entry
   * is applied), and the ledger would then reject an acknowledged confirm. Short of that: 503, the
   * transaction rolled back and the debit released by id (change()).
   */
  private async awaitDebitsReplicated(skus: readonly string[], ownersBefore: SlotOwners): Promise<void> {
    const wanted = this.limits.redisConfirmReplicas;
    if (wanted === 0) return;
    const acknowledged = await withRedis(() => waitForReplicas(this.scripts.redis, { keys: skus.map((sku) => this.keys.skuState(sku)), replicas: wanted, timeoutMs: this.limits.redisConfirmWaitMs, witness: (key) => this.keys.replicationWitness(key), ownersBefore }));
    if (acknowledged < wanted) throw errors.notReplicated('stock change', wanted, acknowledged);
  }

  /** Locks the projection row; a retried key is answered from the ledger before any check. */
  private async lockRow(transaction: Knex.Transaction, request: ChangeRequest): Promise<LockedRow> {
    const { sku } = request;
    if (request.createIfMissing) {
      await transaction.raw('INSERT INTO skus (sku, on_hand, version) VALUES (?, 0, 1) ON CONFLICT (sku) DO NOTHING', [sku]);
    }
    const row = await transaction('skus').first('on_hand', 'seq', 'version', 'stripes', 'stripe_tags', 'per_customer_limit').where({ sku }).forUpdate();
    if (row === undefined) throw errors.skuNotFound([sku]);
    // Under the row lock an earlier attempt with this key has either committed (and is visible
    // now) or not: a retried key is answered from the ledger before any stock check runs.
    if (request.idempotency !== null && (await this.appliedEntry(transaction, request.clientId, request.idempotency.key)) !== undefined) {
      throw new AlreadyApplied();
    }
    if (request.perCustomerLimit !== undefined && request.perCustomerLimit !== row.per_customer_limit) {
      await transaction('skus').update({ per_customer_limit: request.perCustomerLimit }).where({ sku });
    }
    const committedPerCustomerLimit = row.per_customer_limit === null ? null : Number(row.per_customer_limit);
    const perCustomerLimit = request.perCustomerLimit !== undefined ? request.perCustomerLimit : committedPerCustomerLimit;
    return { onHand: Number(row.on_hand), seq: Number(row.seq), version: Number(row.version), stripes: Number(row.stripes), stripeTags: (row.stripe_tags as number[]).map(Number), perCustomerLimit, committedPerCustomerLimit };
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

  /** Writes one adjustment entry on `sku` (the SKU or one of its stripes) and moves its row along. */
  private async appendEntry(transaction: Knex.Transaction, request: ChangeRequest, sku: string, row: LockedRow, delta: number, onHandAfter: number, debitId: string | null, idempotencyKey: string | null): Promise<ProjectedEntry & { readonly entryId: number }> {
    const seq = row.seq + 1;
    const [inserted] = await transaction('ledger_entries')
      .insert({
        sku,
        kind: 'adjustment',
        delta,
        on_hand_after: onHandAfter,
        sku_version: row.version + 1,
        sku_seq: seq,
        debit_id: debitId,
        reason: request.reason,
        client_id: request.clientId,
        idempotency_key: idempotencyKey,
        request_fingerprint: request.idempotency?.fingerprint ?? null,
      })
      .returning('id');
    const entryId = Number(inserted.id);
    await transaction('skus').update({ on_hand: onHandAfter, version: row.version + 1, seq, last_entry_id: entryId, updated_at: transaction.fn.now() }).where({ sku });
    return { sku, seq, delta, onHandAfter, kind: 'adjustment', reservationId: null, debitId, entryId };
  }
}
