// `npm run fuzz` judges every answer (fuzz/judge.ts): here with answers it must reject, and with
// ones it must let pass; and its request generator is seeded (the same seed, the same run).
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../apps/api/openapi';
import { judge, type Violation } from '../fuzz/judge';
import { mutate, Random, validRequest, type FuzzRequest, type Targets } from '../fuzz/requests';
import { ResponseChecker } from '../fuzz/response-checker';
import { testConfig } from './support/harness';

const checker = new ResponseChecker(openApiDocument(testConfig()));
const request: FuzzRequest = { operation: 'getSku', method: 'GET', path: '/v1/skus/A', headers: {} };
const problem = (status: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type: 'https://stockhold.dev/problems/x', title: 't', status, code: 'sku_not_found', ...extra });
const kinds = (answer: { status: number; contentType: string | null; text: string }, before = 's', after = 's', sent = request) => {
  const violations: Violation[] = [];
  judge(checker, sent, { ...answer, path: sent.path }, before, after, violations);
  return violations.map((violation) => violation.kind);
};

describe('the fuzz judge', () => {
  it('passes a documented answer and a documented problem', () => {
    expect(kinds({ status: 200, contentType: 'application/json', text: JSON.stringify({ sku: 'A', onHand: 1, reserved: 0, available: 1 }) })).toEqual([]);
    expect(kinds({ status: 404, contentType: 'application/problem+json; charset=utf-8', text: problem(404) })).toEqual([]);
  });

  it('rejects a 5xx, a problem that is not one, a status that disagrees, and what the document does not say', () => {
    expect(kinds({ status: 500, contentType: 'application/problem+json', text: problem(500, { code: 'internal_error' }) })).toEqual(['5xx', 'schema']);
    expect(kinds({ status: 404, contentType: 'text/plain', text: 'Not Found' })).toEqual(['problem', 'schema']);
    expect(kinds({ status: 404, contentType: 'application/problem+json', text: problem(400) })).toEqual(['problem']);
    expect(kinds({ status: 404, contentType: 'application/problem+json', text: JSON.stringify({ title: 'no code', status: 404 }) })).toEqual(['problem', 'schema']);
    expect(kinds({ status: 200, contentType: 'application/json', text: JSON.stringify({ sku: 'A' }) })).toEqual(['schema']);
  });

  it('rejects a refused request that changed the stock, and not a served one', () => {
    const put: FuzzRequest = { operation: 'setStock', method: 'PUT', path: '/v1/skus/A/stock', headers: {} };
    expect(kinds({ status: 409, contentType: 'application/problem+json', text: problem(409, { code: 'stock_below_reserved' }) }, 'before', 'after', put)).toEqual(['stock-changed']);
    expect(kinds({ status: 200, contentType: 'application/json', text: JSON.stringify({ sku: 'A', onHand: 5, reserved: 0, available: 5 }) }, 'before', 'after', put)).toEqual([]);
  });
});

describe('the fuzz requests', () => {
  const targets: Targets = { skus: ['A', 'B'], reservationIds: ['AaIXEscSS2PEVzum0mLf0w'], usedKeys: [], secrets: { checkout: 'c', otherCheckout: 'o', fulfillment: 'f', admin: 'a' } };
  const run = (seed: number) => {
    const random = new Random(seed);
    return Array.from({ length: 300 }, () => (random.chance(0.5) ? mutate(validRequest(random, targets), random, targets) : validRequest(random, targets)));
  };

  it('are the same for the same seed and differ for another', () => {
    expect(JSON.stringify(run(7))).toBe(JSON.stringify(run(7)));
    expect(JSON.stringify(run(8))).not.toBe(JSON.stringify(run(7)));
  });

  it('cover every operation of the document and every mutation within a few thousand', () => {
    const random = new Random(1);
    const operations = new Set<string>();
    const mutations = new Set<string>();
    for (let index = 0; index < 5000; index += 1) {
      const made = mutate(validRequest(random, targets), random, targets);
      operations.add(made.operation);
      if (made.mutation !== undefined) mutations.add(made.mutation);
    }
    const documented = Object.values<Record<string, { operationId?: string }>>(openApiDocument(testConfig()).paths).flatMap((item) => Object.values(item).map((operation) => operation.operationId));
    expect([...operations].sort()).toEqual(documented.filter((id) => id !== undefined).sort());
    expect(mutations.size).toBe(16);
  });
});
