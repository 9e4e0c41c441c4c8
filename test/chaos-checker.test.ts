// Proves the chaos checker can fail: a small valid history passes, and each kind of broken
// history (a lost confirm, a phantom commit, a double allocation, an adjustment lost or applied
// although refused, a broken ledger chain, a 500, a 503 without Retry-After, one key making two
// reservations, a refused replay) is rejected by the check that names it. Data lost with Redis
// is counted as lost, not as a violation, only when a data-loss fault came after the ack.
import { describe, expect, it } from 'vitest';
import { checkHistory, type LedgerDump, type LedgerEntry, type LedgerReservation } from '../chaos/checker';
import type { Attempt, Fault, Operation } from '../chaos/history';

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
