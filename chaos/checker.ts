// Checks a chaos run's history against what the ledger holds at the end. Pure: it takes the
// recorded operations, the faults and a dump of the ledger, and returns violations; so it is
// tested with histories it must reject (test/chaos-checker.test.ts). The operational checks
// (Redis agrees with the ledger, exactly the ledger's stock can be sold) are in final-checks.ts.
import { publicLines, publicSku } from '../lib/stock/stripes';
import { dataLossFaults, holdLossFaults, type Fault, type Line, type Operation, type Violation } from './history';

export interface LedgerEntry {
  readonly id: number;
  readonly sku: string;
  readonly kind: 'adjustment' | 'allocation' | 'deallocation';
  readonly delta: number;
  readonly onHandAfter: number;
  readonly reservationId: string | null;
  readonly reason: string | null;
  readonly idempotencyKey: string | null;
}

export interface LedgerReservation {
  readonly id: string;
  readonly status: 'committed' | 'cancelled';
  readonly lines: readonly Line[];
  readonly committedAtMs: number;
}

export interface LedgerDump {
  /** Entries written during the run, in id order (a striped SKU's are on its stripes, `SKU~t`). */
  readonly entries: readonly LedgerEntry[];
  /** The projection's on-hand of every ledger SKU of the run (stripes each on their own). */
  readonly onHand: ReadonlyMap<string, number>;
  readonly reservations: ReadonlyMap<string, LedgerReservation>;
  /** Each ledger SKU's on-hand when the run began (after the SKUs were made); else startOnHand. */
  readonly chainStart?: ReadonlyMap<string, number>;
  /** The run's SKUs that have more than one stripe. */
  readonly striped?: ReadonlySet<string>;
}

export interface CheckInput {
  readonly operations: readonly Operation[];
  readonly faults: readonly Fault[];
  readonly ledger: LedgerDump;
  /** Each SKU's on-hand in the ledger when the clients started. */
  readonly startOnHand: ReadonlyMap<string, number>;
  /** The flash-sale guards the run set (absent: none, nothing to check). */
  readonly caps?: CustomerCaps;
}

/** The flash-sale guards of a run: per-customer limits by SKU, and live reservations per customer at most (0: no cap). */
export interface CustomerCaps {
  readonly perCustomerLimit: ReadonlyMap<string, number>;
  readonly activeHoldsMax: number;
}

/**
 * Acknowledged operations that a Redis data-loss fault legitimately took away, by kind (reservation
 * keys also by a cluster primary's failover).
 */
export interface Lost {
  confirms: number;
  cancels: number;
  reservationKeys: number;
}

export interface CheckResult {
  readonly violations: Violation[];
  readonly lost: Lost;
}

export function checkHistory(input: CheckInput): CheckResult {
  const violations: Violation[] = [];
  const lost: Lost = { confirms: 0, cancels: 0, reservationKeys: 0 };
  const dataLossTimes = input.faults.filter((fault) => dataLossFaults.includes(fault.kind));
  const holdLossTimes = input.faults.filter((fault) => holdLossFaults.includes(fault.kind));
  checkHttp(input.operations, violations);
  checkIdempotency(input.operations, holdLossTimes, violations, lost);
  checkConfirms(input, dataLossTimes, violations, lost);
  checkLedger(input, violations);
  if (input.caps !== undefined) checkCustomerCaps(input.operations, input.caps, input.ledger, holdLossTimes, violations);
  return { violations, lost };
}

/** Whether a Redis data-loss fault overlapped [fromMs, toMs]: what was written since may be gone. */
const lostBetween = (faults: readonly Fault[], fromMs: number, toMs: number): boolean => faults.some((fault) => fault.endMs >= fromMs && fault.startMs <= toMs);

/** No 500 ever; every 503, and every 409 that asks for a retry, carries Retry-After. */
export function checkHttp(operations: readonly Operation[], violations: Violation[]): void {
  for (const operation of operations) {
    for (const attempt of operation.attempts) {
      if (attempt.status === 500 || (attempt.status !== null && attempt.status > 503)) {
        violations.push({ check: 'http', message: `${operation.kind} answered ${attempt.status} ${attempt.code ?? ''}`.trim(), operations: [operation.index] });
      }
      const promisesRetry = attempt.status === 503 || attempt.code === 'idempotency_key_in_flight';
      if (promisesRetry && attempt.retryAfter === undefined) {
        violations.push({ check: 'http', message: `${operation.kind} answered ${attempt.status} ${attempt.code ?? ''} without Retry-After`, operations: [operation.index] });
      }
    }
  }
}

/** One Idempotency-Key, one effect: the same reservation every time; a replay is never refused. */
export function checkIdempotency(operations: readonly Operation[], lossTimes: readonly Fault[], violations: Violation[], lost: Lost): void {
  const firstByKey = new Map<string, Operation>();
  for (const operation of operations) {
    if (operation.idempotencyKey === undefined || operation.outcome !== 'ok') continue;
    if (operation.kind !== 'reserve' && operation.kind !== 'replay-reserve') continue;
    const first = firstByKey.get(operation.idempotencyKey);
    if (first === undefined) {
      firstByKey.set(operation.idempotencyKey, operation);
      continue;
    }
    if (first.reservationId === operation.reservationId) continue;
    if (lostBetween(lossTimes, first.invokeMs, operation.completeMs)) {
      lost.reservationKeys += 1;
      continue;
    }
    violations.push({ check: 'idempotency', message: `key ${operation.idempotencyKey} made two reservations: ${first.reservationId} and ${operation.reservationId}`, operations: [first.index, operation.index] });
  }
  for (const operation of operations) {
    if (operation.kind !== 'replay-adjust' && operation.kind !== 'replay-reserve') continue;
    if (operation.outcome !== 'fail') continue;
    // A reservation's key lives only in Redis; a stock change's is also in the ledger, which
    // must answer the replay even after Redis lost everything.
    const original = firstByKey.get(operation.idempotencyKey ?? '');
    if (operation.kind === 'replay-reserve' && original !== undefined && lostBetween(lossTimes, original.invokeMs, operation.completeMs)) {
      lost.reservationKeys += 1;
      continue;
    }
    violations.push({ check: 'idempotency', message: `a replay of acknowledged key ${operation.idempotencyKey} was refused: ${operation.status} ${operation.code ?? ''}`, operations: [operation.index] });
  }
}

interface ReservationFacts {
  readonly lines?: readonly Line[];
  readonly confirms: Operation[];
  readonly cancels: Operation[];
  readonly releases: Operation[];
}

function factsByReservation(operations: readonly Operation[]): Map<string, ReservationFacts> {
  const facts = new Map<string, ReservationFacts>();
  const of = (id: string, lines?: readonly Line[]) => {
    let found = facts.get(id);
    if (found === undefined) {
      found = { ...(lines === undefined ? {} : { lines }), confirms: [], cancels: [], releases: [] };
      facts.set(id, found);
    }
    return found;
  };
  for (const operation of operations) {
    if (operation.reservationId === undefined) continue;
    if (operation.kind === 'reserve' && operation.outcome === 'ok') of(operation.reservationId, operation.lines);
    if (operation.kind === 'confirm') of(operation.reservationId).confirms.push(operation);
    if (operation.kind === 'cancel') of(operation.reservationId).cancels.push(operation);
    if (operation.kind === 'release') of(operation.reservationId).releases.push(operation);
  }
  return facts;
}

/** Every acknowledged confirm ends committed (or cancelled, when a cancel was asked for). */
export function checkConfirms(input: CheckInput, dataLossTimes: readonly Fault[], violations: Violation[], lost: Lost): void {
  const facts = factsByReservation(input.operations);
  for (const [id, fact] of facts) {
    const inLedger = input.ledger.reservations.get(id);
    const ackedConfirm = fact.confirms.find((operation) => operation.outcome === 'ok');
    const refusedConfirm = fact.confirms.find((operation) => operation.outcome === 'fail' && (operation.status === 410 || operation.code === 'reservation_released'));
    const ackedRelease = fact.releases.find((operation) => operation.outcome === 'ok' && operation.resultStatus === 'released');
    const ackedCancel = fact.cancels.find((operation) => operation.outcome === 'ok');
    const involved = [...fact.confirms, ...fact.cancels, ...fact.releases].map((operation) => operation.index);
    const flag = (message: string) => violations.push({ check: 'confirms', message: `${id}: ${message}`, operations: involved, reservationId: id });
    if (ackedConfirm !== undefined && inLedger === undefined) {
      if (lostBetween(dataLossTimes, ackedConfirm.invokeMs, Number.POSITIVE_INFINITY)) lost.confirms += 1;
      else flag('confirm acknowledged, never committed');
    }
    if (inLedger === undefined) continue;
    if (fact.confirms.length === 0) flag('committed without any confirm');
    if (ackedConfirm === undefined && refusedConfirm !== undefined) flag(`committed although its confirm was refused (${refusedConfirm.status} ${refusedConfirm.code ?? ''})`);
    if (ackedRelease !== undefined) flag('committed although its release was acknowledged');
    if (inLedger.status === 'cancelled' && fact.cancels.length === 0) flag('cancelled without any cancel');
    if (ackedCancel !== undefined && inLedger.status !== 'cancelled') {
      if (lostBetween(dataLossTimes, ackedCancel.invokeMs, Number.POSITIVE_INFINITY)) lost.cancels += 1;
      else flag('cancel acknowledged, never applied');
    }
    if (fact.lines !== undefined && !sameLines(fact.lines, publicLines(inLedger.lines))) flag('committed lines differ from the reserved cart');
  }
}

/**
 * How far inside its expiry a hold is still counted as surely held: the checker's clock and the
 * server's (Redis TIME) are the same host's clock in a chaos run; this covers the rounding of the
 * response's timestamp and the reclaim at the expiry's millisecond.
 */
export const capClockMarginMs = 50;

/**
 * No customer ever held more than a SKU's per-customer limit, or more live reservations than the
 * active-holds cap. From the history a hold is known to be held for part of its life only, so the
 * check counts that part (a lower bound, never a false alarm): from the moment its reservation was
 * acknowledged until the first confirm, release or cancel asked for it, or its expiry, whichever
 * came first; when a confirm of it was acknowledged, on past that confirm until the commit's
 * transaction began (the ledger's committed_at: the record stays confirmed in Redis until after
 * that transaction), or a cancel was asked for. Every part ends at the start of a fault that may
 * take holds with it (Redis data loss; a cluster primary killed before its replica had a pending
 * hold or its customer entry). Overlapping parts whose units sum above the limit are a violation: at that moment the
 * service held them all for one customer.
 */
export function checkCustomerCaps(operations: readonly Operation[], caps: CustomerCaps, ledger: Pick<LedgerDump, 'reservations'>, holdLossTimes: readonly Fault[], violations: Violation[]): void {
  const firstAsked = (kinds: readonly string[]) => {
    const first = new Map<string, number>();
    for (const operation of operations) {
      if (operation.reservationId === undefined || !kinds.includes(operation.kind)) continue;
      first.set(operation.reservationId, Math.min(first.get(operation.reservationId) ?? Number.POSITIVE_INFINITY, operation.invokeMs));
    }
    return first;
  };
  const endedBy = firstAsked(['confirm', 'release', 'cancel']);
  const cancelledBy = firstAsked(['cancel']);
  const confirmedAt = new Map<string, number>();
  for (const operation of operations) {
    if (operation.kind === 'confirm' && operation.outcome === 'ok' && operation.reservationId !== undefined) {
      confirmedAt.set(operation.reservationId, Math.min(confirmedAt.get(operation.reservationId) ?? Number.POSITIVE_INFINITY, operation.completeMs));
    }
  }
  interface Held { readonly index: number; readonly customer: string; readonly lines: readonly Line[]; readonly fromMs: number; readonly toMs: number }
  const held: Held[] = [];
  const seen = new Set<string>();
  for (const operation of operations) {
    const { reservationId: id, customerId: customer, expiresAtMs, lines } = operation;
    if (operation.kind !== 'reserve' || operation.outcome !== 'ok' || id === undefined || customer === undefined || expiresAtMs === undefined || lines === undefined || seen.has(id)) continue;
    seen.add(id);
    const fromMs = operation.completeMs;
    let toMs = Math.min(expiresAtMs - capClockMarginMs, endedBy.get(id) ?? Number.POSITIVE_INFINITY);
    const confirmed = confirmedAt.get(id);
    const committedAtMs = ledger.reservations.get(id)?.committedAtMs;
    if (confirmed !== undefined && committedAtMs !== undefined) {
      // Held without a break: pending until its confirm took effect (before its expiry, or the
      // confirm would have been refused), then confirmed until after the commit's transaction began.
      toMs = Math.max(toMs, Math.min(committedAtMs - capClockMarginMs, cancelledBy.get(id) ?? Number.POSITIVE_INFINITY));
    }
    for (const fault of holdLossTimes) if (fault.endMs >= fromMs) toMs = Math.min(toMs, fault.startMs);
    if (toMs > fromMs) held.push({ index: operation.index, customer, lines, fromMs, toMs });
  }
  // One sweep per (customer, what is capped): +weight when a part begins, -weight when it ends
  // (an end at the same instant as a begin comes first: the parts are half-open).
  const sweep = (parts: ReadonlyArray<{ held: Held; weight: number }>, limit: number, describe: (total: number, live: readonly Held[]) => string) => {
    const events = parts.flatMap((part) => [{ atMs: part.held.fromMs, part, begins: true }, { atMs: part.held.toMs, part, begins: false }]);
    events.sort((a, b) => a.atMs - b.atMs || Number(a.begins) - Number(b.begins));
    const live = new Set<{ held: Held; weight: number }>();
    let total = 0;
    for (const event of events) {
      if (!event.begins) {
        live.delete(event.part);
        total -= event.part.weight;
        continue;
      }
      live.add(event.part);
      total += event.part.weight;
      if (total > limit) {
        const parts = [...live].map((part) => part.held);
        violations.push({ check: 'caps', message: describe(total, parts), operations: parts.map((part) => part.index) });
        return;
      }
    }
  };
  const customers = new Map<string, Held[]>();
  for (const part of held) customers.set(part.customer, [...(customers.get(part.customer) ?? []), part]);
  for (const [customer, parts] of customers) {
    if (caps.activeHoldsMax > 0) {
      sweep(parts.map((part) => ({ held: part, weight: 1 })), caps.activeHoldsMax, (total) => `customer ${customer} held ${total} live reservations at once (at most ${caps.activeHoldsMax})`);
    }
    for (const [sku, limit] of caps.perCustomerLimit) {
      const ofSku = parts
        .map((part) => ({ held: part, weight: part.lines.filter((line) => publicSku(line.sku) === sku).reduce((sum, line) => sum + line.quantity, 0) }))
        .filter((part) => part.weight > 0);
      sweep(ofSku, limit, (total) => `customer ${customer} held ${total} units of ${sku} at once (limit ${limit})`);
    }
  }
}

function sameLines(a: readonly Line[], b: readonly Line[]): boolean {
  const key = (lines: readonly Line[]) => [...lines].map((line) => `${line.sku}:${line.quantity}`).sort().join(',');
  return key(a) === key(b);
}

/** Per SKU: the ledger's chain is consistent, and every entry is explained by the history. */
export function checkLedger(input: CheckInput, violations: Violation[]): void {
  const { ledger } = input;
  const running = new Map(ledger.chainStart ?? input.startOnHand);
  const adjustments = new Map<string, Operation[]>();
  const setStockTargets = new Map<string, Set<number>>();
  const confirmed = new Set<string>();
  const cancelled = new Set<string>();
  for (const operation of input.operations) {
    if ((operation.kind === 'adjust' || operation.kind === 'replay-adjust') && operation.idempotencyKey !== undefined) {
      adjustments.set(operation.idempotencyKey, [...(adjustments.get(operation.idempotencyKey) ?? []), operation]);
    }
    if (operation.kind === 'set-stock' && operation.sku !== undefined && operation.onHandTarget !== undefined) {
      if (!setStockTargets.has(operation.sku)) setStockTargets.set(operation.sku, new Set());
      setStockTargets.get(operation.sku)!.add(operation.onHandTarget);
    }
    if (operation.kind === 'confirm' && operation.reservationId !== undefined) confirmed.add(operation.reservationId);
    if (operation.kind === 'cancel' && operation.reservationId !== undefined) cancelled.add(operation.reservationId);
  }
  const seenKeys = new Set<string>();
  const seenLines = new Set<string>();
  for (const entry of ledger.entries) {
    const flag = (message: string, operations: number[] = []) => violations.push({ check: 'ledger', message: `entry ${entry.id} (${entry.sku} ${entry.kind} ${entry.delta}): ${message}`, operations, sku: entry.sku });
    const before = running.get(entry.sku);
    if (before === undefined) {
      flag('SKU not part of the run');
      continue;
    }
    if (before + entry.delta !== entry.onHandAfter) flag(`on_hand_after ${entry.onHandAfter}, but ${before} + ${entry.delta}`);
    running.set(entry.sku, entry.onHandAfter);
    explainEntry(entry, { adjustments, setStockTargets, confirmed, cancelled, seenKeys, seenLines, reservations: ledger.reservations, striped: ledger.striped ?? new Set() }, flag);
  }
  for (const [key, operations] of adjustments) {
    const acked = operations.find((operation) => operation.outcome === 'ok');
    if (acked !== undefined && !seenKeys.has(key)) violations.push({ check: 'ledger', message: `adjustment ${key} acknowledged, not in the ledger`, operations: operations.map((operation) => operation.index), ...(acked.sku === undefined ? {} : { sku: acked.sku }) });
    const refused = operations.find((operation) => operation.kind === 'adjust' && operation.outcome === 'fail');
    if (refused !== undefined && acked === undefined && seenKeys.has(key)) violations.push({ check: 'ledger', message: `adjustment ${key} refused (${refused.status} ${refused.code ?? ''}) but recorded`, operations: operations.map((operation) => operation.index) });
  }
  for (const [sku, onHand] of ledger.onHand) {
    const expected = running.get(sku);
    if (expected !== undefined && expected !== onHand) violations.push({ check: 'ledger', message: `${sku}: projection on_hand ${onHand}, entries sum to ${expected}`, operations: [], sku });
  }
}

interface Explanations {
  readonly adjustments: ReadonlyMap<string, readonly Operation[]>;
  readonly setStockTargets: ReadonlyMap<string, ReadonlySet<number>>;
  readonly confirmed: ReadonlySet<string>;
  readonly cancelled: ReadonlySet<string>;
  readonly seenKeys: Set<string>;
  readonly seenLines: Set<string>;
  readonly reservations: ReadonlyMap<string, LedgerReservation>;
  readonly striped: ReadonlySet<string>;
}

function explainEntry(entry: LedgerEntry, known: Explanations, flag: (message: string, operations?: number[]) => void): void {
  if (entry.kind === 'adjustment') {
    // A striped SKU's change is spread over its stripes (up to one entry each, keyed `key~j` beyond
    // the first), and the reconciler moves units between stripes ('rebalance stripes').
    const sku = publicSku(entry.sku);
    const striped = known.striped.has(sku);
    if (entry.idempotencyKey === null) {
      if (striped && entry.reason === 'rebalance stripes') return;
      if (striped ? !known.setStockTargets.has(sku) : !(known.setStockTargets.get(entry.sku)?.has(entry.onHandAfter) ?? false)) flag(`no set-stock to ${entry.onHandAfter} was asked for`);
      return;
    }
    const baseKey = striped ? entry.idempotencyKey.replace(/~\d+$/, '') : entry.idempotencyKey;
    const operations = known.adjustments.get(baseKey);
    if (operations === undefined) return flag(`no adjustment with key ${entry.idempotencyKey} was asked for`);
    if (known.seenKeys.has(entry.idempotencyKey)) flag(`key ${entry.idempotencyKey} applied twice`, operations.map((operation) => operation.index));
    known.seenKeys.add(entry.idempotencyKey);
    if (operations[0]!.sku !== sku || (!striped && operations[0]!.delta !== entry.delta)) flag(`asked for ${operations[0]!.sku} ${operations[0]!.delta}`, [operations[0]!.index]);
    return;
  }
  const id = entry.reservationId;
  if (id === null) return flag('no reservation');
  const reservation = known.reservations.get(id);
  const line = reservation?.lines.find((candidate) => candidate.sku === entry.sku);
  if (line === undefined) return flag(`reservation ${id} has no such line`);
  const lineKey = `${id}|${entry.sku}|${entry.kind}`;
  if (known.seenLines.has(lineKey)) flag(`reservation ${id} line ${entry.sku}: a second ${entry.kind}`);
  known.seenLines.add(lineKey);
  if (entry.kind === 'allocation') {
    if (!known.confirmed.has(id)) flag(`reservation ${id} was never confirmed`);
    if (entry.delta !== -line.quantity) flag(`line quantity is ${line.quantity}`);
  } else {
    if (!known.cancelled.has(id)) flag(`reservation ${id} was never cancelled`);
    if (entry.delta !== line.quantity) flag(`line quantity is ${line.quantity}`);
  }
}
