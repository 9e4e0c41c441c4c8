// Proves that the Lua scripts move one SKU exactly as a small pure model says they should, and that
// Redis stays a safe projection of the ledger, over random sequences of the operations the
// production callers run, each sequenced as production sequences it and split wherever production
// makes two round trips, so that other commands land in between:
//   reserve (read-through rebuild when the SKU is missing) · release · expire · confirm (queues
//   the commit job) · commit: ledger step | apply its entries | finishCommit, or the rejection
//   path: ledger records `rejected` | rejectReservation · cancel: requestCancel | ledger
//   deallocation | apply | finishCancel · a job re-delivered (a worker died, or at least once after
//   completion) · stock change: row lock + prepareStockChange with catch-up | COMMIT (then apply),
//   rollback (then releaseDebit by id, which may land late), COMMIT with its apply lost, or a
//   COMMIT that failed leaving the debit pending | the apply | the release · Redis loses every key
//   of the run, or only the SKU state · rebuild (initSku from the ledger row) · reconcile
//   (inspectSku, catch-up, correctOnHand, the holds audit, stuck commits queued again) · the
//   ledger lowered behind Redis's back (the one way to make the ledger refuse an allocation) ·
//   a record's retention passing.
// Each command runs the real scripts on the real Redis (test db, a key prefix per run, deleted
// afterwards) through the typed modules in lib/scripts/ where they exist, and the same step on
// test/support/sku-model.ts, whose tiny ledger (entries with positions) stands in for Postgres.
// After every command the two must agree on the SKU state hash (every field), the holds index and
// every reservation record, and the invariants (expectInvariants) must hold on what Redis holds;
// a failure shrinks to the shortest sequence. The interleavings that broke the previous design
// (a late give-back, a resync or a rebuild while a cancel is in flight, a job re-delivered after
// its record's retention) run as fixed sequences and as focused properties, and must hold now.
// Three tests prove the checker rejects a wrong model step and two broken protocols. One pins
// what happens after Redis loses a SKU's state alone: a hold that outlived it can still be
// returned (released, expired, rejected), and the rebuilt state sums the holds that are left.
//
// Time. The scripts read the Redis clock (TIME), which a test cannot move. Sleeping past short
// ttls would make runs slow and flaky, so every hold gets a one-hour ttl and the `expire` command
// moves one hold's deadline (its score in the holds index and the record's `ex`) to a millisecond
// before the Redis clock's now: exactly what the scripts see once the clock passes a deadline,
// and deterministic.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { randomId } from '../lib/random-ids';
import { deleteKeysWithPrefix } from '../lib/redis/delete-keys';
import { redisKeys, type RedisKeys } from '../lib/redis/keys';
import { ScriptRunner, type ScriptReply } from '../lib/redis/scripts';
import { applyEntries, entriesPerCallMax, type ProjectedEntry } from '../lib/scripts/apply-entries';
import { correctOnHand } from '../lib/scripts/correct-on-hand';
import { finishReservation } from '../lib/scripts/finish-reservation';
import { initSku } from '../lib/scripts/init-sku';
import { prepareStockChange, type PrepareStockChangeResult } from '../lib/scripts/prepare-stock-change';
import { takeReclaimed } from '../lib/scripts/reclaimed-holds';
import { rejectReservation } from '../lib/scripts/reject-reservation';
import { releaseDebit } from '../lib/scripts/release-debit';
import { applyRoundsMax } from '../lib/stock/ledger-projection';
import { catchUpRoundsMax } from '../lib/stock/stock-service';
import { testRedisUrl } from './support/harness';
import { dropRecord, patchRecord, readRecord } from './support/records';
import * as model from './support/sku-model';
import { assertReply, clockValue, type ExpectedReply, type LedgerEntry, type ReservationModel, type SkuModel } from './support/sku-model';
import { createOne } from './support/create-call';

const redis = new Redis(testRedisUrl);
const scripts = new ScriptRunner(redis);
const filePrefix = `t:model:${randomBytes(4).toString('hex')}:`;
const sku = 'MODEL-1';
const clientId = 'client-model';
const holdTtlMs = 3_600_000;
const idempotencyTtlMs = 86_400_000;
const retentionMs = 86_400_000;
const reclaimPerSkuMax = 100;
const holdsRebuildMax = 100;
const reconcileReclaimPerSku = 1000;
const reconcileConfirmedMax = 1000;
const auditChunk = 1000;
// Fixed seed, so CI replays the same sequences; a failure prints its own seed and path as well.
const seed = 20_261_127;

afterAll(async () => {
  // Each run deletes its own keys; this catches whatever a crashed run left behind.
  await deleteKeysWithPrefix(redis, filePrefix);
  redis.disconnect();
});

/** Outcomes seen across a property's runs, to prove the sequences reach every path. */
const outcomesSeen = new Map<string, number>();
let runCount = 0;

function expectReply(actual: ScriptReply, expected: ExpectedReply, what: string): void {
  const normalised = actual.map((value, index) => (expected[index] === clockValue && typeof value === 'number' && value > 0 ? clockValue : value));
  expect(normalised, what).toEqual(expected);
}

/** A script the model says must refuse with an ASSERT error reply. */
async function expectAssert(call: Promise<unknown>, what: string): Promise<void> {
  await expect(call, what).rejects.toThrow(/ASSERT/);
}

function ensure(condition: boolean, message: string): void {
  if (!condition) throw new Error(`invariant: ${message}`);
}

function projected(entry: LedgerEntry): ProjectedEntry {
  return { sku, seq: entry.seq, delta: entry.delta, onHandAfter: entry.onHandAfter, kind: entry.kind, reservationId: entry.reservationId, debitId: entry.debitId };
}

/** The real system under test: the scripts on Redis for one SKU, with the ARGV production passes. */
class RealSku {
  readonly keys: RedisKeys;
  /** What ran in this run, with each command's subject resolved: appended to a failure. */
  readonly trace: string[] = [];
  private readonly createdIds = new Set<string>();

  constructor(readonly prefix: string) {
    this.keys = redisKeys(prefix);
  }

  private lineKeys(id: string): string[] {
    return [this.keys.reservation(id), this.keys.skuState(sku), this.keys.skuHolds(sku)];
  }

  /** As ReservationService.create: one line, a fresh idempotency key. */
  createReservation(id: string, quantity: number): Promise<ScriptReply> {
    this.createdIds.add(id);
    const keyList = [this.keys.idempotency(clientId, id), ...this.lineKeys(id)];
    return createOne(scripts, keyList, ['fp-model', id, clientId, '', holdTtlMs, idempotencyTtlMs, retentionMs, reclaimPerSkuMax, sku, quantity]);
  }

  release(id: string): Promise<ScriptReply> {
    return scripts.run('releaseReservation', this.lineKeys(id), [id]);
  }

  confirm(id: string): Promise<ScriptReply> {
    return scripts.run('confirmReservation', this.lineKeys(id), [id]);
  }

  /** As CommitService.cancel: the ledger's fence and copy of the reservation. */
  requestCancel(reservation: ReservationModel, ledgerFence: number): Promise<ScriptReply> {
    const recreate = [ledgerFence, clientId, '', reservation.createdAtMs, reservation.expiresAtMs, `${sku}:${reservation.quantity}`, retentionMs];
    return scripts.run('requestCancel', [this.keys.reservation(reservation.id)], [reservation.id, ...recreate]);
  }

  /** As SkuReconciliation.inspect outside a dry run. */
  inspect(): Promise<ScriptReply> {
    return scripts.run('inspectSku', [this.keys.skuState(sku), this.keys.skuHolds(sku)], [reconcileReclaimPerSku, reconcileConfirmedMax, '0']);
  }

  /** As SkuReconciliation.auditReserved (correcting): start, next … until it finishes. */
  async audit(runId: string): Promise<ScriptReply> {
    const keyList = [this.keys.skuState(sku), this.keys.skuHolds(sku)];
    const chunk = [auditChunk, auditChunk, '1'];
    let reply = await scripts.run('auditHolds', keyList, [runId, 'start', ...chunk]);
    for (let call = 1; reply[0] === 1 && call < 100; call += 1) reply = await scripts.run('auditHolds', keyList, [runId, 'next', ...chunk]);
    return reply;
  }

  /** The clock passes one pending hold's deadline: see the note on time at the top of the file. */
  async passDeadline(reservation: ReservationModel): Promise<void> {
    const [seconds, microseconds] = await redis.time();
    const pastMs = Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000) - 1;
    const updated = await redis.zadd(this.keys.skuHolds(sku), 'XX', 'CH', pastMs, model.holdMember(reservation));
    expect(updated, 'the pending hold whose deadline passes is in the index').toBe(1);
    await patchRecord(redis, this.keys, reservation.id, { ex: pastMs });
  }

  /** Redis loses its data: every key of this run goes, as in a restart without the AOF. */
  async loseEverything(): Promise<void> {
    await redis.unlink(...this.allKeys());
  }

  /** Redis loses the SKU state hash alone; its holds and the records outlive it. */
  async loseState(): Promise<void> {
    await redis.unlink(this.keys.skuState(sku));
  }

  allKeys(): string[] {
    const skuKeys = [this.keys.skuState(sku), this.keys.skuHolds(sku), this.keys.skuUnknown(sku)];
    return [...skuKeys, ...[...this.createdIds].flatMap((id) => [this.keys.reservation(id), this.keys.idempotency(clientId, id)])];
  }
}

interface ObservedRecord {
  readonly status: string;
  readonly fence: number;
  readonly cancelRequested: boolean;
  readonly deadlinePassed: boolean;
}

interface ObservedState {
  readonly onHand: number;
  readonly pos: number;
  readonly reserved: number;
  readonly debit: number;
  readonly did: string | null;
  /** Every field name of the hash, sorted: nothing may be left over (no `ai`/`as`/`ap`, no old fields). */
  readonly fields: readonly string[];
}

/** Everything Redis holds for the SKU, read without side effects (no script, so no reclaim). */
interface Observation {
  readonly state: ObservedState | null;
  /** Holds index: member -> "confirmed" (+inf), "live" or "past" (deadline vs the Redis clock). */
  readonly holds: ReadonlyMap<string, 'confirmed' | 'live' | 'past'>;
  readonly records: ReadonlyMap<string, ObservedRecord | null>;
}

async function observe(real: RealSku, skuModel: SkuModel): Promise<Observation> {
  const pipeline = redis.pipeline();
  pipeline.time();
  pipeline.hgetall(real.keys.skuState(sku));
  pipeline.zrange(real.keys.skuHolds(sku), 0, -1, 'WITHSCORES');
  const results = (await pipeline.exec()) ?? [];
  const replies = results.map(([error, value]) => {
    if (error !== null) throw error;
    return value;
  });
  const [seconds, microseconds] = replies[0] as [string, string];
  const nowMs = Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000);
  const hash = replies[1] as Record<string, string>;
  const fields = Object.keys(hash).sort();
  const state = fields.length === 0 ? null : {
    onHand: Number(hash.onHand), pos: Number(hash.pos), reserved: Number(hash.reserved), debit: Number(hash.debit), did: hash.did ?? null, fields,
  };
  const scored = replies[2] as string[];
  const holds = new Map<string, 'confirmed' | 'live' | 'past'>();
  for (let index = 0; index + 1 < scored.length; index += 2) {
    const score = scored[index + 1] as string;
    holds.set(scored[index] as string, score === 'inf' ? 'confirmed' : Number(score) <= nowMs ? 'past' : 'live');
  }
  const records = new Map<string, ObservedRecord | null>();
  for (const reservation of skuModel.reservations) {
    const record = await readRecord(redis, real.keys, reservation.id);
    records.set(reservation.id, record === undefined ? null : { status: record.s!, fence: Number(record.v), cancelRequested: record.cx !== undefined, deadlinePassed: Number(record.ex) <= nowMs });
  }
  return { state, holds, records };
}

/** The model and Redis agree on the state hash (every field), the holds index and every record. */
function expectAgreement(skuModel: SkuModel, observed: Observation): void {
  const state = skuModel.state;
  const expectedState = state === null ? null : {
    onHand: state.onHand, pos: state.pos, reserved: model.reservedOf(skuModel), debit: state.debit, did: state.did,
    fields: ['debit', 'onHand', 'pos', 'reserved', ...(state.did === null ? [] : ['did'])].sort(),
  };
  expect(observed.state, 'SKU state (onHand, pos, reserved, debit, did; no other field)').toEqual(expectedState);
  const expectedHolds = new Map<string, 'confirmed' | 'live' | 'past'>();
  for (const reservation of skuModel.reservations) {
    const record = reservation.record;
    if (record === null || record.hold === 'none') continue;
    expectedHolds.set(model.holdMember(reservation), record.hold === 'confirmed' ? 'confirmed' : record.deadlinePassed ? 'past' : 'live');
  }
  expect(observed.holds, 'holds index').toEqual(expectedHolds);
  for (const reservation of skuModel.reservations) {
    const record = reservation.record;
    const expected = record === null ? null : {
      status: record.status, fence: record.fence, cancelRequested: record.cancelRequested,
      // Only a pending record's deadline matters: past it, a reader sees "expired".
      deadlinePassed: record.status === 'pending' ? record.deadlinePassed : expect.any(Boolean),
    };
    expect(observed.records.get(reservation.id), `record of ${reservation.label}`).toEqual(expected);
  }
}

/**
 * The invariants, on what Redis holds (not on the model), against the model ledger (L units at
 * position S):
 *   1. reserved equals the units in the holds index, and is >= 0;
 *   2. Redis's position is never ahead of the ledger's (pos <= S);
 *   3. at Redis's position Redis's on-hand is the ledger's on_hand_after there; it may be above it
 *      only by what lowerLedger took from that very entry (the ledger changed behind its back),
 *      never below;
 *   4. a pending debit has its id, and never outlives the application of the entry naming it;
 *   5. Redis never offers units the ledger could not allocate: Redis's offer, taken at its
 *      position (onHand net of that drift − debit − reserved), is at most the ledger's on-hand,
 *      less an uncommitted decrease in flight (its debit: the ledger may be about to lose those
 *      units) and less the holds Redis knows whose reservation the ledger has not decided yet
 *      (each will take its units from the ledger). Holds of reservations the ledger decided are
 *      in reserved and either already out of L (an allocation Redis has not applied: reserved and
 *      on-hand go down together when it is) or never to be taken (rejected), so they only lower
 *      the offer;
 *   6. available (onHand − debit − reserved) is never negative, until the run lost the SKU state
 *      alone (holds that outlived it are summed into a state rebuilt past their allocation) or
 *      lowered the ledger: an undersell then, never an oversell (5 still holds).
 */
function expectInvariants(skuModel: SkuModel, observed: Observation): void {
  const ledger = skuModel.ledger;
  ensure(ledger.onHand >= 0 && ledger.onHand === model.ledgerOnHandAt(ledger, ledger.seq), `the ledger's row (${ledger.onHand}) and its last entry disagree`);
  const state = observed.state;
  if (state === null) return;
  const byId = new Map(skuModel.reservations.map((reservation) => [reservation.id, reservation]));
  let heldUnits = 0;
  let undecidedUnits = 0;
  for (const member of observed.holds.keys()) {
    const separator = member.lastIndexOf(':');
    const quantity = Number(member.slice(separator + 1));
    heldUnits += quantity;
    if (byId.get(member.slice(0, separator))?.ledger === null) undecidedUnits += quantity;
  }
  ensure(state.reserved === heldUnits && state.reserved >= 0, `reserved ${state.reserved} differs from the ${heldUnits} units in the holds index`);
  ensure(state.pos <= ledger.seq, `Redis at position ${state.pos} is ahead of the ledger at ${ledger.seq}`);
  const atPos = model.ledgerOnHandAt(ledger, state.pos);
  const lowered = ledger.entries[state.pos - 1]?.lowered ?? 0;
  const drift = state.onHand - atPos;
  ensure(drift === 0 || (drift > 0 && drift <= lowered), `Redis on-hand ${state.onHand} at position ${state.pos} differs from the ledger's ${atPos} there`);
  ensure(state.debit >= 0 && (state.debit > 0) === (state.did !== null), `debit ${state.debit} with id ${String(state.did)}`);
  if (state.did !== null) {
    const absorbed = ledger.entries.find((entry) => entry.seq <= state.pos && entry.debitId === state.did);
    ensure(absorbed === undefined, `debit ${state.did} is still pending after its entry ${absorbed?.seq} was applied`);
  }
  const inFlightDebit = skuModel.stock?.debit?.units ?? 0;
  const offer = state.onHand - drift - state.debit - state.reserved;
  const ledgerFree = ledger.onHand - inFlightDebit - undecidedUnits;
  ensure(offer <= ledgerFree,
    `Redis offers ${offer} (on-hand ${state.onHand - drift} - debit ${state.debit} - reserved ${state.reserved}), above the ledger's ${ledgerFree} `
    + `(on-hand ${ledger.onHand} - decrease in flight ${inFlightDebit} - undecided holds ${undecidedUnits})`);
  if (!skuModel.availableMayGoNegative) {
    ensure(state.onHand - state.debit - state.reserved >= 0, `available ${state.onHand - state.debit - state.reserved} is negative`);
  }
}

/** After a reconcile run: Redis equals the ledger exactly (position, on-hand, no debit). */
function expectEqualsLedger(skuModel: SkuModel, observed: Observation, what: string): void {
  const state = observed.state;
  ensure(state !== null, `${what}: the SKU state is missing`);
  ensure(state!.pos === skuModel.ledger.seq && state!.onHand === skuModel.ledger.onHand && state!.debit === 0 && state!.did === null,
    `${what}: Redis (position ${state!.pos}, on-hand ${state!.onHand}, debit ${state!.debit}) differs from the ledger (position ${skuModel.ledger.seq}, on-hand ${skuModel.ledger.onHand})`);
}

type SkuCommand = fc.AsyncCommand<SkuModel, RealSku>;

/**
 * Cancels in flight that Redis is behind: the ledger has the deallocation, the worker has not
 * applied it yet, and Redis's state does not reflect it. A catch-up or a rebuild that moves Redis
 * past one is where the previous design counted the cancel twice.
 */
function cancelsBehind(skuModel: Readonly<SkuModel>): number {
  const pos = skuModel.state?.pos ?? -1;
  return skuModel.reservations.filter((r) => r.cancelJob?.step === 'apply' && r.cancelJob.entries.some((entry) => entry.seq > pos)).length;
}

/** No stock change holds the projection row: ledger writers and FOR SHARE readers may run. */
const rowFree = (skuModel: Readonly<SkuModel>): boolean => skuModel.stock === null;
/** A step that may have to rebuild the SKU (FOR SHARE) can run: the row is free, or no rebuild is needed. */
const canRebuild = (skuModel: Readonly<SkuModel>): boolean => skuModel.stock === null || skuModel.state !== null;

/**
 * A command runs one production step on the real scripts and on the model, then compares them and
 * checks the invariants. `apply` returns the outcome; its first word is tallied.
 */
abstract class ModelCommand implements SkuCommand {
  abstract readonly name: string;
  abstract check(skuModel: Readonly<SkuModel>): boolean;
  abstract toString(): string;
  protected abstract apply(skuModel: SkuModel, real: RealSku): Promise<string>;
  protected subject = '';
  /** Set by apply: Redis must equal the ledger exactly once this command is done. */
  protected equalsLedgerAfter = false;

  async run(skuModel: SkuModel, real: RealSku): Promise<void> {
    real.trace.push(this.toString());
    this.subject = '';
    this.equalsLedgerAfter = false;
    try {
      const outcome = await this.apply(skuModel, real);
      real.trace[real.trace.length - 1] = `${this.name}${this.subject} ${outcome}`;
      // Every word before a parenthesis is tallied: "caught-up-from-3 applied corrected-5-to-3".
      const words = outcome.split(' ');
      const end = words.findIndex((word) => word.startsWith('('));
      for (const word of end === -1 ? words : words.slice(0, end)) {
        if (word === '') continue;
        const key = `${this.name}:${word}`;
        outcomesSeen.set(key, (outcomesSeen.get(key) ?? 0) + 1);
      }
      const observed = await observe(real, skuModel);
      expectAgreement(skuModel, observed);
      expectInvariants(skuModel, observed);
      if (this.equalsLedgerAfter) expectEqualsLedger(skuModel, observed, this.name);
    } catch (error) {
      if (error instanceof Error) error.message += `\n    sequence run: ${real.trace.join(' -> ')}`;
      throw error;
    }
  }
}

/** A command on one reservation: `pick` chooses among those it applies to, so few are skipped. */
abstract class ReservationCommand extends ModelCommand {
  constructor(readonly pick: number) {
    super();
  }

  protected abstract eligible(reservation: ReservationModel): boolean;

  /** Beyond a reservation to act on: what the step needs (e.g. the row lock free). */
  protected ready(_skuModel: Readonly<SkuModel>): boolean {
    return true;
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    return this.ready(skuModel) && skuModel.reservations.some((reservation) => this.eligible(reservation));
  }

  toString(): string {
    return `${this.name}(#${this.pick})`;
  }

  protected target(skuModel: SkuModel): ReservationModel {
    const candidates = skuModel.reservations.filter((reservation) => this.eligible(reservation));
    const reservation = candidates[this.pick % candidates.length];
    if (reservation === undefined) throw new Error(`${this.name}: no reservation to act on`);
    this.subject = ` ${reservation.label}`;
    return reservation;
  }
}

function replyOutcome(reply: ScriptReply, names: Record<string, string>): string {
  const name = names[String(reply[0])] ?? `code ${String(reply[0])}`;
  return reply.length > 1 ? `${name} (${reply.slice(1).join(' ')})` : name;
}

// ---------------------------------------------------------------------------------------------
// The projection, as lib/stock/ledger-projection.ts drives it, with the model ledger as Postgres.

/** LedgerProjection.rebuild / initFrom: initSku from the row read FOR SHARE (callers check rowFree). */
async function rebuildFromLedger(skuModel: SkuModel, real: RealSku, what: string): Promise<string> {
  const row = { onHand: skuModel.ledger.onHand, seq: skuModel.ledger.seq };
  const expected = model.initSku(skuModel, row.onHand, row.seq);
  expect(await initSku(scripts, real.keys, sku, row, holdsRebuildMax), what).toEqual(expected);
  return expected.kind;
}

/** LedgerProjection.apply: the entries, a gap filled from the ledger, a missing state rebuilt. */
async function projectionApply(skuModel: SkuModel, real: RealSku, entries: readonly LedgerEntry[], what: string): Promise<string> {
  const target = entries[entries.length - 1]!.seq;
  const notes: string[] = [];
  let pending: readonly LedgerEntry[] = entries.slice(-entriesPerCallMax);
  for (let round = 0; round < applyRoundsMax; round += 1) {
    const expected = model.applyEntries(skuModel, pending);
    const actual = await applyEntries(scripts, real.keys, sku, pending.map(projected));
    expect(actual, `applyEntries (${what}, entries ${pending.map((entry) => entry.seq).join(',')})`).toEqual(expected);
    if (actual.kind === 'applied' && actual.pos >= target) return notes.length === 0 ? 'applied' : notes.join('+');
    if (actual.kind === 'missing') {
      if (!rowFree(skuModel)) throw new Error(`${what}: a rebuild under another transaction's row lock would wait`);
      notes.push(`rebuilt-${await rebuildFromLedger(skuModel, real, `initSku (${what})`)}`);
      continue;
    }
    pending = model.entriesBetween(skuModel.ledger, actual.pos, target);
    notes.push('gap-filled');
    if (pending.length === 0) throw new Error(`${what}: the ledger has no entries after ${actual.pos} up to ${target}`);
  }
  throw new Error(`${what}: applying up to ${target} took more than ${applyRoundsMax} rounds`);
}

/** LedgerProjection.catchUp: Redis brought from `from` to the ledger's position `upto`. */
async function catchUp(skuModel: SkuModel, real: RealSku, from: number, upto: number, what: string): Promise<string> {
  if (upto <= from) return '';
  const entries = model.entriesBetween(skuModel.ledger, from, upto);
  if (entries.length === 0) return '';
  return projectionApply(skuModel, real, entries, what);
}

// ---------------------------------------------------------------------------------------------
// Reservations.

class Reserve extends ModelCommand {
  readonly name = 'reserve';

  constructor(readonly quantity: number) {
    super();
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    // A missing SKU is rebuilt under FOR SHARE: it waits while a stock change holds the row.
    return canRebuild(skuModel);
  }

  toString(): string {
    return `reserve(${this.quantity})`;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const id = randomId();
    this.subject = `(${this.quantity})`;
    let rebuilt = '';
    if (skuModel.state === null) {
      // As ReservationService.create: the script reports the SKU missing, SkuState.rebuild
      // creates it from the ledger row, and the same call is tried again.
      expectReply(await real.createReservation(id, this.quantity), [-3, sku], 'createReservation on a lost SKU');
      rebuilt = ` after-rebuild-${await rebuildFromLedger(skuModel, real, 'initSku (read-through rebuild)')}`;
    }
    const reply = await real.createReservation(id, this.quantity);
    const expected = model.reserve(skuModel, this.quantity);
    const reclaimed = takeReclaimed(reply).map((hold) => `${hold.reservationId}:${hold.quantity}`).sort();
    expect(reclaimed, 'createReservation reclaim report').toEqual(expected.reclaimed);
    if (!expected.ok) {
      expectReply(reply, expected.reply, 'createReservation (short)');
      return `short${rebuilt}`;
    }
    expect(reply[0], 'createReservation').toBe(1);
    const [createdAtMs, expiresAtMs] = [Number(reply[1]), Number(reply[2])];
    expect(expiresAtMs - createdAtMs, 'hold ttl').toBe(holdTtlMs);
    return `created ${model.addReservation(skuModel, id, this.quantity, createdAtMs, expiresAtMs).label}${rebuilt}`;
  }
}

const releasable = new Set(['pending', 'expired', 'released', 'confirmed']);

/** As ReservationService.release: reached for a record Redis has and the ledger does not. */
class Release extends ReservationCommand {
  readonly name: string = 'release';

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.record !== null && releasable.has(reservation.record.status);
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const expected = model.release(skuModel, reservation);
    if (expected === assertReply) {
      await expectAssert(real.release(reservation.id), 'releaseReservation of a hold whose SKU state is lost');
      return 'assert-state-lost';
    }
    const reply = await real.release(reservation.id);
    expectReply(reply, expected, 'releaseReservation');
    return replyOutcome(reply, { '1': String(reply[1]), '2': 'again', '-2': 'refused' });
  }
}

/** The Redis clock passes a pending hold's deadline. */
class Expire extends ReservationCommand {
  readonly name = 'expire';

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.record?.status === 'pending' && reservation.record.hold === 'pending' && !reservation.record.deadlinePassed;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    await real.passDeadline(reservation);
    if (reservation.record !== null) reservation.record.deadlinePassed = true;
    return 'deadline-passed';
  }
}

/**
 * As CommitService.confirm: confirmReservation, then the commit job is queued (BullMQ adds nothing
 * while a job of that id is there); confirming a still-confirmed reservation queues it again. With
 * `addFails` the second round trip fails (Redis gone between the two): the client gets 503 and
 * the reservation is confirmed without a job, until a retry or the reconciler queues it.
 */
class Confirm extends ReservationCommand {
  readonly name = 'confirm';

  constructor(pick: number, readonly addFails = false) {
    super(pick);
  }

  override toString(): string {
    return `confirm(#${this.pick}${this.addFails ? ' add-fails' : ''})`;
  }

  protected eligible(): boolean {
    return true;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const expected = model.confirm(skuModel, reservation);
    if (expected === assertReply) {
      await expectAssert(real.confirm(reservation.id), 'confirmReservation expiring a hold whose SKU state is lost');
      return 'assert-state-lost';
    }
    const reply = await real.confirm(reservation.id);
    expectReply(reply, expected, 'confirmReservation');
    if (reply[0] === 1 || (reply[0] === 2 && reply[1] === 'confirmed')) {
      const queued = reservation.commitJob === null && !this.addFails;
      if (queued) reservation.commitJob = { step: 'queued', fence: Number(reply[0] === 1 ? reply[1] : reply[2]) };
      if (reply[0] === 1 && this.addFails) return 'confirmed-job-add-failed';
      if (reply[0] === 2) return queued ? 'again-job-queued-again' : 'again';
    }
    return replyOutcome(reply.slice(0, 2), { '1': 'confirmed', '2': 'again', '-1': 'missing', '-2': 'released', '-3': 'expired' });
  }
}

/** A committed, cancelled or rejected record's retention passes: Redis expires it (the ledger answers). */
class RetentionPasses extends ReservationCommand {
  readonly name = 'retentionPasses';

  protected eligible(reservation: ReservationModel): boolean {
    const status = reservation.record?.status;
    return status === 'committed' || status === 'cancelled' || status === 'rejected';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    // What the bucket's expiry does once the retention has run: the record is gone.
    await dropRecord(redis, real.keys, reservation.id);
    reservation.record = null;
    return 'expired';
  }
}

// ---------------------------------------------------------------------------------------------
// The commit pipeline (lib/commits/commit-processor.ts, ledger-writer.ts).

/** The worker's ledger transaction for a queued commit job (row FOR UPDATE; no Redis call). */
class LedgerCommit extends ReservationCommand {
  readonly name = 'ledgerCommit';

  protected override ready(skuModel: Readonly<SkuModel>): boolean {
    return rowFree(skuModel);
  }

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.commitJob?.step === 'queued';
  }

  protected async apply(skuModel: SkuModel): Promise<string> {
    const reservation = this.target(skuModel);
    const job = reservation.commitJob!;
    const outcome = model.ledgerCommit(skuModel, reservation, job.fence);
    if (outcome.ledger === 'rejected') {
      // Redis confirmed units the ledger does not have: only after the ledger lost them behind
      // Redis's back (or Redis lost data). Anywhere else this is the oversell the design rules out.
      ensure(skuModel.ledger.entries.some((entry) => entry.lowered > 0), `the ledger refused ${reservation.label}'s allocation: Redis confirmed units the ledger does not have`);
      reservation.commitJob = { step: 'reject', fence: job.fence };
      return 'rejected';
    }
    reservation.commitJob = { step: 'apply', fence: job.fence, entries: outcome.entries };
    return `${outcome.ledger} (position ${outcome.entries.map((entry) => entry.seq).join(',')})`;
  }
}

/** The worker applies its allocation entries (CommitProcessor.applyAll -> LedgerProjection.apply). */
class CommitApply extends ReservationCommand {
  readonly name = 'commitApply';

  protected override ready(skuModel: Readonly<SkuModel>): boolean {
    return canRebuild(skuModel);
  }

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.commitJob?.step === 'apply';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const job = reservation.commitJob;
    if (job?.step !== 'apply') throw new Error('commitApply: no job at its apply step');
    reservation.commitJob = { step: 'finish', fence: job.fence };
    return projectionApply(skuModel, real, job.entries, `commit of ${reservation.label}`);
  }
}

/** The worker's last step: finishCommit, fenced. */
class CommitFinish extends ReservationCommand {
  readonly name = 'commitFinish';

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.commitJob?.step === 'finish';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const fence = reservation.commitJob!.fence;
    reservation.commitJob = null;
    const expected = model.finishCommit(reservation, fence);
    expect(await finishReservation(scripts, real.keys, 'commit', reservation.id, fence, retentionMs), 'finishCommit').toEqual(expected);
    return expected.kind === 'finished' ? 'committed' : `unchanged-${expected.status}`;
  }
}

/** The rejection path's Redis step: rejectReservation, fenced, after the ledger recorded it. */
class CommitReject extends ReservationCommand {
  readonly name = 'commitReject';

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.commitJob?.step === 'reject';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const fence = reservation.commitJob!.fence;
    reservation.commitJob = null;
    const request = { reservationId: reservation.id, fence, lines: [{ sku, quantity: reservation.quantity }], retentionMs };
    const expected = model.rejectReservation(skuModel, reservation, fence);
    if (expected === assertReply) {
      await expectAssert(rejectReservation(scripts, real.keys, request), 'rejectReservation of a hold whose SKU state is lost');
      return 'assert-state-lost';
    }
    expect(await rejectReservation(scripts, real.keys, request), 'rejectReservation').toEqual(expected);
    return expected.kind === 'rejected' ? `rejected (${expected.unitsReturned} units back)` : `unchanged-${expected.status}`;
  }
}

/**
 * BullMQ delivers at least once: a worker that died past its ledger step has its job run again
 * from the start (the stalled check), and a job that completed may run again.
 */
class RedeliverCommit extends ReservationCommand {
  readonly name = 'redeliverCommit';

  /** `forgottenOnly`: only a completed job whose record Redis no longer has (retention passed). */
  constructor(pick: number, readonly forgottenOnly = false) {
    super(pick);
  }

  protected eligible(reservation: ReservationModel): boolean {
    const job = reservation.commitJob;
    if (this.forgottenOnly) return job === null && reservation.ledger !== null && reservation.record === null;
    return job === null ? reservation.ledger !== null : job.step !== 'queued';
  }

  protected async apply(skuModel: SkuModel): Promise<string> {
    const reservation = this.target(skuModel);
    const job = reservation.commitJob;
    reservation.commitJob = { step: 'queued', fence: job?.fence ?? reservation.ledger!.commitFence };
    return job === null ? 'after-completion' : `worker-died-at-${job.step}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The cancel pipeline.

/** As CommitService.cancel, for a reservation the ledger has as committed; queues the cancel job. */
class RequestCancel extends ReservationCommand {
  readonly name = 'requestCancel';

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.ledger?.status === 'committed';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const ledgerFence = reservation.ledger!.fence;
    const requested = reservation.record === null ? 'requested-on-recreated-record' : 'requested';
    const expected = model.requestCancel(reservation);
    const reply = await real.requestCancel(reservation, ledgerFence);
    expectReply(reply, expected, 'requestCancel');
    // BullMQ adds nothing while a job of the same id (cancel-<id>) is there.
    if (reply[0] === 1) reservation.cancelJob ??= { step: 'queued', fence: Number(reply[1]) };
    return replyOutcome(reply, { '1': requested, '2': 'already-cancelled', '-1': 'refused' });
  }
}

/** The cancel worker's ledger transaction (LedgerWriter.cancel), fenced. */
class LedgerCancel extends ReservationCommand {
  readonly name = 'ledgerCancel';

  protected override ready(skuModel: Readonly<SkuModel>): boolean {
    return rowFree(skuModel);
  }

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.cancelJob?.step === 'queued';
  }

  protected async apply(skuModel: SkuModel): Promise<string> {
    const reservation = this.target(skuModel);
    const fence = reservation.cancelJob!.fence;
    const outcome = model.ledgerCancel(skuModel, reservation, fence);
    reservation.cancelJob = outcome.ledger === 'stale' ? null : { step: 'apply', fence, entries: outcome.entries };
    return `${outcome.ledger}${outcome.entries.length > 0 ? ` (position ${outcome.entries[0]!.seq})` : ''}`;
  }
}

/** The cancel worker applies its deallocation entries. */
class CancelApply extends ReservationCommand {
  readonly name = 'cancelApply';

  protected override ready(skuModel: Readonly<SkuModel>): boolean {
    return canRebuild(skuModel);
  }

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.cancelJob?.step === 'apply';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const job = reservation.cancelJob;
    if (job?.step !== 'apply') throw new Error('cancelApply: no job at its apply step');
    reservation.cancelJob = { step: 'finish', fence: job.fence };
    const before = skuModel.state?.pos ?? -1;
    const outcome = await projectionApply(skuModel, real, job.entries, `cancel of ${reservation.label}`);
    return before >= job.entries[0]!.seq ? `${outcome}-already-there` : outcome;
  }
}

/** The cancel worker's last step: finishCancel, fenced. */
class CancelFinish extends ReservationCommand {
  readonly name = 'cancelFinish';

  protected eligible(reservation: ReservationModel): boolean {
    return reservation.cancelJob?.step === 'finish';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    const fence = reservation.cancelJob!.fence;
    reservation.cancelJob = null;
    const expected = model.finishCancel(reservation, fence);
    expect(await finishReservation(scripts, real.keys, 'cancel', reservation.id, fence, retentionMs), 'finishCancel').toEqual(expected);
    return expected.kind === 'finished' ? 'cancelled' : `unchanged-${expected.status}`;
  }
}

/** A cancel job run again: its worker died past the ledger step, or at least once after completion. */
class RedeliverCancel extends ReservationCommand {
  readonly name = 'redeliverCancel';

  /** `forgottenOnly`: only a completed job whose record Redis no longer has (retention passed). */
  constructor(pick: number, readonly forgottenOnly = false) {
    super(pick);
  }

  protected eligible(reservation: ReservationModel): boolean {
    const job = reservation.cancelJob;
    if (this.forgottenOnly) return job === null && reservation.ledger?.status === 'cancelled' && reservation.record === null;
    return job === null ? reservation.ledger?.status === 'cancelled' : job.step !== 'queued';
  }

  protected async apply(skuModel: SkuModel): Promise<string> {
    const reservation = this.target(skuModel);
    const job = reservation.cancelJob;
    reservation.cancelJob = { step: 'queued', fence: job?.fence ?? reservation.ledger!.fence };
    return job === null ? 'after-completion' : `worker-died-at-${job.step}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Stock changes (lib/stock/stock-service.ts), split at the protocol's round trips.

/** The script's result with its reclaim report reduced to sorted hold members, as the model gives it. */
function withReclaimedMembers(result: PrepareStockChangeResult): unknown {
  if (result.kind !== 'ready' && result.kind !== 'below-reserved') return result;
  return { ...result, reclaimed: result.reclaimed.map((hold) => `${hold.reservationId}:${hold.quantity}`).sort() };
}

/**
 * StockService.change up to its COMMIT: BEGIN, the row locked FOR UPDATE and read, then
 * prepareStockChange (Redis brought to the ledger's position first: catch-up from the ledger),
 * which for a decrease stages this change's debit. A refusal (below reserved, or on-hand below
 * zero) rolls back at once with nothing staged. Otherwise the change stays in flight, holding the
 * row, until StockEnd.
 */
class StockBegin extends ModelCommand {
  readonly name = 'stockBegin';

  constructor(readonly kind: 'adjust' | 'set', readonly amount: number) {
    super();
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    return skuModel.stock === null;
  }

  toString(): string {
    return `stockBegin(${this.kind} ${this.amount})`;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    skuModel.stockChanges += 1;
    const label = `s${skuModel.stockChanges}`;
    const row = { onHand: skuModel.ledger.onHand, seq: skuModel.ledger.seq };
    const delta = this.kind === 'set' ? this.amount - row.onHand : this.amount;
    const onHandAfter = row.onHand + delta;
    this.subject = `(${label} ${this.kind} ${this.amount}: ${delta >= 0 ? '+' : ''}${delta})`;
    const debit = delta < 0 && onHandAfter >= 0 ? { id: randomId(), units: -delta } : undefined;
    const notes: string[] = [];
    const behind = cancelsBehind(skuModel);
    let ready = false;
    for (let round = 0; round < catchUpRoundsMax && !ready; round += 1) {
      const expected = model.prepareStockChange(skuModel, row.seq, row.onHand, debit);
      const actual = await prepareStockChange(scripts, real.keys, {
        sku, ledgerSeq: row.seq, ledgerOnHand: row.onHand, ...(debit === undefined ? {} : { debit }), reclaimPerSkuMax, holdsRebuildMax,
      });
      expect(withReclaimedMembers(actual), 'prepareStockChange').toEqual(expected);
      if (actual.kind === 'behind') {
        notes.push(`caught-up-from-${actual.pos}`, await catchUp(skuModel, real, actual.pos, row.seq, `catch-up of ${label}`));
        continue;
      }
      if (actual.kind === 'too-many-holds') throw new Error('prepareStockChange: too many holds');
      if (actual.kind === 'ready') {
        if (actual.driftCorrected) notes.push('drift-corrected');
        if (actual.orphanDebitReleased > 0) notes.push(`orphan-debit-released-${actual.orphanDebitReleased}`);
      }
      if (actual.kind === 'below-reserved') return `refused-below-reserved ${notes.join(' ')}`;
      ready = true;
    }
    if (!ready) throw new Error(`${label}: Redis did not reach the ledger's position in ${catchUpRoundsMax} rounds`);
    if (behind > cancelsBehind(skuModel)) notes.push('past-a-cancel-in-flight');
    if (onHandAfter < 0) return `refused-below-zero ${notes.join(' ')}`;
    skuModel.stock = { label, delta, onHandAfter, debit: debit ?? null };
    // Under the row lock, at the ledger's position: Redis equals the ledger but for this debit.
    const observed = await observe(real, skuModel);
    ensure(observed.state?.pos === row.seq && observed.state.onHand === row.onHand && observed.state.debit === (debit?.units ?? 0),
      `${label}: after prepareStockChange Redis is not at the ledger's position and on-hand with only its own debit`);
    return `${delta < 0 ? 'debit-staged' : delta > 0 ? 'increase' : 'no-change'} ${notes.join(' ')}`.trim();
  }
}

/**
 * How the change's transaction ends. `commit`: the entry (naming the debit), the projection and
 * COMMIT; its apply is pending (StockApply, which may come late). `rollback`: a statement or the
 * connection failed before COMMIT; its releaseDebit is pending (ReleaseDebit, which may land late,
 * after other changes). `committed-apply-lost`: the COMMIT happened but its outcome is unknown to
 * the API (503): the debit stays pending and nothing is applied. `commit-failed`: the same 503,
 * and the COMMIT did not happen: no entry, the debit stays pending.
 */
type StockOutcome = 'commit' | 'rollback' | 'committed-apply-lost' | 'commit-failed';

class StockEnd extends ModelCommand {
  readonly name = 'stockEnd';

  constructor(readonly outcome: StockOutcome) {
    super();
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    return skuModel.stock !== null;
  }

  toString(): string {
    return `stockEnd(${this.outcome})`;
  }

  protected async apply(skuModel: SkuModel): Promise<string> {
    const change = skuModel.stock!;
    skuModel.stock = null;
    this.subject = `(${change.label} ${this.outcome})`;
    if (this.outcome === 'rollback') {
      if (change.debit !== null) skuModel.debitReleases.push({ label: change.label, debitId: change.debit.id });
      return change.debit === null ? 'rolled-back' : 'rolled-back-release-pending';
    }
    if (this.outcome === 'commit-failed') return change.debit === null ? 'commit-failed' : 'commit-failed-debit-left';
    if (change.delta === 0) return 'committed-nothing';
    const entry = model.ledgerAdjust(skuModel, change.delta, change.debit?.id ?? null);
    if (this.outcome === 'committed-apply-lost') return `committed-apply-lost (position ${entry.seq})`;
    skuModel.stockApplies.push({ label: change.label, entry });
    return `committed (position ${entry.seq})`;
  }
}

/** The API applies a committed change's entry (LedgerProjection.apply), whenever it gets there. */
class StockApply extends ModelCommand {
  readonly name = 'stockApply';

  constructor(readonly pick: number) {
    super();
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    return skuModel.stockApplies.length > 0 && canRebuild(skuModel);
  }

  toString(): string {
    return `stockApply(#${this.pick})`;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const [pending] = skuModel.stockApplies.splice(this.pick % skuModel.stockApplies.length, 1);
    this.subject = ` ${pending!.label}`;
    const before = skuModel.state?.pos ?? -1;
    const outcome = await projectionApply(skuModel, real, [pending!.entry], `apply of ${pending!.label}`);
    return before >= pending!.entry.seq ? `${outcome}-already-there` : outcome;
  }
}

/** A rolled-back change releases its debit by id (StockService.change's catch), whenever it gets there. */
class ReleaseDebit extends ModelCommand {
  readonly name: string = 'releaseDebit';

  constructor(readonly pick: number) {
    super();
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    return skuModel.debitReleases.length > 0;
  }

  toString(): string {
    return `${this.name}(#${this.pick})`;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const [pending] = skuModel.debitReleases.splice(this.pick % skuModel.debitReleases.length, 1);
    this.subject = ` ${pending!.label}`;
    const otherDebit = skuModel.state?.did !== undefined && skuModel.state.did !== null && skuModel.state.did !== pending!.debitId;
    const expected = model.releaseDebit(skuModel, pending!.debitId);
    expect(await releaseDebit(scripts, real.keys, sku, pending!.debitId), 'releaseDebit').toEqual(expected);
    if (expected.kind === 'released') return `released (${expected.units})`;
    return otherDebit ? 'not-pending-another-debit-kept' : 'not-pending';
  }
}

// ---------------------------------------------------------------------------------------------
// Failures, rebuilds and the reconciler.

class LoseRedisData extends ModelCommand {
  readonly name = 'loseRedisData';

  constructor(readonly scope: 'all' | 'state') {
    super();
  }

  check(): boolean {
    return true;
  }

  toString(): string {
    return `loseRedisData(${this.scope})`;
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    if (this.scope === 'all') await real.loseEverything();
    else await real.loseState();
    model.loseRedisData(skuModel, this.scope);
    return this.scope === 'all' ? 'lost-everything' : 'lost-state';
  }
}

/** The read-through rebuild (SkuState.read / LedgerProjection.rebuild): initSku from the row FOR SHARE. */
class Rebuild extends ModelCommand {
  readonly name = 'rebuild';

  check(skuModel: Readonly<SkuModel>): boolean {
    return rowFree(skuModel);
  }

  toString(): string {
    return 'rebuild';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const behind = cancelsBehind(skuModel);
    const outcome = await rebuildFromLedger(skuModel, real, 'initSku');
    return behind > cancelsBehind(skuModel) ? `${outcome} past-a-cancel-in-flight` : outcome;
  }
}

/**
 * A reconcile run on this SKU (SkuReconciliation.reconcilePage, then StuckCommits.requeue): the row
 * FOR SHARE; inspectSku (reclaiming); a missing state rebuilt; else Redis caught up to the
 * ledger's position and correctOnHand at that position; the holds audit; confirmed reservations
 * whose job is not running queued again. Afterwards Redis equals the ledger exactly.
 */
class Reconcile extends ModelCommand {
  readonly name = 'reconcile';

  check(skuModel: Readonly<SkuModel>): boolean {
    return rowFree(skuModel);
  }

  toString(): string {
    return 'reconcile';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const row = { onHand: skuModel.ledger.onHand, seq: skuModel.ledger.seq };
    const expectedInspection = model.inspectSku(skuModel);
    const inspected = await real.inspect();
    const reclaimedMembers = takeReclaimed(inspected).map((hold) => `${hold.reservationId}:${hold.quantity}`).sort();
    expectReply(inspected.slice(0, 9), expectedInspection.reply, 'inspectSku');
    expect(inspected.slice(9).map(String).sort(), 'inspectSku confirmed holds').toEqual(expectedInspection.confirmedMembers);
    expect(reclaimedMembers, 'inspectSku reclaim report').toEqual(expectedInspection.reclaimedMembers);
    const notes: string[] = [];
    const behind = cancelsBehind(skuModel);
    if (inspected[0] === -1) {
      notes.push(`rebuilt-${await rebuildFromLedger(skuModel, real, 'initSku (reconciler)')}`);
    } else {
      const pos = Number(inspected[3]);
      if (pos < row.seq) notes.push(`caught-up-from-${pos}`, await catchUp(skuModel, real, pos, row.seq, 'reconciler catch-up'));
      const expected = model.correctOnHand(skuModel, row.seq, row.onHand);
      const actual = await correctOnHand(scripts, real.keys, sku, row, false);
      expect(actual, 'correctOnHand').toEqual(expected);
      if (actual.kind !== 'done') throw new Error(`correctOnHand under the row held FOR SHARE replied ${actual.kind}`);
      if (actual.onHandBefore !== row.onHand) notes.push(`corrected-${actual.onHandBefore}-to-${row.onHand}`);
      if (actual.debitReleased > 0) notes.push(`debit-released-${actual.debitReleased}`);
    }
    const audit = await real.audit(`audit-${randomId()}`);
    expectReply(audit, [2, model.reservedOf(skuModel), 0], 'auditHolds: no drift between reserved and the holds');
    for (const member of expectedInspection.confirmedMembers) {
      const reservation = skuModel.reservations.find((r) => model.holdMember(r) === member);
      if (reservation?.record?.status !== 'confirmed' || reservation.commitJob !== null) continue;
      reservation.commitJob = { step: 'queued', fence: reservation.record.fence };
      notes.push(`requeued-${reservation.label}`);
    }
    if (behind > cancelsBehind(skuModel)) notes.push('past-a-cancel-in-flight');
    this.equalsLedgerAfter = true;
    return notes.length === 0 ? 'nothing-to-do' : notes.join(' ');
  }
}

/**
 * Not a protocol step: the ledger loses units behind Redis's back at Redis's own position (as if
 * Redis had been restored from a copy made before a loss the ledger knows of). Redis now offers
 * units the ledger does not have; the next correction, catch-up or rebuild takes the ledger's,
 * and a confirmation of those units ends in the rejection path.
 */
class LowerLedger extends ModelCommand {
  readonly name = 'lowerLedger';

  constructor(readonly units: number) {
    super();
  }

  check(skuModel: Readonly<SkuModel>): boolean {
    return rowFree(skuModel) && skuModel.state !== null && skuModel.state.pos === skuModel.ledger.seq && skuModel.ledger.onHand >= 1;
  }

  toString(): string {
    return `lowerLedger(${this.units})`;
  }

  protected async apply(skuModel: SkuModel): Promise<string> {
    return `lowered-${model.lowerLedger(skuModel, this.units)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Deliberately wrong steps, for the tests that prove the checker catches them.

/** Wrong model step: the script releases the hold, the "model" forgets to. */
class ReleaseKeepingHoldInModel extends Release {
  override readonly name = 'releaseKeepingHoldInModel';

  protected override eligible(reservation: ReservationModel): boolean {
    return reservation.record?.status === 'pending' && reservation.record.hold === 'pending' && !reservation.record.deadlinePassed;
  }

  protected override async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const reservation = this.target(skuModel);
    expectReply(await real.release(reservation.id), [1, 'released'], 'releaseReservation');
    if (reservation.record !== null) reservation.record.status = 'released';
    return 'released';
  }
}

/**
 * Broken protocol, mirrored faithfully by the model: a rolled-back change's give-back releases
 * whatever debit is pending (what the previous design's version-fenced give-back amounted to),
 * instead of its own by id. Only the invariant can see it.
 */
class ReleaseWhateverDebitIsPending extends ReleaseDebit {
  override readonly name = 'releaseWhateverDebitIsPending';

  override check(skuModel: Readonly<SkuModel>): boolean {
    return skuModel.debitReleases.length > 0 && skuModel.state?.did !== undefined && skuModel.state.did !== null;
  }

  protected override async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const [pending] = skuModel.debitReleases.splice(this.pick % skuModel.debitReleases.length, 1);
    this.subject = ` ${pending!.label}`;
    const pendingNow = await redis.hget(real.keys.skuState(sku), 'did');
    const expected = model.releaseDebit(skuModel, pendingNow!);
    expect(await releaseDebit(scripts, real.keys, sku, pendingNow!), 'releaseDebit').toEqual(expected);
    return pendingNow === pending!.debitId ? 'released-own' : 'released-another-changes-debit';
  }
}

/**
 * Broken protocol, mirrored faithfully by the model: a stock increase applied to Redis before its
 * COMMIT (as an entry at the next position), and the transaction then rolls back.
 */
class ApplyBeforeCommit extends ModelCommand {
  readonly name = 'applyBeforeCommit';

  check(skuModel: Readonly<SkuModel>): boolean {
    return rowFree(skuModel) && skuModel.state !== null && skuModel.state.pos === skuModel.ledger.seq;
  }

  toString(): string {
    return 'applyBeforeCommit';
  }

  protected async apply(skuModel: SkuModel, real: RealSku): Promise<string> {
    const ledger = skuModel.ledger;
    const entry: LedgerEntry = { seq: ledger.seq + 1, delta: 2, onHandAfter: ledger.onHand + 2, kind: 'adjustment', reservationId: null, debitId: null, lowered: 0 };
    const expected = model.applyEntries(skuModel, [entry]);
    expect(await applyEntries(scripts, real.keys, sku, [projected(entry)]), 'applyEntries (before COMMIT)').toEqual(expected);
    return 'applied-then-rolled-back';
  }
}

// ---------------------------------------------------------------------------------------------
// Running sequences.

/**
 * A command that runs only while `precondition` holds: how a focused command set steers towards
 * the moment an interleaving needs, without changing what the command does.
 */
class Guarded implements SkuCommand {
  constructor(
    private readonly command: SkuCommand,
    private readonly precondition: (skuModel: Readonly<SkuModel>) => boolean,
  ) {}

  check(skuModel: Readonly<SkuModel>): boolean {
    return this.precondition(skuModel) && this.command.check(skuModel);
  }

  run(skuModel: SkuModel, real: RealSku): Promise<void> {
    return this.command.run(skuModel, real);
  }

  toString(): string {
    return this.command.toString();
  }
}

/** The SKU comes into being as PUT /stock creates it: a set-on-hand change from the new row. */
async function createSku(skuModel: SkuModel, real: RealSku, initialOnHand: number): Promise<void> {
  await new StockBegin('set', initialOnHand).run(skuModel, real);
  await new StockEnd('commit').run(skuModel, real);
  if (skuModel.stockApplies.length > 0) await new StockApply(0).run(skuModel, real);
}

async function runSequence(initialOnHand: number, sequence: Iterable<SkuCommand>): Promise<void> {
  runCount += 1;
  const real = new RealSku(`${filePrefix}${runCount}:`);
  try {
    const setup = async () => {
      const skuModel = model.emptySku(sku);
      await createSku(skuModel, real, initialOnHand);
      return { model: skuModel, real };
    };
    await fc.asyncModelRun(setup, sequence);
  } finally {
    await redis.unlink(...real.allKeys());
  }
}

/** A fixed sequence where every command must apply (none skipped); returns the trace. */
async function runScript(initialOnHand: number, commands: readonly SkuCommand[]): Promise<string[]> {
  runCount += 1;
  const real = new RealSku(`${filePrefix}${runCount}:`);
  try {
    const skuModel = model.emptySku(sku);
    await createSku(skuModel, real, initialOnHand);
    for (const command of commands) {
      expect(command.check(skuModel), `${command.toString()} applies after: ${real.trace.join(' -> ')}`).toBe(true);
      await command.run(skuModel, real);
    }
    return real.trace;
  } finally {
    await redis.unlink(...real.allKeys());
  }
}

function modelProperty(commands: fc.Arbitrary<SkuCommand>, maxCommands = 50) {
  return fc.asyncProperty(fc.integer({ min: 0, max: 12 }), fc.commands([commands], { maxCommands, size: 'max' }), (initialOnHand, sequence) =>
    runSequence(initialOnHand, sequence),
  );
}

const pick = fc.nat({ max: 63 });
const one = (make: () => SkuCommand) => fc.constant(null).map((): SkuCommand => make());
const reserveCommand = fc.integer({ min: 1, max: 4 }).map((quantity): SkuCommand => new Reserve(quantity));
const stockBeginCommand = fc.oneof(
  { arbitrary: fc.integer({ min: -5, max: 5 }).filter((delta) => delta !== 0).map((delta): SkuCommand => new StockBegin('adjust', delta)), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 10 }).map((onHand): SkuCommand => new StockBegin('set', onHand)), weight: 1 },
);
function stockEndCommand(outcomes: Partial<Record<StockOutcome, number>>): fc.Arbitrary<SkuCommand> {
  return fc.oneof(...Object.entries(outcomes).map(([outcome, weight]) => ({ arbitrary: one(() => new StockEnd(outcome as StockOutcome)), weight: weight! })));
}
const confirmCommand = fc.tuple(pick, fc.nat({ max: 9 })).map(([p, roll]): SkuCommand => new Confirm(p, roll === 0));

/** The commit and cancel pipeline; `applyWeight` sets how soon the workers' apply steps come. */
function pipelineCommands(applyWeight = 5, redeliverWeight = 1) {
  return [
    { arbitrary: confirmCommand, weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new LedgerCommit(p)), weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new CommitApply(p)), weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new CommitFinish(p)), weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new CommitReject(p)), weight: 2 },
    { arbitrary: pick.map((p): SkuCommand => new RedeliverCommit(p)), weight: redeliverWeight },
    { arbitrary: pick.map((p): SkuCommand => new RequestCancel(p)), weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new LedgerCancel(p)), weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new CancelApply(p)), weight: applyWeight },
    { arbitrary: pick.map((p): SkuCommand => new CancelFinish(p)), weight: 5 },
    { arbitrary: pick.map((p): SkuCommand => new RedeliverCancel(p)), weight: redeliverWeight },
  ];
}

/** Every command, each as production sequences it. */
const fullProtocol = fc.oneof(
  { arbitrary: reserveCommand, weight: 6 },
  { arbitrary: pick.map((p): SkuCommand => new Release(p)), weight: 1 },
  { arbitrary: pick.map((p): SkuCommand => new Expire(p)), weight: 1 },
  ...pipelineCommands(),
  { arbitrary: stockBeginCommand, weight: 3 },
  { arbitrary: stockEndCommand({ commit: 5, rollback: 3, 'committed-apply-lost': 1, 'commit-failed': 1 }), weight: 3 },
  { arbitrary: pick.map((p): SkuCommand => new StockApply(p)), weight: 3 },
  { arbitrary: pick.map((p): SkuCommand => new ReleaseDebit(p)), weight: 2 },
  { arbitrary: fc.constantFrom<'all' | 'state'>('all', 'state').map((scope): SkuCommand => new LoseRedisData(scope)), weight: 1 },
  { arbitrary: one(() => new Rebuild()), weight: 1 },
  { arbitrary: one(() => new Reconcile()), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 3 }).map((units): SkuCommand => new LowerLedger(units)), weight: 1 },
  { arbitrary: pick.map((p): SkuCommand => new RetentionPasses(p)), weight: 1 },
);

/** Outcomes the full property must reach, or it proves less than it claims. */
const outcomesRequired = [
  'reserve:created', 'reserve:short', 'reserve:after-rebuild-created', 'release:released', 'release:expired', 'release:refused',
  'expire:deadline-passed',
  'confirm:confirmed', 'confirm:confirmed-job-add-failed', 'confirm:again-job-queued-again', 'confirm:expired', 'confirm:missing',
  'ledgerCommit:committed', 'ledgerCommit:already-committed', 'ledgerCommit:rejected',
  'commitApply:applied', 'commitApply:rebuilt-created', 'commitFinish:committed', 'commitFinish:unchanged-*',
  'commitReject:rejected', 'redeliverCommit:after-completion', 'redeliverCommit:worker-died-at-*',
  'requestCancel:requested', 'requestCancel:requested-on-recreated-record', 'requestCancel:refused',
  'ledgerCancel:cancelled', 'ledgerCancel:already-cancelled', 'cancelApply:applied', 'cancelFinish:cancelled', 'cancelFinish:unchanged-*',
  'stockBegin:debit-staged', 'stockBegin:increase', 'stockBegin:refused-below-reserved', 'stockBegin:refused-below-zero',
  'stockBegin:caught-up-from-*', 'stockBegin:drift-corrected', 'stockBegin:orphan-debit-released-*',
  'stockEnd:committed', 'stockEnd:rolled-back-release-pending', 'stockEnd:committed-apply-lost', 'stockEnd:commit-failed-debit-left',
  'stockApply:applied', 'stockApply:applied-already-there', 'releaseDebit:released', 'releaseDebit:not-pending',
  'loseRedisData:lost-everything', 'loseRedisData:lost-state', 'rebuild:created', 'rebuild:exists',
  'reconcile:nothing-to-do', 'reconcile:rebuilt-created', 'reconcile:caught-up-from-*', 'reconcile:corrected-*', 'reconcile:debit-released-*',
  'reconcile:requeued-*', 'lowerLedger:lowered-*', 'retentionPasses:expired',
];

/** The required outcomes no run reached; "name:prefix*" matches any outcome word with that prefix. */
function missingOutcomes(required: readonly string[]): string[] {
  const seen = [...outcomesSeen.keys()];
  return required.filter((outcome) => (outcome.endsWith('*') ? !seen.some((key) => key.startsWith(outcome.slice(0, -1))) : !outcomesSeen.has(outcome)));
}

async function assertWithOutcomes(commands: fc.Arbitrary<SkuCommand>, numRuns: number, required: readonly string[], maxCommands = 50): Promise<void> {
  outcomesSeen.clear();
  await fc.assert(modelProperty(commands, maxCommands), { seed, numRuns });
  expect(missingOutcomes(required), 'outcomes no sequence reached').toEqual([]);
}

// Focused command sets for the interleavings that broke the previous design. Each keeps to the
// commands its interleaving needs, so the search reaches it often, and checks every invariant.

/** Rolled-back decreases whose release by id lands late, after other changes staged their own. */
const lateGiveBack = fc.oneof(
  { arbitrary: reserveCommand, weight: 2 },
  { arbitrary: pick.map((p): SkuCommand => new Release(p)), weight: 1 },
  { arbitrary: stockBeginCommand, weight: 4 },
  { arbitrary: stockEndCommand({ commit: 3, rollback: 4, 'commit-failed': 1 }), weight: 4 },
  { arbitrary: pick.map((p): SkuCommand => new StockApply(p)), weight: 2 },
  { arbitrary: pick.map((p): SkuCommand => new ReleaseDebit(p)), weight: 1 },
);

/**
 * A stock change catching Redis up (the old "resync") while a cancel is in flight: increases lose
 * their apply, so Redis stays behind and the next change catches up past the deallocation
 * whose apply the cancel worker still owes; that apply lands late.
 */
const catchUpDuringCancel = fc.oneof(
  { arbitrary: reserveCommand, weight: 4 },
  ...pipelineCommands(1, 0),
  { arbitrary: stockBeginCommand, weight: 4 },
  { arbitrary: stockEndCommand({ commit: 1, 'committed-apply-lost': 2 }), weight: 4 },
  { arbitrary: pick.map((p): SkuCommand => new StockApply(p)), weight: 1 },
);

/**
 * A rebuild while a cancel is in flight: Redis loses everything once the ledger has a committed
 * reservation, the cancel request recreates its record, the ledger deallocates, the SKU is rebuilt
 * from the ledger, and the worker's apply lands afterwards. Reserves wait for the SKU (a reserve
 * on a lost SKU would rebuild it at once), so the rebuild comes between.
 */
const rebuildDuringCancel = fc.oneof(
  { arbitrary: reserveCommand.map((command): SkuCommand => new Guarded(command, (skuModel) => skuModel.state !== null)), weight: 3 },
  ...pipelineCommands(1, 0),
  {
    arbitrary: one(() => new Guarded(new LoseRedisData('all'), (skuModel) => skuModel.reservations.some((r) => r.ledger?.status === 'committed'))),
    weight: 2,
  },
  { arbitrary: one(() => new Guarded(new Rebuild(), (skuModel) => skuModel.state === null)), weight: 2 },
);

/** Jobs re-delivered after their record's retention ran out (RESERVATION_RETENTION_SECONDS). */
const redeliveryAfterRetention = fc.oneof(
  { arbitrary: reserveCommand, weight: 4 },
  ...pipelineCommands(5, 0),
  { arbitrary: pick.map((p): SkuCommand => new RetentionPasses(p)), weight: 3 },
  { arbitrary: pick.map((p): SkuCommand => new RedeliverCommit(p, true)), weight: 3 },
  { arbitrary: pick.map((p): SkuCommand => new RedeliverCancel(p, true)), weight: 3 },
);

/** A trace step's command and subject, without its outcome: "stockEnd(s1 commit)", "releaseDebit s2". */
const stepHead = (step: string) => step.split(' ').slice(0, 2).join(' ');

describe('the Lua scripts against a model of one SKU and its ledger', () => {
  it('agree with the model and keep the invariants over random sequences of the whole protocol', async () => {
    await assertWithOutcomes(fullProtocol, 250, outcomesRequired, 150);
  });

  it('a late release of a rolled-back debit never touches another change\'s debit (was: the give-back lands on the wrong change)', async () => {
    // A stages a decrease and rolls back; B takes the row, releases A's debit as a leftover and
    // stages its own; A's release lands now (B in flight), then B commits and is applied.
    const trace = await runScript(10, [
      new StockBegin('adjust', -3), new StockEnd('rollback'), new StockBegin('adjust', -2), new ReleaseDebit(0),
      new StockEnd('commit'), new StockApply(0), new Reconcile(),
    ]);
    expect(trace.map(stepHead)).toEqual([
      'stockBegin(s1 set', 'stockEnd(s1 commit)', 'stockApply s1',
      'stockBegin(s2 adjust', 'stockEnd(s2 rollback)', 'stockBegin(s3 adjust', 'releaseDebit s2', 'stockEnd(s3 commit)', 'stockApply s3', 'reconcile nothing-to-do',
    ]);
    expect(trace[5]).toContain('orphan-debit-released-3');
    expect(trace[6]).toContain('not-pending-another-debit-kept');
    // And landing after B committed and was applied.
    const later = await runScript(10, [new StockBegin('adjust', -3), new StockEnd('rollback'), new StockBegin('adjust', -2), new StockEnd('commit'), new StockApply(0), new ReleaseDebit(0), new Reconcile()]);
    expect(later.at(-2)).toContain('not-pending');
    outcomesSeen.clear();
    await fc.assert(modelProperty(lateGiveBack), { seed, numRuns: 100 });
    expect(missingOutcomes(['releaseDebit:not-pending-another-debit-kept', 'stockBegin:orphan-debit-released-*', 'releaseDebit:released']), 'outcomes no sequence reached').toEqual([]);
  });

  it('a stock change catching up while a cancel is in flight counts the cancel once (was: a resync counted it twice)', async () => {
    const trace = await runScript(5, [
      new Reserve(2), new Confirm(0), new LedgerCommit(0), new CommitApply(0), new CommitFinish(0),
      // An increase whose apply is lost: Redis stays a position behind.
      new StockBegin('adjust', 4), new StockEnd('committed-apply-lost'),
      new RequestCancel(0), new LedgerCancel(0),
      // The next change catches Redis up past the deallocation the cancel worker still owes.
      new StockBegin('adjust', -1), new StockEnd('commit'), new StockApply(0),
      new CancelApply(0), new CancelFinish(0), new Reconcile(),
    ]);
    expect(trace.find((step) => step.startsWith('stockBegin(s3'))).toContain('past-a-cancel-in-flight');
    expect(trace.find((step) => step.startsWith('cancelApply'))).toContain('applied-already-there');
    expect(trace.find((step) => step.startsWith('cancelFinish'))).toContain('cancelled');
    expect(trace.at(-1)).toContain('reconcile nothing-to-do');
    await assertWithOutcomes(catchUpDuringCancel, 60, ['stockBegin:past-a-cancel-in-flight', 'cancelApply:applied-already-there', 'cancelFinish:cancelled'], 150);
  });

  it('a rebuild while a cancel is in flight counts the cancel once (was: counted twice)', async () => {
    const trace = await runScript(5, [
      new Reserve(2), new Confirm(0), new LedgerCommit(0), new CommitApply(0), new CommitFinish(0),
      new LoseRedisData('all'), new RequestCancel(0), new LedgerCancel(0), new Rebuild(),
      new CancelApply(0), new CancelFinish(0), new Reconcile(),
    ]);
    expect(trace.find((step) => step.startsWith('requestCancel'))).toContain('requested-on-recreated-record');
    expect(trace.find((step) => step.startsWith('rebuild'))).toContain('created past-a-cancel-in-flight');
    expect(trace.find((step) => step.startsWith('cancelApply'))).toContain('applied-already-there');
    expect(trace.at(-1)).toContain('reconcile nothing-to-do');
    await assertWithOutcomes(rebuildDuringCancel, 60, ['rebuild:past-a-cancel-in-flight', 'requestCancel:requested-on-recreated-record', 'cancelApply:applied-already-there', 'cancelFinish:cancelled'], 150);
  });

  it('a job re-delivered after its record\'s retention changes nothing (was: a cancel applied twice)', async () => {
    const trace = await runScript(5, [
      new Reserve(2), new Confirm(0), new LedgerCommit(0), new CommitApply(0), new CommitFinish(0),
      new RequestCancel(0), new LedgerCancel(0), new CancelApply(0), new CancelFinish(0), new RetentionPasses(0),
      new RedeliverCancel(0), new LedgerCancel(0), new CancelApply(0), new CancelFinish(0),
      new RedeliverCommit(0), new LedgerCommit(0), new CommitApply(0), new CommitFinish(0), new Reconcile(),
    ]);
    expect(trace.slice(-9).map(stepHead)).toEqual([
      'redeliverCancel r1', 'ledgerCancel r1', 'cancelApply r1', 'cancelFinish r1',
      'redeliverCommit r1', 'ledgerCommit r1', 'commitApply r1', 'commitFinish r1', 'reconcile nothing-to-do',
    ]);
    expect(trace.slice(-8)).toEqual([
      expect.stringContaining('already-cancelled'), expect.stringContaining('applied-already-there'), expect.stringContaining('unchanged-missing'),
      expect.stringContaining('after-completion'), expect.stringContaining('already-committed'), expect.stringContaining('applied'),
      expect.stringContaining('unchanged-missing'), expect.anything(),
    ]);
    await assertWithOutcomes(redeliveryAfterRetention, 80, [
      'retentionPasses:expired', 'redeliverCancel:after-completion', 'ledgerCancel:already-cancelled', 'cancelFinish:unchanged-missing',
      'redeliverCommit:after-completion', 'ledgerCommit:already-committed', 'commitFinish:unchanged-missing',
    ], 150);
  });

  it('the rejection path: a confirmation the ledger cannot honour ends rejected, its units released, Redis corrected', async () => {
    const trace = await runScript(3, [
      new Reserve(3), new Confirm(0), new LowerLedger(2), new LedgerCommit(0), new CommitReject(0), new Reconcile(), new Reserve(1), new Reserve(1),
    ]);
    expect(trace.slice(-6)).toEqual([
      expect.stringContaining('lowered-2'), expect.stringContaining('ledgerCommit r1 rejected'), expect.stringContaining('rejected (3 units back)'),
      expect.stringContaining('corrected-3-to-1'), expect.stringContaining('created'), expect.stringContaining('short'),
    ]);
  });

  // Holds that outlive their SKU state keep their units until returned: a release removes the
  // hold (there is no reserved counter to lower), and the state rebuilt afterwards sums what is left.
  it('after Redis loses the SKU state alone, a hold that outlived it can still be released; the rebuild sums the rest', async () => {
    const trace = await runScript(5, [new Reserve(2), new Reserve(1), new LoseRedisData('state'), new Release(0), new Reconcile(), new Release(0)]);
    expect(trace.slice(-3)).toEqual([
      'release r1 released (released)', expect.stringMatching(/^reconcile rebuilt-created/), 'release r1 again (released)',
    ]);
  });

  it('rejects a wrong model step, shrinking to a reserve and the wrong release', async () => {
    const withWrongStep = fc.oneof(lateGiveBack, pick.map((p): SkuCommand => new ReleaseKeepingHoldInModel(p)));
    const details = await fc.check(modelProperty(withWrongStep), { seed, numRuns: 100 });
    expect(details.failed).toBe(true);
    expect(String(details.errorInstance)).toMatch(/SKU state|holds index/);
    // fast-check may stop at a local minimum: at most one command to put stock in before them.
    const commands = String(details.counterexample?.[1]).replace(/ \/\*.*\*\/$/, '').split(',');
    expect(commands.slice(-2)).toEqual(['reserve(1)', 'releaseKeepingHoldInModel(#0)']);
    expect(commands.length).toBeLessThanOrEqual(3);
  });

  it('rejects a broken protocol the model mirrors faithfully: a late give-back releasing whatever debit is pending', async () => {
    const withBrokenStep = fc.oneof(lateGiveBack, pick.map((p): SkuCommand => new ReleaseWhateverDebitIsPending(p)));
    const details = await fc.check(modelProperty(withBrokenStep), { seed, numRuns: 200 });
    expect(details.failed).toBe(true);
    expect(String(details.errorInstance)).toContain('above the ledger');
    // The invariant fires right after the broken step, whatever came before it.
    expect(String(details.counterexample?.[1]).replace(/ \/\*.*\*\/$/, '').split(',').at(-1)).toMatch(/^releaseWhateverDebitIsPending/);
  });

  it('rejects a broken protocol the model mirrors faithfully: an increase applied to Redis before its COMMIT', async () => {
    const withBrokenStep = fc.oneof(lateGiveBack, one(() => new ApplyBeforeCommit()));
    const details = await fc.check(modelProperty(withBrokenStep), { seed, numRuns: 100 });
    expect(details.failed).toBe(true);
    expect(String(details.errorInstance)).toContain('ahead of the ledger');
    expect(String(details.counterexample?.[1]).replace(/ \/\*.*\*\/$/, '')).toBe('applyBeforeCommit');
  });
});
