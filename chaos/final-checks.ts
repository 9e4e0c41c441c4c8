// What is checked once the faults have stopped and everything is running again: every
// acknowledged confirm and cancel reaches the ledger (the commit lag after the last fault is
// measured), pending holds expire, Redis agrees with the ledger within two reconcile intervals,
// and then exactly the ledger's on-hand can be reserved, and every one of those units commits.
import type { Knex } from 'knex';
import type { LedgerDump, LedgerEntry, LedgerReservation } from './checker';
import type { ApiEndpoint, Call } from './http-client';
import { send } from './http-client';
import { dataLossFaults, type Fault, type Operation, type Violation } from './history';
import type { Random } from './random';
import { sleep, type Recorder, type Secrets } from './workload';

export interface FinalSetting {
  readonly apis: readonly ApiEndpoint[];
  readonly skus: readonly string[];
  readonly secrets: Secrets;
  readonly recorder: Recorder;
  readonly random: Random;
  readonly knex: Knex;
  readonly reconcileIntervalMs: number;
  readonly commitGraceMs: number;
  readonly holdTtlSecondsMax: number;
  readonly runLabel: string;
  /** The faults injected: what a Redis data-loss fault took away is not waited for. */
  readonly faults: readonly Fault[];
  /** SKUs limited per customer: the sell-out reserves them in parts of at most the limit, each for a customer of its own. */
  readonly perCustomerLimit: ReadonlyMap<string, number>;
}

export interface FinalTimings {
  readyMs: number;
  commitsDrainedMs: number | null;
  holdsClearedMs: number | null;
  agreementMs: number | null;
}

export const pollMs = 200;
export const readyWaitMs = 60_000;
export const drainSlackMs = 30_000;
/** The service's default QUANTITY_MAX: the sell-out reserves in parts no larger. */
export const quantityPerReservationMax = 1000;

async function until(deadlineMs: number, check: () => Promise<boolean>): Promise<boolean> {
  while (Date.now() < deadlineMs) {
    if (await check().catch(() => false)) return true;
    await sleep(pollMs);
  }
  return check().catch(() => false);
}

export async function waitReady(apis: readonly ApiEndpoint[]): Promise<boolean> {
  return until(Date.now() + readyWaitMs, async () => {
    const replies = await Promise.all(apis.map((api) => send(api, { method: 'GET', path: '/readyz', secret: '' })));
    return replies.every((reply) => reply.status === 200);
  });
}

/**
 * Ids whose confirm (or cancel) was acknowledged, for the drain to wait on; not those a Redis
 * data-loss fault may have taken away (the checker counts those as lost).
 */
function acknowledged(operations: readonly Operation[], kind: 'confirm' | 'cancel', faults: readonly Fault[]): Set<string> {
  const lastLossMs = Math.max(0, ...faults.filter((fault) => dataLossFaults.includes(fault.kind)).map((fault) => fault.endMs));
  return new Set(
    operations
      .filter((operation) => operation.kind === kind && operation.outcome === 'ok' && operation.reservationId !== undefined && operation.invokeMs > lastLossMs)
      .map((operation) => operation.reservationId!),
  );
}

export async function drainCommits(setting: FinalSetting): Promise<boolean> {
  const confirms = acknowledged(setting.recorder.operations, 'confirm', setting.faults);
  const cancels = acknowledged(setting.recorder.operations, 'cancel', setting.faults);
  const deadline = Date.now() + setting.commitGraceMs + 3 * setting.reconcileIntervalMs + drainSlackMs;
  return until(deadline, async () => {
    const rows: Array<{ id: string; status: string }> = await setting.knex('reservations').select('id', 'status').whereIn('id', [...confirms, ...cancels]);
    const status = new Map(rows.map((row) => [row.id, row.status]));
    return [...confirms].every((id) => status.has(id)) && [...cancels].every((id) => status.get(id) === 'cancelled');
  });
}

async function skuViews(setting: FinalSetting): Promise<Map<string, { onHand: number; reserved: number }>> {
  const views = new Map<string, { onHand: number; reserved: number }>();
  for (const sku of setting.skus) {
    const reply = await send(setting.apis[0]!, { method: 'GET', path: `/v1/skus/${sku}`, secret: setting.secrets.admin });
    if (reply.status !== 200) throw new Error(`GET ${sku}: ${reply.status}`);
    views.set(sku, { onHand: reply.body.onHand, reserved: reply.body.reserved });
  }
  return views;
}

/** The ledger's on-hand of each of the run's SKUs (a striped SKU's: the sum of its stripes' rows). */
async function ledgerOnHand(knex: Knex, skus: readonly string[]): Promise<Map<string, number>> {
  const rows: Array<{ sku: string; on_hand: string }> = await knex('skus').select(knex.raw("split_part(sku, '~', 1) AS sku"), knex.raw('sum(on_hand) AS on_hand')).whereRaw("split_part(sku, '~', 1) = ANY(?)", [[...skus]]).groupByRaw("split_part(sku, '~', 1)");
  return new Map(rows.map((row) => [row.sku, Number(row.on_hand)]));
}

export async function waitHoldsCleared(setting: FinalSetting): Promise<boolean> {
  const deadline = Date.now() + setting.holdTtlSecondsMax * 1000 + 2 * setting.reconcileIntervalMs + drainSlackMs;
  return until(deadline, async () => [...(await skuViews(setting)).values()].every((view) => view.reserved === 0));
}

/** Redis's on-hand equals the ledger's for every SKU within two reconcile intervals. */
export async function checkAgreement(setting: FinalSetting, violations: Violation[]): Promise<boolean> {
  const agreed = await until(Date.now() + 2 * setting.reconcileIntervalMs, async () => {
    const [views, ledger] = await Promise.all([skuViews(setting), ledgerOnHand(setting.knex, setting.skus)]);
    return setting.skus.every((sku) => views.get(sku)?.onHand === ledger.get(sku) && views.get(sku)?.reserved === 0);
  });
  if (agreed) return true;
  const [views, ledger] = await Promise.all([skuViews(setting), ledgerOnHand(setting.knex, setting.skus)]);
  for (const sku of setting.skus) {
    const view = views.get(sku)!;
    if (view.onHand !== ledger.get(sku) || view.reserved !== 0) {
      violations.push({ check: 'agreement', message: `${sku}: Redis on-hand ${view.onHand} reserved ${view.reserved}, ledger on-hand ${ledger.get(sku)}, two reconcile intervals after the commits drained`, operations: [], sku });
    }
  }
  return false;
}

/** Reserves exactly the ledger's on-hand of each SKU, one unit more must be refused, and all of it commits. */
export async function sellOut(setting: FinalSetting, violations: Violation[]): Promise<void> {
  const ledger = await ledgerOnHand(setting.knex, setting.skus);
  const { recorder, apis, random, secrets } = setting;
  const run = (kind: Operation['kind'], call: Call, about: Partial<Operation>) => recorder.run(apis, random, recorder.next('final', kind, call, about), call);
  const flag = (sku: string, message: string, operation: Operation) => violations.push({ check: 'sell-out', message: `${sku}: ${message}`, operations: [operation.index], sku });
  const confirmed: string[] = [];
  for (const sku of setting.skus) {
    const onHand = ledger.get(sku) ?? 0;
    const partMax = Math.min(quantityPerReservationMax, setting.perCustomerLimit.get(sku) ?? quantityPerReservationMax);
    for (let left = onHand, part = 0; left > 0; part += 1) {
      const quantity = Math.min(left, partMax);
      left -= quantity;
      const lines = [{ sku, quantity }];
      const customerId = `final-${sku}-${part}`;
      const all = await run('reserve', { method: 'POST', path: '/v1/reservations', secret: secrets.checkout, body: { lines, ttlSeconds: 120, customerId }, idempotencyKey: `${setting.runLabel}-final-${sku}-${part}` }, { lines, customerId });
      if (all.outcome !== 'ok') flag(sku, `reserving ${quantity} of the ledger's ${onHand} units answered ${all.status} ${all.code ?? ''}`, all);
      else confirmed.push(all.reservationId!);
    }
    const lines = [{ sku, quantity: 1 }];
    const extra = await run('reserve', { method: 'POST', path: '/v1/reservations', secret: secrets.checkout, body: { lines, ttlSeconds: 120, customerId: `final-extra-${sku}` }, idempotencyKey: `${setting.runLabel}-final-extra-${sku}` }, { lines, customerId: `final-extra-${sku}` });
    if (extra.status !== 409) flag(sku, `one unit beyond the ledger's ${onHand} answered ${extra.status} (oversold)`, extra);
  }
  for (const id of confirmed) {
    const operation = await run('confirm', { method: 'POST', path: `/v1/reservations/${id}/confirm`, secret: secrets.checkout }, { reservationId: id });
    if (operation.outcome !== 'ok') flag(id, `confirm of the sell-out reservation answered ${operation.status} ${operation.code ?? ''}`, operation);
  }
  const deadline = Date.now() + setting.commitGraceMs + 3 * setting.reconcileIntervalMs + drainSlackMs;
  await until(deadline, async () => [...(await ledgerOnHand(setting.knex, setting.skus)).values()].every((onHand) => onHand === 0));
  for (const [sku, onHand] of await ledgerOnHand(setting.knex, setting.skus)) {
    if (onHand !== 0) violations.push({ check: 'sell-out', message: `${sku}: ${onHand} units left in the ledger after everything was sold and confirmed`, operations: [], sku });
  }
}

export async function dumpLedger(knex: Knex, skus: readonly string[], afterEntryId: number): Promise<LedgerDump> {
  // The run's SKUs and their stripes (`SKU~t`), each a SKU of the ledger with its own chain.
  const ofTheRun = (query: Knex.QueryBuilder) => query.whereRaw("split_part(sku, '~', 1) = ANY(?)", [[...skus]]);
  const entries: LedgerEntry[] = (
    await ofTheRun(knex('ledger_entries').select('id', 'sku', 'kind', 'delta', 'on_hand_after', 'reservation_id', 'reason', 'idempotency_key')).where('id', '>', afterEntryId).orderBy('id')
  ).map((row: any) => ({ id: Number(row.id), sku: row.sku, kind: row.kind, delta: Number(row.delta), onHandAfter: Number(row.on_hand_after), reservationId: row.reservation_id, reason: row.reason, idempotencyKey: row.idempotency_key }));
  const rows: Array<{ sku: string; on_hand: string; stripes: number }> = await ofTheRun(knex('skus').select('sku', 'on_hand', 'stripes'));
  // Where each chain stood when the run began: its last entry up to the watermark (0 without one).
  const chainStart = new Map(rows.map((row) => [row.sku, 0]));
  for (const row of await ofTheRun(knex('ledger_entries').select('sku', 'on_hand_after').where('id', '<=', afterEntryId).orderBy('id'))) chainStart.set(row.sku, Number(row.on_hand_after));
  const striped = new Set(rows.filter((row) => Number(row.stripes) > 1).map((row) => row.sku));
  const reservations = new Map<string, LedgerReservation>();
  for (const row of await knex('reservations').select('id', 'status', 'lines', 'committed_at')) {
    reservations.set(row.id, { id: row.id, status: row.status, lines: row.lines, committedAtMs: new Date(row.committed_at).getTime() });
  }
  return { entries, onHand: new Map(rows.map((row) => [row.sku, Number(row.on_hand)])), reservations, chainStart, striped };
}
