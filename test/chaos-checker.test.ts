// Proves the chaos checker can fail: a small valid history passes, and each kind of broken
// history (a lost confirm, a phantom commit, a double allocation, an adjustment lost or applied
// although refused, a broken ledger chain, a 500, a 503 without Retry-After, one key making two
// reservations, a refused replay, a customer above a per-customer limit or the active-holds cap)
// is rejected by the check that names it. Data lost with Redis
// is counted as lost, not as a violation, only when a data-loss fault came after the ack.
import { describe, expect, it } from 'vitest';
import { capClockMarginMs, checkCustomerCaps, checkHistory, type CustomerCaps, type LedgerDump, type LedgerEntry, type LedgerReservation } from '../chaos/checker';
import { holdLossFaults, type Attempt, type Fault, type Operation, type Violation } from '../chaos/history';

let index = 0;
function op(fields: Partial<Operation> & Pick<Operation, 'kind'>, attempts: Partial<Attempt>[] = [{ status: 200 }]): Operation {
  index += 1;
  const full: Operation = {
    index: index - 1,
    client: 'c1',
    invokeMs: index * 10,
    completeMs: index * 10 + 5,
    method: 'POST',
    path: '/',
    outcome: 'ok',
    status: attempts.at(-1)?.status ?? null,
    attempts: attempts.map((attempt) => ({ startMs: index * 10, endMs: index * 10 + 5, api: 0, status: 200, ...attempt })),
    ...fields,
  };
  return full;
}

function ledgerOf(entries: Omit<LedgerEntry, 'id'>[], reservations: LedgerReservation[], onHand: Record<string, number>): LedgerDump {
  return {
    entries: entries.map((entry, position) => ({ ...entry, id: position + 1 })),
    onHand: new Map(Object.entries(onHand)),
    reservations: new Map(reservations.map((reservation) => [reservation.id, reservation])),
  };
}

const start = new Map([['A', 10]]);
const reservationR: LedgerReservation = { id: 'R', status: 'committed', lines: [{ sku: 'A', quantity: 2 }], committedAtMs: 1000 };
const allocationR = { sku: 'A', kind: 'allocation' as const, delta: -2, onHandAfter: 11, reservationId: 'R', reason: null, idempotencyKey: null };
const adjustmentK = { sku: 'A', kind: 'adjustment' as const, delta: 3, onHandAfter: 13, reservationId: null, reason: 'chaos', idempotencyKey: 'k1' };

/** A history that is right: reserve, confirm, commit; one adjustment; one set-stock. */
function validHistory(): { operations: Operation[]; ledger: LedgerDump } {
  index = 0;
  const operations = [
    op({ kind: 'reserve', idempotencyKey: 'r1', reservationId: 'R', lines: [{ sku: 'A', quantity: 2 }] }, [{ status: 201 }]),
    op({ kind: 'adjust', idempotencyKey: 'k1', sku: 'A', delta: 3 }, [{ status: null, error: 'timeout' }, { status: 201 }]),
    op({ kind: 'confirm', reservationId: 'R' }, [{ status: 503, code: 'backend_unavailable', retryAfter: '1' }, { status: 202 }]),
    op({ kind: 'set-stock', sku: 'A', onHandTarget: 11 }),
  ];
  const ledger = ledgerOf(
    [adjustmentK, { sku: 'A', kind: 'adjustment', delta: 0 - 0 - 2 + 0, onHandAfter: 11, reservationId: null, reason: 'set on-hand', idempotencyKey: null }, { ...allocationR, onHandAfter: 9 }],
    [reservationR],
    { A: 9 },
  );
  return { operations, ledger };
}

const check = (operations: Operation[], ledger: LedgerDump, faults: Fault[] = []) => checkHistory({ operations, faults, ledger, startOnHand: start });
const checksOf = (result: ReturnType<typeof check>) => result.violations.map((violation) => violation.check);

describe('chaos history checker', () => {
  it('accepts a history that is right', () => {
    const { operations, ledger } = validHistory();
    expect(check(operations, ledger).violations).toEqual([]);
  });

  it('rejects an acknowledged confirm that never reached the ledger', () => {
    const { operations } = validHistory();
    const ledger = ledgerOf([adjustmentK, { sku: 'A', kind: 'adjustment', delta: -2, onHandAfter: 11, reservationId: null, reason: 'set on-hand', idempotencyKey: null }], [], { A: 11 });
    const result = check(operations, ledger);
    expect(checksOf(result)).toEqual(['confirms']);
    expect(result.violations[0]!.message).toContain('never committed');
  });

  it('counts a confirm lost with Redis data as lost, only when the data loss came after its ack', () => {
    const { operations } = validHistory();
    const ledger = ledgerOf([adjustmentK, { sku: 'A', kind: 'adjustment', delta: -2, onHandAfter: 11, reservationId: null, reason: 'set on-hand', idempotencyKey: null }], [], { A: 11 });
    const confirmAckMs = operations[2]!.completeMs;
    const after = check(operations, ledger, [{ kind: 'redis-flushall', target: 'redis', startMs: confirmAckMs + 1, endMs: confirmAckMs + 2 }]);
    expect(after.violations).toEqual([]);
    expect(after.lost.confirms).toBe(1);
    const before = check(operations, ledger, [{ kind: 'redis-flushall', target: 'redis', startMs: confirmAckMs - 50, endMs: confirmAckMs - 40 }]);
    expect(checksOf(before)).toEqual(['confirms']);
  });

  it('rejects a commit nobody confirmed, and a commit after an acknowledged release', () => {
    const { operations, ledger } = validHistory();
    const withoutConfirm = operations.filter((operation) => operation.kind !== 'confirm');
    expect(checksOf(check(withoutConfirm, ledger))).toEqual(expect.arrayContaining(['confirms', 'ledger']));
    const released = [...operations, op({ kind: 'release', reservationId: 'R', resultStatus: 'released' })];
    expect(check(released, ledger).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('release was acknowledged')]);
  });

  it('rejects a reservation line allocated twice', () => {
    const { operations } = validHistory();
    const ledger = ledgerOf(
      [adjustmentK, { ...allocationR, onHandAfter: 11 }, { ...allocationR, onHandAfter: 9 }],
      [reservationR],
      { A: 9 },
    );
    const result = check(operations.filter((operation) => operation.kind !== 'set-stock'), ledger);
    expect(result.violations.map((violation) => violation.message)).toEqual([expect.stringContaining('a second allocation')]);
  });

  it('rejects an acknowledged adjustment missing from the ledger, a refused one that was recorded, and one key applied twice', () => {
    const { operations, ledger } = validHistory();
    const missing = ledgerOf([{ sku: 'A', kind: 'adjustment', delta: 1, onHandAfter: 11, reservationId: null, reason: 'set on-hand', idempotencyKey: null }, { ...allocationR, onHandAfter: 9 }], [reservationR], { A: 9 });
    expect(check(operations, missing).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('acknowledged, not in the ledger')]);
    const refused = operations.map((operation) => (operation.kind === 'adjust' ? { ...operation, outcome: 'fail' as const, status: 409, code: 'stock_below_reserved' } : operation));
    expect(check(refused, ledger).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('refused (409 stock_below_reserved) but recorded')]);
    const twice = ledgerOf([adjustmentK, { ...adjustmentK, onHandAfter: 16 }, { sku: 'A', kind: 'adjustment', delta: -5, onHandAfter: 11, reservationId: null, reason: 'set on-hand', idempotencyKey: null }, { ...allocationR, onHandAfter: 9 }], [reservationR], { A: 9 });
    expect(check(operations, twice).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('applied twice')]);
  });

  it('rejects a broken ledger chain and a projection that disagrees with its entries', () => {
    const { operations } = validHistory();
    const broken = ledgerOf([adjustmentK, { sku: 'A', kind: 'adjustment', delta: -2, onHandAfter: 12, reservationId: null, reason: 'set on-hand', idempotencyKey: null }, { ...allocationR, onHandAfter: 10 }], [reservationR], { A: 10 });
    // The wrong on_hand_after also names a set-stock target nobody asked for: both are reported.
    expect(check(operations, broken).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('on_hand_after 12, but 13 + -2'), expect.stringContaining('no set-stock to 12')]);
    const { ledger } = validHistory();
    const projection = { ...ledger, onHand: new Map([['A', 8]]) };
    expect(check(operations, projection).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('projection on_hand 8, entries sum to 9')]);
  });

  it('rejects a 500 and a 503 or in-flight 409 without Retry-After', () => {
    const { operations, ledger } = validHistory();
    const bad = [
      ...operations,
      op({ kind: 'read-sku', sku: 'A' }, [{ status: 500, code: 'internal_error' }, { status: 200 }]),
      op({ kind: 'read-sku', sku: 'A' }, [{ status: 503, code: 'backend_unavailable' }, { status: 200 }]),
      op({ kind: 'adjust', sku: 'A', delta: 1, idempotencyKey: 'k9', outcome: 'unknown' }, [{ status: 409, code: 'idempotency_key_in_flight' }]),
    ];
    expect(checksOf(check(bad, ledger))).toEqual(['http', 'http', 'http']);
  });

  it('rejects one key making two reservations, and a refused replay of an acknowledged key', () => {
    const { operations, ledger } = validHistory();
    const twoIds = [...operations, op({ kind: 'replay-reserve', idempotencyKey: 'r1', reservationId: 'R2', lines: [{ sku: 'A', quantity: 2 }] }, [{ status: 201 }])];
    expect(check(twoIds, ledger).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('made two reservations')]);
    const refusedReplay = [...operations, op({ kind: 'replay-adjust', idempotencyKey: 'k1', sku: 'A', delta: 3, outcome: 'fail', code: 'stock_below_reserved' }, [{ status: 409 }])];
    expect(check(refusedReplay, ledger).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('replay of acknowledged key k1 was refused')]);
  });

  it('counts a reservation replay refused after a data-loss fault as a lost record, but never an adjustment replay', () => {
    const { operations, ledger } = validHistory();
    const replayAt = operations.at(-1)!.completeMs + 100;
    const flush: Fault = { kind: 'redis-restart-empty', target: 'redis', startMs: replayAt - 50, endMs: replayAt - 40 };
    const refusedReserve = op({ kind: 'replay-reserve', idempotencyKey: 'r1', reservationId: 'R', lines: [{ sku: 'A', quantity: 2 }], outcome: 'fail', code: 'insufficient_stock', invokeMs: replayAt, completeMs: replayAt + 5 }, [{ status: 409 }]);
    const lostKey = check([...operations, refusedReserve], ledger, [flush]);
    expect(lostKey.violations).toEqual([]);
    expect(lostKey.lost.reservationKeys).toBe(1);
    const refusedAdjust = op({ kind: 'replay-adjust', idempotencyKey: 'k1', sku: 'A', delta: 3, outcome: 'fail', code: 'stock_below_reserved', invokeMs: replayAt, completeMs: replayAt + 5 }, [{ status: 409 }]);
    expect(checksOf(check([...operations, refusedAdjust], ledger, [flush]))).toEqual(['idempotency']);
  });

  it('follows a striped SKU over its stripes (a chain each, an adjustment spread with key~j, a rebalance, stripe lines) and still rejects what is wrong', () => {
    index = 0;
    // SKU S in two stripes, S (5 units) and S~7 (5 units), when the run began.
    const reservation: LedgerReservation = { id: 'RS', status: 'committed', lines: [{ sku: 'S', quantity: 1 }, { sku: 'S~7', quantity: 2 }], committedAtMs: 1000 };
    const operations = [
      op({ kind: 'reserve', idempotencyKey: 'rs', reservationId: 'RS', lines: [{ sku: 'S', quantity: 3 }] }, [{ status: 201 }]),
      op({ kind: 'confirm', reservationId: 'RS' }, [{ status: 202 }]),
      op({ kind: 'adjust', idempotencyKey: 'ks', sku: 'S', delta: 4 }, [{ status: 201 }]),
    ];
    const entries: Omit<LedgerEntry, 'id'>[] = [
      { sku: 'S', kind: 'allocation', delta: -1, onHandAfter: 4, reservationId: 'RS', reason: null, idempotencyKey: null },
      { sku: 'S~7', kind: 'allocation', delta: -2, onHandAfter: 3, reservationId: 'RS', reason: null, idempotencyKey: null },
      { sku: 'S', kind: 'adjustment', delta: 1, onHandAfter: 5, reservationId: null, reason: 'chaos', idempotencyKey: 'ks' },
      { sku: 'S~7', kind: 'adjustment', delta: 3, onHandAfter: 6, reservationId: null, reason: 'chaos', idempotencyKey: 'ks~1' },
      { sku: 'S', kind: 'adjustment', delta: 1, onHandAfter: 6, reservationId: null, reason: 'rebalance stripes', idempotencyKey: null },
      { sku: 'S~7', kind: 'adjustment', delta: -1, onHandAfter: 5, reservationId: null, reason: 'rebalance stripes', idempotencyKey: null },
    ];
    const striped = (list: Omit<LedgerEntry, 'id'>[], onHand: Record<string, number>): LedgerDump => ({
      ...ledgerOf(list, [reservation], onHand),
      chainStart: new Map([['S', 5], ['S~7', 5]]),
      striped: new Set(['S']),
    });
    const checkStriped = (ledger: LedgerDump, history = operations) => checkHistory({ operations: history, faults: [], ledger, startOnHand: new Map([['S', 10]]) });
    expect(checkStriped(striped(entries, { S: 6, 'S~7': 5 })).violations).toEqual([]);
    // A stripe's chain broken; a spread key nobody asked for; committed lines not the cart's; a
    // stripe of a SKU the run never had.
    const broken = entries.map((entry, position) => (position === 3 ? { ...entry, onHandAfter: 7 } : entry));
    expect(checkStriped(striped(broken, { S: 6, 'S~7': 5 })).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('on_hand_after 7, but 3 + 3'), expect.stringContaining('on_hand_after 5, but 7 + -1')]);
    const unknownKey = entries.map((entry, position) => (position === 3 ? { ...entry, idempotencyKey: 'other~1' } : entry));
    expect(checkStriped(striped(unknownKey, { S: 6, 'S~7': 5 })).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('no adjustment with key other~1')]);
    const otherCart = [op({ kind: 'reserve', idempotencyKey: 'rs', reservationId: 'RS', lines: [{ sku: 'S', quantity: 2 }] }, [{ status: 201 }]), ...operations.slice(1)];
    expect(checksOf(checkStriped(striped(entries, { S: 6, 'S~7': 5 }), otherCart))).toEqual(['confirms']);
    const stranger = [...entries, { sku: 'T~2', kind: 'adjustment' as const, delta: 1, onHandAfter: 1, reservationId: null, reason: 'rebalance stripes', idempotencyKey: null }];
    expect(checkStriped(striped(stranger, { S: 6, 'S~7': 5 })).violations.map((violation) => violation.message)).toEqual([expect.stringContaining('SKU not part of the run')]);
  });
});

describe('chaos caps check (no customer above a per-customer limit or the active-holds cap)', () => {
  const caps: CustomerCaps = { perCustomerLimit: new Map([['A', 4]]), activeHoldsMax: 2 };
  /** An acknowledged reservation of `customer`, answered at `atMs`, expiring at `expiresAtMs`. */
  const reserved = (id: string, customer: string, quantity: number, atMs: number, expiresAtMs: number, sku = 'A'): Operation =>
    op({ kind: 'reserve', reservationId: id, customerId: customer, lines: [{ sku, quantity }], invokeMs: atMs - 5, completeMs: atMs, expiresAtMs }, [{ status: 201 }]);
  const asked = (kind: 'confirm' | 'release' | 'cancel', id: string, atMs: number): Operation => op({ kind, reservationId: id, invokeMs: atMs, completeMs: atMs + 5 });
  const capsChecked = (operations: Operation[], faults: Fault[] = [], given: CustomerCaps = caps, committed: LedgerReservation[] = []) => {
    const violations: Violation[] = [];
    const reservations = new Map(committed.map((reservation) => [reservation.id, reservation]));
    checkCustomerCaps(operations, given, { reservations }, faults.filter((fault) => holdLossFaults.includes(fault.kind)), violations);
    return violations;
  };

  it('accepts a customer at the limit, and rejects one unit more held at the same time', () => {
    index = 0;
    const atLimit = [reserved('R1', 'u1', 2, 1000, 9000), reserved('R2', 'u1', 2, 1100, 9000)];
    expect(capsChecked(atLimit)).toEqual([]);
    const over = capsChecked([...atLimit, reserved('R3', 'u1', 1, 1200, 9000, 'B'), reserved('R4', 'u2', 1, 1200, 9000), reserved('R5', 'u1', 1, 1300, 9000)], [], { ...caps, activeHoldsMax: 0 });
    expect(over).toEqual([expect.objectContaining({ check: 'caps', message: 'customer u1 held 5 units of A at once (limit 4)' })]);
    expect(over[0]!.operations).toEqual([0, 1, 4]);
  });

  it('counts a hold only until its expiry, or until a confirm, release or cancel was asked for it', () => {
    index = 0;
    const expired = [reserved('R1', 'u1', 3, 1000, 2000), reserved('R2', 'u1', 3, 2000 + capClockMarginMs - 10, 9000)];
    expect(capsChecked(expired)).toEqual([]);
    index = 0;
    const notYetExpired = [reserved('R1', 'u1', 3, 1000, 2000), reserved('R2', 'u1', 3, 1900, 9000)];
    expect(capsChecked(notYetExpired).map((violation) => violation.message)).toEqual(['customer u1 held 6 units of A at once (limit 4)']);
    for (const kind of ['confirm', 'release', 'cancel'] as const) {
      index = 0;
      expect(capsChecked([reserved('R1', 'u1', 3, 1000, 9000), asked(kind, 'R1', 1500), reserved('R2', 'u1', 3, 1600, 9000)])).toEqual([]);
    }
    index = 0;
    expect(capsChecked([reserved('R1', 'u1', 3, 1000, 9000), reserved('R2', 'u1', 3, 1600, 9000), asked('release', 'R1', 1700)])).toHaveLength(1);
  });

  it('counts a confirmed hold until its commit began (the ledger\'s committed_at), unless a cancel was asked first', () => {
    const committedAt = (id: string, atMs: number): LedgerReservation => ({ id, status: 'committed', lines: [{ sku: 'A', quantity: 3 }], committedAtMs: atMs });
    const confirmedThenAnother = () => {
      index = 0;
      return [reserved('R1', 'u1', 3, 1000, 2000), op({ kind: 'confirm', reservationId: 'R1', invokeMs: 1500, completeMs: 1510 }, [{ status: 202 }]), reserved('R2', 'u1', 3, 2500, 9000)];
    };
    expect(capsChecked(confirmedThenAnother(), [], caps, [committedAt('R1', 3000)]).map((violation) => violation.message)).toEqual(['customer u1 held 6 units of A at once (limit 4)']);
    expect(capsChecked(confirmedThenAnother(), [], caps, [committedAt('R1', 2400)])).toEqual([]);
    expect(capsChecked(confirmedThenAnother(), [], caps, [])).toEqual([]);
    const cancelled = [...confirmedThenAnother()];
    cancelled.splice(2, 0, op({ kind: 'cancel', reservationId: 'R1', invokeMs: 2200, completeMs: 2210 }));
    expect(capsChecked(cancelled, [], caps, [committedAt('R1', 3000)])).toEqual([]);
    const refused = confirmedThenAnother();
    refused[1] = { ...refused[1]!, outcome: 'fail', status: 410, code: 'reservation_expired' };
    expect(capsChecked(refused, [], caps, [committedAt('R1', 3000)])).toEqual([]);
  });

  it('rejects more live reservations than the active-holds cap, per customer', () => {
    index = 0;
    const three = [reserved('R1', 'u1', 1, 1000, 9000, 'B'), reserved('R2', 'u1', 1, 1100, 9000, 'B'), reserved('R3', 'u2', 1, 1150, 9000, 'B')];
    expect(capsChecked(three)).toEqual([]);
    const violations = capsChecked([...three, reserved('R4', 'u1', 1, 1200, 9000, 'C')]);
    expect(violations.map((violation) => violation.message)).toEqual(['customer u1 held 3 live reservations at once (at most 2)']);
  });

  it('counts stripe lines for their SKU, each reservation once (a replay is the same hold), and no refused one', () => {
    index = 0;
    const operations = [
      reserved('R1', 'u1', 2, 1000, 9000, 'A~1'),
      op({ kind: 'replay-reserve', reservationId: 'R1', customerId: 'u1', lines: [{ sku: 'A', quantity: 2 }], invokeMs: 1050, completeMs: 1060, expiresAtMs: 9000 }, [{ status: 201 }]),
      op({ kind: 'reserve', reservationId: 'R1', customerId: 'u1', lines: [{ sku: 'A', quantity: 2 }], invokeMs: 1070, completeMs: 1080, expiresAtMs: 9000, replayed: true }, [{ status: 201 }]),
      op({ kind: 'reserve', customerId: 'u1', lines: [{ sku: 'A', quantity: 3 }], invokeMs: 1100, completeMs: 1110, outcome: 'fail', code: 'customer_limit_exceeded' }, [{ status: 409 }]),
      reserved('R2', 'u1', 2, 1200, 9000, 'A~2'),
    ];
    expect(capsChecked(operations)).toEqual([]);
    expect(capsChecked([...operations, reserved('R3', 'u1', 1, 1300, 9000, 'A')], [], { ...caps, activeHoldsMax: 0 }).map((violation) => violation.message)).toEqual(['customer u1 held 5 units of A at once (limit 4)']);
  });

  it('stops counting at a Redis data-loss fault (the holds went with it), and is part of checkHistory when a run sets caps', () => {
    index = 0;
    const operations = [reserved('R1', 'u1', 3, 1000, 9000), reserved('R2', 'u1', 3, 2000, 9000)];
    const flush: Fault = { kind: 'redis-flushall', target: 'redis', startMs: 1500, endMs: 1510 };
    expect(capsChecked(operations, [flush])).toEqual([]);
    expect(capsChecked(operations, [{ ...flush, kind: 'redis-restart' }])).toHaveLength(1);
    const ledger = ledgerOf([], [], { A: 10 });
    expect(checksOf(checkHistory({ operations, faults: [], ledger, startOnHand: new Map([['A', 10]]), caps }))).toEqual(['caps']);
    expect(checksOf(checkHistory({ operations, faults: [], ledger, startOnHand: new Map([['A', 10]]) }))).toEqual([]);
  });
});
