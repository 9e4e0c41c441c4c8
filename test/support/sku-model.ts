// A pure model of one SKU as Stockhold's Lua scripts and its Postgres ledger hold it, used by the
// model-based test in test/lua-model.test.ts. Redis's SKU state is an ordered projection of the
// ledger (docs/design.md, "On-hand: one mechanism"): the ledger is an append-only list of entries
// with dense per-SKU positions, and Redis records the position it reflects (`pos`), its on-hand
// there, one pending debit (`debit`, `did`) and the holds. Each function below changes the model
// the way one script (or one ledger transaction) should change the real state and returns the
// reply the script should give, in the shape its typed module in lib/scripts/ returns where it
// has one (raw replies otherwise), so the test can run the same step against the real scripts and
// compare. Nothing here touches Redis or Postgres: the model is the specification, written a
// second time, small.
import type { ApplyEntriesResult, EntryKind } from '../../lib/scripts/apply-entries';
import type { CorrectOnHandResult } from '../../lib/scripts/correct-on-hand';
import type { FinishResult } from '../../lib/scripts/finish-reservation';
import type { InitSkuResult } from '../../lib/scripts/init-sku';
import type { PrepareStockChangeResult } from '../../lib/scripts/prepare-stock-change';
import type { RejectReservationResult } from '../../lib/scripts/reject-reservation';
import type { ReleaseDebitResult } from '../../lib/scripts/release-debit';

/** The reply element whose value the Redis clock decides (createdAt, confirmedAt, retry-after). */
export const clockValue = Symbol('clock value');
export type ExpectedReply = ReadonlyArray<string | number | typeof clockValue>;

/** A script that must refuse with an `ASSERT …` error reply (a broken-invariant 500). */
export const assertReply = Symbol('ASSERT error reply');

export type StoredStatus = 'pending' | 'released' | 'expired' | 'confirmed' | 'committed' | 'cancelled' | 'rejected';
export type HoldKind = 'none' | 'pending' | 'confirmed';

/** The reservation record and its hold, as Redis holds them. */
export interface RecordModel {
  status: StoredStatus;
  /** Field `v`: 1 until confirmed, 2 once confirmed, 3 once a cancel was requested. */
  fence: number;
  /** Field `cx`: a cancel was requested and not finished yet. */
  cancelRequested: boolean;
  /** What the holds index has for this reservation: nothing, a hold with a deadline, or +inf. */
  hold: HoldKind;
  /** The hold's deadline (score and `ex`) lies in the past of the Redis clock. */
  deadlinePassed: boolean;
}

/** One ledger entry (a row of ledger_entries, as lib/scripts/apply-entries.ts projects it). */
export interface LedgerEntry {
  readonly seq: number;
  readonly delta: number;
  /** on_hand_after; lowered only by lowerLedger (the ledger changed behind Redis's back). */
  onHandAfter: number;
  readonly kind: EntryKind;
  readonly reservationId: string | null;
  readonly debitId: string | null;
  /** Units lowerLedger took from this entry's on_hand_after (0 for every honest entry). */
  lowered: number;
}

/** The `skus` projection row (on_hand, seq) and the SKU's entries, positions 1..seq. */
export interface LedgerModel {
  onHand: number;
  seq: number;
  readonly entries: LedgerEntry[];
}

/** The reservation as the ledger's `reservations` table holds it once decided. */
export interface LedgerReservation {
  status: 'committed' | 'cancelled' | 'rejected';
  /** The fence the ledger last wrote: the commit's, then the cancel's. */
  fence: number;
  readonly commitFence: number;
  readonly allocationSeq: number | null;
  deallocationSeq: number | null;
}

/**
 * A commit job (BullMQ job id = reservation id): queued in BullMQ, or in a worker past its ledger
 * step and owing its Redis steps (apply the entries, then finishCommit; or rejectReservation).
 */
export type CommitJobModel =
  | { readonly step: 'queued'; readonly fence: number }
  | { readonly step: 'apply'; readonly fence: number; readonly entries: readonly LedgerEntry[] }
  | { readonly step: 'finish'; readonly fence: number }
  | { readonly step: 'reject'; readonly fence: number };

/** A cancel job (job id cancel-<id>): queued, or past its ledger step owing apply and finishCancel. */
export type CancelJobModel =
  | { readonly step: 'queued'; readonly fence: number }
  | { readonly step: 'apply'; readonly fence: number; readonly entries: readonly LedgerEntry[] }
  | { readonly step: 'finish'; readonly fence: number };

export interface ReservationModel {
  readonly label: string;
  readonly id: string;
  readonly quantity: number;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  record: RecordModel | null;
  ledger: LedgerReservation | null;
  commitJob: CommitJobModel | null;
  cancelJob: CancelJobModel | null;
}

/** Redis's SKU state hash; `reserved` is not kept here but derived from the holds. */
export interface SkuStateModel {
  onHand: number;
  pos: number;
  debit: number;
  did: string | null;
}

/** A stock change holding the projection row FOR UPDATE, its Redis step done, before COMMIT. */
export interface StockInFlight {
  readonly label: string;
  readonly delta: number;
  readonly onHandAfter: number;
  readonly debit: { readonly id: string; readonly units: number } | null;
}

/** A stock change's Redis step that has not run yet: the entry's apply, or a rollback's release. */
export interface PendingApply {
  readonly label: string;
  readonly entry: LedgerEntry;
}
export interface PendingRelease {
  readonly label: string;
  readonly debitId: string;
}

export interface SkuModel {
  readonly sku: string;
  ledger: LedgerModel;
  state: SkuStateModel | null;
  reservations: ReservationModel[];
  /** The stock change holding the row lock, if any (one at a time: the lock serialises them). */
  stock: StockInFlight | null;
  stockApplies: PendingApply[];
  debitReleases: PendingRelease[];
  stockChanges: number;
  /**
   * Set once the run lost Redis's SKU state alone (holds outlived it) or lowered the ledger behind
   * Redis's back: from then on available may legitimately go below zero (an undersell).
   */
  availableMayGoNegative: boolean;
}

/** A SKU the ledger has just created (row on-hand 0, position 0) and Redis has not seen. */
export function emptySku(sku: string): SkuModel {
  return {
    sku,
    ledger: { onHand: 0, seq: 0, entries: [] },
    state: null,
    reservations: [],
    stock: null,
    stockApplies: [],
    debitReleases: [],
    stockChanges: 0,
    availableMayGoNegative: false,
  };
}

export class ModelError extends Error {}

function modelFail(message: string): never {
  throw new ModelError(`model: ${message}`);
}

export function holdMember(reservation: Pick<ReservationModel, 'id' | 'quantity'>): string {
  return `${reservation.id}:${reservation.quantity}`;
}

function withHold(model: SkuModel): ReservationModel[] {
  return model.reservations.filter((r) => r.record !== null && r.record.hold !== 'none');
}

export function reservedOf(model: SkuModel): number {
  return withHold(model).reduce((sum, r) => sum + r.quantity, 0);
}

/** The ledger's on-hand after position `pos` (0 before the first entry). */
export function ledgerOnHandAt(ledger: LedgerModel, pos: number): number {
  if (pos === 0) return 0;
  const entry = ledger.entries[pos - 1];
  if (entry === undefined || entry.seq !== pos) modelFail(`the ledger has no entry at position ${pos}`);
  return entry.onHandAfter;
}

/** The SKU's entries after `from`, up to `upto` (readEntries). */
export function entriesBetween(ledger: LedgerModel, from: number, upto: number): LedgerEntry[] {
  return ledger.entries.filter((entry) => entry.seq > from && entry.seq <= upto);
}

function requireState(model: SkuModel): SkuStateModel {
  if (model.state === null) modelFail('this step needs the SKU state in Redis');
  return model.state;
}

/** Every script that reclaims removes the pending holds whose deadline passed. */
export function reclaimExpired(model: SkuModel): { units: number; holds: number; members: string[] } {
  let units = 0;
  let holds = 0;
  const members: string[] = [];
  for (const reservation of model.reservations) {
    const record = reservation.record;
    if (record === null || record.hold !== 'pending' || !record.deadlinePassed) continue;
    record.hold = 'none';
    units += reservation.quantity;
    holds += 1;
    members.push(holdMember(reservation));
  }
  return { units, holds, members: members.sort() };
}

/** includes/projection rebuildState: the state from the ledger, holds that outlived it summed. */
function rebuildState(model: SkuModel, onHand: number, pos: number): number {
  model.state = { onHand, pos, debit: 0, did: null };
  return withHold(model).length;
}

/** includes/projection clearOrphanDebit. */
function clearDebit(state: SkuStateModel): number {
  const units = state.debit;
  state.debit = 0;
  state.did = null;
  return units;
}

// ---------------------------------------------------------------------------------------------
// Reservation scripts.

/** createReservation (one line); on success the caller adds the reservation with the real clock. */
/** reclaimed: the hold members the call gives back (its reply's reclaim report). */
export function reserve(model: SkuModel, quantity: number): ({ ok: true } | { ok: false; reply: ExpectedReply }) & { reclaimed: string[] } {
  if (model.state === null) return { ok: false, reply: [-3, model.sku], reclaimed: [] };
  const state = model.state;
  const reclaimed = reclaimExpired(model).members;
  const onHand = state.onHand - state.debit;
  const reserved = reservedOf(model);
  const available = onHand - reserved;
  if (available >= quantity) return { ok: true, reclaimed };
  // Retry-After comes from the earliest hold, when it has a deadline (after the reclaim, every
  // pending hold left has one in the future; confirmed ones sort last with +inf).
  const pendingHoldLeft = model.reservations.some((r) => r.record?.hold === 'pending');
  const retryable = onHand >= quantity && reserved > 0 && pendingHoldLeft;
  return { ok: false, reply: [-1, model.sku, quantity, Math.max(available, 0), retryable ? clockValue : -1], reclaimed };
}

export function addReservation(model: SkuModel, id: string, quantity: number, createdAtMs: number, expiresAtMs: number): ReservationModel {
  const reservation: ReservationModel = {
    label: `r${model.reservations.length + 1}`,
    id,
    quantity,
    createdAtMs,
    expiresAtMs,
    record: { status: 'pending', fence: 1, cancelRequested: false, hold: 'pending', deadlinePassed: false },
    ledger: null,
    commitJob: null,
    cancelJob: null,
  };
  model.reservations.push(reservation);
  return reservation;
}

/**
 * includes/reservations returnHolds for a one-line reservation: removes its hold; a hold on a SKU
 * whose state Redis lost is removed too (the rebuilt state sums the holds left).
 */
function returnHold(_model: SkuModel, reservation: ReservationModel): number | typeof assertReply {
  const record = reservation.record;
  if (record === null || record.hold === 'none') return 0;
  record.hold = 'none';
  return reservation.quantity;
}

/** releaseReservation. */
export function release(model: SkuModel, reservation: ReservationModel): ExpectedReply | typeof assertReply {
  const record = reservation.record;
  if (record === null) return [-1];
  if (record.status === 'released' || record.status === 'expired') return [2, record.status];
  if (record.status !== 'pending') return [-2, record.status];
  if (returnHold(model, reservation) === assertReply) return assertReply;
  record.status = record.deadlinePassed ? 'expired' : 'released';
  return [1, record.status];
}

/** confirmReservation. */
export function confirm(model: SkuModel, reservation: ReservationModel): ExpectedReply | typeof assertReply {
  const record = reservation.record;
  if (record === null) return [-1];
  if (record.status === 'confirmed' || record.status === 'committed' || record.status === 'cancelled' || record.status === 'rejected') {
    return [2, record.status, record.fence];
  }
  if (record.status === 'released') return [-2];
  if (record.status === 'expired') return [-3];
  if (record.deadlinePassed) {
    if (returnHold(model, reservation) === assertReply) return assertReply;
    record.status = 'expired';
    return [-3];
  }
  if (record.hold !== 'pending') modelFail(`pending ${reservation.label} before its deadline without its hold`);
  record.status = 'confirmed';
  record.hold = 'confirmed';
  record.fence += 1;
  return [1, record.fence, clockValue];
}

/** finishCommit, fenced by status and fence. */
export function finishCommit(reservation: ReservationModel, fence: number): FinishResult {
  const record = reservation.record;
  if (record === null) return { kind: 'unchanged', status: 'missing' };
  if (record.status !== 'confirmed' || record.fence !== fence) return { kind: 'unchanged', status: record.status };
  record.status = 'committed';
  return { kind: 'finished' };
}

/** finishCancel, fenced by status, fence and the cancel-requested mark. */
export function finishCancel(reservation: ReservationModel, fence: number): FinishResult {
  const record = reservation.record;
  if (record === null) return { kind: 'unchanged', status: 'missing' };
  if (record.status !== 'committed' || record.fence !== fence || !record.cancelRequested) return { kind: 'unchanged', status: record.status };
  record.status = 'cancelled';
  record.cancelRequested = false;
  return { kind: 'finished' };
}

/** rejectReservation, fenced; a record Redis lost still has its holds (if any) removed. */
export function rejectReservation(model: SkuModel, reservation: ReservationModel, fence: number): RejectReservationResult | typeof assertReply {
  const record = reservation.record;
  if (record === null) return { kind: 'unchanged', status: 'missing', unitsReturned: 0 };
  if (record.status !== 'confirmed' || record.fence !== fence) return { kind: 'unchanged', status: record.status, unitsReturned: 0 };
  const units = returnHold(model, reservation);
  if (units === assertReply) return assertReply;
  record.status = 'rejected';
  return { kind: 'rejected', unitsReturned: units };
}

/**
 * requestCancel as CommitService.cancel calls it: only for a reservation the ledger has as
 * committed, with the ledger's copy for recreating a forgotten record.
 */
export function requestCancel(reservation: ReservationModel): ExpectedReply {
  const ledger = reservation.ledger;
  if (ledger?.status !== 'committed') modelFail('requestCancel needs the ledger to say committed');
  if (reservation.record === null) {
    reservation.record = { status: 'committed', fence: ledger.fence, cancelRequested: false, hold: 'none', deadlinePassed: false };
  }
  const record = reservation.record;
  if (record.status === 'cancelled') return [2, record.fence];
  if (record.status !== 'committed') return [-1, record.status];
  if (!record.cancelRequested) {
    record.fence += 1;
    record.cancelRequested = true;
  }
  return [1, record.fence];
}

// ---------------------------------------------------------------------------------------------
// The projection scripts.

/** applyEntries: each entry once, in order; a gap stops it; an allocation removes its hold. */
export function applyEntries(model: SkuModel, entries: readonly LedgerEntry[]): ApplyEntriesResult {
  const state = model.state;
  if (state === null) return { kind: 'missing' };
  for (const entry of entries) {
    if (entry.seq > state.pos + 1) return { kind: 'gap', pos: state.pos };
    const held = entry.kind === 'allocation'
      ? model.reservations.find((r) => r.id === entry.reservationId && r.quantity === -entry.delta && r.record !== null && r.record.hold !== 'none')
      : undefined;
    if (entry.debitId !== null && state.did === entry.debitId) clearDebit(state);
    if (entry.seq === state.pos + 1) {
      state.pos = entry.seq;
      state.onHand = entry.onHandAfter;
    }
    if (held?.record) held.record.hold = 'none';
  }
  return { kind: 'applied', pos: state.pos, onHand: state.onHand, reserved: reservedOf(model), debit: state.debit };
}

/** prepareStockChange with the row read under FOR UPDATE, and this change's debit if a decrease. */
/** The script's result with the reclaim report as the sorted hold members it gave back. */
export type ModelPrepareResult =
  | Exclude<PrepareStockChangeResult, { kind: 'ready' } | { kind: 'below-reserved' }>
  | (Omit<Extract<PrepareStockChangeResult, { kind: 'ready' }>, 'reclaimed'> & { reclaimed: string[] })
  | (Omit<Extract<PrepareStockChangeResult, { kind: 'below-reserved' }>, 'reclaimed'> & { reclaimed: string[] });

export function prepareStockChange(model: SkuModel, ledgerSeq: number, ledgerOnHand: number, debit: { id: string; units: number } | undefined): ModelPrepareResult {
  if (model.state !== null && model.state.pos > ledgerSeq) modelFail(`Redis at ${model.state.pos}, ahead of the ledger at ${ledgerSeq}`);
  if (model.state === null) rebuildState(model, ledgerOnHand, ledgerSeq);
  const state = requireState(model);
  if (state.pos < ledgerSeq) return { kind: 'behind', pos: state.pos };
  const driftCorrected = state.onHand !== ledgerOnHand;
  state.onHand = ledgerOnHand;
  const orphanDebitReleased = clearDebit(state);
  const reclaimed = reclaimExpired(model).members;
  const reserved = reservedOf(model);
  if (debit !== undefined) {
    if (ledgerOnHand - debit.units < reserved) return { kind: 'below-reserved', onHand: ledgerOnHand, reserved, reclaimed };
    state.debit = debit.units;
    state.did = debit.id;
  }
  return { kind: 'ready', onHand: ledgerOnHand, reserved, driftCorrected, orphanDebitReleased, reclaimed };
}

/** releaseDebit, by id. */
export function releaseDebit(model: SkuModel, debitId: string): ReleaseDebitResult {
  const state = model.state;
  if (state === null || state.did !== debitId) return { kind: 'not-pending' };
  return { kind: 'released', units: clearDebit(state) };
}

/** initSku from the ledger row: only creates. */
export function initSku(model: SkuModel, onHand: number, seq: number): InitSkuResult {
  if (model.state !== null) return { kind: 'exists' };
  return { kind: 'created', holdCount: rebuildState(model, onHand, seq) };
}

/** correctOnHand: compare-and-set on the position; sets on-hand and releases a leftover debit. */
export function correctOnHand(model: SkuModel, seq: number, onHand: number): CorrectOnHandResult {
  const state = model.state;
  if (state === null) return { kind: 'missing' };
  if (state.pos !== seq) return { kind: 'moved', pos: state.pos };
  const onHandBefore = state.onHand;
  state.onHand = onHand;
  return { kind: 'done', onHandBefore, debitReleased: clearDebit(state) };
}

/** inspectSku outside a dry run; the confirmed members are compared as a set. */
export function inspectSku(model: SkuModel): { reply: ExpectedReply; confirmedMembers: string[]; reclaimedMembers: string[] } {
  if (model.state === null) return { reply: [-1, withHold(model).length], confirmedMembers: [], reclaimedMembers: [] };
  const state = model.state;
  const reclaimed = reclaimExpired(model);
  const confirmedMembers = model.reservations.filter((r) => r.record?.hold === 'confirmed').map(holdMember).sort();
  const reply = [1, state.onHand, reservedOf(model), state.pos, state.debit, reclaimed.holds, reclaimed.units, withHold(model).length, 0];
  return { reply, confirmedMembers, reclaimedMembers: reclaimed.members };
}

// ---------------------------------------------------------------------------------------------
// The ledger (Postgres) side.

function appendEntry(model: SkuModel, delta: number, kind: EntryKind, reservationId: string | null, debitId: string | null): LedgerEntry {
  const ledger = model.ledger;
  const onHandAfter = ledger.onHand + delta;
  if (onHandAfter < 0) modelFail(`the ledger's on-hand would go to ${onHandAfter}, which its CHECK refuses`);
  const entry: LedgerEntry = { seq: ledger.seq + 1, delta, onHandAfter, kind, reservationId, debitId, lowered: 0 };
  ledger.entries.push(entry);
  ledger.seq = entry.seq;
  ledger.onHand = onHandAfter;
  return entry;
}

/** What the worker holds in memory: the rows its transaction returned, as they were then. */
function snapshot(entry: LedgerEntry): LedgerEntry {
  return { ...entry };
}

/** A stock change's entry (naming its debit), projection update and COMMIT. */
export function ledgerAdjust(model: SkuModel, delta: number, debitId: string | null): LedgerEntry {
  return snapshot(appendEntry(model, delta, 'adjustment', null, debitId));
}

export type LedgerCommitOutcome =
  | { readonly ledger: 'committed' | 'already-committed'; readonly entries: LedgerEntry[] }
  | { readonly ledger: 'rejected'; readonly entries: [] };

/**
 * LedgerWriter.commitBatch for one job, with the rejectShort retry CommitProcessor makes: the
 * reservation allocated once; one the ledger cannot allocate recorded as rejected.
 */
export function ledgerCommit(model: SkuModel, reservation: ReservationModel, fence: number): LedgerCommitOutcome {
  const earlier = reservation.ledger;
  if (earlier === null) {
    if (model.ledger.onHand < reservation.quantity) {
      reservation.ledger = { status: 'rejected', fence, commitFence: fence, allocationSeq: null, deallocationSeq: null };
      return { ledger: 'rejected', entries: [] };
    }
    const entry = appendEntry(model, -reservation.quantity, 'allocation', reservation.id, null);
    reservation.ledger = { status: 'committed', fence, commitFence: fence, allocationSeq: entry.seq, deallocationSeq: null };
    return { ledger: 'committed', entries: [snapshot(entry)] };
  }
  if (earlier.status === 'rejected') return { ledger: 'rejected', entries: [] };
  const allocation = model.ledger.entries.find((entry) => entry.seq === earlier.allocationSeq);
  if (allocation === undefined) modelFail(`${reservation.label} is committed without its allocation`);
  return { ledger: 'already-committed', entries: [snapshot(allocation)] };
}

export type LedgerCancelOutcome = { readonly ledger: 'cancelled' | 'already-cancelled' | 'stale'; readonly entries: LedgerEntry[] };

/** LedgerWriter.cancel, fenced by the ledger's fence. */
export function ledgerCancel(model: SkuModel, reservation: ReservationModel, fence: number): LedgerCancelOutcome {
  const row = reservation.ledger;
  if (row === null) modelFail(`a cancel job for ${reservation.label}, which the ledger has not committed`);
  if (row.status === 'cancelled') {
    const deallocation = model.ledger.entries.find((entry) => entry.seq === row.deallocationSeq);
    if (deallocation === undefined) modelFail(`${reservation.label} is cancelled without its deallocation`);
    return { ledger: 'already-cancelled', entries: [snapshot(deallocation)] };
  }
  if (row.fence >= fence || row.status !== 'committed') return { ledger: 'stale', entries: [] };
  const entry = appendEntry(model, reservation.quantity, 'deallocation', reservation.id, null);
  row.status = 'cancelled';
  row.fence = fence;
  row.deallocationSeq = entry.seq;
  return { ledger: 'cancelled', entries: [snapshot(entry)] };
}

/**
 * Not a protocol step: the ledger ends up with fewer units than Redis believes at the same
 * position (Redis restored from a copy that predates a loss the ledger knows of). The last
 * entry's on_hand_after and the row go down by `units`; Redis is untouched. Returns the units.
 */
export function lowerLedger(model: SkuModel, units: number): number {
  const last = model.ledger.entries.at(-1);
  if (last === undefined) modelFail('nothing to lower');
  const taken = Math.min(units, model.ledger.onHand);
  last.onHandAfter -= taken;
  last.lowered += taken;
  model.ledger.onHand -= taken;
  model.availableMayGoNegative = true;
  return taken;
}

/**
 * Redis loses its data. "all": every key goes (restart without the AOF): the SKU state, holds,
 * records and BullMQ's queued jobs; what a process holds in memory survives (a worker past its
 * ledger step, the API's stock change and its pending Redis step). "state": only the SKU state
 * hash goes, its holds and the records outlive it.
 */
export function loseRedisData(model: SkuModel, scope: 'all' | 'state'): void {
  model.state = null;
  if (scope === 'state') {
    model.availableMayGoNegative = true;
    return;
  }
  for (const reservation of model.reservations) {
    reservation.record = null;
    if (reservation.commitJob?.step === 'queued') reservation.commitJob = null;
    if (reservation.cancelJob?.step === 'queued') reservation.cancelJob = null;
  }
}
