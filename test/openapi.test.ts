// The OpenAPI document as an integrator gets it (GET /openapi.json) passes Redocly's recommended
// lint with no error and no warning, names every operation, and its problem schema lists every
// code the API answers. The lint runs the pinned @redocly/cli from node_modules, offline.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../apps/api/openapi';
import { problemCodes } from '../apps/api/problem';
import { ResponseChecker } from '../fuzz/response-checker';
import { startHarness, type Harness } from './support/harness';

let harness: Harness;
let directory: string;
beforeAll(async () => {
  harness = await startHarness();
  directory = mkdtempSync(path.join(tmpdir(), 'stockhold-openapi-'));
});
afterAll(async () => {
  await harness?.close();
  rmSync(directory, { recursive: true, force: true });
});

const redocly = path.join(__dirname, '..', 'node_modules', '.bin', 'redocly');
const methods = ['get', 'put', 'post', 'delete', 'patch'] as const;

async function lint(document: unknown): Promise<{ totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string }> }> {
  const file = path.join(directory, `openapi-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(document));
  const { stdout } = await promisify(execFile)(redocly, ['lint', file, '--extends', 'recommended', '--format', 'json'], {
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
    timeout: 60_000,
  }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  return JSON.parse(stdout.slice(stdout.indexOf('{')));
}

describe('GET /openapi.json', () => {
  it('passes redocly lint (recommended) with no error and no warning', async () => {
    const response = await harness.call('GET', '/openapi.json', { as: null });
    expect(response.status).toBe(200);
    const report = await lint(response.body);
    expect(report.problems.map((problem) => `${problem.ruleId}: ${problem.message}`)).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  });

  it('the lint catches what it must: a response without a description, an operation without an operationId', async () => {
    const document = (await harness.call('GET', '/openapi.json', { as: null })).body;
    delete document.paths['/v1/reservations'].post.operationId;
    delete document.paths['/v1/skus/{sku}'].get.responses['200'].description;
    const report = await lint(document);
    expect(report.totals.errors).toBeGreaterThanOrEqual(1);
    expect(report.problems.map((problem) => problem.ruleId).sort()).toEqual(['operation-operationId', 'struct']);
  });

  it('names every operation once, describes every response, and gives every problem the code enum', async () => {
    const document = (await harness.call('GET', '/openapi.json', { as: null })).body;
    const operationIds: string[] = [];
    for (const [route, item] of Object.entries<Record<string, any>>(document.paths)) {
      for (const method of methods) {
        const operation = item[method];
        if (operation === undefined) continue;
        expect(operation.operationId, `${method} ${route}`).toMatch(/^[a-z][A-Za-z]+$/);
        operationIds.push(operation.operationId);
        for (const [status, answer] of Object.entries<any>(operation.responses)) {
          expect(answer.description, `${method} ${route} ${status}`).toEqual(expect.any(String));
          if (Number(status) >= 400) expect(answer.content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
        }
      }
    }
    expect(new Set(operationIds).size).toBe(operationIds.length);
    expect(operationIds.length).toBeGreaterThanOrEqual(12);
    expect(document.components.schemas.Problem.properties.code.enum).toEqual([...problemCodes]);
    expect(document.components.schemas.Problem.properties.code.enum).toContain('record_migration_pending');
    expect(Object.keys(document.components.securitySchemes).sort()).toEqual(['basic', 'bearer']);
  });
});

// The checker every harness call() goes through (test/support/openapi-responses.ts) must reject
// what contradicts the document, or the suite's silence would mean nothing.
describe('the response checker', () => {
  const reservation = { id: 'AaIXEscSS2PEVzum0mLf0w', status: 'pending', lines: [{ sku: 'A', quantity: 1 }], expiresAt: '2026-11-26T10:00:00.000Z', createdAt: '2026-11-26T09:45:00.000Z' };
  const problem = { type: 'https://stockhold.dev/problems/insufficient_stock', title: 'Insufficient stock', status: 409, code: 'insufficient_stock' };
  const checker = () => new ResponseChecker(openApiDocument(harness.config));

  it('passes what the document says, and what it does not cover', () => {
    const responses = checker();
    expect(() => responses.check('POST', '/v1/reservations', 201, 'application/json; charset=utf-8', reservation)).not.toThrow();
    expect(() => responses.check('POST', '/v1/reservations?x=1', 409, 'application/problem+json', { ...problem, lines: [] })).not.toThrow();
    expect(() => responses.check('GET', '/healthz', 200, 'application/json', { anything: true })).not.toThrow();
    expect(responses.checked.size).toBe(2);
  });

  it('rejects a status the operation does not list, a body against its schema, and the wrong content type', () => {
    const responses = checker();
    expect(() => responses.check('POST', '/v1/reservations', 418, 'application/problem+json', { ...problem, status: 418 })).toThrow(/does not list/);
    expect(() => responses.check('POST', '/v1/reservations', 201, 'application/json', { ...reservation, status: 'held' })).toThrow(/contradicts/);
    expect(() => responses.check('POST', '/v1/reservations', 201, 'application/json', { ...reservation, extra: 1 })).toThrow(/contradicts/);
    expect(() => responses.check('GET', `/v1/reservations/${reservation.id}`, 200, 'application/json', { ...reservation, lines: [] })).toThrow(/contradicts/);
    expect(() => responses.check('POST', '/v1/reservations', 409, 'application/problem+json', { ...problem, status: '409' })).toThrow(/contradicts/);
    expect(() => responses.check('POST', '/v1/reservations', 409, 'application/problem+json', { ...problem, code: 'no_such_code' })).toThrow(/contradicts/);
    expect(() => responses.check('POST', '/v1/reservations', 201, 'text/html', '<html>')).toThrow(/answered text\/html/);
    expect(() => responses.check('GET', '/v1/skus/A', 200, 'application/json', { sku: 'A', onHand: 1, reserved: 0 })).toThrow(/contradicts/);
    // Headers the document requires: Location on a created reservation, Retry-After on a 503.
    expect(() => responses.check('POST', '/v1/reservations', 201, 'application/json', reservation, new Headers())).toThrow(/without the Location header/);
    expect(() => responses.check('POST', '/v1/reservations', 201, 'application/json', reservation, new Headers({ location: `/v1/reservations/${reservation.id}` }))).not.toThrow();
    expect(() => responses.check('GET', '/v1/skus/A', 503, 'application/problem+json', { ...problem, status: 503, code: 'backend_unavailable' }, new Headers())).toThrow(/Retry-After/);
  });
});

